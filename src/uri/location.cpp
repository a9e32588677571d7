#include "uri/location.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "e2s/error.hpp"
#include "util/text.hpp"

namespace e2s::detail {
namespace {

constexpr std::string_view kSupportedForms =
    "a local path, file:///ABS/PATH, http://, https://, hf://, ngc://models/, s3:// "
    "or gs:// (gcs://)";
constexpr std::string_view kHfForm =
    "hf://[models/|datasets/|spaces/]NAMESPACE/NAME[@REVISION][/SUBFOLDER]";
constexpr std::string_view kNgcForm = "ngc://models/[ORG/[TEAM/]]NAME@VERSION[/SUBFOLDER]";
constexpr std::string_view kS3Form = "s3://BUCKET[/PREFIX]";
constexpr std::string_view kGsForm = "gs://BUCKET[/PREFIX]";
constexpr std::string_view kHttpForm = "http(s)://HOST[:PORT][/PATH]";
constexpr std::string_view kFileForm = "file:///ABS/PATH or file://localhost/ABS/PATH";
constexpr std::string_view kLeaveRoot =
    "file paths are relative to the package root and may not leave it";

constexpr std::size_t kMaxHfSegment = 96;
constexpr std::size_t kMaxBucketLabel = 63;
constexpr std::size_t kMaxGcsDottedBucket = 222;
// Encoded dot segments are decoded this many times at most: enough to unmask
// double and triple encoding, bounded so hostile input cannot make us loop.
constexpr int kMaxDecodeRounds = 4;

bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
bool is_alpha(char c) { return is_lower(c) || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alnum(char c) { return is_alpha(c) || is_digit(c); }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool is_control(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return byte < 0x20 || byte == 0x7f;
}
bool is_unreserved(char c) { return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~'; }
bool is_word(char c) { return is_alnum(c) || c == '_'; }

int hex_value(char c) {
  if (is_digit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

char lower_char(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower_char(a[i]) != lower_char(b[i])) return false;
  }
  return true;
}

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t end = text.find(sep, start);
    parts.push_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return parts;
}


std::optional<std::string> try_percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    if (i + 2 >= text.size() || !is_hex(text[i + 1]) || !is_hex(text[i + 2])) {
      return std::nullopt;
    }
    out += static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
    i += 2;
  }
  return out;
}

// Decodes the well-formed %XX escapes and keeps every other '%' as it is,
// which is what lenient servers (and Python's unquote) make of a path.
std::string lenient_percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
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

// True when `segment` is, or decodes (possibly repeatedly) to, "." or "..",
// or to something a server or filesystem could split into such a segment.
// Never throws: a literal '%' in a name is legal. A malformed escape does not
// end the search, since a lenient server still decodes the escapes around it
// ("%2e%2e%2f%zz" is "../%zz" to it).
bool is_dot_segment(std::string_view segment) {
  std::string current(segment);
  for (int round = 0; round <= kMaxDecodeRounds; ++round) {
    std::size_t start = 0;
    while (start <= current.size()) {
      std::size_t end = current.find_first_of("/\\", start);
      if (end == std::string::npos) end = current.size();
      const std::string_view part = std::string_view(current).substr(start, end - start);
      if (part == "." || part == "..") return true;
      start = end + 1;
    }
    std::string decoded = lenient_percent_decode(current);
    if (decoded == current) return false;
    current = std::move(decoded);
  }
  return false;
}

bool has_control(std::string_view text) {
  for (char c : text) {
    if (is_control(c)) return true;
  }
  return false;
}

// Trailing '/' never changes which folder a root names, so it is dropped; but
// never below `min_size`, which keeps "/" and "file:///" meaningful.
std::string_view strip_trailing_slashes(std::string_view text, std::size_t min_size) {
  while (text.size() > min_size && text.back() == '/') text.remove_suffix(1);
  return text;
}

bool is_scheme_syntax(std::string_view text) {
  if (text.empty() || !is_alpha(text.front())) return false;
  for (char c : text) {
    if (!is_alnum(c) && c != '+' && c != '-' && c != '.') return false;
  }
  return true;
}

bool is_known_scheme(std::string_view scheme) {
  static constexpr std::array<std::string_view, 8> kKnown = {"file", "http", "https", "hf",
                                                             "ngc",  "s3",   "gs",    "gcs"};
  for (std::string_view known : kKnown) {
    if (iequals(scheme, known)) return true;
  }
  return false;
}

// Credentials and signed query strings must not reach logs through our own
// error messages, so the shown form of a URL hides them.
std::string redact_url(std::string_view url) {
  const std::size_t sep = url.find("://");
  if (sep == std::string_view::npos) return std::string(url);
  const std::size_t authority_begin = sep + 3;
  std::size_t authority_end = url.find_first_of("/?#", authority_begin);
  if (authority_end == std::string_view::npos) authority_end = url.size();
  std::string out(url.substr(0, authority_begin));
  const std::string_view authority = url.substr(authority_begin, authority_end - authority_begin);
  const std::size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    out += "***";
    out += authority.substr(at);
  } else {
    out += authority;
  }
  std::string_view tail = url.substr(authority_end);
  const std::size_t query = tail.find('?');
  if (query != std::string_view::npos) {
    const std::size_t fragment = tail.find('#', query);
    out += tail.substr(0, query + 1);
    out += "***";
    if (fragment != std::string_view::npos) out += tail.substr(fragment);
  } else {
    out += tail;
  }
  return out;
}

