#include "neighbours/hf_cache.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>
#include <vector>

#include "cache/folder.hpp"
#include "e2s/error.hpp"
#include "log.hpp"
#include "util/hash.hpp"
#include "util/posix.hpp"

namespace e2s::detail {
namespace {

namespace fs = std::filesystem;

// How often a busy blob lock is tried again.
constexpr auto kLockPoll = std::chrono::milliseconds(50);

Error write_error(const std::string& what, const fs::path& path, int error) {
  return Error(Errc::io,
               "cannot " + what + " " + path.string() + " in the Hugging Face cache: " + std::strerror(error) +
                   "; check that it is writable, or set E2S_HF_CACHE=read",
               path.string());
}

bool is_commit(const std::string& text) { return is_lower_hex(text, 40); }

// A revision as a path below refs/ ("main", "v1.0", "refs/pr/1"), when every
// segment is a plain name.
std::optional<fs::path> ref_path(const std::string& revision) {
  fs::path path;
  std::size_t start = 0;
  while (start <= revision.size()) {
    const auto end = std::min(revision.find('/', start), revision.size());
    const std::string segment = revision.substr(start, end - start);
    if (segment.empty() || segment == "." || segment == "..") return std::nullopt;
    path /= segment;
    start = end + 1;
  }
  return path;
}

std::optional<struct stat> lstat_regular(const fs::path& path) {
  struct stat status {};
  if (::lstat(path.c_str(), &status) != 0 || !S_ISREG(status.st_mode)) return std::nullopt;
  return status;
}

// Copies `from` into the new file `to`, durably.
void copy_into(const fs::path& from, const fs::path& to) {
  UniqueFd in(::open(from.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!in) throw write_error("read", from, errno);
  UniqueFd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!out) throw write_error("create", to, errno);
  bool failed_read = false;
  if (const int error = copy_durably(in.get(), out.get(), failed_read); error != 0) {
    ::unlink(to.c_str());
    throw write_error(failed_read ? "read" : "write", failed_read ? from : to, error);
  }
}

// Creates `path` as a symlink to `target`, atomically (a temp name and a
// rename that replaces nothing).
void place_symlink(const std::string& target, const fs::path& path) {
  const fs::path temp = path.string() + "." + unique_suffix() + ".incomplete";
  if (::symlink(target.c_str(), temp.c_str()) != 0) throw write_error("create", temp, errno);
  if (::renameat2(AT_FDCWD, temp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) != 0) {
    const int error = errno;
    ::unlink(temp.c_str());
    if (error != EEXIST) throw write_error("create", path, error);
  }
}

// Writes `text` to `path` through a temp file and a rename.
void write_text(const fs::path& path, const std::string& text) {
  const fs::path temp = path.string() + "." + unique_suffix() + ".incomplete";
  UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!fd) throw write_error("create", temp, errno);
  if (!write_all(fd.get(), text.data(), text.size())) {
    const int error = errno;
    ::unlink(temp.c_str());
    throw write_error("write", temp, error);
  }
  fd.close();
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temp.c_str());
    throw write_error("write", path, error);
  }
}

void make_folders(const fs::path& folder) {
  std::error_code error;
  fs::create_directories(folder, error);
  if (error) throw write_error("create", folder, error.value());
}

}  // namespace

void remove_hf_blob(const fs::path& blob) {
  const fs::path repo = blob.parent_path().parent_path();
  std::error_code error;
  // Snapshot links first: a link without its blob would be a broken file.
  for (fs::recursive_directory_iterator it(repo / "snapshots", error), end; !error && it != end; it.increment(error)) {
    if (!it->is_symlink()) continue;
    const fs::path target = fs::read_symlink(it->path(), error);
    if (!error && !target.is_absolute() && (it->path().parent_path() / target).lexically_normal() == blob) {
      if (::unlink(it->path().c_str()) != 0) throw write_error("remove", it->path(), errno);
    }
  }
  if (::unlink(blob.c_str()) != 0 && errno != ENOENT) throw write_error("remove", blob, errno);
}

bool is_hf_blob_name(const std::string& text) { return is_lower_hex(text, 40) || is_lower_hex(text, 64); }

HfRepoCache::HfRepoCache(fs::path hub_cache, const HfLocation& repo) : hub_cache_(std::move(hub_cache)) {
  std::string id = repo.repo_id;
  for (std::size_t at = id.find('/'); at != std::string::npos; at = id.find('/', at + 2)) id.replace(at, 1, "--");
  repo_folder_ = repo.repo_type + "s--" + id;
  folder_ = hub_cache_ / repo_folder_;
}

std::optional<std::string> HfRepoCache::commit_of(const std::string& revision) const {
  if (is_commit(revision)) return revision;
  const auto path = ref_path(revision);
  if (!path) return std::nullopt;
  auto text = read_small_file(folder_ / "refs" / *path);
  if (!text) return std::nullopt;
  while (!text->empty() && std::isspace(static_cast<unsigned char>(text->back()))) text->pop_back();
  if (!is_commit(*text)) {
    log::debug("ignoring {}: it holds no commit hash", (folder_ / "refs" / *path).string());
    return std::nullopt;
  }
  return text;
}

