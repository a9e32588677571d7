// What a cache root holds, for `e2s cache`: the package folders below it,
// their cached files and extracted archives, and the operations that check
// and remove them.
//
// A package folder is any folder below the cache root (or the root itself)
// that has a ".e2s/meta" folder (see cache.hpp for its layout). Scanning and
// verifying only read: they work on a read-only cache. Nothing here follows
// a symlink below the cache root, and nothing touches ".e2s/tmp" (downloads
// in progress) or archives being extracted.
//
// Removal keeps the cache's rule that a file without metadata is a miss:
// metadata goes first, then the data, so a crash in between costs a
// download, never a wrong file. A process resolving a file while it is
// removed fetches it again. A data file that is no longer the one e2s wrote
// (another identity: another program changed or replaced it) is never
// removed; it is reported. Removal throws Error(io) naming the folder when
// it cannot delete (a read-only cache).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cache/cache.hpp"

namespace e2s::detail {

using TimePoint = std::chrono::system_clock::time_point;

// A folder Package::resolve_extracted filled from an archive of the package:
// <package folder>/.e2s/extracted/<archive file name>-<16 hex>/.
struct ExtractedFolder {
  std::filesystem::path path;
  std::string archive_name;  // the part of the folder name before "-<16 hex>"
  std::uint64_t bytes = 0;   // sum of the sizes of the regular files inside
  TimePoint last_used;       // the folder's modification or access time, the later
};

enum class DataState {
  present,  // the regular file e2s wrote (its recorded identity; for records
            // without one, of the recorded size)
  changed,  // a regular file e2s did not write as it is: another identity
            // (rewritten, replaced, truncated by another program)
  missing,  // no regular file (a miss for the cache)
};

// A cached file: its metadata record and where its bytes are.
struct StoredFile {
  CacheEntry entry;
  std::string root;                 // the package root: the key minus "/" + file_path
  std::filesystem::path meta;       // the metadata file
  // The data file: <folder>/<file_path> or <folder>/<sha256 of key>, the one
  // e2s wrote; when neither is, the one that exists.
  std::filesystem::path data;
  DataState state = DataState::missing;
  std::uint64_t bytes = 0;          // size of the data file on disk (0 when missing)
  TimePoint last_used;              // fetch time or the data's access time, the later
  std::vector<ExtractedFolder> extracted;  // folders extracted from this file
};

// The files one package root keeps in one folder.
struct CachedPackage {
  std::string root;  // "" for extracted folders whose package is not known
  std::filesystem::path folder;
  std::vector<StoredFile> files;            // sorted by file path
  std::vector<ExtractedFolder> extracted;   // extracted folders matching none of `files`