// Carries the root for error messages so every failure names it the same way.
class RootParser {
 public:
  // `uri` is the root as Error::uri() reports it (credentials redacted).
  RootParser(std::string_view raw, std::string uri)
      : raw_(raw), uri_(std::move(uri)), shown_(escaped(uri_)) {}

  [[noreturn]] void fail(std::string_view detail, std::string_view form = {}) const {
    std::string message = "invalid package root \"" + shown_ + "\": ";
    message += detail;
    if (!form.empty()) {
      message += "; expected ";
      message += form;
    }
    throw Error(Errc::invalid_uri, std::move(message), uri_);
  }

  // Subfolders and prefixes are joined into URLs and cache paths: an empty,
  // "." or ".." segment would make two spellings name one folder, or climb
  // out of it, so they are refused rather than silently rewritten.
  void check_segments(std::string_view path, std::string_view what,
                      std::string_view form) const {
    if (path.empty()) return;
    for (std::string_view segment : split(path, '/')) {
      if (segment.empty()) {
        fail(std::string(what) + " \"" + escaped(path) + "\" has an empty segment ('//')",
             form);
      }
      if (is_dot_segment(segment)) {
        fail(std::string(what) + " \"" + escaped(path) +
                 "\" has a '.' or '..' segment (possibly percent-encoded)",
             form);
      }
    }
  }

  std::string_view raw() const { return raw_; }

 private:
  std::string_view raw_;
  std::string uri_;
  std::string shown_;
};

std::filesystem::path normal_absolute(const std::filesystem::path& path, const RootParser& parser) {
  std::filesystem::path result = path;
  if (result.is_relative()) {
    std::error_code ec;
    const std::filesystem::path cwd = std::filesystem::current_path(ec);
    if (ec) {
      throw Error(Errc::io,
                  "cannot make package root \"" + escaped(parser.raw()) +
                      "\" absolute: the current directory is unavailable (" + ec.message() +
                      "); pass an absolute path",
                  std::string(parser.raw()));
    }
    result = cwd / result;
  }
  result = result.lexically_normal();
  // lexically_normal keeps a trailing separator ("/a/b/"); the folder is "/a/b".
  if (!result.has_filename() && result != result.root_path()) result = result.parent_path();
  // libstdc++ leaves "///" as it is; callers compare and print strings.
  if (result.native().find_first_not_of('/') == std::string::npos) result = "/";
  return result;
}

Location parse_local_path(std::string_view root, const RootParser& parser) {
  Location location;
  location.scheme = Scheme::local;
  location.root = std::string(strip_trailing_slashes(root, 1));
  location.local_dir = normal_absolute(std::filesystem::path(std::string(root)), parser);
  return location;
}

