// The rules the URI and file path parser (src/uri/location.hpp) must keep for
// any input at all, hostile or not. The libFuzzer targets in fuzz/ and the
// replay test tests/uri/fuzz_replay_test.cpp both run these, so each rule is
// written once.
//
// Every check takes raw bytes and returns "" when all rules hold, else a
// one-line description of the first broken rule. A check never throws: an
// exception escaping the parser is itself a broken rule.
#pragma once

#include <array>
#include <cstddef>
#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "e2s/error.hpp"
#include "util/text.hpp"
#include "uri/location.hpp"

namespace e2s::fuzz {

using Check = std::string (*)(std::string_view input);

namespace rules {

// As many decoding rounds as the parser promises to look through (double and
// triple encoding); deeper nesting is not something a server undoes.
constexpr int kDecodeRounds = 4;

inline bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

inline bool is_control(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return byte < 0x20 || byte == 0x7f;
}

inline bool has_control(std::string_view text) {
  for (char c : text) {
    if (is_control(c)) return true;
  }
  return false;
}

inline bool has_upper(std::string_view text) {
  for (char c : text) {
    if (c >= 'A' && c <= 'Z') return true;
  }
  return false;
}

inline int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

// Decodes the well-formed %XX escapes and keeps malformed ones as they are,
// as lenient servers (and Python's unquote) do: what such a server could make
// of the text is what must not climb.
inline std::string lenient_decode(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && is_hex(text[i + 1]) && is_hex(text[i + 2])) {
      out += static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

// True when every '%' in `text` starts a %XX escape.
inline bool well_formed_escapes(std::string_view text) {
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') continue;
    if (i + 2 >= text.size() || !is_hex(text[i + 1]) || !is_hex(text[i + 2])) return false;
  }
  return true;
}

inline std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = text.find(sep, start);
    parts.push_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

// True when `segment`, as given or after up to kDecodeRounds lenient
// decodings, holds a "." or ".." part between '/' or '\' separators.
inline bool climbs(std::string_view segment) {
  std::string current(segment);
  for (int round = 0; round <= kDecodeRounds; ++round) {
    std::string unified = current;
    for (char& c : unified) {
      if (c == '\\') c = '/';
    }
    for (std::string_view part : split(unified, '/')) {
      if (part == "." || part == "..") return true;
    }
    std::string decoded = lenient_decode(current);
    if (decoded == current) return false;
    current = std::move(decoded);
  }
  return false;
}

// "" when `path` is "" or "a/b" form: no leading, trailing or doubled '/',
// no control byte, and no segment that is or decodes to "." or "..".
inline std::string clean_relative(std::string_view path, std::string_view what) {
  const std::string name(what);
  if (path.empty()) return {};
  if (has_control(path)) return name + " contains a control byte";
  for (std::string_view segment : split(path, '/')) {
    if (segment.empty()) return name + " has an empty segment or a leading/trailing '/'";
    if (climbs(segment)) return name + " has a (possibly encoded) '.' or '..' segment";
  }
  return {};
}

// The Error a rejected input produced must be the documented one, and its
// message one printable line (it ends up in logs and terminals).
inline std::string error_problem(const Error& error) {
  if (error.code() != Errc::invalid_uri) {
    return "threw e2s::Error with code " + std::string(to_string(error.code())) +
           " instead of invalid_uri";
  }
  const std::string_view what = error.what();
  if (what.empty()) return "threw e2s::Error with an empty message";
  if (has_control(what)) return "the error message contains a control byte or a line break";
  return {};
}

// Runs `body`; anything but e2s::Error escaping it is a broken rule.
template <class Body>
std::string guarded(Body&& body) {
  try {
    return body();
  } catch (const Error& error) {
    return error_problem(error);
  } catch (const std::exception& error) {
    return std::string("threw a non-e2s exception: ") + error.what();
  } catch (...) {
    return "threw something that is not a std::exception";
  }
}

inline std::string location_problem(const detail::Location& location) {
  using detail::Scheme;
  if (has_control(location.root)) return "the root keeps a control byte";
  switch (location.scheme) {
    case Scheme::local: {
      const std::filesystem::path& dir = location.local_dir;
      if (!dir.is_absolute()) return "local_dir is not absolute";
      if (has_control(dir.native())) return "local_dir contains a control byte";
      for (const auto& part : dir) {
        if (part == "." || part == "..") return "local_dir has a '.' or '..' component";
      }
      if (dir != "/" && dir.native().back() == '/') return "local_dir ends with '/'";
      if (dir.native().find("//") != std::string::npos) return "local_dir has '//'";
      return {};
    }
    case Scheme::http: {
      std::string_view url = location.base_url;
      if (url.starts_with("http://")) {
        url.remove_prefix(7);
      } else if (url.starts_with("https://")) {
        url.remove_prefix(8);
      } else {
        return "base_url does not start with http:// or https://";
      }
      const std::size_t slash = url.find('/');
      const std::string_view authority = url.substr(0, slash);
      const std::string_view path = slash == std::string_view::npos ? "" : url.substr(slash);
      if (authority.empty()) return "base_url has no host";
      if (authority.find('@') != std::string_view::npos) return "base_url carries credentials";
      if (location.base_url.back() == '/') return "base_url ends with '/'";
      for (char c : location.base_url) {
        if (is_control(c) || c == ' ' || c == '\\' || c == '?' || c == '#') {
          return "base_url contains a byte that must be percent-encoded";
        }
      }
      if (!well_formed_escapes(path)) return "base_url has a malformed percent-escape";
      for (std::string_view segment : split(path, '/')) {
        if (climbs(segment)) return "base_url has a (possibly encoded) '.' or '..' segment";
      }
      return {};
    }
    case Scheme::hf: {
      const detail::HfLocation& hf = location.hf;
      if (hf.repo_type != "model" && hf.repo_type != "dataset" && hf.repo_type != "space") {
        return "unknown hf repo_type";
      }
      const std::vector<std::string_view> id = split(hf.repo_id, '/');
      if (id.size() != 2 || id[0].empty() || id[1].empty()) return "hf repo_id is not NS/NAME";
      if (climbs(id[0]) || climbs(id[1])) return "hf repo_id has a '.' or '..' part";
      if (hf.revision.empty()) return "hf revision is empty";
      if (has_control(hf.revision)) return "hf revision contains a control byte";
      if (std::string problem = clean_relative(hf.revision, "hf revision"); !problem.empty()) {
        return problem;
      }
      return clean_relative(hf.subfolder, "hf subfolder");
    }
    case Scheme::ngc: {
      const detail::NgcLocation& ngc = location.ngc;
      if (ngc.name.empty()) return "ngc name is empty";
      if (!ngc.team.empty() && ngc.org.empty()) return "ngc team without org";
      for (const std::string* part : {&ngc.org, &ngc.team, &ngc.name, &ngc.version}) {
        if (part->find('/') != std::string::npos || climbs(*part)) {
          return "an ngc org, team, name or version is a path, '.' or '..'";
        }
      }
      if (ngc.version.empty()) return "ngc version is empty";
      return clean_relative(ngc.subfolder, "ngc subfolder");
    }
    case Scheme::s3:
    case Scheme::gs: {
      const detail::BucketLocation& bucket = location.bucket;
      if (bucket.bucket.empty()) return "bucket is empty";
      if (bucket.bucket.find('/') != std::string::npos || climbs(bucket.bucket)) {
        return "bucket is a path, '.' or '..'";
      }
      return clean_relative(bucket.prefix, "bucket prefix");
    }
  }
  return "unknown scheme";
}

inline bool same_location(const detail::Location& a, const detail::Location& b) {
  return a.scheme == b.scheme && a.root == b.root && a.local_dir == b.local_dir &&
         a.base_url == b.base_url && a.hf.repo_type == b.hf.repo_type &&
         a.hf.repo_id == b.hf.repo_id && a.hf.revision == b.hf.revision &&
         a.hf.subfolder == b.hf.subfolder && a.ngc.org == b.ngc.org && a.ngc.team == b.ngc.team &&
         a.ngc.name == b.ngc.name && a.ngc.version == b.ngc.version &&
         a.ngc.subfolder == b.ngc.subfolder && a.bucket.bucket == b.bucket.bucket &&
         a.bucket.prefix == b.bucket.prefix;
}

}  // namespace rules

// parse_root: only Error(invalid_uri) on rejection; an accepted root yields a
// location with no climbing segment anywhere, and parsing the normalised
// root again gives the same location (the cache folder is derived from it).
inline std::string check_root(std::string_view input) {
  return rules::guarded([&]() -> std::string {
    const detail::Location location = detail::parse_root(input);
    if (std::string problem = rules::location_problem(location); !problem.empty()) return problem;
    // Outside guarded()'s reach: this one must not throw even invalid_uri.
    try {
      if (!rules::same_location(location, detail::parse_root(location.root))) {
        return "parsing the normalised root again differs";
      }
    } catch (const std::exception& error) {
      return std::string("parsing the normalised root again throws: ") + error.what();
    }
    return {};
  });
}

// validate_file_path: only Error(invalid_uri) on rejection; an accepted path
// is relative, '/'-separated, free of NUL, control bytes, backslashes,
// drive letters and climbing segments, equals the input minus its empty and
// "." segments, is a fixed point, and stays below any folder it is joined to.
inline std::string check_file_path(std::string_view input) {
  return rules::guarded([&]() -> std::string {
    const std::string path = detail::validate_file_path(input, "fuzz://root");
    if (path.empty()) return "accepted as an empty path";
    if (path.front() == '/') return "the result is absolute";
    const bool drive = path.size() >= 2 && path[1] == ':' &&
                       ((path[0] >= 'A' && path[0] <= 'Z') || (path[0] >= 'a' && path[0] <= 'z'));
    if (drive) return "the result starts with a drive letter";
    if (path.find('\\') != std::string::npos) return "the result contains a backslash";
    if (rules::has_control(path)) return "the result contains NUL or a control byte";
    // It becomes a file name on disk and a field of a JSON record.
    if (!detail::is_utf8(path)) return "the result is not UTF-8";
    for (std::string_view segment : rules::split(path, '/')) {
      if (segment.size() > 255) return "the result has a name longer than 255 bytes";
    }
    if (std::string problem = rules::clean_relative(path, "the result"); !problem.empty()) {
      return problem;
    }
    std::string expected;
    for (std::string_view segment : rules::split(input, '/')) {
      if (segment.empty() || segment == ".") continue;
      if (!expected.empty()) expected += '/';
      expected += segment;
    }
    if (path != expected) return "the result is not the input without empty and '.' segments";
    try {
      if (detail::validate_file_path(path, "fuzz://root") != path) {
        return "the result is no fixed point";
      }
    } catch (const std::exception& error) {
      return std::string("validating the result again throws: ") + error.what();
    }
    const std::filesystem::path base = "/package";
    const std::string joined = (base / path).lexically_normal().string();
    if (!joined.starts_with("/package/")) return "joined to a folder, the result leaves it";
    return {};
  });
}

// percent_encode/percent_decode: decoding what was encoded gives the bytes
// back; encoding leaves only unreserved bytes, %XX and (when asked) '/';
// decoding fails exactly on malformed escapes, with Error(invalid_uri).
inline std::string check_percent(std::string_view input) {
  return rules::guarded([&]() -> std::string {
    for (bool keep_slash : {false, true}) {
      const std::string encoded = detail::percent_encode(input, keep_slash);
      for (std::size_t i = 0; i < encoded.size(); ++i) {
        const char c = encoded[i];
        const bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                                (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
                                c == '~';
        if (unreserved || (keep_slash && c == '/')) continue;
        // Escapes use uppercase hex, so that one byte has one spelling.
        const auto upper_hex = [](char h) { return rules::is_hex(h) && !(h >= 'a' && h <= 'f'); };
        if (c == '%' && i + 2 < encoded.size() && upper_hex(encoded[i + 1]) &&
            upper_hex(encoded[i + 2])) {
          i += 2;
          continue;
        }
        return "percent_encode left a byte unescaped or wrote a malformed escape";
      }
      if (detail::percent_decode(encoded) != input) {
        return "percent_decode(percent_encode(x)) != x";
      }
    }
    const bool well_formed = rules::well_formed_escapes(input);
    try {
      const std::string decoded = detail::percent_decode(input);
      if (!well_formed) return "percent_decode accepted a malformed escape";
      if (decoded != rules::lenient_decode(input)) return "percent_decode decoded wrongly";
    } catch (const Error& error) {
      if (well_formed) return "percent_decode rejected well-formed escapes";
      return rules::error_problem(error);
    }
    return {};
  });
}

// url_origin: never throws; "" exactly when there is no "://"; otherwise
// "scheme://host[:port]" in lowercase with no path, query, fragment or
// credentials, unchanged when the URL gains a path.
inline std::string check_url_origin(std::string_view input) {
  try {
    const std::string origin = detail::url_origin(input);
    const std::size_t sep = input.find("://");
    if (sep == std::string_view::npos) {
      return origin.empty() ? "" : "url_origin of a URL without \"://\" is not empty";
    }
    const std::size_t origin_sep = origin.find("://");
    if (origin_sep != sep) return "url_origin changed the scheme";
    if (rules::has_upper(origin)) return "url_origin is not lowercase";
    const std::string_view host = std::string_view(origin).substr(origin_sep + 3);
    if (host.find_first_of("/?#@") != std::string_view::npos) {
      return "url_origin keeps a path, query, fragment or credentials";
    }
    if (detail::url_origin(std::string(input) + "/x?y#z") != origin) {
      return "url_origin changes when the URL gains a path";
    }
    return {};
  } catch (const std::exception& error) {
    return std::string("url_origin threw: ") + error.what();
  } catch (...) {
    return "url_origin threw something that is not a std::exception";
  }
}

// escape_record/unescape_record (header values kept in the cache's JSON
// records): unescaping what was escaped gives the bytes back; the escaped
// form is printable ASCII, so JSON always takes it; is_utf8 holds for it.
inline std::string check_record(std::string_view input) {
  return rules::guarded([&]() -> std::string {
    const std::string escaped = detail::escape_record(input);
    for (char c : escaped) {
      const auto byte = static_cast<unsigned char>(c);
      if (byte < 0x20 || byte >= 0x7F) return "escape_record left a byte that is not printable ASCII";
    }
    if (!detail::is_utf8(escaped)) return "an escaped record is not UTF-8";
    const std::optional<std::string> back = detail::unescape_record(escaped);
    if (!back || *back != input) return "unescape_record(escape_record(x)) != x";
    (void)detail::unescape_record(input);  // any bytes at all: must not crash
    return {};
  });
}

struct Target {
  std::string_view name;  // the folder name under fuzz/corpus/ and fuzz/regressions/
  Check check;
};

inline constexpr std::array<Target, 5> kTargets = {{
    {"root", &check_root},
    {"file_path", &check_file_path},
    {"percent", &check_percent},
    {"url_origin", &check_url_origin},
    {"record", &check_record},
}};

inline Check find_check(std::string_view name) {
  for (const Target& target : kTargets) {
    if (target.name == name) return target.check;
  }
  return nullptr;
}

}  // namespace e2s::fuzz
