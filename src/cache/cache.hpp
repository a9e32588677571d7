// The on-disk cache of one package: where files live, their metadata, and the
// atomic commit that makes a downloaded file visible.
//
// Layout under the cache folder (cache/layout.hpp):
//   .e2s/files/<file path>      the file under its own name and sub-folders
//                               (or <sha256 of key> when same_names is false)
//   .e2s/meta/<sha256 of key>.json   its metadata, written after the data
//   .e2s/locks/<sha256 of key>.lock  the lock of its download (DownloadLock)
//   .e2s/tmp/<sha256 of key>-<owner>/   a download in progress: "data" and
//                               "journal.json" (which bytes of data are
//                               durably written, and from which version)
// A file is only ever at its final path complete and verified: it is written
// to a temp file and fsynced; its metadata, which records the file's
// identity, is made durable; then it is renamed into place. Neither can be
// there without the other: a crash in between leaves metadata whose file is
// not (yet) at the final path, which is a miss. A file at the final path
// whose identity is not the recorded one was changed by another program: it
// is not a hit, and it is never renamed over or removed (only a file of the
// very bytes e2s downloaded is adopted as it is). A temp folder whose owner
// died is taken over by the next download of the same file, which resumes
// from its journal.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <sys/stat.h>

#include "cache/folder.hpp"
#include "cache/lock.hpp"
#include "e2s/error.hpp"
#include "e2s/options.hpp"
#include "transfer/partial.hpp"

namespace e2s::detail {

// What identifies a file on disk. A file rewritten or replaced by another
// program (an fsspec cache writing into the same folder, a user's copy) has
// another identity, even when its size is the same. A rename keeps it, so
// the identity of a finished temp file is that of the committed file.
struct FileIdentity {
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;  // nanoseconds since 1970
  std::uint64_t inode = 0;
  std::uint64_t device = 0;
  bool operator==(const FileIdentity&) const = default;
};
FileIdentity identity_of(const struct stat& status);

// What the cache records about a file. Never credentials.
struct CacheEntry {
  std::string key;         // identity of the file: "<package root>/<file path>"
  std::string file_path;   // path inside the package
  std::uint64_t size = 0;
  std::string etag;        // "" when the server gave none
  std::string sha256;      // lowercase hex of the cached bytes
  std::string version;     // the store's version (HF commit, NGC version), "" when none
  std::chrono::system_clock::time_point fetched_at;
  // The committed file as e2s wrote it; nullopt in records of e2s versions
  // that kept none (the file's bytes are then checked once, and it recorded).
  std::optional<FileIdentity> data;
  // The file the commit of this entry replaced at the final path: e2s's own
  // earlier copy, while the commit is under way (see Cache::commit).
  std::optional<FileIdentity> replaces;
  // Recorded by an e2s that kept files at the top of the cache folder
  // (metadata format 2 and older): the file is read there until replaced.
  bool legacy_layout = false;
  // Another cache's name for the very same inode: the Hugging Face cache's
  // blob the file was taken from or shared into, or Earth2Studio's file it
  // was adopted from. Those names are the other cache's: e2s removes only
  // its own (unless told otherwise, `cache rm --include-hf-cache`).
  struct Linked {
    std::string cache;           // "hf" or "earth2studio"
    std::filesystem::path path;  // absolute
    bool operator==(const Linked&) const = default;
  };
  std::optional<Linked> linked;
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

// Thrown by Cache::commit when the final path holds a file that e2s did not
// write, or that changed since: Errc::io, naming the path and what to do.
class ForeignFile : public Error {
 public:
  using Error::Error;
};

class Cache {
 public:
  // No I/O. `clock` defaults to the system clock.
  Cache(std::filesystem::path storage, CacheOptions options, Clock clock = {});

  const std::filesystem::path& storage() const noexcept { return storage_; }

  // Where `file_path` (validated) is stored by a commit.
  std::filesystem::path final_path(std::string_view key, std::string_view file_path) const;
  // Where the file `entry` records is (final_path(), or the top of the
  // folder for records of the legacy layout).
  std::filesystem::path data_path(const CacheEntry& entry) const;

  // The cached file when it is present, recorded under `key`, still the
  // file e2s wrote (its identity) and not expired. A few syscalls; no
  // network. Never throws for a missing or damaged entry (that is a miss).
  std::optional<CachedFile> lookup(std::string_view key, std::string_view file_path) const;
  // The same, expired entries included (marked so): what offline mode serves.
  std::optional<CachedFile> lookup_any(std::string_view key, std::string_view file_path) const;

  // For a file at its final path that lookup_any() refused because it is no
  // longer the file e2s wrote (another identity: touched, copied back,
  // rewritten; or a record without identity): hashes it and, when its bytes
  // are still the recorded ones, records its identity (when the cache is
  // writable) and returns it as lookup_any() would. nullopt when there is no
  // such file or its bytes differ. Reads the whole file; no network.
  std::optional<CachedFile> reverify(std::string_view key, std::string_view file_path);

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

  // Makes `source`, another cache's complete file, `temp`'s data: a hard
  // link (the same inode: no byte copied, no byte more on disk) or, where
  // that is impossible (another filesystem), a copy. Returns whether it is a
  // link. Throws Error(io).
  bool fill_temp(const Temp& temp, const std::filesystem::path& source) const;

  // The digests of `temp`'s data (see hash_file_at); nullopt when it cannot
  // be read.
  std::optional<FileDigest> hash_temp(const Temp& temp, bool git_sha1, bool md5) const;

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

  // Moves the finished temp file to its final path and records `entry`,
  // which gets the file's identity: the metadata is durable before the file
  // is in place. A file already at the final path is replaced only when it is
  // e2s's own (the recorded identity); another program's file is never
  // replaced: when it holds the very bytes downloaded (same size and
  // sha256) it is adopted as it is, else ForeignFile is thrown. The caller
  // removes the temp folder after a commit. Throws Error(io).
  std::filesystem::path commit(const Temp& temp, CacheEntry& entry);

  // The "format" of metadata files this code writes; it reads this one,
  // format 2 (files at the top of the folder) and format 1 (no identity,
  // header values unescaped, files at the top).
  static constexpr int kMetadataFormat = 3;

  // The metadata recorded for `key`, if any (expired or not).
  std::optional<CacheEntry> read_entry(std::string_view key) const;

 private:
  std::filesystem::path meta_path(std::string_view key) const;
  void remove_legacy_copy(const CacheEntry& legacy) const;
  // lstat of a final path, not following symlinks; nullopt unless a regular file.
  std::optional<struct stat> stat_final(const std::filesystem::path& path) const;

  std::filesystem::path storage_;
  CacheOptions options_;
  Clock clock_;
};

}  // namespace e2s::detail