Location parse_file_uri(std::string_view root, std::string_view rest, const RootParser& parser) {
  std::size_t path_begin = 0;
  if (rest.empty()) parser.fail("missing the absolute path", kFileForm);
  if (rest.front() != '/') {
    const std::size_t slash = rest.find('/');
    const std::string_view host = rest.substr(0, slash);
    if (!iequals(host, "localhost")) {
      parser.fail("file URIs must be absolute and name no host other than localhost (\"" +
                      escaped(host) +
                      "\" given); for a relative folder pass the plain path instead",
                  kFileForm);
    }
    if (slash == std::string_view::npos) parser.fail("missing the absolute path", kFileForm);
    path_begin = slash;
  }
  const std::string_view encoded = rest.substr(path_begin);
  if (encoded.find_first_of("?#") != std::string_view::npos) {
    parser.fail("query strings and fragments are not allowed in file URIs; percent-encode "
                "'?' and '#' or pass the plain path",
                kFileForm);
  }
  const std::optional<std::string> decoded = try_percent_decode(encoded);
  if (!decoded) parser.fail("malformed percent-escape ('%' must be followed by two hex digits)");
  if (has_control(*decoded)) parser.fail("the decoded path contains a control character");

  Location location;
  location.scheme = Scheme::local;
  const std::size_t prefix_size = root.size() - rest.size();
  location.root = std::string(strip_trailing_slashes(root, prefix_size + path_begin + 1));
  location.local_dir = normal_absolute(std::filesystem::path(*decoded), parser);
  return location;
}

// RFC 3986 pchar plus '/': anything else in a URL must be percent-encoded.
bool is_url_path_char(char c) {
  static constexpr std::string_view kSubDelims = "!$&'()*+,;=";
  return is_unreserved(c) || kSubDelims.find(c) != std::string_view::npos || c == ':' ||
         c == '@' || c == '/' || c == '%';
}

bool is_host_char(char c) { return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~'; }

Location parse_http(std::string_view scheme, std::string_view root, std::string_view rest,
                    const RootParser& parser) {
  if (rest.find('?') != std::string_view::npos) {
    parser.fail("query strings are not allowed: a package root names a folder", kHttpForm);
  }
  if (rest.find('#') != std::string_view::npos) {
    parser.fail("fragments are not allowed: a package root names a folder", kHttpForm);
  }
  const std::size_t authority_end = rest.find('/');
  const std::string_view authority = rest.substr(0, authority_end);
  const std::string_view path =
      authority_end == std::string_view::npos ? std::string_view{} : rest.substr(authority_end);
  if (authority.find('@') != std::string_view::npos) {
    parser.fail("credentials in URLs would end up in logs and cache metadata; remove "
                "'USER:PASSWORD@' and use the store's token environment variable instead",
                kHttpForm);
  }

  std::string_view host;
  std::string_view port_text;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) parser.fail("unterminated IPv6 literal", kHttpForm);
    host = authority.substr(0, close + 1);
    const std::string_view address = host.substr(1, host.size() - 2);
    bool has_colon = false;
    for (char c : address) {
      if (c == ':') {
        has_colon = true;
      } else if (!is_hex(c) && c != '.') {
        parser.fail("malformed IPv6 literal \"" + escaped(host) + "\"", kHttpForm);
      }
    }
    if (!has_colon) parser.fail("malformed IPv6 literal \"" + escaped(host) + "\"", kHttpForm);
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        parser.fail("unexpected \"" + escaped(after) + "\" after the IPv6 literal", kHttpForm);
      }
      has_port = true;
      port_text = after.substr(1);
    }
  } else {
    const std::size_t colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      has_port = true;
      port_text = authority.substr(colon + 1);
    }
    for (char c : host) {
      if (!is_host_char(c)) {
        parser.fail("host \"" + escaped(host) + "\" contains an invalid character", kHttpForm);
      }
    }
  }
  if (host.empty()) parser.fail("missing host", kHttpForm);

  std::string port;
  if (has_port) {
    unsigned long value = 0;
    bool valid = !port_text.empty();
    for (char c : port_text) {
      if (!is_digit(c)) {
        valid = false;
        break;
      }
      value = value * 10 + static_cast<unsigned long>(c - '0');
      if (value > 65535) {
        valid = false;
        break;
      }
    }
    if (!valid || value == 0) {
      parser.fail("port \"" + escaped(port_text) + "\" is not a number from 1 to 65535",
                  kHttpForm);
    }
    // "080" and "80" are one server; one spelling keeps one cache identity.
    port = std::to_string(value);
  }

  for (std::size_t i = 0; i < path.size(); ++i) {
    const char c = path[i];
    if (!is_url_path_char(c)) {
      const std::string escape = percent_encode(std::string_view(&c, 1), false);
      parser.fail("the path contains a character that must be percent-encoded (write " + escape +
                      ")",
                  kHttpForm);
    }
    if (c == '%' && (i + 2 >= path.size() || !is_hex(path[i + 1]) || !is_hex(path[i + 2]))) {
      parser.fail("malformed percent-escape in the path ('%' must be followed by two hex digits)",
                  kHttpForm);
    }
  }
  // Servers and curl resolve dot segments, so "/a/../b" would quietly fetch
  // from "/b" while caching under a different name.
  for (std::string_view segment : split(path, '/')) {
    if (is_dot_segment(segment)) {
      parser.fail("the path has a '.' or '..' segment (possibly percent-encoded)", kHttpForm);
    }
  }

  Location location;
  location.scheme = Scheme::http;
  location.root = std::string(root);
  location.base_url = ascii_lower(scheme) + "://" + std::string(host);
  if (!port.empty()) location.base_url += ":" + port;
  location.base_url += path;
  return location;
}

