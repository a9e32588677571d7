#include "support/moto_server.hpp"

#include <utility>

namespace e2s::test {

namespace {

constexpr const char* kSetupFile = "setup.json";
constexpr const char* kCredentialsFile = "credentials.json";

}  // namespace

MotoServer::MotoServer(const nlohmann::json& setup, bool enforce_auth,
                       std::vector<std::string> extra_args)
    // moto and boto3 are installed for the `python3` on PATH, not Debian's.
    : server_("moto_s3.py", script_args(files_, setup, enforce_auth, std::move(extra_args)),
              Interpreter::path_python3),
      // Written before the script prints its port, so complete by now.
      credentials_(nlohmann::json::parse(TempDir::read_file(files_.path() / kCredentialsFile))) {}

std::vector<std::string> MotoServer::script_args(const TempDir& files, const nlohmann::json& setup,
                                                 bool enforce_auth,
                                                 std::vector<std::string> extra_args) {
  std::vector<std::string> args = {"--setup", files.write_file(kSetupFile, setup.dump()).string(),
                                   "--credentials-out", (files.path() / kCredentialsFile).string()};
  if (enforce_auth) args.push_back("--auth");
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  return args;
}

}  // namespace e2s::test
