#include "cache/lock.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>
#include <thread>
#include <utility>

#include "e2s/error.hpp"
#include "log.hpp"

namespace e2s::detail {
namespace {

using namespace std::chrono;

std::int64_t steady_ms() {
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

bool try_lock(int fd, int& error) {
  struct flock request {};
  request.l_type = F_WRLCK;
  request.l_whence = SEEK_SET;
  if (::fcntl(fd, F_OFD_SETLK, &request) == 0) return true;
  error = errno;
  return false;
}

bool busy(int error) { return error == EAGAIN || error == EACCES; }

std::string this_process();

constexpr std::string_view kThisProcessHolder = "another thread of this process";

// Who holds the lock, for messages: "another process (pid 12 on node-a)".
std::string holder_of(int fd) {
  char text[256] = {};
  const ssize_t n = ::pread(fd, text, sizeof(text) - 1, 0);
  std::string holder(text, n > 0 ? static_cast<std::size_t>(n) : 0);
  while (!holder.empty() && (holder.back() == '\n' || holder.back() == '\0')) holder.pop_back();
  if (holder.empty()) return "another process";
  if (holder == this_process()) return std::string(kThisProcessHolder);
  return "another process (" + holder + ")";
}

std::string this_process() {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  return "pid " + std::to_string(::getpid()) + (host[0] ? std::string(" on ") + host : std::string());
}

// mtime of the lock file, the holder's heartbeat.
std::int64_t heartbeat_of(int fd) {
  struct stat status {};
  if (::fstat(fd, &status) != 0) return 0;
  return static_cast<std::int64_t>(status.st_mtim.tv_sec) * 1000000000 + status.st_mtim.tv_nsec;
}

// The lock file, opened; -1 when something other than a regular file sits
// at its path (planted, or damaged): the download goes on without a lock,
// since correctness never depends on one. Never waits: a FIFO is opened
// non-blocking and then refused.
int open_lock_file(const std::filesystem::path& lock_file) {
  int fd = ::open(lock_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644);
  struct stat status {};
  if (fd >= 0 && ::fstat(fd, &status) == 0 && S_ISREG(status.st_mode)) return fd;
  const int error = fd >= 0 ? EINVAL : errno;
  if (fd >= 0) ::close(fd);
  if (error == EINVAL || error == EISDIR || error == ELOOP || error == ENXIO || error == ENODEV ||
      error == EOPNOTSUPP) {
    log::warn("the lock file {} is not a regular file; downloading without the lock (remove it)",
                 lock_file.string());
    return -1;
  }
  throw Error(Errc::io,
              "cannot create the lock file " + lock_file.string() + ": " + std::strerror(error) +
                  "; a download needs a writable cache folder: choose one with --cache-dir or "
                  "EARTH2STUDIO_CACHE",
              lock_file.string());
}

// Whether `fd` is still the file at `path`: a holder removes the lock file
// when it is done, so a lock won on a removed file guards nothing.
bool still_linked(int fd, const std::filesystem::path& path) {
  struct stat opened {}, linked {};
  return ::fstat(fd, &opened) == 0 && ::lstat(path.c_str(), &linked) == 0 &&
         opened.st_ino == linked.st_ino && opened.st_dev == linked.st_dev;
}

}  // namespace

DownloadLock DownloadLock::acquire(const std::filesystem::path& lock_file, const LockOptions& options) {
  DownloadLock lock;
  if (!options.enabled) return lock;
  lock.path_ = lock_file;
  lock.fd_ = open_lock_file(lock_file);
  if (lock.fd_ < 0) return lock;

  // Polling, not a blocking wait: a waiter must notice a stuck holder, and
  // log that it waits. Sleeps grow to 250 ms, with jitter so that hundreds of
  // waiters do not retry in step.
  thread_local std::minstd_rand jitter{std::random_device{}()};
  milliseconds pause{20};
  std::int64_t seen_beat = heartbeat_of(lock.fd_);
  std::int64_t seen_at = steady_ms();
  bool announced = false;
  for (;;) {
    int error = 0;
    if (try_lock(lock.fd_, error)) {
      if (!still_linked(lock.fd_, lock_file)) {
        ::close(lock.fd_);
        lock.fd_ = open_lock_file(lock_file);
        if (lock.fd_ < 0) return lock;
        continue;
      }
      lock.held_ = true;
      // Beats well within the time waiters allow before they pass a holder.
      lock.beat_every_ms_ = std::clamp<std::int64_t>(options.stale_after.count() / 4, 1, 1000);
      const std::string holder = this_process() + "\n";
      if (::ftruncate(lock.fd_, 0) == 0) {
        [[maybe_unused]] ssize_t ignored = ::pwrite(lock.fd_, holder.data(), holder.size(), 0);
      }
      lock.heartbeat();
      return lock;
    }
    if (!busy(error)) {
      // ENOLCK, EOPNOTSUPP, ENOSYS: a filesystem without working locks.
      log::debug("locks are not supported at {} ({}); downloading without one", lock_file.string(),
                    std::strerror(error));
      return lock;
    }
    const std::int64_t beat = heartbeat_of(lock.fd_);
    const std::int64_t now = steady_ms();
    if (beat != seen_beat) {
      seen_beat = beat;
      seen_at = now;
    } else if (now - seen_at > options.stale_after.count()) {
      log::warn("{} has shown no progress for {:g} s; downloading without waiting for it",
                   holder_of(lock.fd_), static_cast<double>(options.stale_after.count()) / 1000);
      return lock;
    }
    if (!announced) {
      announced = true;
      if (options.on_wait) {
        const std::string holder = holder_of(lock.fd_);
        options.on_wait(holder, holder == kThisProcessHolder);
      }
    }
    std::this_thread::sleep_for(pause + milliseconds(jitter() % (pause.count() / 2 + 1)));
    pause = std::min(pause * 2, milliseconds(250));
  }
}

void DownloadLock::release() noexcept {
  if (held_) ::unlink(path_.c_str());  // while still held: see still_linked
  if (fd_ >= 0) ::close(fd_);          // releases the lock
  fd_ = -1;
  held_ = false;
}

DownloadLock::~DownloadLock() { release(); }

DownloadLock::DownloadLock(DownloadLock&& other) noexcept
    : path_(std::move(other.path_)),
      fd_(std::exchange(other.fd_, -1)),
      held_(std::exchange(other.held_, false)),
      last_beat_ms_(other.last_beat_ms_.load()),
      beat_every_ms_(other.beat_every_ms_) {}

DownloadLock& DownloadLock::operator=(DownloadLock&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
    held_ = std::exchange(other.held_, false);
    last_beat_ms_.store(other.last_beat_ms_.load());
    beat_every_ms_ = other.beat_every_ms_;
  }
  return *this;
}

void DownloadLock::heartbeat() noexcept {
  if (!held_) return;
  const std::int64_t now = steady_ms();
  std::int64_t last = last_beat_ms_.load();
  if (now - last < beat_every_ms_ && last != 0) return;
  if (!last_beat_ms_.compare_exchange_strong(last, now)) return;  // another thread beats
  ::futimens(fd_, nullptr);
}

}  // namespace e2s::detail
