// e2s's own log lines: every part of the library logs through here, so that
// set_log_handler() (include/e2s/log.hpp) routes or silences all of them.
// Formatting uses fmt, as spdlog does; a line below the level in force is
// never formatted.
#pragma once

#include <fmt/format.h>

#include <string>
#include <utility>

#include "e2s/log.hpp"

namespace e2s::detail::log {

// Whether a line at `level` goes anywhere.
bool enabled(LogLevel level);

// Hands a formatted line to the handler in force (or spdlog's default logger).
void write(LogLevel level, std::string message);

template <typename... Args>
void at(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
  if (enabled(level)) write(level, fmt::format(format, std::forward<Args>(args)...));
}

template <typename... Args>
void debug(fmt::format_string<Args...> format, Args&&... args) {
  at(LogLevel::debug, format, std::forward<Args>(args)...);
}

template <typename... Args>
void info(fmt::format_string<Args...> format, Args&&... args) {
  at(LogLevel::info, format, std::forward<Args>(args)...);
}

template <typename... Args>
void warn(fmt::format_string<Args...> format, Args&&... args) {
  at(LogLevel::warn, format, std::forward<Args>(args)...);
}

template <typename... Args>
void error(fmt::format_string<Args...> format, Args&&... args) {
  at(LogLevel::error, format, std::forward<Args>(args)...);
}

}  // namespace e2s::detail::log
