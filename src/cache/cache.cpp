#include "cache/cache.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "e2s/error.hpp"
#include "transfer/hash.hpp"

namespace e2s::detail {
namespace {

namespace fs = std::filesystem;
constexpr std::string_view kReservedFolder = ".e2s";
constexpr int kMetadataVersion = 1;

Error io_error(const std::string& what, const fs::path& path, int error) {
  return Error(Errc::io,
               what + " " + path.string() + ": " + std::strerror(error) +
                   "; check that the cache folder is writable or choose another with --cache-dir "
                   "or EARTH2STUDIO_CACHE",
               path.string());
}

// fsync of a folder makes a rename in it durable.
void sync_folder(const fs::path& folder) {
  int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // best effort: some filesystems refuse to open folders
  ::fsync(fd);
  ::close(fd);
}

std::string unique_suffix() {
  static std::atomic<unsigned> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::ostringstream out;
  out << ::getpid() << '.' << counter++ << '.' << std::hex << (rng() & 0xFFFFFFFFu);
  return out.str();
}

void create_folders(const fs::path& folder) {
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) throw io_error("cannot create folder", folder, ec.value());
}

// Writes `text` to `path` through a temp file and rename, so a reader sees the
// old content or the new, never a torn one.
void write_atomically(const fs::path& path, const std::string& text) {
  fs::path temp = path;
  temp += ".tmp." + unique_suffix();
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw io_error("cannot create", temp, errno);
  std::size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int error = errno;
      ::close(fd);
      ::unlink(temp.c_str());
      throw io_error("cannot write", temp, error);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int error = errno;
    ::unlink(temp.c_str());
    throw io_error("cannot write", temp, error);
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    int error = errno;
    ::unlink(temp.c_str());
    throw io_error("cannot rename into", path, error);
  }
  sync_folder(path.parent_path());
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
  std::ifstream in(meta_path(key), std::ios::binary);
  if (!in) return std::nullopt;
  nlohmann::json meta = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!meta.is_object() || meta.value("key", "") != key) return std::nullopt;
  try {
    CacheEntry entry;
    entry.key = meta.at("key").get<std::string>();
    entry.file_path = meta.at("file_path").get<std::string>();
    entry.size = meta.at("size").get<std::uint64_t>();
    entry.etag = meta.value("etag", "");
    entry.sha256 = meta.value("sha256", "");
    entry.version = meta.value("version", "");
    entry.fetched_at = from_unix_seconds(meta.at("fetched_at").get<double>());
    return entry;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;  // damaged metadata is a miss, fetched again
  }
}

std::optional<CachedFile> Cache::lookup(std::string_view key, std::string_view file_path) const {
  auto entry = read_entry(key);
  if (!entry) return std::nullopt;
  if (clock_() - entry->fetched_at > options_.expiry_time) return std::nullopt;
  fs::path path = final_path(key, file_path);
  std::error_code ec;
  auto status = fs::symlink_status(path, ec);
  // A symlink planted at the final path is not ours: never follow it.
  if (ec || !fs::is_regular_file(status)) return std::nullopt;
  if (fs::file_size(path, ec) != entry->size || ec) return std::nullopt;
  return CachedFile{std::move(path), std::move(*entry)};
}

fs::path Cache::temp_path(std::string_view key) const {
  fs::path folder = storage_ / kReservedFolder / "tmp";
  create_folders(folder);
  return folder / (sha256_hex(key).substr(0, 16) + "." + unique_suffix() + ".part");
}

fs::path Cache::commit(const fs::path& temp, const CacheEntry& entry) {
  fs::path path = final_path(entry.key, entry.file_path);
  create_folders(path.parent_path());
  // Old metadata goes first: a crash after the rename must leave a file
  // without metadata (a miss), never new bytes described by old metadata.
  fs::path meta_file = meta_path(entry.key);
  if (::unlink(meta_file.c_str()) != 0 && errno != ENOENT) {
    throw io_error("cannot remove old metadata", meta_file, errno);
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) throw io_error("cannot move download into", path, errno);
  sync_folder(path.parent_path());

  nlohmann::json meta = {
      {"format", kMetadataVersion},
      {"key", entry.key},
      {"file_path", entry.file_path},
      {"size", entry.size},
      {"etag", entry.etag},
      {"sha256", entry.sha256},
      {"version", entry.version},
      {"fetched_at", to_unix_seconds(entry.fetched_at)},
  };
  create_folders(meta_file.parent_path());
  write_atomically(meta_file, meta.dump(2) + "\n");
  return path;
}

}  // namespace e2s::detail
