// Reading the environment: the one place that knows e2s's variables.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace e2s::detail {

// Value of environment variable `name`, or nullopt when unset or empty.
std::optional<std::string> env_value(const char* name);

// True for "1", "on", "yes", "true" (any case), as huggingface_hub reads booleans.
bool env_flag(const char* name);

// CURL_CA_BUNDLE, else SSL_CERT_FILE (the variables curl and OpenSSL read),
// else empty: the system store.
std::filesystem::path default_ca_bundle();

// Where the Hugging Face Hub is and who we are to it (protocols.md §1.1).
struct HfSettings {
  std::string endpoint;      // HF_ENDPOINT without trailing '/'; default https://huggingface.co
  std::string token;         // "" when none; never logged
  std::string token_source;  // where the token came from, for messages: "HF_TOKEN", ...
};

// HF_ENDPOINT; token from HF_TOKEN, else HUGGING_FACE_HUB_TOKEN, else the file
// HF_TOKEN_PATH (default $HF_HOME/token, HF_HOME defaulting to
// $XDG_CACHE_HOME/huggingface or ~/.cache/huggingface), whitespace stripped.
// HF_HUB_DISABLE_IMPLICIT_TOKEN turns the token off.
HfSettings hf_settings();

// Where NGC is and the key to it (protocols.md §2.6).
struct NgcSettings {
  std::string api_base;    // ends with '/'; default https://api.ngc.nvidia.com/
  std::string auth_url;    // default https://authn.nvidia.com/token
  std::string api_key;     // "" when none; never logged
  std::string key_source;  // "NGC_CLI_API_KEY" or "NGC_API_KEY"
};

// NGC_CLI_API_URL, else NGC_CLI_SEARCH_SERVICE_URL (as Earth2Studio), else the
// public API; NGC_CLI_AUTH_URL; the key from NGC_CLI_API_KEY, else NGC_API_KEY.
NgcSettings ngc_settings();

}  // namespace e2s::detail
