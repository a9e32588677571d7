#include "log.hpp"

#include <spdlog/spdlog.h>

#include <memory>
#include <mutex>
#include <shared_mutex>

namespace e2s {
namespace {

struct Route {
  LogHandler handler;
  LogLevel min_level = LogLevel::info;
};

// Read on every line, written rarely: a shared lock, and a copy of the route
// for the call, so that a handler may itself call set_log_handler().
std::shared_mutex route_mutex;
std::shared_ptr<const Route> route;  // null: spdlog's default logger

std::shared_ptr<const Route> current_route() {
  std::shared_lock lock(route_mutex);
  return route;
}

spdlog::level::level_enum spdlog_level(LogLevel level) {
  switch (level) {
    case LogLevel::debug: return spdlog::level::debug;
    case LogLevel::info: return spdlog::level::info;
    case LogLevel::warn: return spdlog::level::warn;
    case LogLevel::error: return spdlog::level::err;
    case LogLevel::off: break;
  }
  return spdlog::level::off;
}

}  // namespace

void set_log_handler(LogHandler handler, LogLevel min_level) {
  std::shared_ptr<const Route> next;
  if (handler) next = std::make_shared<const Route>(Route{std::move(handler), min_level});
  std::unique_lock lock(route_mutex);
  route = std::move(next);
}

namespace detail::log {

bool enabled(LogLevel level) {
  if (level == LogLevel::off) return false;
  if (const auto r = current_route()) return r->min_level != LogLevel::off && level >= r->min_level;
  return spdlog::default_logger_raw()->should_log(spdlog_level(level));
}

void write(LogLevel level, std::string message) {
  if (const auto r = current_route()) {
    r->handler(level, message);
    return;
  }
  spdlog::default_logger_raw()->log(spdlog_level(level), message);
}

}  // namespace detail::log
}  // namespace e2s
