// The parallel download's plan: which bytes each connection fetches.
#include "transfer/plan.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <vector>

namespace e2s::detail {
namespace {

using namespace std::chrono_literals;
constexpr std::uint64_t kMiB = 1u << 20;

void write_all(Part* part) { part->next.store(part->end.load()); }

// A clock the test moves.
struct FakeClock {
  std::chrono::steady_clock::time_point now{};
};

PlanOptions options(int connections, FakeClock& clock, std::uint64_t min_piece = kMiB,
                    std::uint64_t max_piece = 64 * kMiB) {
  return {connections, min_piece, max_piece, 1000ms, [&clock] { return clock.now; }};
}

// A server may announce any size: the plan of a 2^62-byte file costs what a
// few parts cost, up front and as the download goes.
TEST(Plan, ItsMemoryDoesNotGrowWithTheFileSize) {
  FakeClock clock;
  const auto start = std::chrono::steady_clock::now();
  Plan plan(std::uint64_t{1} << 62, options(16, clock), nullptr);
  std::uint64_t covered = 0;
  for (int round = 0; round < 1000; ++round) {
    std::vector<Part*> parts;
    for (int i = 0; i < 16; ++i) parts.push_back(plan.take());
    EXPECT_EQ(plan.parts_held(), 16u);
    for (Part* part : parts) {
      covered = part->end.load();
      write_all(part);
      plan.finish(part);
    }
  }
  EXPECT_EQ(plan.parts_held(), 0u);
  const std::vector<ByteRange> written = plan.written();
  ASSERT_EQ(written.size(), 1u) << "finished parts are folded into one range";
  EXPECT_EQ(written[0], (ByteRange{0, covered}));
  EXPECT_EQ(covered, 16000 * 64 * kMiB) << "the biggest pieces while most of the file is left";
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

// Pieces are a share of what is left: big early, the minimum at the end, so
// the connections finish within a small piece of each other.
TEST(Plan, PiecesShrinkTowardsTheEndAndCoverTheFileOnce) {
  FakeClock clock;
  const std::uint64_t size = 256 * kMiB;
  Plan plan(size, options(16, clock), nullptr);
  std::vector<std::uint64_t> sizes;
  std::uint64_t expected_begin = 0;
  while (Part* part = plan.take()) {
    EXPECT_EQ(part->begin, expected_begin) << "in order, no gap, no overlap";
    sizes.push_back(part->end.load() - part->begin);
    expected_begin = part->end.load();
    write_all(part);
    plan.finish(part);
  }
  EXPECT_EQ(expected_begin, size);
  ASSERT_GT(sizes.size(), 32u);
  EXPECT_EQ(sizes.front(), 8 * kMiB) << "256 MiB / (2 x 16 connections)";
  // The last one takes a remainder under half a piece along.
  EXPECT_LE(sizes.back(), 3 * kMiB / 2) << "the last pieces are small";
  for (std::size_t i = 1; i + 1 < sizes.size(); ++i) EXPECT_LE(sizes[i], sizes[i - 1]);
  EXPECT_LT(sizes.size(), 200u) << "not too many requests";
}

TEST(Plan, AResumeHandsOutOnlyTheGaps) {
  FakeClock clock;
  Partial resume{10 * kMiB, "", "etag", {{0, 2 * kMiB}, {5 * kMiB, 6 * kMiB}}};
  Plan plan(10 * kMiB, options(1, clock), &resume);
  EXPECT_EQ(plan.written(), (std::vector<ByteRange>{{0, 2 * kMiB}, {5 * kMiB, 6 * kMiB}}));
  Part* first = plan.take();
  EXPECT_EQ(first->begin, 2 * kMiB);
  EXPECT_EQ(first->end.load(), 5 * kMiB);
  Part* second = plan.take();
  EXPECT_EQ(second->begin, 6 * kMiB);
  EXPECT_EQ(second->end.load(), 8 * kMiB) << "half of what is left";
  Part* third = plan.take();
  EXPECT_EQ(third->begin, 8 * kMiB);
  EXPECT_EQ(third->end.load(), 9 * kMiB) << "never below the minimum piece";
  Part* fourth = plan.take();
  EXPECT_EQ(fourth->begin, 9 * kMiB);
  EXPECT_EQ(fourth->end.load(), 10 * kMiB);
  EXPECT_EQ(plan.take(), nullptr);
}

// The hasher follows the contiguous prefix, also into the middle of a part
// still being written.
TEST(Plan, WrittenUntilFollowsFinishedAndActiveParts) {
  FakeClock clock;
  Plan plan(4 * kMiB, options(2, clock), nullptr);
  Part* a = plan.take();
  Part* b = plan.take();
  Part* c = plan.take();
  ASSERT_EQ(a->end.load(), kMiB);
  ASSERT_EQ(b->end.load(), 2 * kMiB);
  a->next.store(kMiB / 2);
  EXPECT_EQ(plan.written_until(0), kMiB / 2);
  EXPECT_EQ(plan.written_until(kMiB / 4), kMiB / 2);
  write_all(a);
  plan.finish(a);
  c->next.store(c->end.load());  // ahead of b, which is not
  EXPECT_EQ(plan.written_until(0), kMiB);
  b->next.store(b->begin + 10);
  EXPECT_EQ(plan.written_until(kMiB), kMiB + 10);
  write_all(b);
  EXPECT_EQ(plan.written_until(kMiB), c->end.load());
}

// Connections of one speed are never split: no reply is cut short, so no
// byte is sent twice. A part that lags far behind is.
TEST(Plan, OnlyAPartThatLagsFarBehindIsSplit) {
  FakeClock clock;
  Plan plan(32 * kMiB, options(2, clock, kMiB, 16 * kMiB), nullptr);
  Part* a = plan.take();
  Part* b = plan.take();
  while (Part* more = plan.take()) {  // the rest handed out and written
    write_all(more);
    plan.finish(more);
  }
  ASSERT_EQ(a->end.load() - a->begin, 8 * kMiB);
  // Both halfway after a second: nobody lags.
  clock.now += 1s;
  a->next.store(a->begin + 4 * kMiB);
  b->next.store(b->begin + 3 * kMiB);
  EXPECT_EQ(plan.take(), nullptr);
  // b has crawled: at its rate it needs seconds for the rest.
  clock.now += 3s;
  a->next.store(a->end.load() - kMiB / 2);
  b->next.store(b->begin + 3 * kMiB + kMiB / 4);
  Part* tail = plan.take();
  ASSERT_NE(tail, nullptr);
  const std::uint64_t next = b->next.load();
  EXPECT_EQ(tail->begin, next + (tail->end.load() - next) / 2);
  EXPECT_EQ(b->end.load(), tail->begin);
  // b's first half still lags: split again. a's little rest never is.
  Part* again = plan.take();
  ASSERT_NE(again, nullptr);
  EXPECT_GT(again->begin, b->begin);
  EXPECT_EQ(b->end.load(), again->begin);
  b->next.store(b->end.load() - Plan::kMinSteal);
  EXPECT_EQ(plan.take(), nullptr) << "small rests are not worth a connection";
}

}  // namespace
}  // namespace e2s::detail
