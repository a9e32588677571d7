// Pieces shared by the single-stream and the parallel download: the output
// file, digests fed as bytes arrive, parsing of range replies, and how one
// way of downloading tells the next what to do.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <atomic>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <semaphore>
#include <string>
#include <vector>


#include "http/errors.hpp"
#include "util/text.hpp"
#include "transfer/download.hpp"
#include "util/hash.hpp"
#include "log.hpp"

namespace e2s::detail::transfer_parts {


// Owns a file descriptor.
class File {
 public:
  explicit File(int fd) : fd_(fd) {}
  ~File() {
    if (fd_ >= 0) ::close(fd_);
  }
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

inline std::string errno_text(int error) { return std::strerror(error); }

inline Error write_error(const std::filesystem::path& path, const std::string& uri, int error) {
  std::string hint = error == ENOSPC || error == EDQUOT || error == EFBIG
                         ? "free disk space or choose another cache folder with --cache-dir"
                         : "check that the cache folder is writable or choose another with --cache-dir";
  return Error(Errc::io, "cannot write " + path.string() + " while downloading " + uri + ": " +
                             errno_text(error) + "; " + hint,
               uri);
}

// Throws Error(io) when a file of `size` bytes, `have` of which are already
// written, cannot fit in the free space of the filesystem of `temp_path`:
// a server announcing more than the disk holds (or 2^63 bytes) is refused
// before anything is planned or written. Filesystems that report no size
// (some network mounts) are not checked.
inline void ensure_room(const std::filesystem::path& temp_path, std::uint64_t size, std::uint64_t have,
                        const std::string& uri) {
  struct statvfs fs {};
  const std::filesystem::path folder = temp_path.parent_path();
  if (::statvfs(folder.c_str(), &fs) != 0 || fs.f_blocks == 0) return;
  const std::uint64_t needed = size > have ? size - have : 0;
  const std::uint64_t block = std::max<std::uint64_t>(fs.f_frsize, 1);
  // In blocks: bytes could overflow on an exabyte filesystem.
  if (needed / block + (needed % block != 0) <= fs.f_bavail) return;
  const std::uint64_t free = fs.f_bavail > UINT64_MAX / block ? UINT64_MAX : fs.f_bavail * block;
  throw Error(Errc::io,
              "cannot download " + uri + ": it is " + human_bytes(size) + " (" + std::to_string(size) +
                  " bytes) and only " + human_bytes(free) + " are free in " +
                  folder.string() + "; free disk space or choose another cache folder with --cache-dir",
              uri);
}

// Total size from "Content-Range: bytes a-b/N"; nullopt for "*" or malformed.
inline std::optional<std::uint64_t> content_range_total(const std::string& value) {
  auto slash = value.rfind('/');
  if (slash == std::string::npos) return std::nullopt;
  std::uint64_t total = 0;
  const char* begin = value.data() + slash + 1;
  const char* end = value.data() + value.size();
  auto [ptr, ec] = std::from_chars(begin, end, total);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return total;
}

inline std::optional<std::uint64_t> content_range_start(const std::string& value) {
  auto space = value.find(' ');
  if (space == std::string::npos) return std::nullopt;
  std::uint64_t start = 0;
  const char* begin = value.data() + space + 1;
  auto [ptr, ec] = std::from_chars(begin, value.data() + value.size(), start);
  if (ec != std::errc() || ptr == begin || *ptr != '-') return std::nullopt;
  return start;
}

inline std::optional<std::uint64_t> content_length(const http::Response& response) {
  return http::parse_decimal(response.header("content-length"));
}

// Every digest a download is checked against, fed in the same pass as the
// bytes are written: sha256 always (it goes into the cache metadata), md5 and
// CRC-32C when the store announced them.
class StreamHashes {
 public:
  explicit StreamHashes(const RemoteFile& file) : want_md5_(!file.md5.empty()),
                                                  want_crc32c_(file.crc32c.has_value()) {
    if (want_md5_) md5_.emplace(DigestAlgorithm::md5);
  }

  void update(const char* data, std::size_t size) {
    sha256_.update(data, size);
    if (md5_) md5_->update(data, size);
    if (want_crc32c_) crc32c_.update(data, size);
  }

