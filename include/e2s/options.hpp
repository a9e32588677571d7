// Everything a Package can be told, in one place, and the plain types its
// callbacks and listings carry. Each field ends with its default. A field that is an unset std::optional takes its default from the
// environment (README, "Configuration"), so that code and the environment
// agree; a value set here always wins over the environment.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace e2s {

// How remote files are kept on local disk.
struct CacheOptions {
  // Folder the package's files are cached in. Empty: a folder of its own
  // under the cache root, "packages/<name>-<hash of root>" (see
  // PackageOptions::cache_root). Default: empty.
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

// Limits of extract_archive() (and Package::resolve_extracted()) against
// decompression bombs. Each is checked against an entry's declared size
// before it is written and against the bytes actually written, so an archive
// that lies about its sizes is stopped too.
struct ExtractOptions {
  // Most bytes all entries may expand to. Default: 256 GiB.
  std::uint64_t max_bytes = std::uint64_t{256} << 30;
  // Most bytes extracted per byte of archive (once past 64 MiB). Default: 200.
  double max_ratio = 200;
  // Most entries. Default: 1,000,000.
  std::uint64_t max_entries = 1000000;
};

// How hf:// roots use huggingface_hub's own cache (the "hub" folder that
// `hf download` and transformers fill; README, "Sharing caches").
enum class HfCacheMode {
  off,    // neither read nor written
  read,   // a file found there (verified) is hard-linked, not downloaded
  share,  // ... and what e2s downloads is also placed there, in its layout
};

// The Hugging Face Hub, for hf:// roots. Never logged.
struct HubOptions {
  // Default: HF_ENDPOINT, else https://huggingface.co.
  std::optional<std::string> endpoint;
  // Bearer token, sent to the Hub's own origin only; "" sends none.
  // Default: HF_TOKEN, else HUGGING_FACE_HUB_TOKEN, else the file
  // HF_TOKEN_PATH ($HF_HOME/token); none with HF_HUB_DISABLE_IMPLICIT_TOKEN.
  std::optional<std::string> token;
  // Default: E2S_HF_CACHE (off, read or share), else read.
  std::optional<HfCacheMode> cache_mode;
  // huggingface_hub's cache folder. Default: HF_HUB_CACHE, else
  // HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub (HF_HOME defaulting to
  // $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface).
  std::optional<std::filesystem::path> cache;
};

// NGC, for ngc:// roots. Never logged.
struct NgcOptions {
  // API key: an "nvapi-" key is sent as the bearer token, others are
  // exchanged for one; "" uses the public endpoints.
  // Default: NGC_CLI_API_KEY, else NGC_API_KEY.
  std::optional<std::string> api_key;
  // Default: NGC_CLI_API_URL, else NGC_CLI_SEARCH_SERVICE_URL, else
  // https://api.ngc.nvidia.com/.
  std::optional<std::string> api_url;
  // Default: NGC_CLI_AUTH_URL, else https://authn.nvidia.com/token.
  std::optional<std::string> auth_url;
};

// S3 and S3-compatible stores, for s3:// roots. Never logged.
struct S3Options {
  // Static credentials; when access_key_id is set, the secret and session
  // token are these too (empty: none), and no profile is read.
  // Default: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN.
  std::optional<std::string> access_key_id;
  std::optional<std::string> secret_access_key;
  std::optional<std::string> session_token;
  // Profile of the shared credentials and config files, used when no static
  // credentials are given. Default: AWS_PROFILE, else "default".
  std::optional<std::string> profile;
  // Default: AWS_REGION, else AWS_DEFAULT_REGION, else the profile's, else us-east-1.
  std::optional<std::string> region;
  // An S3-compatible endpoint, addressed path-style. Default:
  // AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL, else the profile's
  // endpoint_url, else AWS itself.
  std::optional<std::string> endpoint_url;
};

// Google Cloud Storage, for gs:// roots.
struct GcsOptions {
  // Default: STORAGE_EMULATOR_HOST, else https://storage.googleapis.com.
  std::optional<std::string> endpoint;
};

// A site mirror: a shared, verified tier between the nodes of a cluster and
// the upstream stores (README, "Running on a cluster").
struct MirrorOptions {
  // Where to look on a miss, in order: s3://bucket/prefix (the S3 store's
  // credentials, endpoint and region), http(s)://... (read-only), or a
  // folder (a shared filesystem). Default: E2S_MIRROR, comma-separated;
  // empty: no mirror.
  std::optional<std::vector<std::string>> urls;
  // Upload what this process had to fetch upstream to the first writable
  // mirror, after verification. Default: E2S_MIRROR_PUSH, else off.
  std::optional<bool> push;
  // How long a process that went upstream for a file holds the mirror's
  // lease on it, during which others wait for its copy instead of going
  // upstream too. Default: E2S_MIRROR_LEASE_SECONDS, else 120 s.
  std::optional<std::chrono::milliseconds> lease;
};

// Where a resolved file's bytes came from.
enum class Origin {
  cache,      // this cache (no request)
  neighbour,  // huggingface_hub's or Earth2Studio's cache (hard link)
  mirror,     // a site mirror
  upstream,   // the package's own store
};

// Reported once per file resolve() or resolve_all() returns.
struct Resolved {
  std::string file;    // file path inside the package
  Origin origin = Origin::cache;
  std::uint64_t bytes = 0;  // the file's size
  std::string source;  // the mirror or other cache it came from; "" otherwise
};
using ResolvedCallback = std::function<void(const Resolved&)>;

// A file in a package listing.
struct FileEntry {
  std::string path;                  // relative to the package root, '/'-separated
  std::optional<std::uint64_t> size;
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
  // Reuse cached copies of remote files. false: every resolve() downloads
  // the file afresh, still into the cache folder (a path is handed back),
  // replacing the cached copy. Local roots are never cached: their files are
  // used in place. Default: true.
  bool cache = true;
  CacheOptions cache_options;
  // The cache root that Package::default_cache() names, which holds each
  // remote package's default folder and the extracted archives of local
  // roots. Default: EARTH2STUDIO_MODEL_CACHE, else EARTH2STUDIO_CACHE, else
  // ~/.cache/earth2studio.
  std::optional<std::filesystem::path> cache_root;
  // The longest a file (or a listing) may go without progress, its retries
  // and the pauses between them (Retry-After included) counted; then it
  // fails with Errc::timeout or Errc::network. Progress is new bytes at
  // min_rate. A transfer that keeps progressing is never cut short.
  // Default: for hf:// roots HF_HUB_DOWNLOAD_TIMEOUT, else
  // Package::default_timeout() (EARTH2STUDIO_PACKAGE_TIMEOUT, else 300 s).
  std::optional<std::chrono::milliseconds> timeout;
  // A connection that receives nothing for this long, or less than min_rate
  // over a window this long (connecting and the wait for the first byte
  // included), is cut and retried from where it stopped; `timeout` when that
  // is shorter. Default: 30 s.
  std::chrono::milliseconds stall_timeout{30000};
  // Bytes a second a connection must at least receive (see stall_timeout);
  // 0 checks only for silence. On links slower than about 16 KiB/s, use
  // fewer connections (max_connections) or lower this. Default: 1024.
  std::uint64_t min_rate = 1024;
  // Buffer size of the readers open() returns. Default: 1 MiB
  // (Package::default_blocksize()).
  std::size_t block_size = std::size_t{1} << 20;
  RetryOptions retry;
  // Parallel connections for one large file (byte ranges) and for several
  // files resolved together; 1 disables parallel transfers; more than 16
  // counts as 16. Default: 16 (measured: per-connection-capped servers and
  // many small files gain most from more; bench/RESULTS.md).
  int max_connections = 16;
  // Never touch the network: serve from the cache (expired entries too, with
  // a warning) or fail with Errc::offline_miss naming what is missing.
  // Default: on when EARTH2STUDIO_OFFLINE is 1/true/yes/on, or for hf://
  // roots HF_HUB_OFFLINE; else off.
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
  // duplicated. Default: on, unless E2S_LOCKS is 0/off/no/false.
  std::optional<bool> lock_downloads;
  // A download holding the lock that shows no progress for this long is
  // presumed stuck, and waiters go on without it.
  // Default: E2S_LOCK_STALE_SECONDS, else 120 s.
  std::optional<std::chrono::milliseconds> lock_stale_after;
  // How often a download records which of its bytes are durably on disk, so
  // that a killed or failed one resumes from there (each record costs an
  // fdatasync). Default: E2S_CHECKPOINT_SECONDS, else 1 s.
  std::optional<std::chrono::milliseconds> checkpoint_interval;
  // Receives download progress. Default: none.
  ProgressCallback progress;
  // Told where each resolved file came from. Default: none.
  ResolvedCallback on_resolved;
  MirrorOptions mirror;
  // PEM file of the CA certificates that https:// servers are verified
  // against, for sites with an internal CA; replaces the system store.
  // Verification is always on. A missing or unreadable file fails the first
  // download with Errc::network naming it.
  // Default: CURL_CA_BUNDLE, else SSL_CERT_FILE, else the system store.
  std::optional<std::filesystem::path> ca_bundle;
  // Who e2s is to each service. Default: each field from the environment.
  HubOptions hf;
  NgcOptions ngc;
  S3Options s3;
  GcsOptions gcs;
  // The wall clock: cache expiry, revalidation and fetch times. Tests (and
  // simulations) substitute one. Default: std::chrono::system_clock::now.
  std::function<std::chrono::system_clock::time_point()> clock = [] {
    return std::chrono::system_clock::now();
  };
};

}  // namespace e2s