// The repo id rules of huggingface_hub's validators: each part 1-96 of
// [A-Za-z0-9._-], starting and ending with a letter, digit or '_', without
// "--" or ".."; a name does not end with ".git". The Hub refuses the others
// too ("--" is its own cache-folder separator): failing here saves a round
// trip that would end in a confusing 404.
void check_hf_segment(std::string_view segment, std::string_view what, const RootParser& parser) {
  const auto word = [](char c) { return is_alnum(c) || c == '_'; };
  bool valid = !segment.empty() && segment.size() <= kMaxHfSegment && word(segment.front()) &&
               word(segment.back());
  for (char c : segment) {
    if (!word(c) && c != '.' && c != '-') valid = false;
  }
  if (!valid) {
    parser.fail(std::string(what) + " \"" + escaped(segment) +
                    "\" must be 1-96 characters [A-Za-z0-9._-] that start and end with a letter, "
                    "digit or '_'",
                kHfForm);
  }
  if (segment.find("--") != std::string_view::npos || segment.find("..") != std::string_view::npos) {
    parser.fail(std::string(what) + " \"" + escaped(segment) + "\" may not contain '--' or '..'",
                kHfForm);
  }
  if (what == "repository name" && segment.ends_with(".git")) {
    parser.fail("repository name \"" + escaped(segment) + "\" may not end with \".git\"", kHfForm);
  }
}

