#include "support/test_server.hpp"

#include <curl/curl.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace e2s::test {
namespace {

constexpr auto kStartupTimeout = std::chrono::seconds(20);
constexpr auto kExitGrace = std::chrono::seconds(2);
constexpr long kControlTimeoutSeconds = 20;

std::string_view without_query(std::string_view path) {
  return path.substr(0, path.find('?'));
}

void curl_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::size_t append_to_string(char* data, std::size_t size, std::size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

}  // namespace

TestServer::TestServer(std::string script_name, std::vector<std::string> args,
                       Interpreter interpreter)
    : script_(std::move(script_name)) {
  // Debian's interpreter first: the servers are written for it (stdlib only),
  // and a pyenv shim on PATH costs start-up time or may point elsewhere.
  const bool system_python = interpreter == Interpreter::system_python3 &&
                             ::access("/usr/bin/python3", X_OK) == 0;
  const std::string python = system_python ? "/usr/bin/python3" : "python3";
  const std::string script_path = std::string(E2S_TEST_SERVERS_DIR) + "/" + script_;

  std::vector<std::string> argv_strings = {python, script_path, "--port", "0"};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  // Built before fork(): the child of a threaded process may only make
  // async-signal-safe calls until exec.
  std::vector<char*> argv;
  for (auto& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);

  int in_pipe[2];
  int out_pipe[2];
  // O_CLOEXEC so that servers started concurrently do not inherit each
  // other's pipe ends (which would keep a server alive after its owner quit).
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    ::close(in_pipe[0]);
    ::close(in_pipe[1]);
    throw std::runtime_error("pipe2 failed");
  }

  pid_ = ::fork();
  if (pid_ == 0) {
    // A process group of its own, so that stop() also ends whatever the
    // server started, which would otherwise outlive it.
    ::setpgid(0, 0);
    ::dup2(in_pipe[0], STDIN_FILENO);
    ::dup2(out_pipe[1], STDOUT_FILENO);
    // libcurl's sockets are not close-on-exec: a server inheriting a kept-alive
    // client connection would keep it open after the client closed it.
    ::close_range(3, ~0U, 0);
    if (system_python) {
      ::execv(argv[0], argv.data());
    } else {
      ::execvp(argv[0], argv.data());
    }
    ::_exit(127);
  }
  if (pid_ > 0) ::setpgid(pid_, pid_);  // also here: stop() may come before the child ran
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  stdin_fd_ = in_pipe[1];
  stdout_fd_ = out_pipe[0];
  if (pid_ < 0) {
    stop();
    throw std::runtime_error("fork failed for test server " + script_);
  }

  std::string line;
  const auto deadline = std::chrono::steady_clock::now() + kStartupTimeout;
  while (line.find('\n') == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      stop();
      throw std::runtime_error("test server " + script_ + " did not print its port within " +
                               std::to_string(kStartupTimeout.count()) + " s");
    }
    pollfd pfd{stdout_fd_, POLLIN, 0};
    int ready = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    char buffer[256];
    ssize_t n = ::read(stdout_fd_, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
      stop();
      throw std::runtime_error("test server " + script_ + " (" + python + " " + script_path +
                               ") exited before printing its port: " + describe_exit(status) +
                               "; its stderr is in the test output");
    }
    line.append(buffer, static_cast<std::size_t>(n));
  }
  line.resize(line.find('\n'));
  if (line.rfind("PORT ", 0) == 0) port_ = std::atoi(line.c_str() + 5);
  if (port_ <= 0) {
    stop();
    throw std::runtime_error("test server " + script_ + " printed \"" + line +
                             "\" instead of \"PORT <n>\"");
  }
}

TestServer::~TestServer() { stop(); }

void TestServer::stop() noexcept {
  if (stdin_fd_ >= 0) ::close(stdin_fd_);  // the server exits on stdin EOF
  stdin_fd_ = -1;
  if (pid_ > 0) {
    ::kill(-pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + kExitGrace;
    int status = 0;
    pid_t done = 0;
    while ((done = ::waitpid(pid_, &status, WNOHANG)) == 0 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (done == 0) {
      ::kill(-pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
    }
  }
  pid_ = -1;
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
  stdout_fd_ = -1;
}

std::string TestServer::url(std::string_view path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
}

std::string TestServer::control(std::string_view method, std::string_view path,
                                const std::string& body) const {
  curl_init_once();
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> handle(curl_easy_init(),
                                                             &curl_easy_cleanup);
  if (!handle) throw std::runtime_error("curl_easy_init failed");
  CURL* h = handle.get();
  const std::string address = url(path);
  std::string reply;
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> header_guard(headers,
                                                                            &curl_slist_free_all);
  curl_easy_setopt(h, CURLOPT_URL, address.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_NOPROXY, "*");  // loopback, whatever the environment says
  curl_easy_setopt(h, CURLOPT_TIMEOUT, kControlTimeoutSeconds);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &append_to_string);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &reply);
  if (method == "POST") {
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  const CURLcode code = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  if (code != CURLE_OK || status != 200) {
    throw std::runtime_error(std::string(method) + " " + address + " failed: " +
                             (code != CURLE_OK ? curl_easy_strerror(code)
                                               : "HTTP " + std::to_string(status) + ": " + reply));
  }
  return reply;
}

nlohmann::json TestServer::stats() const {
  return nlohmann::json::parse(control("GET", "/_stats", {}));
}

void TestServer::reset() const { control("POST", "/_reset", "{}"); }

void TestServer::fault(const nlohmann::json& spec) const {
  control("POST", "/_fault", spec.dump());
}

void TestServer::add_headers(std::string_view path, const nlohmann::json& headers) const {
  nlohmann::json spec = {{"path", std::string(path)}, {"headers", headers}};
  control("POST", "/_headers", spec.dump());
}

std::size_t TestServer::count(std::string_view method, std::string_view path) const {
  const auto all = stats();
  std::size_t n = 0;
  for (const auto& request : all.at("requests")) {
    const auto& recorded_method = request.at("method").get_ref<const std::string&>();
    const auto& recorded_path = request.at("path").get_ref<const std::string&>();
    if (recorded_method == method && without_query(recorded_path) == without_query(path)) ++n;
  }
  return n;
}

std::uint64_t TestServer::body_bytes() const {
  return stats().at("body_bytes").get<std::uint64_t>();
}

}  // namespace e2s::test
