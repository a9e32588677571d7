// The parallel download's plan: which bytes each connection fetches.
#include "transfer/plan.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <vector>

namespace e2s::detail {
namespace {

constexpr std::uint64_t kMiB = 1u << 20;

void write_all(Part* part) { part->next.store(part->end.load()); }

// A server may announce any size: the plan of a 2^62-byte file costs what a
// few parts cost, up front and as the download goes.
TEST(Plan, ItsMemoryDoesNotGrowWithTheFileSize) {
  const auto start = std::chrono::steady_clock::now();
  Plan plan(std::uint64_t{1} << 62, 64 * kMiB, nullptr);
  for (int round = 0; round < 1000; ++round) {
    std::vector<Part*> parts;
    for (int i = 0; i < 16; ++i) parts.push_back(plan.take());
    EXPECT_EQ(plan.parts_held(), 16u);
    for (Part* part : parts) {
      write_all(part);
      plan.finish(part);
    }
  }
  EXPECT_EQ(plan.parts_held(), 0u);
  const std::vector<ByteRange> written = plan.written();
  ASSERT_EQ(written.size(), 1u) << "finished parts are folded into one range";
  EXPECT_EQ(written[0], (ByteRange{0, 16000 * 64 * kMiB}));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST(Plan, ChunksAreHandedOutInOrderAndTheLastOneIsShort) {
  Plan plan(5 * kMiB / 2, kMiB, nullptr);
  Part* a = plan.take();
  Part* b = plan.take();
  Part* c = plan.take();
  EXPECT_EQ(a->begin, 0u);
  EXPECT_EQ(a->end.load(), kMiB);
  EXPECT_EQ(b->begin, kMiB);
  EXPECT_EQ(c->begin, 2 * kMiB);
  EXPECT_EQ(c->end.load(), 5 * kMiB / 2);
}

TEST(Plan, AResumeHandsOutOnlyTheGaps) {
  Partial resume{10 * kMiB, "", "etag", {{0, 2 * kMiB}, {5 * kMiB, 6 * kMiB}}};
  Plan plan(10 * kMiB, 4 * kMiB, &resume);
  EXPECT_EQ(plan.written(), (std::vector<ByteRange>{{0, 2 * kMiB}, {5 * kMiB, 6 * kMiB}}));
  Part* first = plan.take();
  EXPECT_EQ(first->begin, 2 * kMiB);
  EXPECT_EQ(first->end.load(), 5 * kMiB);
  Part* second = plan.take();
  EXPECT_EQ(second->begin, 6 * kMiB);
  EXPECT_EQ(second->end.load(), 10 * kMiB);
}

// The hasher follows the contiguous prefix, also into the middle of a part
// still being written.
TEST(Plan, WrittenUntilFollowsFinishedAndActiveParts) {
  Plan plan(4 * kMiB, kMiB, nullptr);
  Part* a = plan.take();
  Part* b = plan.take();
  Part* c = plan.take();
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
  EXPECT_EQ(plan.written_until(kMiB), 3 * kMiB);
}

TEST(Plan, WithNothingLeftTheSlowestPartIsSplit) {
  Plan plan(2 * kMiB, kMiB, nullptr);
  Part* a = plan.take();
  Part* b = plan.take();
  a->next.store(a->begin + kMiB / 2);  // half done
  b->next.store(b->begin + kMiB / 8);  // barely started: the slowest
  Part* tail = plan.take();
  ASSERT_NE(tail, nullptr);
  const std::uint64_t left = kMiB - kMiB / 8;
  EXPECT_EQ(tail->begin, b->begin + kMiB / 8 + left / 2);
  EXPECT_EQ(tail->end.load(), 2 * kMiB);
  EXPECT_EQ(b->end.load(), tail->begin);
  // Small tails are not worth a connection.
  a->next.store(a->end.load() - Plan::kMinSteal);
  b->next.store(b->end.load() - Plan::kMinSteal);
  tail->next.store(tail->end.load() - Plan::kMinSteal);
  EXPECT_EQ(plan.take(), nullptr);
}

}  // namespace
}  // namespace e2s::detail
