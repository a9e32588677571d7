// A one-line progress bar on stderr for `e2s` downloads.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "e2s/package.hpp"

namespace e2s::cli {

// One line for everything being downloaded: bytes, percentage, rate and ETA
// summed over the files in flight (and the file's name when there is one),
// redrawn at most ten times a second. Thread-safe: parallel downloads report
// from several threads. Draws nothing when disabled.
class ProgressBar {
 public:
  ProgressBar(std::FILE* out, bool enabled);
  ~ProgressBar();

  // Feed one Progress event (the library's callback).
  void update(const Progress& progress);
  // Ends the line so that a following message starts on a clean one.
  void clear();

  bool enabled() const noexcept { return enabled_; }

 private:
  struct FileState {
    std::uint64_t done = 0;
    std::optional<std::uint64_t> total;
    bool finished = false;
  };

  void draw(bool force);

  std::FILE* out_;
  bool enabled_;
  std::mutex mutex_;
  std::map<std::string, FileState> files_;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point last_draw_;
  bool drawn_ = false;
};

}  // namespace e2s::cli
