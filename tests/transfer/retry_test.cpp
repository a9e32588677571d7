#include "transfer/retry.hpp"

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

TEST(RetryPolicy, BackoffGrowsWithFullJitterAndIsCapped) {
  RetryOptions options;
  options.initial_backoff = milliseconds(100);
  options.max_backoff = milliseconds(1000);
  Retrier retrier(options, [](milliseconds) {});
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

TEST(RetryPolicy, HonoursRetryAfterWithinTheCap) {
  RetryOptions options;
  options.max_backoff = milliseconds(5000);
  Retrier retrier(options, [](milliseconds) {});
  EXPECT_EQ(retrier.delay(1, status_result(429, "2")), milliseconds(2000));
  EXPECT_EQ(retrier.delay(1, status_result(429, "3600")), milliseconds(5000));
}

TEST(RetryPolicy, RunStopsAtSuccessAndCountsAttempts) {
  std::vector<milliseconds> sleeps;
  RetryOptions options;
  options.initial_backoff = milliseconds(10);
  Retrier retrier(options, [&](milliseconds d) { sleeps.push_back(d); });
  int calls = 0;
  auto result = retrier.run([&] { return ++calls < 3 ? status_result(503) : status_result(200); });
  EXPECT_EQ(result.response.status, 200);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(sleeps.size(), 2u);
}

TEST(RetryPolicy, RunGivesUpAfterMaxAttempts) {
  RetryOptions options;
  options.max_attempts = 4;
  int sleeps = 0;
  Retrier retrier(options, [&](milliseconds) { ++sleeps; });
  int calls = 0;
  auto result = retrier.run([&] {
    ++calls;
    return transport_result(http::Transport::interrupted);
  });
  EXPECT_EQ(result.transport, http::Transport::interrupted);
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(sleeps, 3);
}

TEST(RetryPolicy, ProgressResetsTheCountUpToAnOverallCap) {
  RetryOptions options;
  options.max_attempts = 3;
  Retrier retrier(options, [](milliseconds) {});
  int calls = 0;
  // Five interrupted attempts that each delivered bytes, then success.
  auto result = retrier.run([&] {
    if (++calls > 5) return status_result(200);
    auto r = transport_result(http::Transport::interrupted);
    r.body_bytes = 10;
    return r;
  });
  EXPECT_EQ(result.response.status, 200);
  EXPECT_EQ(calls, 6);

  // A server that sends one byte per connection forever is given up on.
  calls = 0;
  result = retrier.run([&] {
    ++calls;
    auto r = transport_result(http::Transport::interrupted);
    r.body_bytes = 1;
    return r;
  });
  EXPECT_EQ(result.transport, http::Transport::interrupted);
  EXPECT_EQ(calls, 3 * Retrier::kProgressAttemptsFactor);
}

TEST(RetryPolicy, RunDoesNotRetryFinalFailures) {
  Retrier retrier(RetryOptions{}, [](milliseconds) { FAIL() << "must not sleep"; });
  int calls = 0;
  auto result = retrier.run([&] {
    ++calls;
    return status_result(404);
  });
  EXPECT_EQ(result.response.status, 404);
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace e2s::detail
