// One download at a time per file across processes sharing a cache (ranks of
// a cluster job, parallel services): the first takes the file's lock and
// downloads, the others wait and then find it cached.
//
// The lock is an open-file-description lock (fcntl F_OFD_SETLK) on a lock
// file: the kernel drops it when its holder dies, however abruptly, and NFS
// carries it between machines. Waiting is bounded: a holder that shows no
// progress (its heartbeat, the lock file's mtime, stops changing) for
// `stale_after` is presumed stuck and the waiter goes on without the lock.
// The holder removes the lock file when done; a waiter that wins the lock of
// a removed file starts over with the new one.
// Correctness never depends on the lock: downloads go to private temp files
// and are committed by rename, so a filesystem whose locks do nothing (or a
// stuck holder waking up) costs a duplicate download, never a corrupt file.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <string>

namespace e2s::detail {

struct LockOptions {
  bool enabled = true;
  std::chrono::milliseconds stale_after{std::chrono::minutes(2)};
  // Called once when the lock is busy and waiting begins, with a description
  // of the holder ("another process (pid 123 on host-a)") and whether it is
  // this very process (another of its threads).
  std::function<void(const std::string& holder, bool this_process)> on_wait;
};

class DownloadLock {
 public:
  // Takes the lock in `lock_file` (created when missing), waiting while
  // another process holds it and shows progress. The result may not be held
  // (locking disabled or unsupported, or the holder stuck): the caller then
  // downloads on its own. Throws Error(io) when the lock file cannot be
  // created (a read-only cache).
  static DownloadLock acquire(const std::filesystem::path& lock_file, const LockOptions& options);

  DownloadLock() = default;
  ~DownloadLock();
  DownloadLock(DownloadLock&& other) noexcept;
  DownloadLock& operator=(DownloadLock&& other) noexcept;

  bool held() const noexcept { return held_; }

  // Shows waiters that the download is progressing. Cheap when called often
  // (at most one touch of the lock file a second, or a quarter of the stale
  // time when that is shorter); thread-safe.
  void heartbeat() noexcept;

 private:
  void release() noexcept;

  std::filesystem::path path_;
  int fd_ = -1;
  bool held_ = false;
  std::atomic<std::int64_t> last_beat_ms_{0};
  std::int64_t beat_every_ms_ = 1000;
};

}  // namespace e2s::detail
