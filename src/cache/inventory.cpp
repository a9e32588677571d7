#include "cache/inventory.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <utility>

#include "cache/folder.hpp"
#include "cache/layout.hpp"
#include "e2s/error.hpp"
#include "util/hash.hpp"
#include "uri/location.hpp"
#include "util/posix.hpp"
#include "util/text.hpp"
#include "log.hpp"
#include "neighbours/hf_cache.hpp"

namespace e2s::detail {
namespace {

namespace fs = std::filesystem;
constexpr std::string_view kReserved = layout::kReserved;
// Package folders sit a few levels below the root (packages/<name>-<hash>,
// or where a model put its cache_storage); deeper trees are model data.
constexpr int kMaxPackageDepth = 16;
// Each level of a tree walk holds two descriptors (the folder and its listing).
constexpr int kMaxTreeDepth = 128;
constexpr std::size_t kHashBlock = 1u << 20;

using Fd = UniqueFd;

Fd open_folder_at(int parent, const std::string& name) {
  return Fd(::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
}

struct Name {
  std::string name;
  unsigned char type = DT_UNKNOWN;
};

// The names in the folder `fd` (not "." and ".."), read in full before the
// caller changes the folder: readdir is not defined across removals.
std::vector<Name> list_names(int fd) {
  std::vector<Name> names;
  const int copy = ::dup(fd);
  if (copy < 0) return names;
  std::unique_ptr<DIR, int (*)(DIR*)> listing(::fdopendir(copy), &::closedir);
  if (!listing) {
    ::close(copy);
    return names;
  }
  ::rewinddir(listing.get());  // the duplicate shares the offset
  while (const dirent* item = ::readdir(listing.get())) {
    const std::string_view name = item->d_name;
    if (name == "." || name == "..") continue;
    names.push_back({std::string(name), item->d_type});
  }
  return names;
}

bool stat_at(int fd, const std::string& name, struct stat& status) {
  return ::fstatat(fd, name.c_str(), &status, AT_SYMLINK_NOFOLLOW) == 0;
}

bool is_folder_at(int fd, const Name& entry) {
  if (entry.type != DT_UNKNOWN) return entry.type == DT_DIR;
  struct stat status {};
  return stat_at(fd, entry.name, status) && S_ISDIR(status.st_mode);
}

TimePoint to_time_point(const timespec& time) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::seconds(time.tv_sec) + std::chrono::nanoseconds(time.tv_nsec)));
}

// `path` relative to `cache_root`; everything an inventory names lies below it.
fs::path below(const fs::path& cache_root, const fs::path& path) {
  return path.lexically_relative(cache_root);
}

Error removal_error(const std::string& what, const fs::path& path, const fs::path& folder, int error) {
  const bool read_only = error == EROFS || error == EACCES || error == EPERM;
  return Error(Errc::io,
               "cannot remove " + (what.empty() ? "" : what + " ") + path.string() + ": " + std::strerror(error) +
                   (read_only ? "; the cache folder " + folder.string() +
                                    " is read-only for this user: run as its owner, or choose "
                                    "another cache with --cache-dir"
                              : "; check the cache folder " + folder.string()),
               folder.string());
}

// A metadata record read back, or why it cannot be used.
std::optional<StoredFile> parse_metadata(const std::string& text, const std::string& name,
                                         std::string& reason) {
  auto parsed = detail::parse_metadata(text, &reason);
  if (!parsed) return std::nullopt;
  StoredFile file;
  file.entry = std::move(*parsed);
  const CacheEntry& entry = file.entry;
  if (name != sha256_hex(entry.key) + ".json") {
    reason = "its name is not the SHA-256 of its key \"" + entry.key + "\"";
    return std::nullopt;
  }
  const std::string& path = entry.file_path;
  if (entry.key.size() <= path.size() + 1 || !entry.key.ends_with("/" + path)) {
    reason = "its key \"" + entry.key + "\" does not end with its file path \"" + path + "\"";
    return std::nullopt;
  }
  file.root = entry.key.substr(0, entry.key.size() - path.size() - 1);
  try {
    if (validate_file_path(path, file.root) != path) throw Error(Errc::invalid_uri, "not normal");
  } catch (const Error&) {
    reason = "its file path \"" + path + "\" is not a path inside a package";
    return std::nullopt;
  }
  return file;
}