  void reset() {
    sha256_.reset();
    if (md5_) md5_->reset();
    crc32c_.reset();
  }

  // Throws Error(integrity) when a digest the store announced differs;
  // returns the sha256.
  std::string verify(const RemoteFile& file) {
    std::string sha256 = sha256_.hex_final();
    if (!file.sha256.empty() && sha256 != file.sha256) throw mismatch(file, "sha256", file.sha256, sha256);
    if (md5_) {
      std::string md5 = md5_->hex_final();
      if (md5 != file.md5) throw mismatch(file, "md5", file.md5, md5);
    }
    if (want_crc32c_ && crc32c_.value() != *file.crc32c) {
      throw mismatch(file, "crc32c", std::to_string(*file.crc32c), std::to_string(crc32c_.value()));
    }
    return sha256;
  }

 private:
  static Error mismatch(const RemoteFile& file, const char* algorithm, const std::string& expected,
                        const std::string& received) {
    return Error(Errc::integrity,
                 std::string("hash mismatch for ") + file.uri + ": expected " + algorithm + " " +
                     expected + ", received " + received +
                     "; the server sent corrupt data, try again or report it to the host",
                 file.uri);
  }

  bool want_md5_;
  bool want_crc32c_;
  Digest sha256_{DigestAlgorithm::sha256};
  std::optional<Digest> md5_;
  Crc32c crc32c_;
};

// Signed download URLs answer these once they have expired.
inline bool is_expired(int status) { return status == 401 || status == 403 || status == 410; }
inline constexpr int kMaxRenewals = 3;

using http::is_success;

// Holds one of the package's connection slots for the duration of a request.
class SlotGuard {
 public:
  explicit SlotGuard(std::counting_semaphore<16>* slots) : slots_(slots) {
    if (slots_) slots_->acquire();
  }
  ~SlotGuard() {
    if (slots_) slots_->release();
  }
  SlotGuard(const SlotGuard&) = delete;
  SlotGuard& operator=(const SlotGuard&) = delete;

 private:
  std::counting_semaphore<16>* slots_;
};

// Records a download's progress for resuming: the bytes are made durable
// (fdatasync) before they are described, so a checkpoint never claims bytes
// that a crash of the machine could still lose. The other half of the rule,
// that a journal never describes bytes that are gone, is kept by the callers:
// before the data file shrinks or starts over, replace() records what will
// still be there.
class Checkpointer {
 public:
  explicit Checkpointer(const TransferContext& context)
      : checkpoint_(context.checkpoint), interval_(context.checkpoint_interval) {}

  // The data file whose bytes save() makes durable before describing them.
  void attach(int fd) { fd_.store(fd); }

  // Saves `snapshot()` when the last save is older than the interval,
  // or always with `force`. Thread-safe; a save in progress is not waited for.
  // Best effort: a journal that cannot be updated still describes bytes that
  // are on disk (they only ever grow between replace() calls).
  void save(const std::function<Partial()>& snapshot, bool force = false) {
    if (!checkpoint_) return;
    const auto now = std::chrono::steady_clock::now();
    if (!force && now - last_.load() < interval_) return;
    std::unique_lock lock(mutex_, std::defer_lock);
    if (force) {
      lock.lock();
    } else if (!lock.try_lock()) {
      return;
    }
    last_.store(now);
    Partial partial = snapshot();
    if (::fdatasync(fd_.load()) != 0) return;  // nothing durable to describe
    try {
      checkpoint_(partial);
    } catch (const Error& error) {
      log::debug("cannot record download progress: {}", error.what());
    }
  }

  // Records `partial` now, before the data file loses bytes the current
  // journal describes (a truncation, a fresh start). Throws Error(io) when
  // it cannot be recorded: then the data file must not be touched.
  void replace(const Partial& partial) {
    if (!checkpoint_) return;
    std::lock_guard lock(mutex_);
    last_.store(std::chrono::steady_clock::now());
    checkpoint_(partial);
  }