// Longer than most: it reads an hf:// root left to right, type prefix,
// namespace, name, revision, sub-folder, as huggingface_hub's grammar has
// them, each rule next to the part it checks.
Location parse_hf(std::string_view root, std::string_view rest, const RootParser& parser) {
  Location location;
  location.scheme = Scheme::hf;
  location.root = std::string(root);
  HfLocation& hf = location.hf;

  // huggingface_hub writes "models/NS/NAME" as well as "NS/NAME".
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 3> kTypes = {
      {{"models", "model"}, {"datasets", "dataset"}, {"spaces", "space"}}};
  std::string_view type_prefix;
  const std::size_t first_slash = rest.find('/');
  const std::string_view head = rest.substr(0, first_slash);
  for (const auto& [plural, singular] : kTypes) {
    if (first_slash == std::string_view::npos) break;
    if (head == plural) {
      hf.repo_type = std::string(singular);
      type_prefix = plural;
      rest.remove_prefix(first_slash + 1);
      break;
    }
    // A singular type before NS/NAME ("dataset/NS/NAME") is a typo that
    // huggingface_hub refuses too; "dataset/NAME" is the repo of a user
    // called "dataset".
    const std::string_view after = rest.substr(first_slash + 1);
    const std::size_t name_end = after.find_first_of("/@");
    if (head == singular && name_end != std::string_view::npos && after[name_end] == '/' &&
        name_end + 1 < after.size()) {
      parser.fail("the type prefix must be plural: " + std::string(plural) + "/, not " +
                      std::string(singular) + "/",
                  kHfForm);
    }
  }

  const std::size_t slash = rest.find('/');
  if (slash == std::string_view::npos) {
    parser.fail("the repository id must be NAMESPACE/NAME (single-segment ids are not accepted" +
                    (type_prefix.empty() ? std::string(")")
                                         : std::string(", also after ") + std::string(type_prefix) + "/)"),
                kHfForm);
  }
  const std::string_view ns = rest.substr(0, slash);
  check_hf_segment(ns, "namespace", parser);
  rest.remove_prefix(slash + 1);

  const std::size_t name_end = rest.find_first_of("/@");
  const std::string_view name = rest.substr(0, name_end);
  check_hf_segment(name, "repository name", parser);
  hf.repo_id = std::string(ns) + "/" + std::string(name);
  if (name_end == std::string_view::npos) return location;

  std::string_view subfolder;
  if (rest[name_end] == '/') {
    subfolder = rest.substr(name_end + 1);
  } else {
    const std::string_view after_at = rest.substr(name_end + 1);
    std::size_t revision_size = 0;
    // Hub web routes take these refs unencoded, so their slashes belong to
    // the revision and not to the subfolder. "refs/pr" alone (its trailing
    // '/' already stripped) is a forgotten number, not branch "refs".
    const auto starts_with_ref = [&](std::string_view ref) {
      return after_at.starts_with(ref) &&
             (after_at.size() == ref.size() || after_at[ref.size()] == '/');
    };
    const bool is_pr = starts_with_ref("refs/pr");
    const bool is_convert = starts_with_ref("refs/convert");
    if (is_pr || is_convert) {
      const std::size_t body_begin = std::string_view(is_pr ? "refs/pr/" : "refs/convert/").size();
      std::size_t i = body_begin;
      // Conversion refs are named like "parquet", "parquet-v2", "duckdb.v1".
      const auto in_name = [is_pr](char c) {
        return is_pr ? is_digit(c) : (is_word(c) || c == '-' || c == '.');
      };
      while (i < after_at.size() && in_name(after_at[i])) ++i;
      if (i == body_begin || (i < after_at.size() && after_at[i] != '/')) {
        parser.fail(is_pr ? "revision refs/pr/ must be followed by a pull-request number"
                          : "revision refs/convert/ must be followed by a name of [A-Za-z0-9_.-]",
                    kHfForm);
      }
      revision_size = i;
    } else {
      revision_size = std::min(after_at.find('/'), after_at.size());
    }
    const std::string_view encoded_revision = after_at.substr(0, revision_size);
    if (encoded_revision.empty()) parser.fail("empty revision after '@'", kHfForm);
    if (revision_size < after_at.size()) subfolder = after_at.substr(revision_size + 1);

    std::optional<std::string> revision = try_percent_decode(encoded_revision);
    if (!revision) {
      parser.fail("malformed percent-escape in revision \"" + escaped(encoded_revision) +
                      "\" ('%' must be followed by two hex digits)",
                  kHfForm);
    }
    if (has_control(*revision)) parser.fail("the revision contains a control character", kHfForm);
    // Git refs cannot have empty, "." or ".." components (nor backslashes),
    // and a revision becomes part of a URL, where such components would climb:
    // the same rule as for any path segment, encoded forms included.
    for (std::string_view part : split(*revision, '/')) {
      if (part.empty() || is_dot_segment(part)) {
        parser.fail("revision \"" + escaped(*revision) +
                        "\" has an empty, '.' or '..' component (possibly percent-encoded)",
                    kHfForm);
      }
    }
    hf.revision = std::move(*revision);
  }
  parser.check_segments(subfolder, "subfolder", kHfForm);
  hf.subfolder = std::string(subfolder);
  return location;
}

bool is_ngc_part(std::string_view part) {
  if (part.empty()) return false;
  for (char c : part) {
    if (!is_word(c) && c != '-') return false;
  }
  return true;
}

