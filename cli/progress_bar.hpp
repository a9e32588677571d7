// A one-line progress bar on stderr for `e2s` downloads.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>

#include "e2s/package.hpp"

namespace e2s::cli {

// Draws bytes, percentage, rate and ETA of the current file, at most ten
// times a second. Thread-safe. Draws nothing when disabled.
class ProgressBar {
 public:
  ProgressBar(std::FILE* out, bool enabled);
  ~ProgressBar();

  // Feed one Progress event (the library's callback).
  void update(const Progress& progress);
  // Erases the bar so that a following message starts on a clean line.
  void clear();

  bool enabled() const noexcept { return enabled_; }

 private:
  void draw(const Progress& progress, bool force);

  std::FILE* out_;
  bool enabled_;
  std::mutex mutex_;
  std::string file_;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point last_draw_;
  bool drawn_ = false;
};

// "12.3 MiB"
std::string human_bytes(double bytes);

}  // namespace e2s::cli
