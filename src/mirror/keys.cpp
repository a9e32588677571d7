#include "mirror/keys.hpp"

#include <algorithm>
#include <string_view>

#include "util/hash.hpp"

namespace e2s::detail {
namespace {

// "a/b", or the one that is not empty.
std::string joined(const std::string& folder, const std::string& path) {
  if (folder.empty()) return path;
  return path.empty() ? folder : folder + "/" + path;
}

std::string hf_repo(const HfLocation& hf) { return "hf/" + hf.repo_type + "s/" + hf.repo_id; }

// "http/host:port/path" of an http(s) root's base URL.
std::string http_prefix(const std::string& base_url) {
  const auto colon = base_url.find("://");
  return base_url.substr(0, colon) + "/" + base_url.substr(colon + 3);
}

}  // namespace

std::optional<std::string> mirror_prefix(const Location& location, const std::string& version) {
  switch (location.scheme) {
    case Scheme::hf:
      if (!is_lower_hex(version, 40)) return std::nullopt;
      return joined(hf_repo(location.hf) + "/" + version, location.hf.subfolder);
    case Scheme::ngc: {
      const NgcLocation& ngc = location.ngc;
      return joined("ngc/" + (ngc.org.empty() ? "-" : ngc.org) + "/" + (ngc.team.empty() ? "-" : ngc.team) + "/" +
                        ngc.name + "/" + ngc.version,
                    ngc.subfolder);
    }
    case Scheme::s3:
    case Scheme::gs:
      return joined(std::string(location.scheme == Scheme::s3 ? "s3/" : "gs/") + location.bucket.bucket,
                    location.bucket.prefix);
    case Scheme::http:
      return http_prefix(location.base_url);
    case Scheme::local:
      break;
  }
  return std::nullopt;
}

namespace {

// Whether every '/'-separated segment of `key` is a plain name: a key is
// also a path below a folder mirror.
bool plain_segments(const std::string& key) {
  std::size_t start = 0;
  while (start <= key.size()) {
    const auto end = std::min(key.find('/', start), key.size());
    const std::string_view segment(key.data() + start, end - start);
    if (segment.empty() || segment == "." || segment == ".." || segment.starts_with(".e2s-")) return false;
    start = end + 1;
  }
  return true;
}

}  // namespace

std::optional<MirrorKey> mirror_key(const Location& location, const std::string& path, const std::string& version) {
  const auto prefix = mirror_prefix(location, version);
  if (!prefix || !plain_segments(*prefix + "/" + path)) return std::nullopt;
  const bool names_version = location.scheme == Scheme::hf || location.scheme == Scheme::ngc;
  return MirrorKey{*prefix + "/" + path, names_version};
}

std::optional<std::string> mirror_ref_key(const Location& location) {
  if (location.scheme != Scheme::hf || is_lower_hex(location.hf.revision, 40)) return std::nullopt;
  std::string key = hf_repo(location.hf) + "/refs/" + location.hf.revision;
  if (!plain_segments(key)) return std::nullopt;
  return key;
}

}  // namespace e2s::detail
