#include "env.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <map>
#include <sstream>

#include "cache/folder.hpp"
#include "e2s/error.hpp"
#include "util/text.hpp"

namespace e2s::detail {

std::optional<std::string> env_value(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

bool env_flag(const char* name) {
  auto value = env_value(name);
  if (!value) return false;
  const std::string lower = ascii_lower(*value);
  return lower == "1" || lower == "on" || lower == "yes" || lower == "true";
}

std::filesystem::path default_ca_bundle() {
  // libcurl reads neither variable itself (only the curl tool does), and a
  // libcurl built with a default bundle makes OpenSSL ignore SSL_CERT_FILE.
  if (auto bundle = env_value("CURL_CA_BUNDLE")) return *bundle;
  if (auto file = env_value("SSL_CERT_FILE")) return *file;
  return {};
}

namespace {

// A positive whole number of seconds from `name`, else nullopt.
std::optional<std::chrono::seconds> env_seconds(const char* name) {
  auto text = env_value(name);
  if (!text) return std::nullopt;
  long long seconds = 0;
  const char* begin = text->data();
  const char* end = begin + text->size();
  auto [ptr, ec] = std::from_chars(begin, end, seconds);
  if (ec != std::errc() || ptr != end || seconds <= 0) return std::nullopt;
  return std::chrono::seconds(seconds);
}

// A positive number of seconds, decimals allowed ("0.25"), as milliseconds.
std::optional<std::chrono::milliseconds> env_milliseconds(const char* name) {
  auto text = env_value(name);
  if (!text) return std::nullopt;
  double seconds = 0;
  const char* end = text->data() + text->size();
  auto [ptr, ec] = std::from_chars(text->data(), end, seconds);
  if (ec != std::errc() || ptr != end || !(seconds > 0) || seconds > 1e7) return std::nullopt;
  return std::chrono::milliseconds(std::max<std::int64_t>(1, static_cast<std::int64_t>(seconds * 1000)));
}

}  // namespace

std::optional<std::chrono::milliseconds> hub_download_timeout() {
  return env_milliseconds("HF_HUB_DOWNLOAD_TIMEOUT");
}

bool default_offline(bool hub_root) {
  return env_flag("EARTH2STUDIO_OFFLINE") || (hub_root && env_flag("HF_HUB_OFFLINE"));
}

bool default_lock_downloads() {
  auto value = env_value("E2S_LOCKS");
  if (!value) return true;
  const std::string lower = ascii_lower(*value);
  return !(lower == "0" || lower == "off" || lower == "no" || lower == "false");
}

std::chrono::milliseconds default_lock_stale_after() {
  return env_milliseconds("E2S_LOCK_STALE_SECONDS").value_or(std::chrono::seconds(120));
}

std::chrono::milliseconds default_checkpoint_interval() {
  return env_milliseconds("E2S_CHECKPOINT_SECONDS").value_or(std::chrono::seconds(1));
}

namespace {

// Tokens are pasted from web pages and files: drop spaces and line breaks.
std::string strip_token(std::string token) {
  std::erase_if(token, [](unsigned char c) { return std::isspace(c); });
  return token;
}

std::filesystem::path hf_home() {
  if (auto home = env_value("HF_HOME")) return *home;
  if (auto xdg = env_value("XDG_CACHE_HOME")) return std::filesystem::path(*xdg) / "huggingface";
  if (auto home = env_value("HOME")) return std::filesystem::path(*home) / ".cache" / "huggingface";
  return {};
}

}  // namespace

namespace {

HfCacheMode hf_cache_mode(const HubOptions& given) {
  if (given.cache_mode) return *given.cache_mode;
  const auto value = env_value("E2S_HF_CACHE");
  if (!value) return HfCacheMode::read;
  const std::string mode = ascii_lower(*value);
  if (mode == "off" || mode == "0" || mode == "no" || mode == "false") return HfCacheMode::off;
  if (mode == "read") return HfCacheMode::read;
  if (mode == "share") return HfCacheMode::share;
  throw Error(Errc::other, "E2S_HF_CACHE is \"" + escaped(*value) + "\"; set it to off, read or share");
}

std::filesystem::path hf_hub_cache(const HubOptions& given) {
  if (given.cache) return absolute_folder(*given.cache);
  for (const char* name : {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"}) {
    if (auto folder = env_value(name)) return absolute_folder(*folder);
  }
  const std::filesystem::path home = hf_home();
  return home.empty() ? home : absolute_folder(home / "hub");
}

}  // namespace

HfSettings hf_settings(const HubOptions& given) {
  HfSettings settings;
  settings.endpoint = given.endpoint ? *given.endpoint : env_value("HF_ENDPOINT").value_or("https://huggingface.co");
  while (settings.endpoint.ends_with('/')) settings.endpoint.pop_back();
  if (given.token) {
    settings.token = strip_token(*given.token);
    settings.token_source = settings.token.empty() ? "" : "PackageOptions::hf.token";
    return settings;
  }
  if (env_flag("HF_HUB_DISABLE_IMPLICIT_TOKEN")) return settings;

  for (const char* name : {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"}) {
    if (auto token = env_value(name)) {
      settings.token = strip_token(*token);
      settings.token_source = name;
      if (!settings.token.empty()) return settings;
    }
  }
  std::filesystem::path file;
  if (auto path = env_value("HF_TOKEN_PATH")) file = *path;
  else if (auto home = hf_home(); !home.empty()) file = home / "token";
  if (file.empty()) return settings;
  auto token = read_small_file(file);  // never waits on a FIFO, never reads a huge file
  if (!token) return settings;
  settings.token = strip_token(std::move(*token));
  settings.token_source = settings.token.empty() ? "" : "the token file " + file.string();
  return settings;
}

HfCacheSettings hf_cache_settings(const HubOptions& given) {
  HfCacheSettings settings;
  settings.mode = hf_cache_mode(given);
  if (settings.mode != HfCacheMode::off) settings.folder = hf_hub_cache(given);
  return settings;
}

MirrorSettings mirror_settings(const MirrorOptions& given) {
  MirrorSettings settings;
  if (given.urls) {
    settings.urls = *given.urls;
  } else if (auto list = env_value("E2S_MIRROR")) {
    std::stringstream items(*list);
    for (std::string item; std::getline(items, item, ',');) {
      std::erase_if(item, [](unsigned char c) { return std::isspace(c); });
      if (!item.empty()) settings.urls.push_back(item);
    }
  }
  settings.push = given.push ? *given.push : env_flag("E2S_MIRROR_PUSH");
  settings.lease = given.lease ? *given.lease
                               : env_milliseconds("E2S_MIRROR_LEASE_SECONDS").value_or(std::chrono::minutes(2));
  return settings;
}

NgcSettings ngc_settings(const NgcOptions& given) {
  NgcSettings settings;
  auto base = given.api_url;
  if (!base) base = env_value("NGC_CLI_API_URL");
  if (!base) base = env_value("NGC_CLI_SEARCH_SERVICE_URL");
  settings.api_base = base.value_or("https://api.ngc.nvidia.com/");
  // Earth2Studio joins paths with urljoin, which needs the trailing '/'.
  if (!settings.api_base.ends_with('/')) settings.api_base += '/';
  settings.auth_url = given.auth_url ? *given.auth_url
                                     : env_value("NGC_CLI_AUTH_URL").value_or("https://authn.nvidia.com/token");
  if (given.api_key) {
    settings.api_key = strip_token(*given.api_key);
    settings.key_source = "PackageOptions::ngc.api_key";
    return settings;
  }
  for (const char* name : {"NGC_CLI_API_KEY", "NGC_API_KEY"}) {
    if (auto key = env_value(name)) {
      settings.api_key = strip_token(*key);
      settings.key_source = name;
      if (!settings.api_key.empty()) break;
    }
  }
  return settings;
}

namespace {

using IniSection = std::map<std::string, std::string>;

// The [section] of an AWS-style INI file ("key = value" lines, '#' and ';'
// comments); empty when the file or the section is missing.
IniSection read_ini_section(const std::filesystem::path& file, const std::string& section) {
  IniSection values;
  std::istringstream in(read_small_file(file).value_or(""));
  std::string line;
  bool inside = false;
  auto trim = [](std::string text) {
    const auto begin = text.find_first_not_of(" \t\r");
    const auto end = text.find_last_not_of(" \t\r");
    return begin == std::string::npos ? std::string() : text.substr(begin, end - begin + 1);
  };
  while (std::getline(in, line)) {
    line = trim(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      inside = trim(line.substr(1, line.size() - 2)) == section;
      continue;
    }
    const auto equals = line.find('=');
    if (inside && equals != std::string::npos) {
      values[trim(line.substr(0, equals))] = trim(line.substr(equals + 1));
    }
  }
  return values;
}

std::filesystem::path aws_file(const char* variable, const char* name) {
  if (auto path = env_value(variable)) return *path;
  if (auto home = env_value("HOME")) return std::filesystem::path(*home) / ".aws" / name;
  return {};
}

// The credentials of `profile` in the shared credentials file, when it has them.
void read_profile_credentials(const std::string& profile, AwsSettings& settings) {
  const auto file = aws_file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
  IniSection credentials = read_ini_section(file, profile);
  if (!credentials["aws_access_key_id"].empty() && !credentials["aws_secret_access_key"].empty()) {
    settings.access_key = credentials["aws_access_key_id"];
    settings.secret_key = credentials["aws_secret_access_key"];
    settings.session_token = credentials["aws_session_token"];
    settings.credentials_source = "profile " + profile + " in " + file.string();
  }
}

}  // namespace

AwsSettings aws_settings(const S3Options& given) {
  AwsSettings settings;
  const std::string profile = given.profile ? *given.profile : env_value("AWS_PROFILE").value_or("default");
  const auto key = env_value("AWS_ACCESS_KEY_ID");
  const auto secret = env_value("AWS_SECRET_ACCESS_KEY");
  if (given.access_key_id) {
    settings.access_key = *given.access_key_id;
    settings.secret_key = given.secret_access_key.value_or("");
    settings.session_token = given.session_token.value_or("");
    settings.credentials_source = "PackageOptions::s3.access_key_id";
  } else if (given.profile) {
    read_profile_credentials(profile, settings);
  } else if (key && secret) {
    settings.access_key = *key;
    settings.secret_key = *secret;
    auto token = env_value("AWS_SESSION_TOKEN");
    if (!token) token = env_value("AWS_SECURITY_TOKEN");
    settings.session_token = token.value_or("");
    settings.credentials_source = "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY";
  } else {
    read_profile_credentials(profile, settings);
  }

  IniSection config = read_ini_section(aws_file("AWS_CONFIG_FILE", "config"),
                                       profile == "default" ? "default" : "profile " + profile);
  auto region = given.region;
  if (!region) region = env_value("AWS_REGION");
  if (!region) region = env_value("AWS_DEFAULT_REGION");
  settings.region = region.value_or(config["region"].empty() ? "us-east-1" : config["region"]);

  auto endpoint = given.endpoint_url;
  if (!endpoint) endpoint = env_value("AWS_ENDPOINT_URL_S3");
  if (!endpoint) endpoint = env_value("AWS_ENDPOINT_URL");
  if (!endpoint && !config["endpoint_url"].empty() && !env_flag("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")) {
    endpoint = config["endpoint_url"];
  }
  settings.endpoint = endpoint.value_or("");
  while (settings.endpoint.ends_with('/')) settings.endpoint.pop_back();
  return settings;
}

std::string gcs_base_url(const GcsOptions& given) {
  std::string base = given.endpoint ? *given.endpoint
                                    : env_value("STORAGE_EMULATOR_HOST").value_or("https://storage.googleapis.com");
  if (base.find("://") == std::string::npos) base = "http://" + base;
  while (base.ends_with('/')) base.pop_back();
  return base;
}

std::filesystem::path default_cache_root() {
  std::filesystem::path root;
  if (auto model_cache = env_value("EARTH2STUDIO_MODEL_CACHE")) {
    root = *model_cache;
  } else if (auto cache = env_value("EARTH2STUDIO_CACHE")) {
    root = *cache;
  } else if (auto home = env_value("HOME")) {
    root = std::filesystem::path(*home) / ".cache" / "earth2studio";
  } else {
    // No HOME (some batch systems): a relative cache beats failing outright.
    root = std::filesystem::path(".cache") / "earth2studio";
  }
  return absolute_folder(root);
}

std::chrono::seconds default_package_timeout() {
  // Earth2Studio accepts int("300"); anything unparsable or non-positive falls back.
  return env_seconds("EARTH2STUDIO_PACKAGE_TIMEOUT").value_or(std::chrono::seconds(300));
}

std::filesystem::path absolute_folder(const std::filesystem::path& folder) {
  std::filesystem::path path = std::filesystem::absolute(folder).lexically_normal();
  if (!path.has_filename() && path.has_relative_path()) path = path.parent_path();  // "a/b/" -> "a/b"
  return path;
}

}  // namespace e2s::detail