// Why read_small_file() gave up on a bookkeeping file, for a report.
std::string unreadable_reason(int error) {
  if (error == EINVAL) return "it is not a regular file (a FIFO, socket or device)";
  if (error == EFBIG) return "it is larger than 1 MiB, which no metadata is";
  return std::string("it cannot be read: ") + std::strerror(error);
}

// lstat of `relative` below `cache_root`, no symlink followed on the way.
bool stat_below(const fs::path& cache_root, const fs::path& relative, struct stat& status) {
  try {
    auto parent = Folder::open(cache_root, relative.parent_path(), /*create=*/false);
    return parent && stat_at(parent->fd(), relative.filename().string(), status);
  } catch (const Error& error) {
    log::debug("{}", error.what());  // a symlink on the way: not the cache's file
    return false;
  }
}

// Whether a regular file with `status` is the one e2s wrote for `entry`.
bool written_by_e2s(const CacheEntry& entry, const struct stat& status) {
  if (entry.data) return identity_of(status) == *entry.data;
  return static_cast<std::uint64_t>(status.st_size) == entry.size;  // a record of an older e2s
}

// Finds the data file of `file` in the package folder `folder`: under its
// own name or under the hash of its key (the metadata does not say which),
// where the record's layout keeps files.
void locate_data(const fs::path& cache_root, const fs::path& folder, StoredFile& file) {
  std::vector<fs::path> candidates;
  const CacheEntry& entry = file.entry;
  if (entry.legacy_layout) {
    if (entry.file_path.substr(0, entry.file_path.find('/')) != kReserved) {
      candidates.push_back(layout::legacy_data_path(entry.key, entry.file_path, true));
    }
    candidates.push_back(layout::legacy_data_path(entry.key, entry.file_path, false));
  } else {
    candidates.push_back(layout::data_path(entry.key, entry.file_path, true));
    candidates.push_back(layout::data_path(entry.key, entry.file_path, false));
  }
  file.data = folder / candidates.front();
  file.state = DataState::missing;
  file.bytes = 0;
  file.last_used = file.entry.fetched_at;
  std::optional<std::pair<fs::path, struct stat>> found;
  for (const fs::path& candidate : candidates) {
    struct stat status {};
    if (!stat_below(cache_root, below(cache_root, folder / candidate), status) || !S_ISREG(status.st_mode)) {
      continue;
    }
    if (written_by_e2s(file.entry, status)) {
      found = {candidate, status};
      file.state = DataState::present;
      break;
    }
    if (!found) found = {candidate, status};
  }
  if (!found) return;
  if (file.entry.replaces && identity_of(found->second) == *file.entry.replaces) {
    // A commit cut short: the record is written, the file it names is not
    // in place yet, and e2s's earlier copy still is. The recorded file is
    // missing (fetched again when next used); the old copy is e2s's to remove.
    file.data = folder / found->first;
    return;
  }
  if (file.state != DataState::present) file.state = DataState::changed;
  file.data = folder / found->first;
  file.bytes = static_cast<std::uint64_t>(found->second.st_size);
  file.last_used = std::max(file.last_used, to_time_point(found->second.st_atim));
}

// Records the identity of the intact file `status` describes in `file`'s
// metadata, so that the next lookup is a hit again. Best effort: a
// read-only cache keeps its old record (and hashes again next time).
void record_identity(const StoredFile& file, const struct stat& status) {
  CacheEntry entry = file.entry;
  entry.data = identity_of(status);
  entry.replaces.reset();
  try {
    Cache(layout::package_folder_of(file.meta), CacheOptions{}).record(entry);
  } catch (const Error& error) {
    log::debug("cannot record the identity of {}: {}", file.data.string(), error.what());
  }
}

