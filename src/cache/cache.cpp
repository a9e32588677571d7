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
#include <spdlog/spdlog.h>
#include <sstream>

#include "cache/folder.hpp"
#include "e2s/error.hpp"
#include "transfer/hash.hpp"

namespace e2s::detail {
namespace {

namespace fs = std::filesystem;
constexpr std::string_view kReservedFolder = Cache::kReservedFolder;
constexpr int kJournalVersion = 1;
// A temp folder of another machine untouched for this long is abandoned.
// (On this machine a dead owner is recognised at once.)
constexpr auto kAbandonedAfter = std::chrono::hours(1);
constexpr std::string_view kReleased = "released";
// The files of a temp folder.
constexpr const char* kData = "data";
constexpr const char* kJournal = "journal.json";

Error io_error(const std::string& what, const fs::path& path, int error) {
  return Error(Errc::io,
               what + " " + path.string() + ": " + std::strerror(error) +
                   "; check that the cache folder is writable or choose another with --cache-dir "
                   "or EARTH2STUDIO_CACHE",
               path.string());
}

// Writes `text` to `name` in `folder` through a temp file and rename, so a
// reader sees the old content or the new, never a torn one. `path` names it
// in messages.
void write_atomically(const Folder& folder, const std::string& name, const fs::path& path,
                      const std::string& text) {
  const std::string temp = name + ".tmp." + unique_suffix();
  int fd = ::openat(folder.fd(), temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) throw io_error("cannot create", path.parent_path() / temp, errno);
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int error = errno;
      ::close(fd);
      ::unlinkat(folder.fd(), temp.c_str(), 0);
      throw io_error("cannot write", path, error);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int error = errno;
    ::unlinkat(folder.fd(), temp.c_str(), 0);
    throw io_error("cannot write", path, error);
  }
  if (::renameat(folder.fd(), temp.c_str(), folder.fd(), name.c_str()) != 0) {
    int error = errno;
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
          {"size", partial.size},       {"etag", partial.etag},
          {"served_etag", partial.served_etag}, {"written", written}};
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
    partial.etag = journal.value("etag", "");
    partial.served_etag = journal.value("served_etag", "");
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
  return storage_ / kReservedFolder / "meta" / (sha256_hex(key) + ".json");
}

fs::path Cache::final_path(std::string_view key, std::string_view file_path) const {
  if (!options_.same_names) return storage_ / sha256_hex(key);
  const std::string_view first = file_path.substr(0, file_path.find('/'));
  if (first == kReservedFolder) {
    throw Error(Errc::invalid_uri,
                "file path \"" + std::string(file_path) +
                    "\" collides with the cache's own folder .e2s; set same_names=false "
                    "to cache it under a hashed name",
                std::string(key));
  }
  return storage_ / fs::path(file_path);
}

std::optional<CacheEntry> Cache::read_entry(std::string_view key) const {
  std::optional<std::string> text;
  try {
    auto meta_folder = Folder::open(storage_, fs::path(kReservedFolder) / "meta", /*create=*/false);
    if (meta_folder) text = read_small_file(meta_folder->fd(), meta_path(key).filename().string());
  } catch (const Error& error) {
    spdlog::debug("cache metadata unreadable: {}", error.what());  // a miss
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
  try {
    if (meta.contains("format") && meta.at("format") != Cache::kMetadataFormat) {
      return refuse("unknown metadata format " + meta.at("format").dump());
    }
    entry.key = meta.at("key").get<std::string>();
    entry.file_path = meta.at("file_path").get<std::string>();
    entry.size = meta.at("size").get<std::uint64_t>();
    entry.etag = meta.value("etag", "");
    entry.sha256 = meta.value("sha256", "");
    entry.version = meta.value("version", "");
    fetched_at = meta.at("fetched_at").get<double>();
  } catch (const nlohmann::json::exception&) {
    return refuse("a field is missing or of the wrong type (key, file_path, size, fetched_at, etag, "
                  "sha256, version)");
  }
  // Seconds since 1970 up to the year 5138: anything else is not a time this
  // cache wrote.
  if (!(fetched_at >= 0 && fetched_at < 1e11)) return refuse("its fetched_at is not a time");
  entry.fetched_at = from_unix_seconds(fetched_at);
  return entry;
}

std::optional<CachedFile> Cache::lookup(std::string_view key, std::string_view file_path) const {
  auto hit = lookup_any(key, file_path);
  if (!hit || hit->expired) return std::nullopt;
  return hit;
}

std::optional<CachedFile> Cache::lookup_any(std::string_view key, std::string_view file_path) const {
  auto entry = read_entry(key);
  if (!entry) return std::nullopt;
  const bool expired = clock_() - entry->fetched_at > options_.expiry_time;
  fs::path path = final_path(key, file_path);
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
    spdlog::warn("{}", error.what());
    return std::nullopt;
  }
  if (!S_ISREG(status.st_mode) || static_cast<std::uint64_t>(status.st_size) != entry->size) {
    return std::nullopt;
  }
  return CachedFile{std::move(path), std::move(*entry), expired};
}

DownloadLock Cache::lock(std::string_view key, const LockOptions& options) const {
  if (!options.enabled) return DownloadLock{};
  const fs::path locks = fs::path(kReservedFolder) / "locks";
  Folder::open(storage_, locks, /*create=*/true);
  return DownloadLock::acquire(storage_ / locks / (sha256_hex(key) + ".lock"), options);
}

Cache::Temp Cache::claim_temp(std::string_view key) const {
  const fs::path tmp_relative = fs::path(kReservedFolder) / "tmp";
  const fs::path tmp_path = storage_ / tmp_relative;
  Folder tmp = *Folder::open(storage_, tmp_relative, /*create=*/true);
  const std::string prefix = sha256_hex(key) + "-";
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
        spdlog::debug("resuming {} from {} bytes left by an earlier attempt", key, temp.partial->bytes());
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

fs::path Cache::commit(const fs::path& temp, const CacheEntry& entry) {
  fs::path path = final_path(entry.key, entry.file_path);
  const fs::path relative = path.lexically_relative(storage_);
  Folder parent = *Folder::open(storage_, relative.parent_path(), /*create=*/true);
  Folder meta_folder = *Folder::open(storage_, fs::path(kReservedFolder) / "meta", /*create=*/true);
  const fs::path meta_file = meta_path(entry.key);
  const std::string meta_name = meta_file.filename().string();
  // Old metadata goes first: a crash after the rename must leave a file
  // without metadata (a miss), never new bytes described by old metadata.
  if (::unlinkat(meta_folder.fd(), meta_name.c_str(), 0) != 0 && errno != ENOENT) {
    throw io_error("cannot remove old metadata", meta_file, errno);
  }
  if (::renameat(AT_FDCWD, temp.c_str(), parent.fd(), relative.filename().c_str()) != 0) {
    throw io_error("cannot move download into", path, errno);
  }
  ::fsync(parent.fd());
  record(entry);
  return path;
}

void Cache::record(const CacheEntry& entry) {
  Folder meta_folder = *Folder::open(storage_, fs::path(kReservedFolder) / "meta", /*create=*/true);
  const fs::path meta_file = meta_path(entry.key);
  nlohmann::json meta = {
      {"format", Cache::kMetadataFormat},
      {"key", entry.key},
      {"file_path", entry.file_path},
      {"size", entry.size},
      {"etag", entry.etag},
      {"sha256", entry.sha256},
      {"version", entry.version},
      {"fetched_at", to_unix_seconds(entry.fetched_at)},
  };
  write_atomically(meta_folder, meta_file.filename().string(), meta_file, meta.dump(2) + "\n");
}

}  // namespace e2s::detail