std::optional<HfCachedFile> HfRepoCache::snapshot_file(const std::string& commit,
                                                       const std::string& repo_path) const {
  if (!is_commit(commit)) return std::nullopt;
  const fs::path link = folder_ / "snapshots" / commit / repo_path;
  struct stat status {};
  if (::lstat(link.c_str(), &status) != 0) return std::nullopt;
  if (S_ISREG(status.st_mode)) return HfCachedFile{link, "", commit};  // a layout without symlinks
  if (!S_ISLNK(status.st_mode)) return std::nullopt;
  std::error_code error;
  const fs::path target = fs::read_symlink(link, error);
  if (error || target.is_absolute()) {
    log::debug("ignoring {}: not a relative link into blobs/", link.string());
    return std::nullopt;
  }
  // The link must lead to <repo folder>/blobs/<etag> and nowhere else.
  const fs::path blob = (link.parent_path() / target).lexically_normal();
  const std::string etag = blob.filename().string();
  if (blob.parent_path() != (folder_ / "blobs").lexically_normal() || !is_hf_blob_name(etag)) {
    log::debug("ignoring {}: it leads to {}, not to a blob of its repo", link.string(), blob.string());
    return std::nullopt;
  }
  return this->blob(etag, commit);
}

std::optional<HfCachedFile> HfRepoCache::blob(const std::string& etag, const std::string& commit) const {
  if (!is_hf_blob_name(etag)) return std::nullopt;
  const fs::path path = folder_ / "blobs" / etag;
  if (!lstat_regular(path)) return std::nullopt;
  return HfCachedFile{path, etag, commit};
}

bool HfRepoCache::known_missing(const std::string& commit, const std::string& repo_path) const {
  if (!is_commit(commit)) return false;
  struct stat status {};
  return ::lstat((folder_ / ".no_exist" / commit / repo_path).c_str(), &status) == 0;
}

std::optional<fs::path> HfRepoCache::share(const fs::path& file, const std::string& etag,
                                           const std::string& commit, const std::string& revision,
                                           const std::string& repo_path, std::chrono::milliseconds wait) const {
  if (!is_hf_blob_name(etag) || !is_commit(commit)) return std::nullopt;
  const auto own = lstat_regular(file);
  if (!own) return std::nullopt;
  const fs::path blobs = folder_ / "blobs";
  const fs::path blob_path = blobs / etag;
  const fs::path snapshot = folder_ / "snapshots" / commit / repo_path;
  const fs::path lock_folder = hub_cache_ / ".locks" / repo_folder_;
  make_folders(blobs);
  make_folders(snapshot.parent_path());
  make_folders(lock_folder);

  // huggingface_hub's own lock of the blob: whoever holds it may be writing
  // blobs/<etag> right now.
  const fs::path lock_path = lock_folder / (etag + ".lock");
  UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0664));
  if (!lock) throw write_error("create", lock_path, errno);
  const auto deadline = std::chrono::steady_clock::now() + wait;
  bool told = false;
  while (::flock(lock.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR) throw write_error("lock", lock_path, errno);
    if (std::chrono::steady_clock::now() >= deadline) {
      log::warn("not sharing {} into the Hugging Face cache: {} stayed locked by another program", repo_path,
                lock_path.string());
      return std::nullopt;
    }
    if (!told) log::info("waiting for the Hugging Face cache's lock {}", lock_path.string());
    told = true;
    std::this_thread::sleep_for(kLockPoll);
  }

  if (!lstat_regular(blob_path)) {
    const fs::path incomplete = blobs / (etag + "." + unique_suffix() + ".incomplete");
    if (::link(file.c_str(), incomplete.c_str()) != 0) {
      log::info("copying {} into the Hugging Face cache (a hard link is impossible: {})", repo_path,
                std::strerror(errno));
      copy_into(file, incomplete);
    }
    if (::renameat2(AT_FDCWD, incomplete.c_str(), AT_FDCWD, blob_path.c_str(), RENAME_NOREPLACE) != 0) {
      const int error = errno;
      ::unlink(incomplete.c_str());
      if (error != EEXIST) throw write_error("create", blob_path, error);
    }
  }
  struct stat status {};
  if (::lstat(snapshot.c_str(), &status) != 0) {
    std::string target;
    for (auto depth = std::count(repo_path.begin(), repo_path.end(), '/'); depth > 0; --depth) target += "../";
    place_symlink(target + "../../blobs/" + etag, snapshot);
  }
  if (revision != commit) {
    if (const auto ref = ref_path(revision); ref && commit_of(revision) != commit) {
      make_folders((folder_ / "refs" / *ref).parent_path());
      write_text(folder_ / "refs" / *ref, commit);
    }
  }
  const auto shared = lstat_regular(blob_path);
  if (shared && shared->st_ino == own->st_ino && shared->st_dev == own->st_dev) return blob_path;
  return std::nullopt;
}

}  // namespace e2s::detail