// Sizes and the latest use of what a folder holds (recursively).
void measure_tree(int fd, int depth, std::uint64_t& bytes, TimePoint& last_used) {
  for (const Name& entry : list_names(fd)) {
    struct stat status {};
    if (!stat_at(fd, entry.name, status)) continue;
    if (S_ISREG(status.st_mode)) {
      bytes += static_cast<std::uint64_t>(status.st_size);
      last_used = std::max(last_used, to_time_point(status.st_atim));
    } else if (S_ISDIR(status.st_mode) && depth < kMaxTreeDepth) {
      Fd child = open_folder_at(fd, entry.name);
      if (child) measure_tree(child.get(), depth + 1, bytes, last_used);
    }
  }
}

// The finished extractions in <folder>/.e2s/extracted ("<name>-<16 hex>");
// extractions in progress (".part-...") and lock files are not.
std::vector<ExtractedFolder> scan_extracted(const fs::path& cache_root, const fs::path& folder) {
  std::vector<ExtractedFolder> found;
  const fs::path extracted = layout::extracted_folder(folder);
  std::optional<Folder> listing;
  try {
    listing = Folder::open(cache_root, below(cache_root, extracted), /*create=*/false);
  } catch (const Error& error) {
    log::warn("skipping {}: {}", extracted.string(), error.what());
  }
  if (!listing) return found;
  for (const Name& entry : list_names(listing->fd())) {
    const std::string& name = entry.name;
    if (!layout::is_extracted_name(name)) continue;
    struct stat status {};
    if (!stat_at(listing->fd(), name, status) || !S_ISDIR(status.st_mode)) continue;
    ExtractedFolder folder_found;
    folder_found.path = extracted / name;
    folder_found.archive_name = layout::archive_name_of(name);
    folder_found.last_used = std::max(to_time_point(status.st_mtim), to_time_point(status.st_atim));
    Fd tree = open_folder_at(listing->fd(), name);
    if (tree) measure_tree(tree.get(), 0, folder_found.bytes, folder_found.last_used);
    found.push_back(std::move(folder_found));
  }
  return found;
}

// Every folder below (and including) `fd` that has .e2s/meta.
void find_package_folders(int fd, const fs::path& path, int depth, std::vector<fs::path>& found) {
  {
    Fd reserved = open_folder_at(fd, std::string(kReserved));
    struct stat status {};
    if (reserved && stat_at(reserved.get(), std::string(layout::kMeta), status) && S_ISDIR(status.st_mode)) {
      found.push_back(path);
    }
  }
  if (depth >= kMaxPackageDepth) return;
  for (const Name& entry : list_names(fd)) {
    if (entry.name == kReserved || !is_folder_at(fd, entry)) continue;
    Fd child = open_folder_at(fd, entry.name);
    if (!child) {
      log::debug("cannot read {}: {}", (path / entry.name).string(), std::strerror(errno));
      continue;
    }
    find_package_folders(child.get(), path / entry.name, depth + 1, found);
  }
}

// Attaches each extracted folder to the file it was extracted from: the one
// whose data file has the archive's name (and, among several, whose sha256
// names the folder); returns those that match no file.
std::vector<ExtractedFolder> attach_extracted(std::vector<ExtractedFolder> folders,
                                              std::vector<StoredFile>& files) {
  std::vector<ExtractedFolder> unmatched;
  for (ExtractedFolder& folder : folders) {
    std::vector<StoredFile*> named;
    for (StoredFile& file : files) {
      if (file.data.filename() == folder.archive_name) named.push_back(&file);
    }
    if (named.size() > 1) {
      const std::string name = folder.path.filename().string();
      std::erase_if(named, [&](const StoredFile* file) {
        return layout::extracted_name(folder.archive_name, file->entry.sha256) != name;
      });
    }
    if (named.size() == 1) {
      named.front()->extracted.push_back(std::move(folder));
    } else {
      unmatched.push_back(std::move(folder));
    }
  }
  return unmatched;
}

