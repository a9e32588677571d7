// What the safety tests share: keeping the runner's own tokens, endpoints,
// caches and proxies out of a test, in this process and in the CLI's.
#pragma once

#include <string>

#include "support/env_guard.hpp"

namespace e2s::test::safety {

// Variables of the runner that would let its own tokens, endpoints, caches
// or proxies into a test: a filter for run_e2s, and what each test's
// EnvGuard(scrubbed) unsets first.
inline bool scrubbed(const std::string& name) {
  for (const char* prefix : {"AWS_", "HF_", "NGC_", "EARTH2STUDIO_"}) {
    if (name.rfind(prefix, 0) == 0) return true;
  }
  for (const char* exact : {"HUGGING_FACE_HUB_TOKEN", "E2S_HF_CACHE", "STORAGE_EMULATOR_HOST",
                            "CLOUD_STORAGE_EMULATOR_ENDPOINT", "XDG_CACHE_HOME", "http_proxy",
                            "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy",
                            "CURL_CA_BUNDLE", "SSL_CERT_FILE"}) {
    if (name == exact) return true;
  }
  return false;
}

}  // namespace e2s::test::safety
