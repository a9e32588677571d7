#include "support/tls.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

extern char** environ;

namespace e2s::test {
namespace {

std::string read_all(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

SelfSignedCertificate::SelfSignedCertificate(const std::filesystem::path& folder,
                                             std::string_view name)
    : cert_(folder / (std::string(name) + ".cert.pem")),
      key_(folder / (std::string(name) + ".key.pem")) {
  const std::filesystem::path log = folder / (std::string(name) + ".openssl.log");
  std::vector<std::string> args = {
      "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
      "-keyout", key_.string(), "-out", cert_.string(), "-days", "1",
      "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  // posix_spawn rather than fork: the test process may already run threads.
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = -1;
  const int spawned = ::posix_spawnp(&pid, "openssl", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) {
    throw std::runtime_error(std::string("cannot run openssl (install the openssl package): ") +
                             std::strerror(spawned));
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !std::filesystem::exists(cert_) ||
      !std::filesystem::exists(key_)) {
    throw std::runtime_error("openssl could not make a self-signed certificate (exit status " +
                             std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) +
                             "; is the openssl package installed?): " + read_all(log));
  }
}

std::vector<std::string> SelfSignedCertificate::server_args() const {
  return {"--tls-cert", cert_.string(), "--tls-key", key_.string()};
}

std::string https_url(const TestServer& server, std::string_view path) {
  return "https://127.0.0.1:" + std::to_string(server.port()) + std::string(path);
}

}  // namespace e2s::test