Location parse_ngc(std::string_view root, std::string_view rest, const RootParser& parser) {
  constexpr std::string_view kModels = "models/";
  if (rest == "models") parser.fail("missing the model after ngc://models/", kNgcForm);
  if (!rest.starts_with(kModels)) {
    parser.fail("only NGC models (ngc://models/...) are supported", kNgcForm);
  }
  rest.remove_prefix(kModels.size());
  const std::size_t at = rest.find('@');
  if (at == std::string_view::npos) parser.fail("missing @VERSION", kNgcForm);

  const std::vector<std::string_view> parts = split(rest.substr(0, at), '/');
  if (parts.size() > 3) {
    parser.fail("too many parts before '@' (at most ORG/TEAM/NAME)", kNgcForm);
  }
  for (std::string_view part : parts) {
    if (!is_ngc_part(part)) {
      parser.fail("\"" + escaped(part) + "\" is not a valid org, team or model name " +
                      "(1 or more of [A-Za-z0-9_-])",
                  kNgcForm);
    }
  }

  Location location;
  location.scheme = Scheme::ngc;
  location.root = std::string(root);
  NgcLocation& ngc = location.ngc;
  ngc.name = std::string(parts.back());
  if (parts.size() >= 2) ngc.org = std::string(parts[0]);
  if (parts.size() == 3) ngc.team = std::string(parts[1]);
  // ngc-cli spells an absent org or team "no-org" / "no-team".
  if (ngc.org == "no-org") ngc.org.clear();
  if (ngc.team == "no-team") ngc.team.clear();
  if (ngc.org.empty() && !ngc.team.empty()) {
    parser.fail("a team needs an org (the registry has no team-only models)", kNgcForm);
  }

  const std::string_view after_at = rest.substr(at + 1);
  const std::size_t version_end = after_at.find('/');
  const std::string_view version = after_at.substr(0, version_end);
  // Earth2Studio checks the version with a prefix match of [A-Za-z0-9.]+
  // and then takes everything up to the next '/', so e.g. "1.0-rc1" works
  // there; '-' and '_' are therefore allowed after the first character.
  bool valid_version = !version.empty() && (is_alnum(version.front()) || version.front() == '.') &&
                       version != "." && version != "..";
  for (char c : version) {
    if (!is_alnum(c) && c != '.' && c != '-' && c != '_') valid_version = false;
  }
  if (!valid_version) {
    parser.fail("version \"" + escaped(version) +
                    "\" must be [A-Za-z0-9.] optionally followed by [A-Za-z0-9._-]",
                kNgcForm);
  }
  ngc.version = std::string(version);
  if (version_end != std::string_view::npos) {
    const std::string_view subfolder = after_at.substr(version_end + 1);
    parser.check_segments(subfolder, "subfolder", kNgcForm);
    ngc.subfolder = std::string(subfolder);
  }
  return location;
}

bool looks_like_ipv4(std::string_view name) {
  const std::vector<std::string_view> parts = split(name, '.');
  if (parts.size() != 4) return false;
  for (std::string_view part : parts) {
    if (part.empty() || part.size() > 3) return false;
    for (char c : part) {
      if (!is_digit(c)) return false;
    }
  }
  return true;
}

// Empty when `bucket` is a valid name, else why not.
std::string bucket_problem(std::string_view bucket, bool gcs) {
  const bool dotted = bucket.find('.') != std::string_view::npos;
  const std::size_t max_size = gcs && dotted ? kMaxGcsDottedBucket : kMaxBucketLabel;
  if (bucket.size() < 3 || bucket.size() > max_size) {
    return gcs ? "must be 3-63 characters (up to 222 with dots)" : "must be 3-63 characters";
  }
  for (char c : bucket) {
    if (!is_lower(c) && !is_digit(c) && c != '.' && c != '-' && !(gcs && c == '_')) {
      return gcs ? "may contain only lowercase letters, digits, '-', '_' and '.'"
                 : "may contain only lowercase letters, digits, '-' and '.'";
    }
  }
  const auto lower_alnum = [](char c) { return is_lower(c) || is_digit(c); };
  if (!lower_alnum(bucket.front()) || !lower_alnum(bucket.back())) {
    return "must start and end with a lowercase letter or digit";
  }
  if (bucket.find("..") != std::string_view::npos) return "may not contain '..'";
  if (gcs) {
    for (std::string_view label : split(bucket, '.')) {
      if (label.size() > kMaxBucketLabel) return "has a dot-separated part longer than 63";
    }
  }
  if (looks_like_ipv4(bucket)) return "may not look like an IP address";
  return {};
}

