#include "cache/folder.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "e2s/error.hpp"
#include "util/hash.hpp"
#include "util/posix.hpp"

namespace e2s::detail {
namespace {

namespace fs = std::filesystem;

// Bookkeeping is small: a larger file is not ours.
constexpr std::uint64_t kMaxSmallFile = 1u << 20;

Error folder_error(const fs::path& folder, int error) {
  const bool read_only = error == EROFS || error == EACCES || error == EPERM;
  return Error(Errc::io,
               "cannot use the cache folder " + folder.string() + ": " + std::strerror(error) +
                   (read_only ? "; it is read-only for this user: use a writable cache with "
                                "--cache-dir or EARTH2STUDIO_CACHE"
                              : "; check the folder or choose another with --cache-dir or "
                                "EARTH2STUDIO_CACHE"),
               folder.string());
}

}  // namespace

std::string unique_suffix() {
  static std::atomic<unsigned> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::ostringstream out;
  out << ::getpid() << '.' << counter++ << '.' << std::hex << (rng() & 0xFFFFFFFFu);
  return out.str();
}

namespace {

std::optional<std::string> read_small(int folder_fd, const char* name, int flags) {
  // Non-blocking: a FIFO planted here must not hold the reader; it is then
  // refused for not being a regular file.
  const int fd = ::openat(folder_fd, name, O_RDONLY | O_NONBLOCK | O_CLOEXEC | flags);
  if (fd < 0) return std::nullopt;
  auto refuse = [fd](int error) -> std::optional<std::string> {
    ::close(fd);
    errno = error;
    return std::nullopt;
  };
  struct stat status {};
  if (::fstat(fd, &status) != 0) return refuse(errno);
  if (!S_ISREG(status.st_mode)) return refuse(EINVAL);
  if (static_cast<std::uint64_t>(status.st_size) > kMaxSmallFile) return refuse(EFBIG);
  std::string text;
  char block[8192];
  for (;;) {
    const ssize_t n = read_some(fd, block, sizeof(block));
    if (n == 0) break;
    if (n < 0) return refuse(errno);
    if (text.size() + static_cast<std::size_t>(n) > kMaxSmallFile) return refuse(EFBIG);  // grew meanwhile
    text.append(block, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return text;
}

}  // namespace

std::optional<FileDigest> hash_file_at(int folder_fd, const std::string& name, bool git_sha1, bool md5) {
  const int fd = ::openat(folder_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  struct stat status {};
  if (::fstat(fd, &status) != 0 || !S_ISREG(status.st_mode)) {
    ::close(fd);
    errno = EINVAL;
    return std::nullopt;
  }
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  Digest digest(DigestAlgorithm::sha256);
  std::optional<Digest> git;
  if (git_sha1) {
    git.emplace(DigestAlgorithm::sha1);
    const std::string header = "blob " + std::to_string(status.st_size) + std::string(1, '\0');
    git->update(header.data(), header.size());
  }
  std::optional<Digest> md5_digest;
  if (md5) md5_digest.emplace(DigestAlgorithm::md5);
  FileDigest result;
  std::vector<char> block(1u << 20);
  for (;;) {
    const ssize_t n = read_some(fd, block.data(), block.size());
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      errno = error;
      return std::nullopt;
    }
    if (n == 0) break;
    digest.update(block.data(), static_cast<std::size_t>(n));
    if (git) git->update(block.data(), static_cast<std::size_t>(n));
    if (md5_digest) md5_digest->update(block.data(), static_cast<std::size_t>(n));
    result.size += static_cast<std::uint64_t>(n);
  }
  ::close(fd);
  result.sha256 = digest.hex_final();
  if (md5_digest) result.md5 = md5_digest->hex_final();
  // A file that grew or shrank while read has no git hash of one size.
  if (git && result.size == static_cast<std::uint64_t>(status.st_size)) result.git_sha1 = git->hex_final();
  return result;
}

std::optional<std::string> read_small_file(int folder_fd, const std::string& name) {
  return read_small(folder_fd, name.c_str(), O_NOFOLLOW);
}

std::optional<std::string> read_small_file(const fs::path& path) {
  return read_small(AT_FDCWD, path.c_str(), 0);
}

std::optional<Folder> Folder::open(const fs::path& storage, const fs::path& relative, bool create) {
  if (create) {
    std::error_code ec;
    fs::create_directories(storage, ec);
    if (ec) throw folder_error(storage, ec.value());
  }
  int fd = ::open(storage.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT && !create) return std::nullopt;
    throw folder_error(storage, errno);
  }
  Folder folder(fd);
  fs::path walked = storage;
  for (const auto& part : relative) {
    if (part.empty() || part == ".") continue;
    walked /= part;
    int next = ::openat(folder.fd(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0 && errno == ENOENT && create) {
      if (::mkdirat(folder.fd(), part.c_str(), 0755) != 0 && errno != EEXIST) {
        throw folder_error(walked, errno);
      }
      next = ::openat(folder.fd(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (next < 0) {
      const int error = errno;
      if (error == ENOENT && !create) return std::nullopt;
      struct stat status {};
      if ((error == ELOOP || error == ENOTDIR) &&
          ::fstatat(folder.fd(), part.c_str(), &status, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISLNK(status.st_mode)) {
        throw Error(Errc::io,
                    "refusing to follow the symlink " + walked.string() +
                        " inside the cache: files are only written and read below " +
                        storage.string() + "; remove the symlink",
                    walked.string());
      }
      if (error == ENOTDIR && !create) return std::nullopt;
      throw folder_error(walked, error);
    }
    folder = Folder(next);
  }
  return folder;
}

}  // namespace e2s::detail
