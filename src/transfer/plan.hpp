// Which bytes of a parallel download each connection fetches. Chunks are cut
// from the front of what is left as connections ask for work, and a finished
// part is folded into the written ranges, so the plan holds a few parts per
// connection whatever the file's size (a server announcing 2^63 bytes costs
// nothing until bytes arrive). A connection with nothing left takes over the
// second half of the part with the most bytes left, so one slow connection
// never holds up the end of the file.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "transfer/partial.hpp"

namespace e2s::detail {

// A byte range [begin, end) written in order from begin; `next` is the first
// byte not yet written. `end` only ever shrinks (when the tail is taken
// over). The connection that took it owns it until Plan::finish().
struct Part {
  Part(std::uint64_t b, std::uint64_t e) : begin(b), end(e), next(b) {}
  const std::uint64_t begin;
  std::atomic<std::uint64_t> end;
  std::atomic<std::uint64_t> next;
};

class Plan {
 public:
  // Only parts with at least twice this left are split: smaller tails finish
  // sooner than a new connection starts.
  static constexpr std::uint64_t kMinSteal = 128u << 10;

  // Chunks of `chunk` bytes covering [0, size); the ranges of `resume` count
  // as written, so only the gaps between them are handed out.
  Plan(std::uint64_t size, std::uint64_t chunk, const Partial* resume);

  // A part to fetch: the next chunk nobody has taken, else the second half of
  // the part with the most bytes left; nullptr when nothing is worth taking.
  // Thread-safe.
  Part* take();

  // The part is done (or given up): what it wrote counts as written, and the
  // part is no longer valid. Thread-safe.
  void finish(Part* part);

  // The bytes written so far, sorted and merged, for a checkpoint.
  std::vector<ByteRange> written();

  // End of the contiguous written region that starts at `from`.
  std::uint64_t written_until(std::uint64_t from);

  // Parts handed out and not finished (what the plan's memory grows with).
  std::size_t parts_held();

 private:
  void add_written(std::uint64_t begin, std::uint64_t end);  // mutex_ held

  std::mutex mutex_;
  const std::uint64_t chunk_;
  std::vector<ByteRange> todo_;  // not handed out yet, in reverse order (back = next)
  std::map<std::uint64_t, std::unique_ptr<Part>> active_;  // by begin
  std::map<std::uint64_t, std::uint64_t> written_;          // begin -> end, merged
};

}  // namespace e2s::detail
