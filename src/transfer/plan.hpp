// Which bytes of a parallel download each connection fetches, so that the
// server sends each byte once.
//
// Pieces are closed byte ranges handed out from the front as connections ask
// for work; their size shrinks as the file nears its end (a share of what is
// left, between min_piece and max_piece), so the connections finish within a
// small piece of each other without anyone cutting a reply short. Only a
// part that lags far behind the others (its own rate says it needs more than
// `lag` to finish) is split: its second half goes to an idle connection, and
// the bytes the server had already sent of it are the only ones sent twice.
// A finished part is folded into the written ranges, so the plan holds a few
// parts per connection whatever the file's size (a server announcing 2^63
// bytes costs nothing until bytes arrive).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
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
  Part(std::uint64_t b, std::uint64_t e, std::chrono::steady_clock::time_point now)
      : begin(b), end(e), next(b), taken_at(now) {}
  const std::uint64_t begin;
  std::atomic<std::uint64_t> end;
  std::atomic<std::uint64_t> next;
  const std::chrono::steady_clock::time_point taken_at;
};

struct PlanOptions {
  int connections = 16;
  std::uint64_t min_piece = 1u << 20;
  std::uint64_t max_piece = 64u << 20;
  // A part is split only when, at its own rate so far, it needs more than
  // this to finish, and it has been running for a while.
  std::chrono::milliseconds lag{1000};
  // The clock parts are timed with. Tests substitute one.
  std::function<std::chrono::steady_clock::time_point()> clock;
};

class Plan {
 public:
  // Only parts with at least twice this left are split: smaller tails finish
  // sooner than a new connection starts.
  static constexpr std::uint64_t kMinSteal = 128u << 10;

  // Pieces covering [0, size); the ranges of `resume` count as written, so
  // only the gaps between them are handed out.
  Plan(std::uint64_t size, PlanOptions options, const Partial* resume);

  // A part to fetch: the next piece nobody has taken, else the second half
  // of a part that lags far behind; nullptr when there is nothing worth
  // taking. Thread-safe.
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
  Part* split_lagging(std::chrono::steady_clock::time_point now);  // mutex_ held

  std::mutex mutex_;
  PlanOptions options_;
  std::vector<ByteRange> todo_;  // not handed out yet, in reverse order (back = next)
  std::uint64_t todo_bytes_ = 0;
  std::map<std::uint64_t, std::unique_ptr<Part>> active_;  // by begin
  std::map<std::uint64_t, std::uint64_t> written_;          // begin -> end, merged
};

}  // namespace e2s::detail
