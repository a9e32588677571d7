// Throwaway TLS material for https:// tests against the loopback servers.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "support/test_server.hpp"

namespace e2s::test {

// A self-signed certificate for 127.0.0.1 (CN and subjectAltName IP), valid
// for one day, made by running the `openssl` command
// (`openssl req -x509 -newkey rsa:2048 -nodes ...`). The certificate is its
// own CA, so cert() is also the CA bundle a client must be given to trust it.
class SelfSignedCertificate {
 public:
  // Writes <name>.cert.pem and <name>.key.pem into `folder` (which must
  // exist). Throws std::runtime_error, with openssl's output, when the
  // command is missing or fails.
  explicit SelfSignedCertificate(const std::filesystem::path& folder,
                                 std::string_view name = "server");

  const std::filesystem::path& cert() const { return cert_; }
  const std::filesystem::path& key() const { return key_; }

  // {"--tls-cert", cert(), "--tls-key", key()}: makes http_server.py serve HTTPS.
  std::vector<std::string> server_args() const;

 private:
  std::filesystem::path cert_;
  std::filesystem::path key_;
};

// "https://127.0.0.1:<port><path>" of a server started with server_args().
// TestServer's control helpers (stats(), fault(), ...) speak plain http and
// cannot reach such a server.
std::string https_url(const TestServer& server, std::string_view path = "");

}  // namespace e2s::test
