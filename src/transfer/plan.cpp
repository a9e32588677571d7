#include "transfer/plan.hpp"

#include <algorithm>

namespace e2s::detail {

Plan::Plan(std::uint64_t size, std::uint64_t chunk, const Partial* resume) : chunk_(std::max<std::uint64_t>(chunk, 1)) {
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
  todo_.assign(gaps.rbegin(), gaps.rend());
}

Part* Plan::take() {
  std::lock_guard lock(mutex_);
  if (!todo_.empty()) {
    ByteRange& gap = todo_.back();
    const std::uint64_t end = gap.end - gap.begin > chunk_ ? gap.begin + chunk_ : gap.end;
    auto part = std::make_unique<Part>(gap.begin, end);
    Part* taken = part.get();
    active_[gap.begin] = std::move(part);
    gap.begin = end;
    if (gap.begin == gap.end) todo_.pop_back();
    return taken;
  }
  Part* slowest = nullptr;
  std::uint64_t most_left = 0;
  for (auto& [begin, part] : active_) {
    const std::uint64_t end = part->end.load(), next = part->next.load();
    if (end > next && end - next > most_left) {
      most_left = end - next;
      slowest = part.get();
    }
  }
  if (slowest == nullptr || most_left < 2 * kMinSteal) return nullptr;
  const std::uint64_t old_end = slowest->end.load();
  const std::uint64_t middle = slowest->next.load() + most_left / 2;
  slowest->end.store(middle);
  auto tail = std::make_unique<Part>(middle, old_end);
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
