// Archives extracted once per content: the folder an archive of a package
// extracts to, shared by every process using the same cache.
#pragma once

#include <filesystem>
#include <string>

#include "cache/lock.hpp"
#include "e2s/options.hpp"

namespace e2s::detail {

// The folder `archive` extracts to under `base`, named after the archive and
// `identity` (what names its content: its sha256, or a local file's path,
// size and modification time), extracting it first unless it already is. One
// process extracts, the others wait for its folder (`lock`). Throws Error: io
// when `base` cannot be created, and extract_archive()'s errors.
std::filesystem::path extract_once(const std::filesystem::path& archive, const std::string& identity,
                                   const std::filesystem::path& base, const ExtractOptions& options,
                                   const LockOptions& lock);

// What names a local file's content without reading it: its absolute path,
// size and modification time. Throws Error(io) naming `root` when it cannot
// be read.
std::string local_file_identity(const std::filesystem::path& file, const std::string& root);

}  // namespace e2s::detail
