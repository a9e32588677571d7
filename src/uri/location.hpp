// Parsing of package roots and file paths: the one place for all URI rules.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace e2s::detail {

enum class Scheme { local, http, hf, ngc, s3, gs };

std::string_view to_string(Scheme scheme) noexcept;

// hf://[datasets/|spaces/]ns/name[@revision][/sub/folder]
struct HfLocation {
  std::string repo_type = "model";  // "model", "dataset" or "space"
  std::string repo_id;              // "ns/name"
  std::string revision = "main";    // decoded: "main", "v1.0", 40-hex, "refs/pr/1"
  std::string subfolder;            // "" or "a/b" (no leading or trailing '/')
};

// ngc://models/[org/[team/]]name@version[/sub/folder]
struct NgcLocation {
  std::string org;   // "" when absent
  std::string team;  // "" when absent
  std::string name;
  std::string version;
  std::string subfolder;  // "" or "a/b"
};

// s3://bucket[/prefix], gs://bucket[/prefix]
struct BucketLocation {
  std::string bucket;
  std::string prefix;  // "" or "a/b" (no leading or trailing '/')
};

// A validated package root. Only the member matching `scheme` is meaningful.
struct Location {
  Scheme scheme = Scheme::local;
  std::string root;                  // as given, trailing '/' removed
  std::filesystem::path local_dir;   // local: absolute, lexically normal folder
  std::string base_url;              // http: "http(s)://host[:port]/path" without trailing '/'
  HfLocation hf;
  NgcLocation ngc;
  BucketLocation bucket;
};

// Parses a root: plain path, file://, http://, https://, hf://, ngc://, s3://, gs://.
// Touches neither disk nor network. Throws Error(invalid_uri) naming the root and
// the accepted forms.
Location parse_root(std::string_view root);

// Validates a file path given to resolve()/open() and returns it normalised:
// '/'-separated, no empty or "." segments, no trailing '/'. Throws
// Error(invalid_uri) naming `root` when the path is empty, absolute, contains
// NUL or a backslash, or has a ".." segment (also percent-encoded).
std::string validate_file_path(std::string_view file_path, std::string_view root);

// Percent-encodes `text` for a URL path: unreserved characters (A-Z a-z 0-9 - . _ ~)
// kept, '/' kept when keep_slash, everything else as %XX (uppercase hex).
std::string percent_encode(std::string_view text, bool keep_slash);

// "scheme://host[:port]" of an absolute URL, scheme and host lowercased and a
// default port dropped, so that two URLs of one origin compare equal; "" when
// `url` is not absolute. Credentials go only to the origin they are for.
std::string url_origin(std::string_view url);

// Decodes %XX escapes; throws Error(invalid_uri) on malformed escapes.
std::string percent_decode(std::string_view text);

}  // namespace e2s::detail