Location parse_bucket(Scheme scheme, std::string_view root, std::string_view rest,
                      const RootParser& parser) {
  const bool gcs = scheme == Scheme::gs;
  const std::string_view form = gcs ? kGsForm : kS3Form;
  const std::size_t slash = rest.find('/');
  const std::string_view bucket = rest.substr(0, slash);
  if (bucket.empty()) parser.fail("missing bucket name", form);
  const std::string problem = bucket_problem(bucket, gcs);
  if (!problem.empty()) parser.fail("bucket \"" + escaped(bucket) + "\" " + problem, form);

  Location location;
  location.scheme = scheme;
  location.root = std::string(root);
  location.bucket.bucket = std::string(bucket);
  if (slash != std::string_view::npos) {
    const std::string_view prefix = rest.substr(slash + 1);
    parser.check_segments(prefix, "prefix", form);
    location.bucket.prefix = std::string(prefix);
  }
  return location;
}

}  // namespace

std::string_view to_string(Scheme scheme) noexcept {
  switch (scheme) {
    case Scheme::local: return "local";
    case Scheme::http: return "http";
    case Scheme::hf: return "hf";
    case Scheme::ngc: return "ngc";
    case Scheme::s3: return "s3";
    case Scheme::gs: return "gs";
  }
  return "local";
}

Location parse_root(std::string_view root) {
  if (root.empty()) {
    throw Error(Errc::invalid_uri,
                std::string("invalid package root \"\": the root is empty; expected ") +
                    std::string(kSupportedForms));
  }

  const std::size_t sep = root.find("://");
  std::string_view scheme_text;
  bool has_scheme = false;
  if (sep != std::string_view::npos) {
    scheme_text = root.substr(0, sep);
    // "/data/http://x" is a folder whose path happens to contain "://".
    has_scheme = is_scheme_syntax(scheme_text) || scheme_text.find('/') == std::string_view::npos;
  }
  const std::string scheme = ascii_lower(scheme_text);
  // hf/ngc use '@' for revisions and versions, and buckets and file URIs
  // carry no credentials, so only URL-like schemes are redacted.
  const bool redact = has_scheme && scheme != "hf" && scheme != "ngc" && scheme != "s3" &&
                      scheme != "gs" && scheme != "gcs" && scheme != "file";
  const RootParser parser(root, redact ? redact_url(root) : std::string(root));

  for (char c : root) {
    if (c == '\0') parser.fail("contains a NUL byte");
    if (c == '\r' || c == '\n') parser.fail("contains a line break (CR or LF)");
    if (is_control(c)) parser.fail("contains a control character");
  }
  // A remote root names its files in the cache's records; a local folder's
  // name may be any bytes its filesystem takes.
  if (has_scheme && scheme != "file" && !is_utf8(root)) {
    parser.fail("is not valid UTF-8; percent-encode other bytes (%XX)");
  }

  if (!has_scheme) {
    // "hf:ns/name" or "https:/host" is almost always a typo for a URI; a
    // local folder of that name can still be given as "./hf:ns/name".
    const std::size_t colon = root.find(':');
    if (colon != std::string_view::npos && is_known_scheme(root.substr(0, colon))) {
      parser.fail("looks like a URI without '//'; write " + ascii_lower(root.substr(0, colon)) +
                  "://... (or ./" + escaped(root) + " for a local folder)");
    }
    return parse_local_path(root, parser);
  }
  if (!is_scheme_syntax(scheme_text)) {
    parser.fail("\"" + escaped(scheme_text) + "\" is not a valid URI scheme; expected " +
                std::string(kSupportedForms));
  }

  const std::size_t rest_begin = sep + 3;
  const std::string_view stripped = strip_trailing_slashes(root, rest_begin);
  const std::string_view rest = stripped.substr(rest_begin);
  if (scheme == "file") return parse_file_uri(root, root.substr(rest_begin), parser);
  if (scheme == "http" || scheme == "https") return parse_http(scheme, stripped, rest, parser);
  if (scheme == "hf") return parse_hf(stripped, rest, parser);
  if (scheme == "ngc") return parse_ngc(stripped, rest, parser);
  if (scheme == "s3") return parse_bucket(Scheme::s3, stripped, rest, parser);
  if (scheme == "gs") return parse_bucket(Scheme::gs, stripped, rest, parser);
  // fsspec takes gcs:// for gs:// (and Earth2Studio hands any protocol to
  // fsspec): the same location, the same cache.
  if (scheme == "gcs") return parse_bucket(Scheme::gs, "gs://" + std::string(rest), rest, parser);
  parser.fail("unsupported scheme \"" + escaped(scheme_text) + "\"; supported: " +
              std::string(kSupportedForms));
}

