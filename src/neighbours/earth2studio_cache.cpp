#include "neighbours/earth2studio_cache.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>

#include "log.hpp"
#include "neighbours/fsspec_index.hpp"
#include "util/posix.hpp"

namespace e2s::detail {
namespace {

namespace fs = std::filesystem;

// fsspec's index file, and the bounds of what is read of it.
constexpr const char* kIndexName = "cache";
constexpr off_t kMaxIndexBytes = static_cast<off_t>(kFsspecIndexMaxBytes);
constexpr std::size_t kMaxFolders = 1024;

bool is_regular(const fs::path& path) {
  struct stat status {};
  return ::lstat(path.c_str(), &status) == 0 && S_ISREG(status.st_mode);
}

// The whole index file, when it is a regular file of bounded size.
std::optional<std::string> read_index(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  struct stat status {};
  if (!fd || ::fstat(fd.get(), &status) != 0 || !S_ISREG(status.st_mode) || status.st_size > kMaxIndexBytes) {
    return std::nullopt;
  }
  std::string bytes(static_cast<std::size_t>(status.st_size), '\0');
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = read_some(fd.get(), bytes.data() + done, bytes.size() - done);
    if (n <= 0) return std::nullopt;  // shrank while read: being rewritten
    done += static_cast<std::size_t>(n);
  }
  return bytes;
}

// A name fsspec gives a file: its base name or the sha256 of its key, never a path.
bool is_plain_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

}  // namespace

std::string fsspec_key(const Location& location, const std::string& path) {
  std::string key = location.root + "/" + path;
  if (location.scheme == Scheme::hf || location.scheme == Scheme::s3 || location.scheme == Scheme::gs) {
    key.erase(0, key.find("://") + 3);
  }
  return key;
}

std::vector<fs::path> earth2studio_folders(const fs::path& cache_root, const fs::path& own) {
  std::vector<fs::path> folders;
  if (!own.empty()) folders.push_back(own);
  std::unique_ptr<DIR, int (*)(DIR*)> listing(::opendir(cache_root.c_str()), &::closedir);
  if (!listing) return folders;
  while (const dirent* item = ::readdir(listing.get())) {
    const std::string name = item->d_name;
    if (name == "." || name == ".." || folders.size() > kMaxFolders) continue;
    const fs::path folder = cache_root / name;
    if (folder != own && is_regular(folder / kIndexName)) folders.push_back(folder);
  }
  return folders;
}

std::optional<Earth2StudioFile> find_fsspec_file(const std::vector<fs::path>& folders, const std::string& key) {
  for (const fs::path& folder : folders) {
    const fs::path index = folder / kIndexName;
    const auto bytes = read_index(index);
    if (!bytes) continue;
    std::string reason;
    const auto records = parse_fsspec_index(*bytes, &reason);
    if (!records) {
      log::debug("skipping the fsspec index {}: {}", index.string(), reason);
      continue;
    }
    for (const FsspecRecord& record : *records) {
      if ((record.key != key && record.original != key) || !is_plain_name(record.fn)) continue;
      const fs::path file = folder / record.fn;
      if (is_regular(file)) return Earth2StudioFile{file, index};
    }
  }
  return std::nullopt;
}

}  // namespace e2s::detail
