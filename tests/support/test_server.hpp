// A loopback server from tests/servers/ run as a child process for one test.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace e2s::test {

// Which Python runs a server script.
enum class Interpreter {
  // Debian's /usr/bin/python3 when present (the stdlib-only fakes are written
  // for it; a pyenv shim on PATH costs start-up time), else `python3` on PATH.
  system_python3,
  // The `python3` found on PATH, for scripts that need packages installed
  // there (moto_s3.py needs moto and boto3).
  path_python3,
};

// Starts `python3 <E2S_TEST_SERVERS_DIR>/<script_name> --port 0 <args...>` and
// waits (up to 20 s) for its "PORT <n>" line. The child's stdin is a pipe held
// by this object, so the server exits when the object is destroyed or the test
// process dies, however abruptly; destruction also ends the server's process
// group. Throws std::runtime_error when the server
// cannot be started or does not report its port.
//
// The control helpers speak the API of http_server.py (/_stats, /_reset,
// /_fault, /_headers); they throw std::runtime_error when the call fails.
// Not thread-safe for construction/destruction; the helpers may be called
// from any thread.
class TestServer {
 public:
  TestServer(std::string script_name, std::vector<std::string> args,
             Interpreter interpreter = Interpreter::system_python3);
  ~TestServer();
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  int port() const { return port_; }
  // "http://127.0.0.1:<port><path>"; `path` should start with '/'.
  std::string url(std::string_view path = "") const;

  // GET /_stats: {"requests": [...], "body_bytes": n}.
  nlohmann::json stats() const;
  // POST /_reset: forget statistics, faults and extra headers.
  void reset() const;
  // POST /_fault with `spec` ({"path": ..., "kind": ..., ...}).
  void fault(const nlohmann::json& spec) const;
  // POST /_headers: extra response headers for `path`.
  void add_headers(std::string_view path, const nlohmann::json& headers) const;
  // Requests recorded with this method and path (query ignored on both sides).
  std::size_t count(std::string_view method, std::string_view path) const;
  // Body bytes the server sent for file responses since the last reset.
  std::uint64_t body_bytes() const;

 private:
  std::string control(std::string_view method, std::string_view path,
                      const std::string& body) const;
  void stop() noexcept;

  std::string script_;
  pid_t pid_ = -1;
  int stdin_fd_ = -1;   // write end of the child's stdin; closing it stops the child
  int stdout_fd_ = -1;  // read end of the child's stdout
  int port_ = 0;
};

}  // namespace e2s::test