// NAME_MAX of Linux filesystems: the longest name of one file or folder.
constexpr std::size_t kMaxNameBytes = 255;

std::string validate_file_path(std::string_view file_path, std::string_view root) {
  const auto fail = [&](std::string_view reason) {
    throw Error(Errc::invalid_uri,
                "invalid file path \"" + escaped(file_path) + "\" in package root \"" +
                    escaped(root) + "\": " + std::string(reason) + "; " +
                    std::string(kLeaveRoot),
                std::string(root));
  };
  if (file_path.empty()) fail("the path is empty");
  for (char c : file_path) {
    if (c == '\0') fail("contains a NUL byte");
    if (c == '\\') fail("contains a backslash (use '/')");
    if (is_control(c)) fail("contains a control character");
  }
  if (file_path.front() == '/') fail("the path is absolute");

  // The name becomes a file in the cache and a field of its records.
  if (!is_utf8(file_path)) fail("it is not valid UTF-8");
  std::string normal;
  for (std::string_view segment : split(file_path, '/')) {
    if (segment.empty() || segment == ".") continue;
    if (segment == "..") fail("the path has a '..' segment");
    if (is_dot_segment(segment)) fail("the path has a percent-encoded '.' or '..' segment");
    if (segment.size() > kMaxNameBytes) {
      fail("a name in it is " + std::to_string(segment.size()) + " bytes long; filesystems take at most " +
           std::to_string(kMaxNameBytes));
    }
    if (!normal.empty()) normal += '/';
    normal += segment;
  }
  if (normal.empty()) fail("the path is empty after normalisation");
  // Checked after normalisation, so that "./C:/x" cannot slip one in.
  if (normal.size() >= 2 && is_alpha(normal[0]) && normal[1] == ':') {
    fail("the path starts with a Windows drive");
  }
  return normal;
}

std::string percent_encode(std::string_view text, bool keep_slash) {
  static constexpr char kHexDigits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (is_unreserved(c) || (keep_slash && c == '/')) {
      out += c;
    } else {
      const auto byte = static_cast<unsigned char>(c);
      out += '%';
      out += kHexDigits[byte >> 4];
      out += kHexDigits[byte & 0xF];
    }
  }
  return out;
}

std::string percent_decode(std::string_view text) {
  std::optional<std::string> decoded = try_percent_decode(text);
  if (!decoded) {
    throw Error(Errc::invalid_uri,
                "malformed percent-escape in \"" + escaped(text) +
                    "\": '%' must be followed by two hex digits (write %25 for a literal '%')",
                std::string(text));
  }
  return std::move(*decoded);
}

}  // namespace e2s::detail

namespace e2s::detail {

std::string url_origin(std::string_view url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return {};
  const auto authority_begin = scheme_end + 3;
  const auto authority_end = url.find_first_of("/?#", authority_begin);
  std::string_view authority = url.substr(authority_begin, authority_end - authority_begin);
  if (const auto at = authority.rfind('@'); at != std::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  std::string scheme = ascii_lower(url.substr(0, scheme_end));
  std::string host = ascii_lower(authority);
  // An explicit default port names the same origin as none at all.
  if (scheme == "https" && host.ends_with(":443")) host.resize(host.size() - 4);
  if (scheme == "http" && host.ends_with(":80")) host.resize(host.size() - 3);
  return scheme + "://" + host;
}

}  // namespace e2s::detail
