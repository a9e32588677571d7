#include "env.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>

#include "e2s/package.hpp"

namespace e2s {
namespace detail {

std::optional<std::string> env_value(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

bool env_flag(const char* name) {
  auto value = env_value(name);
  if (!value) return false;
  std::string lower = *value;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower == "1" || lower == "on" || lower == "yes" || lower == "true";
}

std::filesystem::path default_ca_bundle() {
  // libcurl reads neither variable itself (only the curl tool does), and a
  // libcurl built with a default bundle makes OpenSSL ignore SSL_CERT_FILE.
  if (auto bundle = env_value("CURL_CA_BUNDLE")) return *bundle;
  if (auto file = env_value("SSL_CERT_FILE")) return *file;
  return {};
}

}  // namespace detail

std::filesystem::path Package::default_cache(std::string_view sub) {
  std::filesystem::path root;
  if (auto model_cache = detail::env_value("EARTH2STUDIO_MODEL_CACHE")) {
    root = *model_cache;
  } else if (auto cache = detail::env_value("EARTH2STUDIO_CACHE")) {
    root = *cache;
  } else if (auto home = detail::env_value("HOME")) {
    root = std::filesystem::path(*home) / ".cache" / "earth2studio";
  } else {
    // No HOME (some batch systems): a relative cache beats failing outright.
    root = std::filesystem::path(".cache") / "earth2studio";
  }
  return sub.empty() ? root : root / std::filesystem::path(sub);
}

std::chrono::seconds Package::default_timeout() {
  constexpr std::chrono::seconds kDefault{300};
  auto text = detail::env_value("EARTH2STUDIO_PACKAGE_TIMEOUT");
  if (!text) return kDefault;
  // Earth2Studio accepts int("300"); anything unparsable or non-positive falls back.
  long long seconds = 0;
  const char* begin = text->data();
  const char* end = begin + text->size();
  auto [ptr, ec] = std::from_chars(begin, end, seconds);
  if (ec != std::errc() || ptr != end || seconds <= 0) return kDefault;
  return std::chrono::seconds(seconds);
}

std::size_t Package::default_blocksize() noexcept { return std::size_t{1} << 20; }

}  // namespace e2s
