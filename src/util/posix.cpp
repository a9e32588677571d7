#include "util/posix.hpp"

#include <unistd.h>

#include <cerrno>
#include <vector>
#include <utility>

namespace e2s::detail {

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) ::close(fd_);
}

UniqueFd::UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

int UniqueFd::close() noexcept {
  if (fd_ < 0) return 0;
  const int result = ::close(std::exchange(fd_, -1));
  return result == 0 ? 0 : errno;
}

ssize_t read_some(int fd, void* buffer, std::size_t size) noexcept {
  for (;;) {
    const ssize_t n = ::read(fd, buffer, size);
    if (n >= 0 || errno != EINTR) return n;
  }
}

ssize_t pread_some(int fd, void* buffer, std::size_t size, off_t offset) noexcept {
  for (;;) {
    const ssize_t n = ::pread(fd, buffer, size, offset);
    if (n >= 0 || errno != EINTR) return n;
  }
}

int copy_durably(int from, int to, bool& failed_read) {
  std::vector<char> block(std::size_t{1} << 20);
  for (;;) {
    const ssize_t n = read_some(from, block.data(), block.size());
    failed_read = n < 0;
    if (n < 0) return errno;
    if (n == 0) break;
    if (!write_all(to, block.data(), static_cast<std::size_t>(n))) return errno;
  }
  return ::fsync(to) == 0 ? 0 : errno;
}

bool write_all(int fd, const void* data, std::size_t size) noexcept {
  const char* bytes = static_cast<const char*>(data);
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd, bytes + done, size - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  return true;
}

bool pwrite_all(int fd, const void* data, std::size_t size, off_t offset) noexcept {
  const char* bytes = static_cast<const char*>(data);
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n = ::pwrite(fd, bytes + done, size - done, offset + static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace e2s::detail
