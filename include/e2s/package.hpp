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

#include "e2s/options.hpp"

namespace e2s {

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

  // Site mirrors (PackageOptions::mirror, README "Running on a cluster"):
  // resolves each of `file_paths` (from the cache when it is there; when
  // empty, the files fetch(include, exclude) would) and uploads it, with its
  // record, to the first writable mirror, unless the mirror holds those very
  // bytes already. Throws Error(unsupported) when no mirror is writable, and
  // what resolve(), list() and the mirror throw.
  struct MirrorPush {
    std::size_t uploaded = 0;
    std::size_t present = 0;  // already in the mirror
    std::uint64_t bytes = 0;  // uploaded
  };
  MirrorPush push_to_mirror(const std::vector<std::string>& file_paths,
                            const std::vector<std::string>& include = {},
                            const std::vector<std::string>& exclude = {});
  // The files the first mirror that has any holds for this root: paths
  // relative to the root, with sizes, sorted.
  std::vector<FileEntry> mirror_list();

  // A binary reader over the (cached) file. Same errors as resolve().
  std::unique_ptr<std::istream> open(std::string_view file_path);

  [[deprecated("use resolve")]] std::filesystem::path get(std::string_view file_path);

  // The root as given to the constructor.
  const std::string& root() const noexcept;
  // The folder remote files are cached in (empty for local roots).
  const std::filesystem::path& cache() const noexcept;
  const PackageOptions& options() const noexcept;

  // The cache root (EARTH2STUDIO_MODEL_CACHE, else EARTH2STUDIO_CACHE, else
  // ~/.cache/earth2studio), absolute, joined with `sub`.
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
