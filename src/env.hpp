// Reading the environment: the one place that knows e2s's variables.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "e2s/options.hpp"

namespace e2s::detail {

// Value of environment variable `name`, or nullopt when unset or empty.
std::optional<std::string> env_value(const char* name);

// True for "1", "on", "yes", "true" (any case), as huggingface_hub reads booleans.
bool env_flag(const char* name);

// CURL_CA_BUNDLE, else SSL_CERT_FILE (the variables curl and OpenSSL read),
// else empty: the system store.
std::filesystem::path default_ca_bundle();

// HF_HUB_DOWNLOAD_TIMEOUT (seconds, as huggingface_hub reads it) when set to a
// positive number: the timeout of hf:// roots.
std::optional<std::chrono::milliseconds> hub_download_timeout();

// Offline mode from the environment: EARTH2STUDIO_OFFLINE, and for the Hub
// (`hub_root`) HF_HUB_OFFLINE as huggingface_hub reads it.
bool default_offline(bool hub_root);

// Download locks between processes: on unless E2S_LOCKS is "0", "off", "no"
// or "false" (for filesystems whose locks misbehave).
bool default_lock_downloads();

// E2S_LOCK_STALE_SECONDS (decimals allowed); 120 s when unset or invalid.
std::chrono::milliseconds default_lock_stale_after();

// The cache root: EARTH2STUDIO_MODEL_CACHE, else EARTH2STUDIO_CACHE, else
// ~/.cache/earth2studio; absolute.
std::filesystem::path default_cache_root();

// EARTH2STUDIO_PACKAGE_TIMEOUT, whole seconds as Earth2Studio reads it; 300
// when unset or invalid.
std::chrono::seconds default_package_timeout();

// `folder` made absolute and normal, without a trailing '/': the form of every
// path e2s hands out, whatever the working directory later becomes.
std::filesystem::path absolute_folder(const std::filesystem::path& folder);

// E2S_CHECKPOINT_SECONDS (decimals allowed); 1 s when unset or invalid.
std::chrono::milliseconds default_checkpoint_interval();

// Where the Hugging Face Hub is and who we are to it (protocols.md §1.1).
struct HfSettings {
  std::string endpoint;      // HF_ENDPOINT without trailing '/'; default https://huggingface.co
  std::string token;         // "" when none; never logged
  std::string token_source;  // where the token came from, for messages: "HF_TOKEN", ...
};

// The values of `given`, and for each one unset: HF_ENDPOINT; token from HF_TOKEN, else HUGGING_FACE_HUB_TOKEN, else the file
// HF_TOKEN_PATH (default $HF_HOME/token, HF_HOME defaulting to
// $XDG_CACHE_HOME/huggingface or ~/.cache/huggingface), whitespace stripped.
// HF_HUB_DISABLE_IMPLICIT_TOKEN turns the token off.
HfSettings hf_settings(const HubOptions& given);

// How hf:// roots use huggingface_hub's cache, and where it is.
struct HfCacheSettings {
  HfCacheMode mode = HfCacheMode::read;
  std::filesystem::path folder;  // absolute; "" when there is no home to find it in
};
// The values of `given`, and for each one unset: E2S_HF_CACHE; HF_HUB_CACHE,
// else HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub. Throws Error(other) for an
// E2S_HF_CACHE that is none of off, read, share.
HfCacheSettings hf_cache_settings(const HubOptions& given);

// The site mirrors and what to do with them.
struct MirrorSettings {
  std::vector<std::string> urls;
  bool push = false;
  std::chrono::milliseconds lease{std::chrono::minutes(2)};
};
// The values of `given`, and for each one unset: E2S_MIRROR (comma-separated),
// E2S_MIRROR_PUSH, E2S_MIRROR_LEASE_SECONDS.
MirrorSettings mirror_settings(const MirrorOptions& given);

// Where NGC is and the key to it (protocols.md §2.6).
struct NgcSettings {
  std::string api_base;    // ends with '/'; default https://api.ngc.nvidia.com/
  std::string auth_url;    // default https://authn.nvidia.com/token
  std::string api_key;     // "" when none; never logged
  std::string key_source;  // "NGC_CLI_API_KEY" or "NGC_API_KEY"
};

// The values of `given`, and for each one unset: NGC_CLI_API_URL, else NGC_CLI_SEARCH_SERVICE_URL (as Earth2Studio), else the
// public API; NGC_CLI_AUTH_URL; the key from NGC_CLI_API_KEY, else NGC_API_KEY.
NgcSettings ngc_settings(const NgcOptions& given);

// AWS credentials, region and endpoint for S3 (protocols.md §3.1, §3.8).
struct AwsSettings {
  std::string access_key;          // "" when none: anonymous requests
  std::string secret_key;          // never logged
  std::string session_token;       // "" when none; never logged
  std::string credentials_source;  // "AWS_ACCESS_KEY_ID", "profile NAME in FILE", ...
  std::string region;              // default us-east-1
  std::string endpoint;            // "" for AWS itself; else without trailing '/'
};

// The values of `given`, and for each one unset: credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (+AWS_SESSION_TOKEN
// or AWS_SECURITY_TOKEN), else the profile AWS_PROFILE (default "default") in
// AWS_SHARED_CREDENTIALS_FILE (default ~/.aws/credentials). Region from
// AWS_REGION, AWS_DEFAULT_REGION, then the profile in AWS_CONFIG_FILE (default
// ~/.aws/config). Endpoint from AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, then
// the profile's endpoint_url (unless AWS_IGNORE_CONFIGURED_ENDPOINT_URLS).
AwsSettings aws_settings(const S3Options& given);

// given.endpoint, else STORAGE_EMULATOR_HOST ("http://" added when it has no scheme), else
// https://storage.googleapis.com; without trailing '/'.
std::string gcs_base_url(const GcsOptions& given);

}  // namespace e2s::detail
