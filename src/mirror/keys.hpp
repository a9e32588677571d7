// Where a file lives in a site mirror: a key naming the file's upstream
// identity and version, so that every node that fetched the same bytes from
// the same upstream puts them under one key, and a moved branch never serves
// stale bytes:
//
//   hf/<type>s/<ns>/<name>/<commit>/<path in the repo>
//   hf/<type>s/<ns>/<name>/refs/<revision>     the commit a branch named (text)
//   ngc/<org>/<team>/<name>/<version>/<path>   ("-" for an absent org or team)
//   s3/<bucket>/<key>, gs/<bucket>/<key>, http/<host>/<path>, https/<host>/<path>
//
// The last kind names no version: its record carries the upstream ETag, which
// must match the upstream's (when it can be asked) for the copy to be used.
#pragma once

#include <optional>
#include <string>

#include "uri/location.hpp"

namespace e2s::detail {

struct MirrorKey {
  std::string key;
  bool names_version = false;  // the key itself pins the bytes (a commit, an NGC version)
};

// The key of `path` (validated) of the root `location` at `version` (an HF
// commit; ignored by other stores). nullopt for an hf:// branch whose commit
// is not known yet, and for local roots.
std::optional<MirrorKey> mirror_key(const Location& location, const std::string& path, const std::string& version);

// The key of the record of the commit an hf:// branch or tag names; nullopt
// for other roots and for a root pinned to a commit.
std::optional<std::string> mirror_ref_key(const Location& location);

// The key prefix of every file of the root at `version` (for listings).
std::optional<std::string> mirror_prefix(const Location& location, const std::string& version);

}  // namespace e2s::detail
