// The on-disk cache of one package: where files live, their metadata, and the
// atomic commit that makes a downloaded file visible.
//
// Layout under the cache folder:
//   <file path>                 the file under its own name and sub-folders
//                               (or <sha256 of key> when same_names is false)
//   .e2s/meta/<sha256 of key>.json   its metadata, written after the data
//   .e2s/locks/<sha256 of key>.lock  the lock of its download (DownloadLock)
//   .e2s/tmp/<sha256 of key>-<owner>/   a download in progress: "data" and
//                               "journal.json" (which bytes of data are
//                               durably written, and from which version)
// A file is only ever at its final path complete and verified: it is written
// to a temp file, fsynced and renamed. A final file without metadata (a crash
// between the two renames) is treated as absent and fetched again. A temp
// folder whose owner died is taken over by the next download of the same
// file, which resumes from its journal.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "cache/lock.hpp"
#include "e2s/package.hpp"
#include "transfer/partial.hpp"

namespace e2s::detail {

// What the cache records about a file. Never credentials.
struct CacheEntry {
  std::string key;         // identity of the file: "<package root>/<file path>"
  std::string file_path;   // path inside the package
  std::uint64_t size = 0;
  std::string etag;        // "" when the server gave none
  std::string sha256;      // lowercase hex of the cached bytes
  std::string version;     // the store's version (HF commit, NGC version), "" when none
  std::chrono::system_clock::time_point fetched_at;
};

// A hit: where the file is and what its metadata records.
struct CachedFile {
  std::filesystem::path path;
  CacheEntry entry;
  bool expired = false;  // older than expiry_time (lookup() never returns these)
};

// The one reader of the metadata format: the entry a metadata file's text
// records, or nullopt (and why, in `reason`) when it is not metadata this
// cache wrote. Does not check the file's name or the entry's paths.
std::optional<CacheEntry> parse_metadata(std::string_view text, std::string* reason = nullptr);

using Clock = std::function<std::chrono::system_clock::time_point()>;

class Cache {
 public:
  // No I/O. `clock` defaults to the system clock.
  Cache(std::filesystem::path storage, CacheOptions options, Clock clock = {});

  const std::filesystem::path& storage() const noexcept { return storage_; }

  // Where `file_path` (validated) is stored. Throws Error(invalid_uri) when the
  // path would land in the cache's own ".e2s" folder.
  std::filesystem::path final_path(std::string_view key, std::string_view file_path) const;

  // The cached file when it is present, recorded under `key`, of the recorded
  // size and not expired. A few syscalls; no network. Never throws for a
  // missing or damaged entry (that is a miss).
  std::optional<CachedFile> lookup(std::string_view key, std::string_view file_path) const;
  // The same, expired entries included (marked so): what offline mode serves.
  std::optional<CachedFile> lookup_any(std::string_view key, std::string_view file_path) const;

  // Records `entry` anew (a file found unchanged on the server gets a new
  // fetch time). Throws Error(io).
  void record(const CacheEntry& entry);

  // When a valid entry stops being one (fetch time + expiry_time).
  std::chrono::system_clock::time_point expires(const CacheEntry& entry) const {
    return entry.fetched_at + options_.expiry_time;
  }

  // Takes the download lock of `key` (see DownloadLock). Throws Error(io)
  // naming the cache folder when it is not writable.
  DownloadLock lock(std::string_view key, const LockOptions& options) const;

  // Where a download of `key` writes: a temp folder of this process, taken
  // over from an earlier attempt whose process is gone (or which released
  // it) when there is one, with what that attempt recorded. Throws Error(io)
  // naming the cache folder when it is not writable.
  struct Temp {
    std::filesystem::path folder;
    std::filesystem::path data;  // the file being downloaded
    std::optional<Partial> partial;
  };
  Temp claim_temp(std::string_view key) const;

  // Records which bytes of `temp`'s data are durably written; an empty
  // `partial` removes the record. When the record cannot be written it is
  // removed, and Error(io) is thrown; when it cannot be removed either, the
  // caller must not change the data it describes (Error(io) again).
  void save_journal(const Temp& temp, std::string_view key, const Partial& partial) const;

  // After a failure worth resuming (network, timeout): leaves the temp folder
  // for the next attempt, in this process or another.
  void release_temp(const Temp& temp) const;

  // Removes the temp folder and what is left in it.
  void drop_temp(const Temp& temp) const;

  // Moves the finished temp file to its final path and records `entry`
  // (metadata after data, both atomic). Throws Error(io).
  std::filesystem::path commit(const std::filesystem::path& temp, const CacheEntry& entry);

  // The folder of the cache's own bookkeeping, relative to storage().
  static constexpr std::string_view kReservedFolder = ".e2s";
  // The "format" of metadata files this code writes and reads.
  static constexpr int kMetadataFormat = 1;

  // The metadata recorded for `key`, if any (expired or not).
  std::optional<CacheEntry> read_entry(std::string_view key) const;

 private:
  std::filesystem::path meta_path(std::string_view key) const;

  std::filesystem::path storage_;
  CacheOptions options_;
  Clock clock_;
};

}  // namespace e2s::detail
