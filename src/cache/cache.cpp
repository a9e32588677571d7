#include "cache/cache.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "cache/folder.hpp"
#include "cache/layout.hpp"
#include "e2s/error.hpp"
#include "util/text.hpp"
#include "util/hash.hpp"
#include "util/posix.hpp"
#include "log.hpp"

namespace e2s::detail {
namespace {

namespace fs = std::filesystem;
// 2: ETags escaped (escape_record); journals of format 1 are not resumed.
constexpr int kJournalVersion = 2;
// A temp folder of another machine untouched for this long is abandoned.
// (On this machine a dead owner is recognised at once.)
constexpr auto kAbandonedAfter = std::chrono::hours(1);
constexpr std::string_view kReleased = "released";
// The files of a temp folder.
constexpr const char* kData = "data";
constexpr const char* kJournal = "journal.json";

Error io_error(const std::string& what, const fs::path& path, int error) {
  const bool full = error == ENOSPC || error == EDQUOT || error == EFBIG;
  return Error(Errc::io,
               what + " " + path.string() + ": " + std::strerror(error) +
                   (full ? "; free disk space or choose another cache folder with --cache-dir or "
                           "EARTH2STUDIO_CACHE"
                         : "; check that the cache folder is writable or choose another with --cache-dir "
                           "or EARTH2STUDIO_CACHE"),
               path.string());
}

// Writes `text` to `name` in `folder` through a temp file and rename, so a
// reader sees the old content or the new, never a torn one. `path` names it
// in messages.
void write_atomically(const Folder& folder, const std::string& name, const fs::path& path,
                      const std::string& text) {
  const std::string temp = name + ".tmp." + unique_suffix();
  UniqueFd fd(::openat(folder.fd(), temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!fd) throw io_error("cannot create", path.parent_path() / temp, errno);
  int error = 0;
  if (!write_all(fd.get(), text.data(), text.size()) || ::fsync(fd.get()) != 0) error = errno;
  if (const int closed = fd.close(); error == 0) error = closed;
  if (error != 0) {
    ::unlinkat(folder.fd(), temp.c_str(), 0);
    throw io_error("cannot write", path, error);
  }
  if (::renameat(folder.fd(), temp.c_str(), folder.fd(), name.c_str()) != 0) {
    error = errno;
    ::unlinkat(folder.fd(), temp.c_str(), 0);
    throw io_error("cannot rename into", path, error);
  }
  ::fsync(folder.fd());
}

// Which process owns a temp folder: "<machine>.<pid>.<start time>.<n>".
// The machine is a hash of the host name, the boot and the pid namespace, so
// that a pid is only ever compared with pids it can be compared with.
struct Owner {
  std::string machine;
  long pid = 0;
  std::string started;  // the process's start time in clock ticks since boot
};

std::string process_start(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return "";
  std::istringstream fields(stat.substr(close + 1));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i) {
    if (i == 22) return field;  // starttime, field 22 of proc(5)
  }
  return "";
}

std::string read_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

const std::string& this_machine() {
  static const std::string machine = [] {
    char host[256] = {};
    ::gethostname(host, sizeof(host) - 1);
    std::error_code ec;
    const std::string pid_namespace = fs::read_symlink("/proc/self/ns/pid", ec).string();
    return sha256_hex(std::string(host) + "\n" + read_line("/proc/sys/kernel/random/boot_id") + "\n" +
                      pid_namespace)
        .substr(0, 12);
  }();
  return machine;
}

std::string new_owner() {
  static std::atomic<unsigned> counter{0};
  static const std::string started = process_start(::getpid());
  return this_machine() + "." + std::to_string(::getpid()) + "." + started + "." +
         std::to_string(counter++);
}

std::optional<Owner> parse_owner(std::string_view text) {
  Owner owner;
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in{std::string(text)};
  while (std::getline(in, part, '.')) parts.push_back(part);
  if (parts.size() != 4) return std::nullopt;
  owner.machine = parts[0];
  try {
    owner.pid = std::stol(parts[1]);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  owner.started = parts[2];
  return owner;
}

// Whether a temp folder (named "<key hash>-<owner>") may be taken over: its
// owner released it, or died.
bool abandoned(std::string_view owner_text, const Folder& tmp, const std::string& name) {
  if (owner_text.starts_with(kReleased)) return true;
  auto owner = parse_owner(owner_text);
  if (!owner) return false;  // not ours to judge
  if (owner->machine == this_machine()) {
    if (owner->pid == ::getpid()) return false;  // a download of this process
    return process_start(owner->pid) != owner->started;  // gone, or the pid reused
  }
  struct stat status {};
  if (::fstatat(tmp.fd(), name.c_str(), &status, AT_SYMLINK_NOFOLLOW) != 0) return false;
  const auto modified = std::chrono::system_clock::from_time_t(status.st_mtim.tv_sec);
  return std::chrono::system_clock::now() - modified > kAbandonedAfter;
}

// Removes the journal of a temp folder, durably. Throws Error(io) when it
// stays: the caller must then not change the data it describes.
void forget_journal(const Folder& folder, const fs::path& path) {
  if (::unlinkat(folder.fd(), kJournal, 0) != 0 && errno != ENOENT) {
    throw io_error("cannot remove", path / kJournal, errno);
  }
  ::fsync(folder.fd());
}

nlohmann::json journal_json(std::string_view key, const Partial& partial) {
  nlohmann::json written = nlohmann::json::array();
  for (const auto& range : partial.written) written.push_back({range.begin, range.end});
  return {{"format", kJournalVersion}, {"key", key},
          {"size", partial.size},       {"etag", escape_record(partial.etag)},
          {"served_etag", escape_record(partial.served_etag)}, {"written", written}};
}

// The journal of a temp folder, when it describes `key` consistently and
// the data file (a regular file) holds what it claims.
std::optional<Partial> read_journal(const Folder& folder, std::string_view key) {
  const auto text = read_small_file(folder.fd(), kJournal);
  if (!text) return std::nullopt;
  nlohmann::json journal = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!journal.is_object() || journal.value("key", "") != key) return std::nullopt;
  try {
    Partial partial;
    partial.size = journal.at("size").get<std::uint64_t>();
    if (journal.value("format", 0) != kJournalVersion) return std::nullopt;
    auto etag = unescape_record(journal.value("etag", ""));
    auto served_etag = unescape_record(journal.value("served_etag", ""));
    if (!etag || !served_etag) return std::nullopt;
    partial.etag = std::move(*etag);
    partial.served_etag = std::move(*served_etag);
    std::uint64_t previous_end = 0;
    for (const auto& range : journal.at("written")) {
      ByteRange r{range.at(0).get<std::uint64_t>(), range.at(1).get<std::uint64_t>()};
      if (r.begin < previous_end || r.begin >= r.end || r.end > partial.size) return std::nullopt;
      previous_end = r.end;
      partial.written.push_back(r);
    }
    struct stat data {};
    if (::fstatat(folder.fd(), kData, &data, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(data.st_mode) ||
        static_cast<std::uint64_t>(data.st_size) < previous_end) {
      return std::nullopt;
    }
    return partial;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

nlohmann::json identity_json(const FileIdentity& identity) {
  return {{"size", identity.size}, {"mtime_ns", identity.mtime_ns}, {"inode", identity.inode},
          {"device", identity.device}};
}

FileIdentity identity_from_json(const nlohmann::json& json) {
  return {json.at("size").get<std::uint64_t>(), json.at("mtime_ns").get<std::int64_t>(),
          json.at("inode").get<std::uint64_t>(), json.at("device").get<std::uint64_t>()};
}

double to_unix_seconds(std::chrono::system_clock::time_point time) {
  return std::chrono::duration<double>(time.time_since_epoch()).count();
}

std::chrono::system_clock::time_point from_unix_seconds(double seconds) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::duration<double>(seconds)));
}

}  // namespace

Cache::Cache(fs::path storage, CacheOptions options, Clock clock)
    : storage_(std::move(storage)), options_(std::move(options)), clock_(std::move(clock)) {
  if (!clock_) clock_ = [] { return std::chrono::system_clock::now(); };
}

fs::path Cache::meta_path(std::string_view key) const {
  return storage_ / layout::reserved(layout::kMeta) / (layout::key_name(key) + ".json");
}

fs::path Cache::final_path(std::string_view key, std::string_view file_path) const {
  return storage_ / layout::data_path(key, file_path, options_.same_names);
}

fs::path Cache::data_path(const CacheEntry& entry) const {
  if (!entry.legacy_layout) return final_path(entry.key, entry.file_path);
  return storage_ / layout::legacy_data_path(entry.key, entry.file_path, options_.same_names);
}

std::optional<CacheEntry> Cache::read_entry(std::string_view key) const {
  std::optional<std::string> text;
  try {
    auto meta_folder = Folder::open(storage_, layout::reserved(layout::kMeta), /*create=*/false);
    if (meta_folder) text = read_small_file(meta_folder->fd(), meta_path(key).filename().string());
  } catch (const Error& error) {
    log::debug("cache metadata unreadable: {}", error.what());  // a miss
  }
  if (!text) return std::nullopt;
  auto entry = parse_metadata(*text);
  if (!entry || entry->key != key) return std::nullopt;  // damaged or foreign metadata is a miss
  return entry;
}

std::optional<CacheEntry> parse_metadata(std::string_view text, std::string* reason) {
  auto refuse = [reason](const std::string& why) {
    if (reason) *reason = why;
    return std::nullopt;
  };
  const nlohmann::json meta = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (meta.is_discarded() || !meta.is_object()) return refuse("not a JSON object");
  CacheEntry entry;
  double fetched_at = 0;
  int format = 1;
  try {
    if (meta.contains("format")) format = meta.at("format").get<int>();
    if (format < 1 || format > Cache::kMetadataFormat) {
      return refuse("unknown metadata format " + meta.at("format").dump());
    }
    entry.key = meta.at("key").get<std::string>();
    entry.file_path = meta.at("file_path").get<std::string>();
    entry.size = meta.at("size").get<std::uint64_t>();
    entry.etag = meta.value("etag", "");
    entry.sha256 = meta.value("sha256", "");
    entry.version = meta.value("version", "");
    fetched_at = meta.at("fetched_at").get<double>();
    if (format >= 2) {
      // Header values are stored escaped (an ETag may hold any byte).
      auto etag = unescape_record(entry.etag);
      auto version = unescape_record(entry.version);
      if (!etag || !version) return refuse("its etag or version is not escaped as this cache escapes them");
      entry.etag = std::move(*etag);
      entry.version = std::move(*version);
      if (meta.contains("data")) entry.data = identity_from_json(meta.at("data"));
      if (meta.contains("replaces")) entry.replaces = identity_from_json(meta.at("replaces"));
    }
    entry.legacy_layout = format < 3;
    if (format >= 3 && meta.contains("linked")) {
      const auto& linked = meta.at("linked");
      entry.linked = CacheEntry::Linked{linked.at("cache").get<std::string>(),
                                        fs::path(linked.at("path").get<std::string>())};
      if ((entry.linked->cache != "hf" && entry.linked->cache != "earth2studio" && entry.linked->cache != "mirror") ||
          !entry.linked->path.is_absolute()) {
        return refuse("its linked file is not an absolute path of the hf or earth2studio cache or a mirror");
      }
    }
  } catch (const nlohmann::json::exception&) {
    return refuse("a field is missing or of the wrong type (key, file_path, size, fetched_at, etag, "
                  "sha256, version, data, replaces, linked)");
  }
  // Seconds since 1970 up to the year 5138: anything else is not a time this
  // cache wrote.
  if (!(fetched_at >= 0 && fetched_at < 1e11)) return refuse("its fetched_at is not a time");
  entry.fetched_at = from_unix_seconds(fetched_at);
  return entry;
}

FileIdentity identity_of(const struct stat& status) {
  return {static_cast<std::uint64_t>(status.st_size),
          static_cast<std::int64_t>(status.st_mtim.tv_sec) * 1000000000 + status.st_mtim.tv_nsec,
          static_cast<std::uint64_t>(status.st_ino), static_cast<std::uint64_t>(status.st_dev)};
}

std::optional<CachedFile> Cache::lookup(std::string_view key, std::string_view file_path) const {
  auto hit = lookup_any(key, file_path);
  if (!hit || hit->expired) return std::nullopt;
  return hit;
}

std::optional<CachedFile> Cache::lookup_any(std::string_view key, std::string_view file_path) const {
  auto entry = read_entry(key);
  if (!entry || entry->file_path != file_path) return std::nullopt;
  fs::path path = data_path(*entry);
  const auto status = stat_final(path);
  // Another identity (or none recorded): not the file e2s wrote; see reverify().
  if (!status || !entry->data || identity_of(*status) != *entry->data) return std::nullopt;
  const bool expired = clock_() - entry->fetched_at > options_.expiry_time;
  return CachedFile{std::move(path), std::move(*entry), expired};
}

std::optional<struct stat> Cache::stat_final(const fs::path& path) const {
  const fs::path relative = path.lexically_relative(storage_);
  struct stat status {};
  try {
    // Neither a symlink planted at the final path nor one on the way to it
    // is followed: that would read outside the cache.
    auto parent = Folder::open(storage_, relative.parent_path(), /*create=*/false);
    if (!parent || ::fstatat(parent->fd(), relative.filename().c_str(), &status, AT_SYMLINK_NOFOLLOW) != 0) {
      return std::nullopt;
    }
  } catch (const Error& error) {
    log::warn("{}", error.what());
    return std::nullopt;
  }
  if (!S_ISREG(status.st_mode)) return std::nullopt;
  return status;
}

std::optional<CachedFile> Cache::reverify(std::string_view key, std::string_view file_path) {
  auto entry = read_entry(key);
  if (!entry || entry->file_path != file_path) return std::nullopt;
  fs::path path = data_path(*entry);
  const auto status = stat_final(path);
  if (!status) return std::nullopt;
  const FileIdentity now = identity_of(*status);
  if (entry->data && *entry->data == now) return lookup_any(key, file_path);
  const fs::path relative = path.lexically_relative(storage_);
  std::optional<FileDigest> digest;
  try {
    if (auto parent = Folder::open(storage_, relative.parent_path(), /*create=*/false)) {
      digest = hash_file_at(parent->fd(), relative.filename().string());
    }
  } catch (const Error& error) {
    log::debug("{}", error.what());
  }
  const char* why = entry->data ? "changed since e2s wrote it" : "recorded without its identity by an older e2s";
  if (!digest || digest->size != entry->size || entry->sha256.empty() || digest->sha256 != entry->sha256) {
    log::info("{}: {} was {} and its bytes are not the ones e2s downloaded; fetching it again", key,
                 path.string(), why);
    return std::nullopt;
  }
  log::debug("{}: {} was {}; its bytes are intact: using it", key, path.string(), why);
  // The identity of what was hashed: the file may have changed meanwhile,
  // and then the next lookup hashes it again.
  entry->data = now;
  entry->replaces.reset();
  try {
    record(*entry);
  } catch (const Error& error) {
    log::debug("cannot record the identity of {}: {}", path.string(), error.what());  // a read-only cache
  }
  const bool expired = clock_() - entry->fetched_at > options_.expiry_time;
  return CachedFile{std::move(path), std::move(*entry), expired};
}

DownloadLock Cache::lock(std::string_view key, const LockOptions& options) const {
  if (!options.enabled) return DownloadLock{};
  const fs::path locks = layout::reserved(layout::kLocks);
  Folder::open(storage_, locks, /*create=*/true);
  return DownloadLock::acquire(storage_ / locks / (layout::key_name(key) + ".lock"), options);
}

Cache::Temp Cache::claim_temp(std::string_view key) const {
  const fs::path tmp_relative = layout::reserved(layout::kTmp);
  const fs::path tmp_path = storage_ / tmp_relative;
  Folder tmp = *Folder::open(storage_, tmp_relative, /*create=*/true);
  const std::string prefix = layout::key_name(key) + "-";
  const std::string name = prefix + new_owner();
  Temp temp{tmp_path / name, tmp_path / name / kData, std::nullopt};

  // Earlier attempts at this file whose owners are gone: the first one with
  // a usable journal is taken over by rename (atomic, so of two processes
  // only one gets it); the rest are removed.
  std::vector<std::string> leftovers;
  if (DIR* listing = ::fdopendir(::dup(tmp.fd()))) {
    while (const dirent* item = ::readdir(listing)) {
      std::string_view entry = item->d_name;
      if (entry.starts_with(prefix) && abandoned(entry.substr(prefix.size()), tmp, std::string(entry))) {
        leftovers.emplace_back(entry);
      }
    }
    ::closedir(listing);
  }
  bool claimed = false;
  for (const std::string& leftover : leftovers) {
    if (!claimed) {
      if (::renameat(tmp.fd(), leftover.c_str(), tmp.fd(), name.c_str()) != 0) continue;  // taken
      claimed = true;
      auto folder = Folder::open(storage_, temp.folder.lexically_relative(storage_), /*create=*/false);
      if (folder) temp.partial = read_journal(*folder, key);
      if (temp.partial) {
        log::debug("resuming {} from {} bytes left by an earlier attempt", key, temp.partial->bytes());
      } else if (folder) {
        // What no journal describes is of no use, and a journal that does
        // not match its data must not outlive this moment: the download
        // about to start preallocates the data file, and the stale journal
        // would then seem to describe it. Both go before anything is written.
        forget_journal(*folder, temp.folder);
        ::unlinkat(folder->fd(), kData, 0);
      }
      continue;
    }
    // Claimed first, so that no other process is still working in it.
    const std::string doomed = leftover + ".gone." + unique_suffix();
    if (::renameat(tmp.fd(), leftover.c_str(), tmp.fd(), doomed.c_str()) == 0) {
      std::error_code ignored;
      fs::remove_all(tmp_path / doomed, ignored);
    }
  }
  if (!claimed && ::mkdirat(tmp.fd(), name.c_str(), 0755) != 0) {
    throw io_error("cannot create", temp.folder, errno);
  }
  return temp;
}

void Cache::save_journal(const Temp& temp, std::string_view key, const Partial& partial) const {
  auto folder = Folder::open(storage_, temp.folder.lexically_relative(storage_), /*create=*/false);
  if (!folder) throw io_error("cannot record download progress in", temp.folder, ENOENT);
  if (partial.written.empty()) return forget_journal(*folder, temp.folder);
  try {
    write_atomically(*folder, kJournal, temp.folder / kJournal, journal_json(key, partial).dump() + "\n");
  } catch (const Error&) {
    // The old journal may describe bytes about to be replaced: no journal
    // at all is the safe state (it costs resuming).
    forget_journal(*folder, temp.folder);
    throw;
  }
}

bool Cache::fill_temp(const Temp& temp, const fs::path& source) const {
  Folder folder = *Folder::open(storage_, temp.folder.lexically_relative(storage_), /*create=*/false);
  // What an earlier attempt left is of no use: the file is whole elsewhere.
  forget_journal(folder, temp.folder);
  if (::unlinkat(folder.fd(), kData, 0) != 0 && errno != ENOENT) throw io_error("cannot remove", temp.data, errno);
  if (::linkat(AT_FDCWD, source.c_str(), folder.fd(), kData, 0) == 0) return true;
  const int link_error = errno;
  UniqueFd in(::open(source.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!in) throw io_error("cannot read", source, errno);
  UniqueFd out(::openat(folder.fd(), kData, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!out) throw io_error("cannot create", temp.data, errno);
  log::info("copying {} into the cache: it cannot be hard-linked ({})", source.string(), std::strerror(link_error));
  bool failed_read = false;
  if (const int error = copy_durably(in.get(), out.get(), failed_read); error != 0) {
    throw failed_read ? io_error("cannot read", source, error) : io_error("cannot write", temp.data, error);
  }
  return false;
}

std::optional<FileDigest> Cache::hash_temp(const Temp& temp, bool git_sha1, bool md5) const {
  auto folder = Folder::open(storage_, temp.folder.lexically_relative(storage_), /*create=*/false);
  if (!folder) return std::nullopt;
  return hash_file_at(folder->fd(), kData, git_sha1, md5);
}

void Cache::release_temp(const Temp& temp) const {
  std::error_code ec;
  if (!fs::exists(temp.folder / kJournal, ec)) return drop_temp(temp);  // nothing to resume
  fs::path released = temp.folder;
  const std::string name = temp.folder.filename().string();
  released.replace_filename(name.substr(0, name.find('-') + 1) + std::string(kReleased) + "." +
                            unique_suffix());
  if (::rename(temp.folder.c_str(), released.c_str()) != 0) drop_temp(temp);
}

void Cache::drop_temp(const Temp& temp) const {
  std::error_code ignored;
  fs::remove_all(temp.folder, ignored);
}

namespace {

// The file a commit is about to replace at the final path is e2s's own: the
// one its record names, or the one a commit cut short was replacing. A
// record of an older e2s names no identity: then the bytes must be the ones
// it recorded. A hard link of another cache's file is e2s's name even when
// that program rewrote the file in place (the same inode, a new identity):
// replacing the name leaves the other program's file as it is.
bool written_by_e2s(const std::optional<CacheEntry>& previous, const FileIdentity& there, int folder_fd,
                    const std::string& name) {
  if (!previous) return false;
  if (previous->linked && previous->data && previous->data->inode == there.inode &&
      previous->data->device == there.device) {
    return true;
  }
  if (previous->data) return *previous->data == there || (previous->replaces && *previous->replaces == there);
  if (there.size != previous->size || previous->sha256.empty()) return false;
  const auto digest = hash_file_at(folder_fd, name);
  return digest && digest->sha256 == previous->sha256;
}

// Whether the file `name` in `folder_fd` holds exactly the bytes `entry`
// records.
bool holds_bytes(int folder_fd, const char* name, const CacheEntry& entry) {
  const auto digest = hash_file_at(folder_fd, name);
  return digest && digest->size == entry.size && digest->sha256 == entry.sha256;
}

ForeignFile foreign_file(const fs::path& path, const std::string& key, const std::string& why) {
  return ForeignFile(Errc::io,
                     path.string() + " " + why + ", and e2s does not overwrite files it did not write; move it "
                     "away or delete it, then fetch " + key + " again (its download is kept and resumes)",
                     key);
}

// renameat2 with `flags`, or plain renameat where the filesystem has no
// renameat2 (then without its guarantee: the check before it stands alone).
int rename_with(int from_folder, const char* from, int to_folder, const char* to, unsigned flags) {
  if (::renameat2(from_folder, from, to_folder, to, flags) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP) return -1;
  return ::renameat(from_folder, from, to_folder, to);
}

}  // namespace

// Longer than most: the checks and the rename that follows them must stay
// in one sequence, as each step's safety rests on the one before.
fs::path Cache::commit(const Temp& temp, CacheEntry& entry) {
  fs::path path = final_path(entry.key, entry.file_path);
  const fs::path relative = path.lexically_relative(storage_);
  const std::string name = relative.filename().string();
  Folder parent = *Folder::open(storage_, relative.parent_path(), /*create=*/true);
  Folder temp_folder = *Folder::open(storage_, temp.folder.lexically_relative(storage_), /*create=*/false);
  struct stat downloaded {};
  if (::fstatat(temp_folder.fd(), kData, &downloaded, AT_SYMLINK_NOFOLLOW) != 0) {
    throw io_error("cannot read", temp.data, errno);
  }
  entry.data = identity_of(downloaded);
  const std::optional<CacheEntry> previous = read_entry(entry.key);
  // Puts the record back as it was when the data could not follow it.
  auto restore = [&] {
    try {
      if (previous) {
        record(*previous);
      } else if (auto meta = Folder::open(storage_, layout::reserved(layout::kMeta), false)) {
        ::unlinkat(meta->fd(), meta_path(entry.key).filename().c_str(), 0);
      }
    } catch (const Error& error) {
      log::debug("{}", error.what());  // the record then names a file that is not there: a miss
    }
  };

  for (int look = 0;; ++look) {
    std::optional<FileIdentity> replaced;
    struct stat status {};
    if (::fstatat(parent.fd(), name.c_str(), &status, AT_SYMLINK_NOFOLLOW) == 0) {
      if (!S_ISREG(status.st_mode)) throw foreign_file(path, entry.key, "is not a regular file");
      const FileIdentity there = identity_of(status);
      if (!written_by_e2s(previous, there, parent.fd(), name)) {
        // Another program's file. When it holds the very bytes downloaded,
        // it is adopted as it is: nothing is replaced, nothing lost.
        if (holds_bytes(parent.fd(), name.c_str(), entry)) {
          log::debug("{}: {} already holds the downloaded bytes (written by another program); "
                        "adopting it", entry.key, path.string());
          entry.data = there;
          entry.replaces.reset();
          record(entry);
          return path;
        }
        throw foreign_file(path, entry.key, previous ? "was changed by another program since e2s cached it"
                                                     : "was not written by e2s");
      }
      replaced = there;
    } else if (errno != ENOENT) {
      throw io_error("cannot read", path, errno);
    }

    // The journal goes first: after an exchange the old file sits where the
    // download was, and no journal may then describe it.
    forget_journal(temp_folder, temp.folder);
    entry.replaces = replaced;
    record(entry);  // durable before the data is in place
    const unsigned flags = replaced ? RENAME_EXCHANGE : RENAME_NOREPLACE;
    if (rename_with(temp_folder.fd(), kData, parent.fd(), name.c_str(), flags) != 0) {
      const int error = errno;
      restore();
      if (error == EEXIST && look == 0) continue;  // a file appeared meanwhile: judge it
      throw io_error("cannot move download into", path, error);
    }
    if (replaced) {
      // The file swapped out must be the one judged e2s's; if another
      // program replaced it in the meantime, it goes back where it was,
      // unless it holds the very bytes now in place (processes that share a
      // cache without locks all commit the same file): then nothing is lost.
      struct stat displaced {};
      if (::fstatat(temp_folder.fd(), kData, &displaced, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISREG(displaced.st_mode) && identity_of(displaced) != *replaced &&
          !holds_bytes(temp_folder.fd(), kData, entry)) {
        if (rename_with(temp_folder.fd(), kData, parent.fd(), name.c_str(), RENAME_EXCHANGE) == 0) {
          restore();
          if (look == 0) continue;
          throw foreign_file(path, entry.key, "keeps being changed by another program");
        }
      }
      ::unlinkat(temp_folder.fd(), kData, 0);
    }
    ::fsync(parent.fd());
    if (previous && previous->legacy_layout) remove_legacy_copy(*previous);
    return path;
  }
}

// The copy a record of the legacy layout names, once a commit replaced it:
// removed when it is still the very file e2s wrote, else left alone.
void Cache::remove_legacy_copy(const CacheEntry& legacy) const {
  const fs::path path = data_path(legacy);
  const auto status = stat_final(path);
  if (!status || !legacy.data || identity_of(*status) != *legacy.data) return;
  const fs::path relative = path.lexically_relative(storage_);
  try {
    if (auto parent = Folder::open(storage_, relative.parent_path(), /*create=*/false)) {
      ::unlinkat(parent->fd(), relative.filename().c_str(), 0);
    }
  } catch (const Error& error) {
    log::debug("cannot remove the old copy {}: {}", path.string(), error.what());
  }
}

void Cache::record(const CacheEntry& entry) {
  Folder meta_folder = *Folder::open(storage_, layout::reserved(layout::kMeta), /*create=*/true);
  const fs::path meta_file = meta_path(entry.key);
  nlohmann::json meta = {
      // A record of the legacy layout keeps its format: the format says where the file is.
      {"format", entry.legacy_layout ? 2 : Cache::kMetadataFormat},
      {"key", entry.key},
      {"file_path", entry.file_path},
      {"size", entry.size},
      {"etag", escape_record(entry.etag)},
      {"sha256", entry.sha256},
      {"version", escape_record(entry.version)},
      {"fetched_at", to_unix_seconds(entry.fetched_at)},
  };
  if (entry.data) meta["data"] = identity_json(*entry.data);
  if (entry.replaces) meta["replaces"] = identity_json(*entry.replaces);
  if (entry.linked && !entry.legacy_layout) {
    meta["linked"] = {{"cache", entry.linked->cache}, {"path", entry.linked->path.string()}};
  }
  write_atomically(meta_folder, meta_file.filename().string(), meta_file, meta.dump(2) + "\n");
}

}  // namespace e2s::detail