void scan_package_folder(const fs::path& cache_root, const fs::path& folder, Inventory& inventory) {
  const fs::path meta = folder / layout::reserved(layout::kMeta);
  std::optional<Folder> listing;
  try {
    listing = Folder::open(cache_root, below(cache_root, meta), /*create=*/false);
  } catch (const Error& error) {
    log::warn("skipping {}: {}", meta.string(), error.what());
  }
  if (!listing) return;
  std::vector<StoredFile> files;
  for (const Name& entry : list_names(listing->fd())) {
    // Other names are metadata being written ("<name>.json.tmp.<n>").
    if (!entry.name.ends_with(".json")) continue;
    const fs::path path = meta / entry.name;
    const auto text = read_small_file(listing->fd(), entry.name);
    if (!text) {
      inventory.damaged.push_back({folder, path, unreadable_reason(errno)});
      continue;
    }
    std::string reason;
    auto file = parse_metadata(*text, entry.name, reason);
    if (!file) {
      inventory.damaged.push_back({folder, path, reason});
      continue;
    }
    file->meta = path;
    locate_data(cache_root, folder, *file);
    files.push_back(std::move(*file));
  }
  std::vector<ExtractedFolder> unmatched = attach_extracted(scan_extracted(cache_root, folder), files);

  std::map<std::string, CachedPackage> by_root;
  for (StoredFile& file : files) by_root[file.root].files.push_back(std::move(file));
  if (!unmatched.empty()) {
    // An extraction of no known file belongs to the folder's package when
    // there is one; in a folder shared by several roots, to none of them.
    CachedPackage& owner = by_root.size() == 1 ? by_root.begin()->second : by_root[""];
    for (ExtractedFolder& extracted : unmatched) owner.extracted.push_back(std::move(extracted));
  }
  for (auto& [root, package] : by_root) {
    package.root = root;
    package.folder = folder;
    std::sort(package.files.begin(), package.files.end(),
              [](const StoredFile& a, const StoredFile& b) { return a.entry.file_path < b.entry.file_path; });
    inventory.packages.push_back(std::move(package));
  }
}

