// e2s::Package — a folder of model files on a local disk or a remote store,
// fetched into a local cache on demand. Mirrors Earth2Studio's
// earth2studio.models.auto.Package.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <istream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "e2s/assets.hpp"

namespace e2s {

// How remote files are kept on local disk.
struct CacheOptions {
  // Folder the package's files are cached in.
  // Default: Package::default_cache("packages/<name>-<hash of root>").
  std::filesystem::path cache_storage;
  // Keep each file's own name and sub-folders under cache_storage; when false,
  // each file is stored flat under the lowercase hex SHA-256 of its key.
  // Default: true.
  bool same_names = true;
  // Age after which a cached file is fetched again. Default: one year.
  std::chrono::seconds expiry_time{31622400};
};

// How failed requests are retried (connection errors, stalls, 408, 429, 5xx).
// How long is bounded by PackageOptions::timeout; this sets the pace.
struct RetryOptions {
  // Attempts in a row without progress, the first included: an attempt that
  // brought new bytes (at PackageOptions::min_rate) starts the count again.
  // Default: 5.
  int max_attempts = 5;
  // Backoff before the first retry; doubles each time, with full jitter.
  // Default: 500 ms.
  std::chrono::milliseconds initial_backoff{500};
  // Upper bound of one backoff of ours. A server's Retry-After is waited in
  // full when the timeout allows it, else the transfer gives up at once.
  // Default: 30 s.
  std::chrono::milliseconds max_backoff{30000};
};

// A progress event for one file being downloaded.
struct Progress {
  std::string file;                     // file path inside the package
  std::uint64_t bytes_done = 0;         // bytes received so far
  std::optional<std::uint64_t> bytes_total;  // size when the server announced it
  bool finished = false;                // true on the last event for this file
};
// Called from the downloading threads, possibly several at once (parallel
// parts and files); keep it cheap and thread-safe.
using ProgressCallback = std::function<void(const Progress&)>;

struct PackageOptions {
  // Cache remote files locally. Local roots are never cached (files are used
  // in place). Default: on for remote roots.
  std::optional<bool> cache;
  CacheOptions cache_options;
  // The longest a file (or a listing) may go without progress, its retries
  // and the pauses between them (Retry-After included) counted; then it
  // fails with Errc::timeout or Errc::network. Progress is new bytes at
  // min_rate. A transfer that keeps progressing is never cut short.
  // Default: Package::default_timeout().
  std::chrono::milliseconds timeout{0};
  // A connection that receives nothing for this long, or less than min_rate
  // over a window this long (connecting and the wait for the first byte
  // included), is cut and retried from where it stopped. Default: 30 s, or
  // `timeout` when that is shorter.
  std::chrono::milliseconds stall_timeout{30000};
  // Bytes a second a connection must at least receive (see stall_timeout);
  // 0 checks only for silence. On links slower than about 16 KiB/s, use
  // fewer connections (max_connections) or lower this. Default: 1024.
  std::uint64_t min_rate = 1024;
  // Read size for open() and streaming. Default: Package::default_blocksize().
  std::size_t block_size = 0;
  RetryOptions retry;
  // Parallel connections for one large file (byte ranges) and for several
  // files resolved together; 1 disables parallel transfers. At most 16.
  // Default: 16 (measured: per-connection-capped servers and many small files
  // gain most from more; bench/RESULTS.md).
  int max_connections = 16;
  // Never touch the network: serve from the cache (expired entries too, with
  // a warning) or fail with Errc::offline_miss naming what is missing.
  // Default: on when EARTH2STUDIO_OFFLINE is set to 1/true/yes/on, or for
  // hf:// roots HF_HUB_OFFLINE; else off.
  std::optional<bool> offline;
  // Check every cached file against the server once per Package before
  // using it (a conditional request: If-None-Match, or the store's ETag or
  // version) and download it only when it changed. Pinned versions (an HF
  // commit, an NGC version) never change and are not checked. Default: off.
  bool refresh = false;
  // Like refresh, but only for cached files fetched longer ago than this:
  // for mutable references (HF branches, plain HTTP URLs, buckets) that
  // should follow their source. Default: never.
  std::optional<std::chrono::seconds> revalidate_after;
  // Processes sharing the cache take a lock per file, so that one downloads
  // it and the others wait for its copy (see README, "Safety"). Turn off only
  // where the filesystem's locks misbehave: downloads stay correct, at worst
  // duplicated. Default: on, unless E2S_LOCKS=0.
  std::optional<bool> lock_downloads;
  // A download holding the lock that shows no progress for this long is
  // presumed stuck, and waiters go on without it. Default: 120 s, or
  // E2S_LOCK_STALE_SECONDS.
  std::chrono::milliseconds lock_stale_after{0};
  // How often a download records which of its bytes are durably on disk, so
  // that a killed or failed one resumes from there (each record costs an
  // fdatasync). Default: 1 s, or E2S_CHECKPOINT_SECONDS.
  std::chrono::milliseconds checkpoint_interval{0};
  // Receives download progress. Default: none.
  ProgressCallback progress;
  // PEM file of the CA certificates that https:// servers are verified
  // against, for sites with an internal CA; replaces the system store.
  // Verification is always on. A missing or unreadable file fails the first
  // download with Errc::network naming it.
  // Default: $CURL_CA_BUNDLE, else $SSL_CERT_FILE, else the system store.
  std::filesystem::path ca_bundle;
};

// A file in a package listing.
struct FileEntry {
  std::string path;                  // relative to the package root, '/'-separated
  std::optional<std::uint64_t> size;
};

// Thread safety: a Package may be used from several threads at once.
class Package {
 public:
  // Parses and validates `root` (plain path, file://, http://, https://,
  // hf://, ngc://models/..., s3://, gs://). Performs no I/O beyond reading
  // the environment. Throws Error(invalid_uri) for malformed roots.
  explicit Package(std::string root, PackageOptions options = {});
  ~Package();
  Package(Package&&) noexcept;
  Package& operator=(Package&&) noexcept;

