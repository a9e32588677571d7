// Folders inside the cache, opened without following symlinks: a symlink
// planted in the cache (cache/models -> /etc) must not let a download write,
// or a lookup read, outside it. The cache folder itself may be a symlink (a
// cache on another disk); only what lies below it is checked.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "util/posix.hpp"

namespace e2s::detail {

// A suffix for temp names that no other process or thread is using:
// "<pid>.<counter>.<random hex>".
std::string unique_suffix();

// The whole of a small file `name` in the folder `folder_fd` (at most 1 MiB:
// bookkeeping is small, a huge file is not ours), not following a symlink and
// never waiting: a FIFO, socket or device there is refused (errno EINVAL).
// nullopt, with errno set, when it cannot be read.
std::optional<std::string> read_small_file(int folder_fd, const std::string& name);
// The same for a file the user names (a token or credentials file), which
// may be a symlink.
std::optional<std::string> read_small_file(const std::filesystem::path& path);

// The size and lowercase hex SHA-256 of the regular file `name` in the folder
// `folder_fd` (not following a symlink, never waiting on a FIFO); nullopt,
// with errno set, when it is not a regular file or cannot be read. With
// `git_sha1`, also its git blob hash (sha1 of "blob <size>\0" and the bytes:
// how git, and the Hugging Face cache, name a regular file) and with `md5`
// its MD5 (what S3 and GCS report), in the same read.
struct FileDigest {
  std::uint64_t size = 0;
  std::string sha256;
  std::string git_sha1;  // "" unless asked for
  std::string md5;       // "" unless asked for
};
std::optional<FileDigest> hash_file_at(int folder_fd, const std::string& name, bool git_sha1 = false,
                                       bool md5 = false);

class Folder {
 public:
  // Opens `storage` / `relative` ('/'-separated, no ".." segments), creating
  // missing folders when `create`. nullopt when a folder is missing and not
  // created. Throws Error(io) naming the folder when it cannot be created or
  // opened, and naming the symlink when a component below `storage` is one.
  static std::optional<Folder> open(const std::filesystem::path& storage,
                                    const std::filesystem::path& relative, bool create);

  int fd() const noexcept { return fd_.get(); }

 private:
  explicit Folder(int fd) : fd_(fd) {}
  UniqueFd fd_;
};

}  // namespace e2s::detail
