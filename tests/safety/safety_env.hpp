// What the safety tests share: keeping the runner's own tokens, endpoints,
// caches and proxies out of a test, in this process and in the CLI's.
#pragma once

#include <stdlib.h>

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/scoped_env.hpp"
#include "support/test_server.hpp"

extern char** environ;

namespace e2s::test::safety {

// Variables of the runner that would let its own tokens, endpoints, caches
// or proxies into a test (a filter for run_e2s, and what EnvGuard unsets).
inline bool scrubbed(const std::string& name) {
  for (const char* prefix : {"AWS_", "HF_", "NGC_", "EARTH2STUDIO_"}) {
    if (name.rfind(prefix, 0) == 0) return true;
  }
  for (const char* exact : {"HUGGING_FACE_HUB_TOKEN", "STORAGE_EMULATOR_HOST",
                            "CLOUD_STORAGE_EMULATOR_ENDPOINT", "XDG_CACHE_HOME", "http_proxy",
                            "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy",
                            "CURL_CA_BUNDLE", "SSL_CERT_FILE"}) {
    if (name == exact) return true;
  }
  return false;
}

// Unsets every scrubbed variable of this process and sets others for one
// test; all are restored when it is destroyed.
class EnvGuard {
 public:
  EnvGuard() {
    std::vector<std::string> names;
    for (char** entry = environ; *entry != nullptr; ++entry) {
      const std::string text = *entry;
      const std::string name = text.substr(0, text.find('='));
      if (scrubbed(name)) names.push_back(name);
    }
    for (const auto& name : names) set(name, std::nullopt);
  }
  EnvGuard(const EnvGuard&) = delete;
  EnvGuard& operator=(const EnvGuard&) = delete;

  // nullopt unsets. Guards are restored in reverse order, so setting a name
  // twice ends with its original value.
  void set(const std::string& name, std::optional<std::string> value) {
    names_.push_back(name);  // a deque keeps each string where it is
    guards_.push_back(std::make_unique<ScopedEnv>(names_.back().c_str(), std::move(value)));
  }

  ~EnvGuard() {
    while (!guards_.empty()) guards_.pop_back();
  }

 private:
  std::deque<std::string> names_;
  std::vector<std::unique_ptr<ScopedEnv>> guards_;
};

// Every request a loopback server recorded, copied out of one /_stats reply.
inline std::vector<nlohmann::json> recorded(const nlohmann::json& stats) {
  std::vector<nlohmann::json> out;
  for (const auto& request : stats.at("requests")) out.push_back(request);
  return out;
}

inline std::vector<nlohmann::json> recorded(const TestServer& server) {
  const nlohmann::json stats = server.stats();
  return recorded(stats);
}

}  // namespace e2s::test::safety
