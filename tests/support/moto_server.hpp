// The real moto S3 server (tests/servers/moto_s3.py) on a loopback port, set
// up with the buckets, objects, users and sessions a test describes.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/temp_dir.hpp"
#include "support/test_server.hpp"

namespace e2s::test {

class MotoServer {
 public:
  // `setup` is what moto_s3.py --setup reads; `enforce_auth` turns on SigV4
  // and IAM checks (--auth); `extra_args` go to the script as they are.
  explicit MotoServer(const nlohmann::json& setup, bool enforce_auth = false,
                      std::vector<std::string> extra_args = {});
  MotoServer(const MotoServer&) = delete;
  MotoServer& operator=(const MotoServer&) = delete;

  // "http://127.0.0.1:<port>", for AWS_ENDPOINT_URL.
  std::string endpoint() const { return server_.url(); }

  // What the script wrote with --credentials-out: the keys of the users and
  // sessions it made, and the ETags of the objects.
  const nlohmann::json& credentials() const { return credentials_; }

 private:
  static std::vector<std::string> script_args(const TempDir& files, const nlohmann::json& setup,
                                              bool enforce_auth,
                                              std::vector<std::string> extra_args);

  TempDir files_;  // the setup and credentials files; before server_, which reads them
  TestServer server_;
  nlohmann::json credentials_;
};

}  // namespace e2s::test
