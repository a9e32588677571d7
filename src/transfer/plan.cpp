#include "transfer/plan.hpp"

#include <algorithm>
#include <utility>

namespace e2s::detail {

Plan::Plan(std::uint64_t size, PlanOptions options, const Partial* resume) : options_(std::move(options)) {
  options_.connections = std::max(options_.connections, 1);
  options_.min_piece = std::max<std::uint64_t>(options_.min_piece, 1);
  options_.max_piece = std::max(options_.max_piece, options_.min_piece);
  if (!options_.clock) options_.clock = [] { return std::chrono::steady_clock::now(); };
  std::uint64_t position = 0;
  std::vector<ByteRange> gaps;
  if (resume != nullptr) {
    for (const ByteRange& range : resume->written) {
      if (range.begin > position) gaps.push_back({position, range.begin});
      add_written(range.begin, range.end);
      position = std::max(position, range.end);
    }
  }
  if (position < size) gaps.push_back({position, size});
  for (const ByteRange& gap : gaps) todo_bytes_ += gap.end - gap.begin;
  todo_.assign(gaps.rbegin(), gaps.rend());
}

Part* Plan::take() {
  std::lock_guard lock(mutex_);
  const auto now = options_.clock();
  if (todo_.empty()) return split_lagging(now);
  // A share of what is left: big pieces early (few requests), small ones at
  // the end (connections finish together, nothing is cut short).
  const std::uint64_t share = todo_bytes_ / (2 * static_cast<std::uint64_t>(options_.connections));
  const std::uint64_t piece = std::clamp(share, options_.min_piece, options_.max_piece);
  ByteRange& gap = todo_.back();
  // A remainder smaller than a piece goes with it rather than alone.
  const std::uint64_t left = gap.end - gap.begin;
  const std::uint64_t end = left <= piece + options_.min_piece / 2 ? gap.end : gap.begin + piece;
  auto part = std::make_unique<Part>(gap.begin, end, now);
  Part* taken = part.get();
  active_[gap.begin] = std::move(part);
  todo_bytes_ -= end - gap.begin;
  gap.begin = end;
  if (gap.begin == gap.end) todo_.pop_back();
  return taken;
}

Part* Plan::split_lagging(std::chrono::steady_clock::time_point now) {
  Part* slowest = nullptr;
  double slowest_time = 0;
  for (auto& [begin, part] : active_) {
    const std::uint64_t end = part->end.load(), next = part->next.load();
    if (end <= next || end - next < 2 * kMinSteal) continue;
    const double running = std::chrono::duration<double>(now - part->taken_at).count();
    // Too early to judge a part's rate: its first bytes may be on their way.
    if (running < std::chrono::duration<double>(options_.lag).count()) continue;
    const double rate = static_cast<double>(next - part->begin) / running;
    const double needs = rate > 0 ? static_cast<double>(end - next) / rate : 1e9;
    if (needs > slowest_time) {
      slowest_time = needs;
      slowest = part.get();
    }
  }
  if (slowest == nullptr || slowest_time <= std::chrono::duration<double>(options_.lag).count()) {
    return nullptr;
  }
  const std::uint64_t old_end = slowest->end.load();
  const std::uint64_t next = slowest->next.load();
  const std::uint64_t middle = next + (old_end - next) / 2;
  slowest->end.store(middle);
  auto tail = std::make_unique<Part>(middle, old_end, now);
  Part* taken = tail.get();
  active_[middle] = std::move(tail);
  return taken;
}

void Plan::finish(Part* part) {
  std::lock_guard lock(mutex_);
  const std::uint64_t reach = std::min(part->next.load(), part->end.load());
  if (reach > part->begin) add_written(part->begin, reach);
  if (reach < part->end.load()) {
    // Given up short of its end: the rest goes back to be handed out again.
    todo_.push_back({reach, part->end.load()});
    todo_bytes_ += part->end.load() - reach;
  }
  active_.erase(part->begin);
}

void Plan::add_written(std::uint64_t begin, std::uint64_t end) {
  auto next = written_.upper_bound(begin);
  if (next != written_.begin()) {
    auto previous = std::prev(next);
    if (previous->second >= begin) {
      begin = previous->first;
      end = std::max(end, previous->second);
      written_.erase(previous);
    }
  }
  for (next = written_.lower_bound(begin); next != written_.end() && next->first <= end;) {
    end = std::max(end, next->second);
    next = written_.erase(next);
  }
  written_[begin] = end;
}

std::vector<ByteRange> Plan::written() {
  std::lock_guard lock(mutex_);
  std::map<std::uint64_t, std::uint64_t> all = written_;
  for (const auto& [begin, part] : active_) {
    const std::uint64_t reach = std::min(part->next.load(), part->end.load());
    if (reach > begin) all.emplace(begin, reach);
  }
  std::vector<ByteRange> ranges;
  for (const auto& [begin, end] : all) {
    if (!ranges.empty() && ranges.back().end >= begin) {
      ranges.back().end = std::max(ranges.back().end, end);
    } else {
      ranges.push_back({begin, end});
    }
  }
  return ranges;
}

std::uint64_t Plan::written_until(std::uint64_t from) {
  std::lock_guard lock(mutex_);
  std::uint64_t position = from;
  for (;;) {
    auto done = written_.upper_bound(position);
    if (done != written_.begin() && std::prev(done)->second > position) {
      position = std::prev(done)->second;
      continue;
    }
    // The part that holds `position`, if one does: the hasher may stand in
    // the middle of a part still being written.
    auto active = active_.upper_bound(position);
    if (active == active_.begin()) return position;
    const Part& part = *std::prev(active)->second;
    const std::uint64_t reach = std::min(part.next.load(), part.end.load());
    if (reach <= position) return position;
    position = reach;
    if (reach < part.end.load()) return position;  // this part is still writing
  }
}

std::size_t Plan::parts_held() {
  std::lock_guard lock(mutex_);
  return active_.size();
}

}  // namespace e2s::detail
