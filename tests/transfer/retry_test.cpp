#include "http/retry.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace e2s::detail {
namespace {

using std::chrono::milliseconds;

http::Result status_result(int status, std::string retry_after = "") {
  http::Result result;
  result.transport = http::Transport::ok;
  result.response.status = status;
  if (!retry_after.empty()) result.response.headers["retry-after"] = retry_after;
  return result;
}

http::Result transport_result(http::Transport transport) {
  http::Result result;
  result.transport = transport;
  return result;
}

TEST(RetryPolicy, TransientFailuresAreRetryable) {
  EXPECT_TRUE(is_transient(status_result(408)));
  EXPECT_TRUE(is_transient(status_result(429)));
  EXPECT_TRUE(is_transient(status_result(500)));
  EXPECT_TRUE(is_transient(status_result(503)));
  EXPECT_TRUE(is_transient(transport_result(http::Transport::timeout)));
  EXPECT_TRUE(is_transient(transport_result(http::Transport::connect_failed)));
  EXPECT_TRUE(is_transient(transport_result(http::Transport::interrupted)));
}

TEST(RetryPolicy, FinalFailuresAreNot) {
  EXPECT_FALSE(is_transient(status_result(200)));
  EXPECT_FALSE(is_transient(status_result(206)));
  EXPECT_FALSE(is_transient(status_result(404)));
  EXPECT_FALSE(is_transient(status_result(401)));
  EXPECT_FALSE(is_transient(status_result(403)));
  EXPECT_FALSE(is_transient(transport_result(http::Transport::tls)));
  EXPECT_FALSE(is_transient(transport_result(http::Transport::too_many_redirects)));
  EXPECT_FALSE(is_transient(transport_result(http::Transport::aborted)));
}

TEST(RetryPolicy, RetryAfterSecondsAndHttpDate) {
  const auto now = std::chrono::system_clock::from_time_t(1445412480);  // Wed, 21 Oct 2015 07:28:00 GMT
  EXPECT_EQ(parse_retry_after("7", now), milliseconds(7000));
  EXPECT_EQ(parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now), milliseconds(10000));
  EXPECT_EQ(parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now), milliseconds(0));
  EXPECT_EQ(parse_retry_after("soon", now), std::nullopt);
  EXPECT_EQ(parse_retry_after("", now), std::nullopt);
}

// A clock the test moves: attempts and sleeps take the time they are given.
struct FakeTime {
  std::chrono::steady_clock::time_point now{};
  std::vector<milliseconds> sleeps;
  SteadyClock clock() {
    return [this] { return now; };
  }
  Sleeper sleeper() {
    return [this](milliseconds pause) {
      sleeps.push_back(pause);
      now += pause;
    };
  }
};

Retrier make_retrier(RetryOptions options, FakeTime& time, milliseconds budget = milliseconds(300000),
                     std::uint64_t min_rate = 1024) {
  return Retrier(options, RetryBudget{budget, min_rate}, time.sleeper(), time.clock());
}

TEST(RetryPolicy, BackoffGrowsWithFullJitterAndIsCapped) {
  RetryOptions options;
  options.initial_backoff = milliseconds(100);
  options.max_backoff = milliseconds(1000);
  FakeTime time;
  Retrier retrier = make_retrier(options, time);
  const auto failure = status_result(503);
  milliseconds largest{0};
  for (int i = 0; i < 200; ++i) {
    EXPECT_LE(retrier.delay(1, failure), milliseconds(100));
    EXPECT_LE(retrier.delay(3, failure), milliseconds(400));
    const auto capped = retrier.delay(20, failure);
    EXPECT_LE(capped, milliseconds(1000));
    largest = std::max(largest, capped);
  }
  // Jitter spreads the delays; with 200 draws the largest is near the cap.
  EXPECT_GT(largest, milliseconds(500));
}

TEST(RetryPolicy, RetryAfterIsTheServersWordNotOurCap) {
  RetryOptions options;
  options.max_backoff = milliseconds(5000);
  FakeTime time;
  Retrier retrier = make_retrier(options, time);
  EXPECT_EQ(retrier.delay(1, status_result(429, "2")), milliseconds(2000));
  EXPECT_EQ(retrier.delay(1, status_result(429, "3600")), milliseconds(3600000));
}

TEST(RetryPolicy, AHugeRetryAfterIsAVeryLongWaitNotAnOverflow) {
  const auto now = std::chrono::system_clock::now();
  const auto ten_years = std::chrono::hours(10 * 365 * 24);
  EXPECT_EQ(parse_retry_after("999999999", now), ten_years);
  EXPECT_EQ(parse_retry_after("99999999999999999999999", now), ten_years);
  EXPECT_EQ(parse_retry_after("-5", now), milliseconds(0));
}

