// e2s::Error — the one exception type the public API throws.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace e2s {

// What kind of failure happened. The CLI maps each to an exit status
// (see exit_status()); library users switch on it to decide what to do next.
enum class Errc {
  invalid_uri,    // malformed root or a file path that escapes the package
  not_found,      // the server says the package or file does not exist
  unauthorized,   // 401/403: missing or wrong credentials, licence not accepted
  timeout,        // no progress within the stall timeout or over the overall timeout
  network,        // connection-level failure that outlived every retry
  integrity,      // size or hash of the received bytes does not match the server's claim
  offline_miss,   // offline mode and the file is not in the cache
  io,             // local disk: cannot create, write, rename, or read
  unsupported,    // a root form e2s parses but cannot fetch (yet)
  other,          // anything else (unexpected HTTP status, malformed server reply)
};

// Short stable name of the code, e.g. "not_found".
std::string_view to_string(Errc code) noexcept;

// The process exit status the `e2s` CLI uses for `code`:
// 2 invalid_uri, 3 not_found, 4 unauthorized, 5 network/timeout, 6 integrity,
// 7 offline_miss, 1 everything else.
int exit_status(Errc code) noexcept;

// Thrown by every public e2s call that fails. what() is one line that names the
// URI and says what to do next; it never contains credentials.
class Error : public std::runtime_error {
 public:
  Error(Errc code, std::string message, std::string uri = {}, int http_status = 0);

  Errc code() const noexcept { return code_; }
  // The package root or file URI the failure is about ("" when none).
  const std::string& uri() const noexcept { return uri_; }
  // The HTTP status of the failing response, 0 when there was none.
  int http_status() const noexcept { return http_status_; }

 private:
  Errc code_;
  std::string uri_;
  int http_status_;
};

}  // namespace e2s
