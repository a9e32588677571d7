// Files other programs' caches already hold, taken instead of downloaded
// (README, "Sharing caches with huggingface_hub and Earth2Studio"):
// huggingface_hub's cache for hf:// roots, and Earth2Studio's fsspec cache
// folders for every remote root. What is found here is a candidate only: the
// resolver links it into its own cache and checks its bytes against what
// names them before it is used.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "cache/cache.hpp"
#include "env.hpp"
#include "http/remote_file.hpp"
#include "neighbours/hf_cache.hpp"
#include "uri/location.hpp"

namespace e2s::detail {

// Another cache's file that may stand for a package's file.
struct NeighbourFile {
  CacheEntry::Linked origin;  // which cache, and the file's path there
  std::string etag;           // recorded in e2s's entry
  std::string version;        // ditto (an HF commit)
  // What the bytes must be; "" (nullopt) where nothing says. A file that has
  // none of them is taken on the other cache's word (`unverified` says why).
  std::optional<std::uint64_t> size;
  std::string sha256;
  std::string git_sha1;
  std::string md5;
  std::string unverified;
};

class NeighbourCaches {
 public:
  // `options` went through with_defaults(); both must outlive this. No I/O.
  NeighbourCaches(const Location& location, const PackageOptions& options);

  // What a neighbour holds for `path` (a validated file path) that can be
  // found without a request: an hf:// root pinned to a commit, or one whose
  // branch refs/ names a commit while `offline`. Throws Error(not_found)
  // when offline and huggingface_hub recorded that the file is not in it.
  std::optional<NeighbourFile> without_request(const std::string& path, bool offline) const;

  // What a neighbour holds for `path` now that its store described it. An
  // Earth2Studio file comes without a size when `remote` has none: the
  // caller gets one (Store::stat_with_size) before taking it.
  std::optional<NeighbourFile> matching(const std::string& path, const RemoteFile& remote) const;

  // In share mode, places the file e2s just downloaded and committed at
  // `file` in huggingface_hub's cache too; returns the link to record when
  // the blob is the same inode. Never throws: sharing is a courtesy.
  std::optional<CacheEntry::Linked> share(const std::filesystem::path& file, const std::string& path,
                                          const RemoteFile& remote) const;

  // Where huggingface_hub's cache for this root is ("" when not used), for messages.
  std::filesystem::path hf_folder() const;

 private:
  std::string repo_path(const std::string& path) const;
  std::optional<NeighbourFile> from_hf(const HfCachedFile& found, const std::string& path) const;
  std::optional<NeighbourFile> from_hf_cache(const std::string& path, const RemoteFile& remote) const;
  std::optional<NeighbourFile> from_earth2studio(const std::string& path, const RemoteFile& remote) const;

  const Location& location_;
  const PackageOptions& options_;
  HfCacheSettings hf_;
  std::optional<HfRepoCache> hf_cache_;
};

}  // namespace e2s::detail