TEST(RetryPolicy, RunStopsAtSuccessAndCountsAttempts) {
  RetryOptions options;
  options.initial_backoff = milliseconds(10);
  FakeTime time;
  Retrier retrier = make_retrier(options, time);
  int calls = 0;
  auto result = retrier.run([&] { return ++calls < 3 ? status_result(503) : status_result(200); });
  EXPECT_EQ(result.response.status, 200);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(time.sleeps.size(), 2u);
}

TEST(RetryPolicy, RunGivesUpAfterMaxAttemptsWithoutProgress) {
  RetryOptions options;
  options.max_attempts = 4;
  FakeTime time;
  Retrier retrier = make_retrier(options, time);
  int calls = 0;
  auto result = retrier.run([&] {
    ++calls;
    return transport_result(http::Transport::interrupted);
  });
  EXPECT_EQ(result.transport, http::Transport::interrupted);
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(time.sleeps.size(), 3u);
}

// A connection reset every few hundred KiB is a slow path, not a failure:
// as long as each attempt brings bytes, the count starts again, with no
// overall cap on the number of attempts.
TEST(RetryPolicy, AttemptsThatProgressAreNeverCounted) {
  RetryOptions options;
  options.max_attempts = 3;
  FakeTime time;
  Retrier retrier = make_retrier(options, time);
  std::uint64_t on_disk = 0;
  int calls = 0;
  auto result = retrier.run(
      [&] {
        time.now += milliseconds(100);
        if (++calls > 100) return status_result(200);
        on_disk += 300 * 1024;
        return transport_result(http::Transport::interrupted);
      },
      {}, [&] { return on_disk; });
  EXPECT_EQ(result.response.status, 200);
  EXPECT_EQ(calls, 101);
}

// Bytes that arrive below the minimum rate, pauses included, are no progress:
// a server that trickles, or cuts each connection after a few bytes, is
// given up on.
TEST(RetryPolicy, BytesBelowTheMinimumRateAreNoProgress) {
  RetryOptions options;
  options.max_attempts = 5;
  FakeTime time;
  Retrier retrier = make_retrier(options, time);
  int calls = 0;
  auto result = retrier.run([&] {
    ++calls;
    time.now += std::chrono::seconds(3);
    http::Result r = transport_result(http::Transport::timeout);
    r.body_bytes = 3;  // a byte a second
    return r;
  });
  EXPECT_EQ(result.transport, http::Transport::timeout);
  EXPECT_EQ(calls, 5);
}

// Whatever the attempts, the time without progress is bounded by the budget
// (no attempt starts once a retry could not begin within it; the one under
// way is bounded by its own stall check).
TEST(RetryPolicy, TheBudgetBoundsTheTimeWithoutProgress) {
  RetryOptions options;
  options.max_attempts = 1000;
  options.initial_backoff = milliseconds(100);
  FakeTime time;
  Retrier retrier = make_retrier(options, time, milliseconds(3000));
  const auto start = time.now;
  int calls = 0;
  retrier.run([&] {
    ++calls;
    time.now += milliseconds(1000);  // a stall detected after a second
    return transport_result(http::Transport::timeout);
  });
  EXPECT_LE(time.now - start, milliseconds(3000 + 1000));
  EXPECT_GE(calls, 2);
  EXPECT_LE(calls, 3);
}

TEST(RetryPolicy, ARetryAfterBeyondTheBudgetIsNotWaited) {
  FakeTime time;
  Retrier retrier = make_retrier(RetryOptions{}, time, milliseconds(3000));
  int calls = 0;
  auto result = retrier.run([&] {
    ++calls;
    return status_result(429, "999999999");
  });
  EXPECT_EQ(result.response.status, 429);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(time.sleeps.empty());
}

TEST(RetryPolicy, ARetryAfterWithinTheBudgetIsWaitedInFull) {
  RetryOptions options;
  options.max_backoff = milliseconds(1000);
  FakeTime time;
  Retrier retrier = make_retrier(options, time, milliseconds(10000));
  int calls = 0;
  auto result = retrier.run([&] { return ++calls == 1 ? status_result(503, "5") : status_result(200); });
  EXPECT_EQ(result.response.status, 200);
  ASSERT_EQ(time.sleeps.size(), 1u);
  EXPECT_EQ(time.sleeps[0], milliseconds(5000));
}

TEST(RetryPolicy, RunDoesNotRetryFinalFailures) {
  FakeTime time;
  Retrier retrier = make_retrier(RetryOptions{}, time);
  int calls = 0;
  auto result = retrier.run([&] {
    ++calls;
    return status_result(404);
  });
  EXPECT_EQ(result.response.status, 404);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(time.sleeps.empty());
}

}  // namespace
}  // namespace e2s::detail