  // Absolute local path of `file_path` (relative to the root, '/'-separated),
  // downloading it into the cache first when it is remote and not cached.
  // Throws Error: invalid_uri when file_path escapes the package, not_found,
  // unauthorized, timeout, network, integrity, offline_miss, io, unsupported.
  std::filesystem::path resolve(std::string_view file_path);

  // Every file of the package (recursively): paths relative to the root,
  // '/'-separated, sorted. Asks the store (the Hub's tree API, ...) or reads
  // the local folder; downloads nothing. Throws Error: unsupported for
  // http(s):// roots (plain HTTP cannot list a folder), not_found,
  // unauthorized, network, timeout.
  std::vector<FileEntry> list();

  // Resolves several files at once: their downloads run in parallel, sharing
  // max_connections requests in flight with each file's byte ranges. Returns
  // the local paths in the order given. When files fail, the others still
  // complete (and stay cached) and the first failure in the given order is
  // thrown.
  std::vector<std::filesystem::path> resolve_all(const std::vector<std::string>& file_paths);

  // The folder that the archive `file_path` (zip, tar, tar.gz, ...) extracts
  // to, extracting it on first use only: later calls, in this process or any
  // other sharing the cache, return the same folder without reading the
  // archive. The folder is named after the archive and its content (a changed
  // archive extracts afresh) and lives in the cache: under cache() for remote
  // roots, under Package::default_cache("extracted") for local ones. It
  // appears complete or not at all (see extract_archive). Same errors as
  // resolve(), plus extract_archive()'s for a hostile or damaged archive.
  std::filesystem::path resolve_extracted(std::string_view file_path, const ExtractOptions& options = {});

  // Downloads the whole package, or the files whose paths match one of
  // `include` (all when empty) and none of `exclude`: shell-style globs as
  // huggingface_hub's allow_patterns ('*' also crosses '/', "weights/*",
  // "*.npy"). Files resolve in parallel as in resolve_all(); returns their
  // local paths, sorted by file path. Same errors as list() and resolve_all().
  std::vector<std::filesystem::path> fetch(const std::vector<std::string>& include = {},
                                           const std::vector<std::string>& exclude = {});

  // A binary reader over the (cached) file. Same errors as resolve().
  std::unique_ptr<std::istream> open(std::string_view file_path);

  [[deprecated("use resolve")]] std::filesystem::path get(std::string_view file_path);

  // The root as given to the constructor.
  const std::string& root() const noexcept;
  // The folder remote files are cached in (empty for local roots).
  const std::filesystem::path& cache() const noexcept;
  const PackageOptions& options() const noexcept;

  // EARTH2STUDIO_MODEL_CACHE, else EARTH2STUDIO_CACHE, else
  // ~/.cache/earth2studio; joined with `sub`.
  static std::filesystem::path default_cache(std::string_view sub = "");
  // EARTH2STUDIO_PACKAGE_TIMEOUT seconds; 300 when unset or invalid.
  static std::chrono::seconds default_timeout();
  // 1 MiB.
  static std::size_t default_blocksize() noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace e2s