  // Files present with their recorded size.
  std::size_t present_files() const;
  // Bytes of the present files and of every extracted folder.
  std::uint64_t bytes() const;
  // The latest last_used of its present files and extracted folders (the
  // epoch when there is none).
  TimePoint last_used() const;
};

// A metadata file that cannot be used: unreadable, not JSON, fields missing
// or inconsistent (a key that does not end with its file path, a file path
// that leaves the package). The cache treats it as a miss.
struct DamagedEntry {
  std::filesystem::path folder;  // the package folder
  std::filesystem::path meta;
  std::string reason;
};

struct Inventory {
  std::filesystem::path cache_root;
  std::vector<CachedPackage> packages;  // sorted by root, then folder
  std::vector<DamagedEntry> damaged;    // sorted by path
};

// Walks `cache_root` (which may itself be a symlink; nothing below it is
// followed) and reads every package folder's metadata. A missing root is an
// empty inventory. Folders that cannot be read are skipped. Throws
// Error(io) only when `cache_root` exists but cannot be read.
Inventory scan_inventory(const std::filesystem::path& cache_root);

// The result of re-reading a file against its metadata.
struct Verification {
  enum class Verdict {
    ok,        // the recorded bytes
    corrupt,   // the file e2s wrote, and its bytes differ (the disk lost them)
    changed,   // another program's bytes: never removed, only reported
    missing,
  } verdict = Verdict::ok;
  std::string detail;  // what differs, for a message; for an ok file whose
                       // identity changed, that it was re-verified
};

// The operations below take the `cache_root` the inventory was scanned
// from (Inventory::cache_root) and reach every path through it, refusing
// symlinks on the way.

// Hashes `file`'s data (SHA-256) and compares size and digest with its
// metadata. Reads without following symlinks, never waits on a FIFO and,
// where the kernel allows, does not change the access time (verifying is
// not using). A changed file whose bytes are still the recorded ones is ok:
// its new identity is recorded (when the cache is writable). `progress`
// receives the bytes of this file read so far, once per MiB. Never throws
// for a damaged or missing file; throws Error(io) when a file is there but
// cannot be read.
Verification verify_file(const std::filesystem::path& cache_root, const StoredFile& file,
                         const std::function<void(std::uint64_t)>& progress = {});

enum class Removal {
  removed,        // metadata, data and extracted folders
  fetched_again,  // nothing: the file was fetched again since the scan (in use)
  changed,        // not the data: another program changed it since e2s wrote it
};

struct RemoveOptions {
  // Remove nothing when the metadata changed since the scan.
  bool keep_if_fetched_again = true;
  // For a changed data file: remove e2s's metadata of it (e2s no longer
  // vouches for it) and its extracted folders, leaving the file. Else
  // nothing is removed.
  bool forget_changed = false;
  // For a file hard-linked with the Hugging Face cache's blob: remove the
  // blob (and its snapshot links) too, when it is still that very file.
  // Else only e2s's name of it goes.
  bool include_hf_cache = false;
};

// Removes `file`: its metadata, then its data file (when one is there and it
// is still the one e2s wrote), then the folders extracted from it.
Removal remove_file(const std::filesystem::path& cache_root, const StoredFile& file,
                    const RemoveOptions& options = {});

// Removes an extracted folder (and its lock file): renamed away first, so
// that no process sees it half removed.
void remove_extracted(const std::filesystem::path& cache_root, const ExtractedFolder& extracted);

// Removes a damaged metadata file (its data, if any, is unknown and stays).
void remove_damaged(const std::filesystem::path& cache_root, const DamagedEntry& damaged);

// Removes the package folder `folder` when nothing is left in it but the
// cache's bookkeeping (lock files) and empty folders: no data, no metadata,
// no extracted folder, no download in progress (".e2s/tmp" empty). Never
// removes `cache_root` itself. Returns whether it was removed.
bool remove_folder_if_unused(const std::filesystem::path& cache_root, const std::filesystem::path& folder);

// What `e2s cache prune` removes, least recently used first.
struct PruneOptions {
  // Remove what has not been used for this long.
  std::optional<std::chrono::seconds> older_than;
  // Then remove the least recently used until the cache holds at most this.
  std::optional<std::uint64_t> max_bytes;
  TimePoint now = std::chrono::system_clock::now();
};

// One thing prune removes: a file (with the folders extracted from it), or
// an extracted folder of no known file. Changed files are not e2s's to
// remove and are never planned. Points into the Inventory it was planned
// from, which must outlive it.
struct PruneItem {
  const CachedPackage* package = nullptr;
  const StoredFile* file = nullptr;             // null for an extracted folder alone
  const ExtractedFolder* extracted = nullptr;   // set when `file` is null
  std::uint64_t bytes = 0;                      // what removing it frees
  TimePoint last_used;
};

// The items to remove, least recently used first.
std::vector<PruneItem> plan_prune(const Inventory& inventory, const PruneOptions& options);

// "30d", "12h", "90m", "45s", "2w", a plain number of seconds; fractions
// allowed ("1.5h"). nullopt when malformed or negative.
std::optional<std::chrono::seconds> parse_duration(std::string_view text);

// A byte count: "1048576", "500M", "10G", "1.5GiB", "2TB". K, M, G, T alone
// or with "iB" are powers of 1024; with "B" ("MB") powers of 1000, as
// coreutils' truncate and sort read them; case-insensitive. nullopt when
// malformed.
std::optional<std::uint64_t> parse_byte_size(std::string_view text);

// "2024-05-01T12:00:00Z".
std::string iso8601_utc(TimePoint time);

}  // namespace e2s::detail
