#include "e2s/error.hpp"

#include <utility>

namespace e2s {

std::string_view to_string(Errc code) noexcept {
  switch (code) {
    case Errc::invalid_uri: return "invalid_uri";
    case Errc::not_found: return "not_found";
    case Errc::unauthorized: return "unauthorized";
    case Errc::timeout: return "timeout";
    case Errc::network: return "network";
    case Errc::integrity: return "integrity";
    case Errc::offline_miss: return "offline_miss";
    case Errc::io: return "io";
    case Errc::unsupported: return "unsupported";
    case Errc::other: return "other";
  }
  return "other";
}

int exit_status(Errc code) noexcept {
  switch (code) {
    case Errc::invalid_uri: return 2;
    case Errc::not_found: return 3;
    case Errc::unauthorized: return 4;
    case Errc::timeout:
    case Errc::network: return 5;
    case Errc::integrity: return 6;
    case Errc::offline_miss: return 7;
    case Errc::io:
    case Errc::unsupported:
    case Errc::other: return 1;
  }
  return 1;
}

Error::Error(Errc code, std::string message, std::string uri, int http_status)
    : std::runtime_error(std::move(message)),
      code_(code),
      uri_(std::move(uri)),
      http_status_(http_status) {}

}  // namespace e2s
