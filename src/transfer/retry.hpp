// The retry policy: the one place that decides which failures are transient
// and how long to wait before trying again.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <string>

#include "e2s/package.hpp"
#include "http/client.hpp"

namespace e2s::detail {

// Sleeps for the given time. Tests substitute one that records instead.
using Sleeper = std::function<void(std::chrono::milliseconds)>;
Sleeper real_sleeper();

// True when repeating the same request may succeed: connection failures,
// interruptions and timeouts, and HTTP 408, 429 and 5xx. TLS failures,
// redirect violations, aborts and other statuses are final.
bool is_transient(const http::Result& result);

// Seconds or HTTP-date of a Retry-After header, relative to `now`; nullopt when
// absent or unparsable.
std::optional<std::chrono::milliseconds> parse_retry_after(
    const std::string& value, std::chrono::system_clock::time_point now);

// Logs a retry (visible with `e2s -v`): what failed, for which URI, and the pause.
void log_retry(const std::string& uri, const http::Result& failed, std::chrono::milliseconds pause);

// One-line human description of a failed result ("HTTP 503", "connection reset: ...").
std::string describe(const http::Result& result);

class Retrier {
 public:
  static constexpr int kProgressAttemptsFactor = 4;

  explicit Retrier(RetryOptions options, Sleeper sleeper = real_sleeper());

  // Delay before retry number `retry` (1 = first retry): Retry-After when the
  // server sent one (capped at max_backoff), else full jitter over
  // initial_backoff * 2^(retry-1), capped at max_backoff.
  std::chrono::milliseconds delay(int retry, const http::Result& failed);

  // Calls `attempt` until it returns a result that is not transient or the
  // attempts are used up; returns the last result. An attempt that delivered
  // body bytes before failing resets the count (up to max_attempts *
  // kProgressAttemptsFactor attempts in all). `on_retry` (optional) hears
  // of each failed attempt before the pause. Thread-safe.
  http::Result run(const std::function<http::Result()>& attempt,
                   const std::function<void(const http::Result&, std::chrono::milliseconds)>&
                       on_retry = {});

  int max_attempts() const noexcept { return options_.max_attempts; }

 private:
  RetryOptions options_;
  Sleeper sleeper_;
  std::mutex rng_mutex_;
  std::mt19937_64 rng_;
};

}  // namespace e2s::detail
