// huggingface_hub's cache of one repo, read and (in share mode) written in
// huggingface_hub's own layout (protocols.md §1.6, §7.1), so that one copy of
// a checkpoint on disk serves both programs:
//
//   <hub cache>/<type>s--<ns>--<name>/
//     blobs/<etag>                the bytes, named by their ETag: the sha256
//                                 of an LFS file, the git blob sha1 of others
//     snapshots/<commit>/<path>   relative symlink to ../../blobs/<etag>
//                                 (a real file where symlinks are missing)
//     refs/<revision>             the commit a branch or tag named last
//     .no_exist/<commit>/<path>   "not in that commit"
//   <hub cache>/.locks/<repo folder>/<etag>.lock   flock of a blob's writer
//
// Nothing read here is trusted as it is: a blob's name is what its bytes are
// checked against (by the caller), and a snapshot link that leads anywhere
// but into its repo's blobs/ is no file of the cache.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

#include "uri/location.hpp"

namespace e2s::detail {

// A file of the cache and what names it.
struct HfCachedFile {
  std::filesystem::path path;  // the blob, or a snapshot's own copy
  std::string etag;            // the blob's name; "" for a copy (no symlinks)
  std::string commit;
};

class HfRepoCache {
 public:
  // No I/O.
  HfRepoCache(std::filesystem::path hub_cache, const HfLocation& repo);

  const std::filesystem::path& folder() const noexcept { return folder_; }

  // The commit `revision` names without asking the Hub: the revision itself
  // when it is a full commit hash, else what refs/<revision> records.
  std::optional<std::string> commit_of(const std::string& revision) const;

  // `repo_path` (sub-folder included) in the snapshot of `commit`.
  std::optional<HfCachedFile> snapshot_file(const std::string& commit, const std::string& repo_path) const;

  // blobs/<etag>, when it is there.
  std::optional<HfCachedFile> blob(const std::string& etag, const std::string& commit) const;

  // Whether huggingface_hub recorded that `repo_path` is not in `commit`.
  bool known_missing(const std::string& commit, const std::string& repo_path) const;

  // Places `file`, a complete and verified copy of `repo_path` at `commit`,
  // in the cache: blobs/<etag> as a hard link of it (a copy across
  // filesystems, through huggingface_hub's ".incomplete" name), the snapshot
  // symlink and refs/<revision>. Holds huggingface_hub's lock of the blob
  // while it writes, waiting for it at most `wait` (then nothing is shared).
  // Never replaces a file that is there. Returns the blob when it is the very
  // inode of `file`. Throws Error(io) naming what cannot be written.
  std::optional<std::filesystem::path> share(const std::filesystem::path& file, const std::string& etag,
                                             const std::string& commit, const std::string& revision,
                                             const std::string& repo_path, std::chrono::milliseconds wait) const;

 private:
  std::filesystem::path hub_cache_;
  std::string repo_folder_;  // "models--ns--name"
  std::filesystem::path folder_;
};

// Removes the blob `blob` (<repo folder>/blobs/<etag>) and the snapshot
// links of its repo that lead to it, so that huggingface_hub sees the file
// as not downloaded. Throws Error(io).
void remove_hf_blob(const std::filesystem::path& blob);

// Whether `text` can name a blob: an ETag of 40 (git sha1) or 64 (sha256)
// lowercase hex digits, the only ones whose bytes can be checked.
bool is_hf_blob_name(const std::string& text);

}  // namespace e2s::detail