 private:
  const std::function<void(const Partial&)>& checkpoint_;
  const std::chrono::milliseconds interval_;
  std::atomic<int> fd_{-1};
  std::mutex mutex_;
  std::atomic<std::chrono::steady_clock::time_point> last_{std::chrono::steady_clock::now()};
};

// Whether the bytes an earlier attempt left can be continued: the server can
// vouch for them only with an ETag, and what the store announced now must
// still be the same file.
inline const Partial* usable_resume(const RemoteFile& file, const std::optional<Partial>& resume) {
  if (!resume || resume->written.empty() || resume->served_etag.empty()) return nullptr;
  if (file.size && *file.size != resume->size) return nullptr;
  if (!file.etag.empty() && file.etag != resume->etag) return nullptr;
  for (const auto& range : resume->written) {
    if (range.begin >= range.end || range.end > resume->size) return nullptr;
  }
  return &*resume;
}

// Opens the temp file a download writes. Unless `keep` (a resume), what it
// held goes: its journal first (see Checkpointer::replace), then its bytes.
// Only a regular file is written: anything else planted there (a FIFO) is
// an io error, not a wait.
inline int open_output(const std::filesystem::path& temp_path, const std::string& uri, bool keep,
                       Checkpointer& checkpointer) {
  if (!keep) checkpointer.replace(Partial{});
  const int fd = ::open(temp_path.c_str(),
                        O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | (keep ? 0 : O_TRUNC), 0644);
  if (fd < 0) throw write_error(temp_path, uri, errno);
  struct stat status {};
  if (::fstat(fd, &status) != 0 || !S_ISREG(status.st_mode)) {
    ::close(fd);
    throw Error(Errc::io,
                "cannot write " + temp_path.string() + " while downloading " + uri +
                    ": it is not a regular file; remove it, or choose another cache folder with --cache-dir",
                uri);
  }
  checkpointer.attach(fd);
  return fd;
}

// Feeds `hashes` with the first `length` bytes of `fd` (an earlier attempt's
// bytes being resumed). False when they cannot be read back.
inline bool hash_existing(int fd, std::uint64_t length, StreamHashes& hashes) {
  std::vector<char> block(1u << 20);
  for (std::uint64_t done = 0; done < length;) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(block.size(), length - done));
    const ssize_t n = ::pread(fd, block.data(), want, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    hashes.update(block.data(), static_cast<std::size_t>(n));
    done += static_cast<std::uint64_t>(n);
  }
  return true;
}

// How one way of downloading a file ended, when it did not fail: failures
// throw Error, whatever their cause. `next` says what the caller does next.
struct Outcome {
  enum class Next {
    done,         // `downloaded` is the file, verified and fsynced
    go_parallel,  // `handoff` is the first piece of a large file, on disk, for the parallel path
    one_stream,   // the server refused ranges or named no version: download in one stream
    afresh,       // a reply showed the bytes on disk to be of another version: start afresh
  };
  Next next = Next::done;
  std::optional<Downloaded> downloaded;
  std::optional<Partial> handoff;

  static Outcome finished(Downloaded downloaded) {
    return {Next::done, std::move(downloaded), std::nullopt};
  }
  static Outcome hand_off(Partial first_piece) {
    return {Next::go_parallel, std::nullopt, std::move(first_piece)};
  }
  static Outcome in_one_stream() { return {Next::one_stream, std::nullopt, std::nullopt}; }
  static Outcome start_afresh() { return {Next::afresh, std::nullopt, std::nullopt}; }
};

// The parallel half of download_file (parallel.cpp): `file.size` parts
// fetched as ranges over up to max_connections connections. Answers
// one_stream, having written nothing that matters, when the server answers a
// range request with the whole file (200) or names no version of it (no ETag:
// its parts could not be told apart from another version's); afresh when a
// reply shows that the file changed since bytes on disk were written.
// Continues `resume` when given (`vouched`: a reply in this process has just
// confirmed those bytes and the server's ranges, so no connection waits for a
// first reply).
Outcome download_parallel(const RemoteFile& file, const std::filesystem::path& temp_path,
                          const TransferContext& context, const Partial* resume = nullptr,
                          bool vouched = false);

}  // namespace e2s::detail::transfer_parts
