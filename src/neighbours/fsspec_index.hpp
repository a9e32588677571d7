// The index of an fsspec whole-file cache: the file named "cache" that
// fsspec's CachingFileSystem and WholeFileCacheFileSystem keep in their
// cache_storage folder (Earth2Studio's cache). It maps a key (a URL for
// http and ngc, "ns/name@rev/path" for hf, "bucket/key" for s3 and gs) to
// the details of a cached file:
//
//   {"original": str, "fn": str, "blocks": True | [int...], "time": float, "uid": str}
//
// Older fsspec (2022.11, Debian 12's) writes it with pickle, newer as JSON. A pickle
// is never executed here: a small machine runs only the opcodes that build
// plain data (dicts, lists, sets, tuples, str, bytes, int, float, bool,
// None) and refuses any other (GLOBAL, REDUCE, BUILD...), within fixed
// bounds, without recursion.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace e2s::detail {

// The largest index read: a caller reads no more than this, and a larger
// one is refused (an entry takes about 200 bytes).
inline constexpr std::size_t kFsspecIndexMaxBytes = std::size_t{64} << 20;

// One file of an fsspec whole-file cache, as its index records it.
struct FsspecRecord {
  std::string key;       // the index's key
  std::string original;  // "original" (the key when absent)
  std::string fn;        // "fn": the file's name in the cache folder
  double time = 0;       // "time": when it was fetched (unix seconds), 0 when absent
};

// The records of an fsspec cache index's bytes, JSON or pickle. nullopt (and
// why, in `reason`) when the bytes are neither, or hold anything else than
// plain data. Entries whose details lack a string "fn" are skipped.
//
// A record's strings are the index's, unchecked: "fn" is a name from
// outside, to check before it names a file. A key given twice counts once,
// with its last details (as Python reads it). Records come in the index's
// order. A "time" that is not a finite number counts as absent.
std::optional<std::vector<FsspecRecord>> parse_fsspec_index(std::string_view bytes,
                                                            std::string* reason = nullptr);

}  // namespace e2s::detail