// Removes `name` in `parent` and everything below it, never following a
// symlink (a symlink is removed, not what it points to). `path` and
// `folder` (the package folder) name it in errors.
void remove_tree(int parent, const std::string& name, const fs::path& path, const fs::path& folder,
                 int depth = 0) {
  Fd fd = open_folder_at(parent, name);
  if (!fd) {
    const int error = errno;
    if (error == ENOENT) return;
    if (error != ENOTDIR && error != ELOOP) throw removal_error("", path, folder, error);
    if (::unlinkat(parent, name.c_str(), 0) != 0 && errno != ENOENT) {
      throw removal_error("", path, folder, errno);
    }
    return;
  }
  if (depth >= kMaxTreeDepth) throw removal_error("the folder", path, folder, ELOOP);
  for (const Name& entry : list_names(fd.get())) {
    struct stat status {};
    if (!stat_at(fd.get(), entry.name, status)) {
      if (errno == ENOENT) continue;
      throw removal_error("", path / entry.name, folder, errno);
    }
    if (S_ISDIR(status.st_mode)) {
      remove_tree(fd.get(), entry.name, path / entry.name, folder, depth + 1);
    } else if (::unlinkat(fd.get(), entry.name.c_str(), 0) != 0 && errno != ENOENT) {
      throw removal_error("", path / entry.name, folder, errno);
    }
  }
  if (::unlinkat(parent, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    throw removal_error("the folder", path, folder, errno);
  }
}

// Whether the folder `fd` holds nothing but folders that hold nothing.
bool only_empty_folders(int fd, int depth) {
  if (depth >= kMaxTreeDepth) return false;
  for (const Name& entry : list_names(fd)) {
    if (!is_folder_at(fd, entry)) return false;
    Fd child = open_folder_at(fd, entry.name);
    if (!child || !only_empty_folders(child.get(), depth + 1)) return false;
  }
  return true;
}

// Whether the package folder `fd` holds nothing but bookkeeping: no data, no
// metadata, no download in progress (.e2s/tmp) and no extracted folder.
bool holds_only_bookkeeping(int fd) {
  for (const Name& entry : list_names(fd)) {
    if (entry.name != kReserved) {
      if (!is_folder_at(fd, entry)) return false;
      Fd child = open_folder_at(fd, entry.name);
      if (!child || !only_empty_folders(child.get(), 1)) return false;
      continue;
    }
    Fd reserved = open_folder_at(fd, entry.name);
    if (!reserved) return false;
    for (const Name& part : list_names(reserved.get())) {
      if (part.name == layout::kLocks) continue;  // lock files outlive their holders
      Fd inside = open_folder_at(reserved.get(), part.name);
      if (!inside) return false;
      if (part.name == layout::kFiles) {
        if (!only_empty_folders(inside.get(), 1)) return false;
        continue;
      }
      for (const Name& item : list_names(inside.get())) {
        // Only the lock files of extractions may stay; meta and tmp must be empty.
        if (part.name != layout::kExtracted || !item.name.ends_with(".lock") || is_folder_at(inside.get(), item)) {
          return false;
        }
      }
      if (part.name != layout::kMeta && part.name != layout::kTmp && part.name != layout::kExtracted) {
        return false;
      }
    }
  }
  return true;
}

std::optional<double> parse_number(std::string_view text, std::size_t& used) {
  double value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value,
                                            std::chars_format::fixed);
  if (error != std::errc() || !std::isfinite(value) || value < 0) return std::nullopt;
  used = static_cast<std::size_t>(end - text.data());
  return value;
}

}  // namespace

std::size_t CachedPackage::present_files() const {
  return static_cast<std::size_t>(std::count_if(files.begin(), files.end(), [](const StoredFile& file) {
    return file.state == DataState::present;
  }));
}

std::uint64_t CachedPackage::bytes() const {
  std::uint64_t total = 0;
  for (const StoredFile& file : files) {
    if (file.state == DataState::present) total += file.bytes;
    for (const ExtractedFolder& folder : file.extracted) total += folder.bytes;
  }
  for (const ExtractedFolder& folder : extracted) total += folder.bytes;
  return total;
}

TimePoint CachedPackage::last_used() const {
  TimePoint latest{};
  for (const StoredFile& file : files) {
    if (file.state == DataState::present) latest = std::max(latest, file.last_used);
    for (const ExtractedFolder& folder : file.extracted) latest = std::max(latest, folder.last_used);
  }
  for (const ExtractedFolder& folder : extracted) latest = std::max(latest, folder.last_used);
  return latest;
}

