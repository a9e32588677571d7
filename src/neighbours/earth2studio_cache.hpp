// Earth2Studio's own cache folders (protocols.md §5.4, §7.2). fsspec's
// whole-file cache keeps the files of Package(root, cache_options=
// {"cache_storage": default_cache("name"), ...}) flat in <cache root>/<name>/
// and records, in an index file "cache" beside them, which URL each came
// from. fsspec writes a file straight to its final name: being listed proves
// nothing about its bytes, which the caller checks before using it. e2s
// only ever reads these folders.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "uri/location.hpp"

namespace e2s::detail {

// The key fsspec files `path` of the root `location` under: the URL for
// http(s) and ngc roots, without its scheme for hf, s3 and gs.
std::string fsspec_key(const Location& location, const std::string& path);

// A file an fsspec index records.
struct Earth2StudioFile {
  std::filesystem::path path;
  std::filesystem::path index;
};

// The folders an fsspec index may be in: `own` (a package's cache_storage,
// which a model shares with Earth2Studio) and each folder directly below
// `cache_root` (Earth2Studio's default_cache(name)) that has one.
std::vector<std::filesystem::path> earth2studio_folders(const std::filesystem::path& cache_root,
                                                        const std::filesystem::path& own);

// The file that the index of one of `folders` records under `key`, when it
// is there as a regular file. Indexes that are unreadable, larger than
// 64 MiB or anything but plain data are skipped.
std::optional<Earth2StudioFile> find_fsspec_file(const std::vector<std::filesystem::path>& folders,
                                                 const std::string& key);

}  // namespace e2s::detail
