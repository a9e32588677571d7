// The layout of a cache on disk: every path under a cache root, and under a
// package's cache folder, is built and parsed here and nowhere else.
//
//   <cache root>/                          PackageOptions::cache_root
//     packages/<name>-<12 hex>/            a remote root's default cache folder
//       .e2s/files/<file path>             a cached file under its own name
//       .e2s/files/<64 hex>                ... or under its key's hash (same_names off)
//       .e2s/meta/<64 hex>.json            the record of each cached file
//       .e2s/locks/<64 hex>.lock           who is downloading a file
//       .e2s/tmp/<64 hex>-<suffix>/        a download in progress and its journal
//       .e2s/extracted/<archive>-<16 hex>/ an extracted archive (and its .lock)
//     extracted/<archive>-<16 hex>/        extracted archives of local roots
//
// <64 hex> is the sha256 of a file's key (its root and path); <12 hex> that of
// the root; <16 hex> that of the archive's content.
//
// e2s owns one name in a package folder, ".e2s": a folder may be shared with
// Earth2Studio, whose fsspec cache writes its files flat at the top (under
// their base names, or the sha256 of their keys) and rewrites them in place;
// a file e2s handed out must never be one of those. Records of format 2 and
// older kept the files at the top (legacy_data_path); they are still read.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace e2s::detail::layout {

// The folder of a package folder that holds the cache's own bookkeeping; a
// file path starting with it cannot be cached under its own name.
inline constexpr std::string_view kReserved = ".e2s";
// Its parts.
inline constexpr std::string_view kMeta = "meta";
inline constexpr std::string_view kLocks = "locks";
inline constexpr std::string_view kTmp = "tmp";
inline constexpr std::string_view kExtracted = "extracted";
inline constexpr std::string_view kFiles = "files";

// ".e2s/<part>": a bookkeeping folder, relative to a package folder.
std::filesystem::path reserved(std::string_view part);

// <cache root>/packages/<name>-<12 hex>: the default cache folder of the
// remote root `root_uri`, readable (the root's last segment) and unique (a
// hash of the whole root), so that packages sharing a cache root never
// collide even when their files have the same names.
std::filesystem::path default_package_folder(const std::filesystem::path& cache_root,
                                             std::string_view root_uri);

// Where a cached file lives, relative to its package folder:
// .e2s/files/<file path>, or .e2s/files/<64 hex> when same_names is off.
std::filesystem::path data_path(std::string_view key, std::string_view file_path, bool same_names);
// ... and where e2s versions that wrote records of format 2 and older kept it.
std::filesystem::path legacy_data_path(std::string_view key, std::string_view file_path, bool same_names);

// The name of a cached file stored under its key's hash, and of its
// metadata, lock and temp folders (without extension or suffix).
std::string key_name(std::string_view key);

// "<archive name>-<16 hex>": the folder an archive extracts to, named after
// what identifies its content.
std::string extracted_name(const std::filesystem::path& archive, std::string_view identity);

// Whether `name` is such a folder name (and not an extraction in progress,
// ".part-...", or a lock file).
bool is_extracted_name(std::string_view name);

// The archive's name in such a folder name.
std::string archive_name_of(std::string_view extracted_name);

// The package folder of a metadata file (<folder>/.e2s/meta/<name>) or an
// extracted folder (<folder>/.e2s/extracted/<name>).
std::filesystem::path package_folder_of(const std::filesystem::path& bookkeeping);

// Where extracted archives of a package's cache folder go, and those of
// local roots (which have no cache folder).
std::filesystem::path extracted_folder(const std::filesystem::path& package_folder);
std::filesystem::path local_extracted_folder(const std::filesystem::path& cache_root);

}  // namespace e2s::detail::layout
