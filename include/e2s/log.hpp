// Where e2s's log lines go. By default: spdlog's default logger, as a program
// that uses spdlog expects (the e2s command points it at stderr). A program
// that wants them elsewhere (its own logger, a service's structured log) or
// nowhere hands e2s a handler.
#pragma once

#include <functional>
#include <string_view>

namespace e2s {

enum class LogLevel { debug, info, warn, error, off };

// Receives one log line, without a trailing newline. Called from any thread
// e2s runs, possibly several at once: keep it thread-safe.
using LogHandler = std::function<void(LogLevel level, std::string_view message)>;

// Routes every log line of e2s at `min_level` or above (all Packages, all
// threads) to `handler`; lines below it are not even formatted. A handler
// that does nothing, or LogLevel::off, silences e2s. An empty handler
// restores the default. Thread-safe.
void set_log_handler(LogHandler handler, LogLevel min_level = LogLevel::info);

}  // namespace e2s
