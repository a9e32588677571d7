// The few POSIX patterns every part of e2s needs, written once: an owned file
// descriptor, and reads and writes that survive signals (EINTR) and short
// counts.
#pragma once

#include <sys/types.h>

#include <cstddef>

namespace e2s::detail {

// Owns a file descriptor: closed when destroyed, unless released.
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) noexcept : fd_(fd) {}
  ~UniqueFd();
  UniqueFd(UniqueFd&& other) noexcept;
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  // Closes now; 0 on success, else close()'s errno (a write error may only
  // show here, on some filesystems).
  int close() noexcept;

 private:
  int fd_;
};

// read(2) and pread(2), started again when a signal interrupts them: the
// bytes read (0 at the end of the file), or -1 with errno set.
ssize_t read_some(int fd, void* buffer, std::size_t size) noexcept;
ssize_t pread_some(int fd, void* buffer, std::size_t size, off_t offset) noexcept;

// Writes all `size` bytes (at `offset` for pwrite_all), however many calls
// it takes; false with errno set when one fails.
bool write_all(int fd, const void* data, std::size_t size) noexcept;
bool pwrite_all(int fd, const void* data, std::size_t size, off_t offset) noexcept;

// Copies what is left to read of `from` to `to` and makes it durable
// (fsync); 0, or the errno of the read or write that failed (`failed_read`
// says which).
int copy_durably(int from, int to, bool& failed_read);

}  // namespace e2s::detail
