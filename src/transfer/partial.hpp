// What an interrupted download left in its temp file: which bytes are there
// and which version of the file they came from. A later attempt (in this
// process or the next) continues from it, after the server has vouched that
// the file is still the same.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace e2s::detail {

struct ByteRange {
  std::uint64_t begin = 0;
  std::uint64_t end = 0;  // one past the last byte
  bool operator==(const ByteRange&) const = default;
};

struct Partial {
  std::uint64_t size = 0;          // size of the whole file
  std::string etag;                // the store's ETag before the download, "" when none
  std::string served_etag;         // ETag of the replies the bytes came from, "" when none
  std::vector<ByteRange> written;  // bytes on disk: sorted, disjoint, within [0, size)

  std::uint64_t bytes() const {
    std::uint64_t total = 0;
    for (const auto& range : written) total += range.end - range.begin;
    return total;
  }
  // Length of the written run that starts at byte 0.
  std::uint64_t prefix() const {
    return !written.empty() && written.front().begin == 0 ? written.front().end : 0;
  }
};

}  // namespace e2s::detail