Inventory scan_inventory(const fs::path& cache_root) {
  Inventory inventory;
  inventory.cache_root = fs::absolute(cache_root).lexically_normal();
  if (inventory.cache_root.has_parent_path() && !inventory.cache_root.has_filename()) {
    inventory.cache_root = inventory.cache_root.parent_path();  // "/a/b/" -> "/a/b"
  }
  Fd root(::open(inventory.cache_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) {
    if (errno == ENOENT) return inventory;
    throw Error(Errc::io,
                "cannot read the cache folder " + inventory.cache_root.string() + ": " + std::strerror(errno) +
                    "; choose another with --cache-dir or EARTH2STUDIO_CACHE",
                inventory.cache_root.string());
  }
  std::vector<fs::path> folders;
  find_package_folders(root.get(), inventory.cache_root, 0, folders);
  for (const fs::path& folder : folders) scan_package_folder(inventory.cache_root, folder, inventory);
  std::sort(inventory.packages.begin(), inventory.packages.end(),
            [](const CachedPackage& a, const CachedPackage& b) {
              return std::tie(a.root, a.folder) < std::tie(b.root, b.folder);
            });
  std::sort(inventory.damaged.begin(), inventory.damaged.end(),
            [](const DamagedEntry& a, const DamagedEntry& b) { return a.meta < b.meta; });
  return inventory;
}

Verification verify_file(const fs::path& cache_root, const StoredFile& file,
                         const std::function<void(std::uint64_t)>& progress) {
  using Verdict = Verification::Verdict;
  const std::string recorded = std::to_string(file.entry.size) + " bytes recorded";
  if (file.state == DataState::missing) return {Verdict::missing, "no file at " + file.data.string()};
  const fs::path relative = below(cache_root, file.data);
  std::optional<Folder> parent;
  try {
    parent = Folder::open(cache_root, relative.parent_path(), /*create=*/false);
  } catch (const Error& error) {
    return {Verdict::missing, error.what()};
  }
  if (!parent) return {Verdict::missing, "no file at " + file.data.string()};
  const std::string name = relative.filename().string();
  // O_NOATIME: verifying is not using (prune goes by access times). Only
  // the file's owner may ask for it. O_NONBLOCK: a FIFO is refused, not read.
  constexpr int kFlags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
  int raw = ::openat(parent->fd(), name.c_str(), kFlags | O_NOATIME);
  if (raw < 0 && errno == EPERM) raw = ::openat(parent->fd(), name.c_str(), kFlags);
  Fd fd(raw);
  if (!fd) {
    if (errno == ENOENT || errno == ELOOP) return {Verdict::missing, "no file at " + file.data.string()};
    throw Error(Errc::io, "cannot read " + file.data.string() + ": " + std::strerror(errno), file.data.string());
  }
  struct stat status {};
  if (::fstat(fd.get(), &status) != 0 || !S_ISREG(status.st_mode)) {
    return {Verdict::missing, file.data.string() + " is not a regular file"};
  }
  const bool ours = written_by_e2s(file.entry, status);
  ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  Digest digest(DigestAlgorithm::sha256);
  std::vector<char> block(kHashBlock);
  std::uint64_t total = 0;
  for (;;) {
    const ssize_t n = read_some(fd.get(), block.data(), block.size());
    if (n < 0) {
      throw Error(Errc::io, "cannot read " + file.data.string() + ": " + std::strerror(errno),
                  file.data.string());
    }
    if (n == 0) break;
    digest.update(block.data(), static_cast<std::size_t>(n));
    total += static_cast<std::uint64_t>(n);
    if (progress) progress(total);
  }
  const std::string actual = digest.hex_final();
  const bool intact = total == file.entry.size && (file.entry.sha256.empty() || actual == file.entry.sha256);
  if (intact && ours && file.entry.data) return {Verdict::ok, ""};
  if (intact) {
    // Touched, copied back, or recorded by an older e2s: the bytes are the
    // ones e2s downloaded, and the record now says which file holds them.
    record_identity(file, status);
    return {Verdict::ok, "re-verified: its bytes are intact; its identity is recorded"};
  }
  const std::string differs = total != file.entry.size
                                  ? std::to_string(total) + " bytes on disk, " + recorded
                                  : "SHA-256 " + actual + ", the metadata records " + file.entry.sha256;
  // Bytes e2s cannot vouch it wrote are another program's: reported, never removed.
  if (!ours || !file.entry.data) return {Verdict::changed, "changed since e2s wrote it: " + differs};
  return {Verdict::corrupt, differs};
}

Removal remove_file(const fs::path& cache_root, const StoredFile& file, const RemoveOptions& options) {
  const fs::path folder = layout::package_folder_of(file.meta);
  const fs::path data_relative = below(cache_root, file.data);
  std::optional<Folder> data_parent;
  try {
    data_parent = Folder::open(cache_root, data_relative.parent_path(), /*create=*/false);
  } catch (const Error& error) {
    log::debug("{}", error.what());  // a symlink on the way: not the cache's file
  }
  // Looked at now, not at the scan: the file may have changed since.
  struct stat status {};
  const bool present = data_parent && stat_at(data_parent->fd(), data_relative.filename().string(), status) &&
                       S_ISREG(status.st_mode);
  const bool changed = present && !written_by_e2s(file.entry, status) &&
                       !(file.entry.replaces && identity_of(status) == *file.entry.replaces);
  if (changed && !options.forget_changed) return Removal::changed;

  if (auto meta = Folder::open(cache_root, below(cache_root, file.meta.parent_path()), /*create=*/false)) {
    const std::string name = file.meta.filename().string();
    // A file fetched again since the scan is in use again: it stays.
    if (const auto text = options.keep_if_fetched_again ? read_small_file(meta->fd(), name) : std::nullopt) {
      std::string reason;
      const auto now = parse_metadata(*text, name, reason);
      if (now && (now->entry.sha256 != file.entry.sha256 || now->entry.size != file.entry.size ||
                  now->entry.fetched_at != file.entry.fetched_at)) {
        return Removal::fetched_again;
      }
    }
    // Metadata first: a crash after it leaves a file without metadata,
    // which the cache treats as a miss.
    if (::unlinkat(meta->fd(), name.c_str(), 0) != 0 && errno != ENOENT) {
      throw removal_error("the metadata", file.meta, folder, errno);
    }
  }
  if (present && !changed &&
      ::unlinkat(data_parent->fd(), data_relative.filename().c_str(), 0) != 0 && errno != ENOENT) {
    throw removal_error("", file.data, folder, errno);
  }
  const auto& linked = file.entry.linked;
  if (options.include_hf_cache && present && !changed && linked && linked->cache == "hf") {
    struct stat blob {};
    if (::lstat(linked->path.c_str(), &blob) == 0 && blob.st_ino == status.st_ino && blob.st_dev == status.st_dev) {
      remove_hf_blob(linked->path);
    }
  }
  for (const ExtractedFolder& extracted : file.extracted) remove_extracted(cache_root, extracted);
  return changed ? Removal::changed : Removal::removed;
}

void remove_extracted(const fs::path& cache_root, const ExtractedFolder& extracted) {
  const fs::path folder = layout::package_folder_of(extracted.path);
  auto parent = Folder::open(cache_root, below(cache_root, extracted.path.parent_path()), /*create=*/false);
  if (!parent) return;
  const std::string name = extracted.path.filename().string();
  // Renamed away first: a process resolving the archive meanwhile finds no
  // folder and extracts afresh, rather than using a half-removed one.
  const std::string doomed = name + ".removing." + unique_suffix();
  if (::renameat(parent->fd(), name.c_str(), parent->fd(), doomed.c_str()) != 0) {
    if (errno == ENOENT) return;
    throw removal_error("the extracted folder", extracted.path, folder, errno);
  }
  remove_tree(parent->fd(), doomed, extracted.path.parent_path() / doomed, folder);
  ::unlinkat(parent->fd(), (name + ".lock").c_str(), 0);  // best effort: a lock file is a few bytes
}

void remove_damaged(const fs::path& cache_root, const DamagedEntry& damaged) {
  auto meta = Folder::open(cache_root, below(cache_root, damaged.meta.parent_path()), /*create=*/false);
  if (meta && ::unlinkat(meta->fd(), damaged.meta.filename().c_str(), 0) != 0 && errno != ENOENT) {
    throw removal_error("the metadata", damaged.meta, damaged.folder, errno);
  }
}

bool remove_folder_if_unused(const fs::path& cache_root, const fs::path& folder) {
  const fs::path relative = below(cache_root, folder);
  if (relative.empty() || relative == "." || *relative.begin() == "..") return false;
  auto parent = Folder::open(cache_root, relative.parent_path(), /*create=*/false);
  if (!parent) return false;
  const std::string name = relative.filename().string();
  {
    Fd fd = open_folder_at(parent->fd(), name);
    if (!fd || !holds_only_bookkeeping(fd.get())) return false;
  }
  remove_tree(parent->fd(), name, folder, folder);
  return true;
}

std::vector<PruneItem> plan_prune(const Inventory& inventory, const PruneOptions& options) {
  std::vector<PruneItem> items;
  std::uint64_t total = 0;
  for (const CachedPackage& package : inventory.packages) {
    for (const StoredFile& file : package.files) {
      if (file.state == DataState::changed) continue;  // another program's bytes
      PruneItem item{&package, &file, nullptr, file.bytes, file.last_used};
      // A model reads the folders extracted from an archive, not the archive.
      for (const ExtractedFolder& extracted : file.extracted) {
        item.bytes += extracted.bytes;
        item.last_used = std::max(item.last_used, extracted.last_used);
      }
      items.push_back(item);
    }
    for (const ExtractedFolder& extracted : package.extracted) {
      items.push_back({&package, nullptr, &extracted, extracted.bytes, extracted.last_used});
    }
  }
  auto path_of = [](const PruneItem& item) { return item.file ? item.file->meta : item.extracted->path; };
  std::sort(items.begin(), items.end(), [&path_of](const PruneItem& a, const PruneItem& b) {
    return a.last_used != b.last_used ? a.last_used < b.last_used : path_of(a) < path_of(b);
  });
  for (const PruneItem& item : items) total += item.bytes;

  std::vector<PruneItem> doomed;
  std::size_t next = 0;
  if (options.older_than) {
    const TimePoint cutoff = options.now - *options.older_than;
    for (; next < items.size() && items[next].last_used <= cutoff; ++next) {
      total -= items[next].bytes;
      doomed.push_back(items[next]);
    }
  }
  if (options.max_bytes) {
    for (; next < items.size() && total > *options.max_bytes; ++next) {
      total -= items[next].bytes;
      doomed.push_back(items[next]);
    }
  }
  return doomed;
}

std::optional<std::chrono::seconds> parse_duration(std::string_view text) {
  std::size_t used = 0;
  const auto number = parse_number(text, used);
  if (!number) return std::nullopt;
  const std::string unit = ascii_lower(text.substr(used));
  double seconds_per = 0;
  if (unit.empty() || unit == "s") seconds_per = 1;
  else if (unit == "m") seconds_per = 60;
  else if (unit == "h") seconds_per = 3600;
  else if (unit == "d") seconds_per = 86400;
  else if (unit == "w") seconds_per = 7 * 86400;
  else return std::nullopt;
  const double seconds = *number * seconds_per;
  if (seconds > 1e15) return std::nullopt;  // beyond any cache's age
  return std::chrono::seconds(static_cast<std::int64_t>(seconds));
}

std::optional<std::uint64_t> parse_byte_size(std::string_view text) {
  std::size_t used = 0;
  const auto number = parse_number(text, used);
  if (!number) return std::nullopt;
  const std::string unit = ascii_lower(text.substr(used));
  static constexpr std::string_view kPrefixes = "kmgtp";
  double factor = 1;
  if (!unit.empty() && unit != "b") {
    const auto power = kPrefixes.find(unit[0]);
    const std::string_view rest = std::string_view(unit).substr(1);
    if (power == std::string_view::npos || !(rest.empty() || rest == "ib" || rest == "b")) return std::nullopt;
    factor = std::pow(rest == "b" ? 1000.0 : 1024.0, static_cast<double>(power + 1));
  }
  const double bytes = std::floor(*number * factor);
  if (bytes >= 18446744073709551616.0) return std::nullopt;  // 2^64
  return static_cast<std::uint64_t>(bytes);
}

std::string iso8601_utc(TimePoint time) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(
      std::chrono::floor<std::chrono::seconds>(time));
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

}  // namespace e2s::detail
