// `e2s cache ls | verify | prune | rm`: what the cache root holds, checking
// it against its metadata, and removing from it.
#pragma once

#include <CLI/CLI.hpp>
#include <filesystem>
#include <memory>

namespace e2s::cli {

class CacheCommand {
 public:
  // Adds the `cache` subcommand and its own subcommands to `app`.
  explicit CacheCommand(CLI::App& app);
  ~CacheCommand();
  CacheCommand(const CacheCommand&) = delete;
  CacheCommand& operator=(const CacheCommand&) = delete;

  // Whether the parsed command line chose `cache`.
  bool parsed() const;

  // Runs the chosen subcommand on `cache_root` and returns the exit status. Results go to stdout; warnings through spdlog; a progress line
  // on stderr when it is a terminal and not `quiet`. Throws e2s::Error for
  // failures (main() prints them): not_found when nothing is cached for a
  // ROOT, integrity when verify found problems it did not remove, io when a
  // removal fails.
  int run(const std::filesystem::path& cache_root, bool quiet);

 private:
  struct Options;
  std::unique_ptr<Options> options_;
};

}  // namespace e2s::cli
