// The retry policy: the one place that decides which failures are transient,
// how long to wait before trying again, and when to give up. It sits beside
// the client because every caller of the client retries, stores (metadata
// and listings) as well as the transfer engine (file bytes).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <string>

#include "e2s/options.hpp"
#include "http/client.hpp"

namespace e2s::detail {

// Sleeps for the given time. Tests substitute one that records instead.
using Sleeper = std::function<void(std::chrono::milliseconds)>;
Sleeper real_sleeper();

// The monotonic clock the retry budget is measured with. Tests substitute one.
using SteadyClock = std::function<std::chrono::steady_clock::time_point()>;

// True when repeating the same request may succeed: connection failures,
// interruptions and timeouts, and HTTP 408, 429 and 5xx. TLS failures,
// redirect violations, aborts and other statuses are final.
bool is_transient(const http::Result& result);

// Seconds or HTTP-date of a Retry-After header, relative to `now`; nullopt when
// absent or unparsable. A number too large to represent is a very long wait.
std::optional<std::chrono::milliseconds> parse_retry_after(
    const std::string& value, std::chrono::system_clock::time_point now);

// Logs a retry (visible with `e2s -v`): what failed, for which URI, and the pause.
void log_retry(const std::string& uri, const http::Result& failed, std::chrono::milliseconds pause);

// When the retries of one piece of work (a request, a file's stream, a part)
// stop: the work gives up once `budget` has passed without progress (its
// attempts and the pauses between them counted), or after max_attempts
// attempts in a row without progress, whichever comes first. Progress is new
// bytes arriving at least at `min_rate` over the attempt that brought them.
struct RetryBudget {
  std::chrono::milliseconds budget{300000};
  std::uint64_t min_rate = 1024;  // bytes/s; 0: any new byte is progress
};

class Retrier {
 public:
  // How far a piece of work has got, in bytes; an attempt that raised it (at
  // the minimum rate) made progress.
  using ProgressMeter = std::function<std::uint64_t()>;
  using OnRetry = std::function<void(const http::Result&, std::chrono::milliseconds)>;

  explicit Retrier(RetryOptions options, RetryBudget budget = {}, Sleeper sleeper = real_sleeper(),
                   SteadyClock clock = {});

  // Delay before retry number `retry` (1 = first retry): Retry-After when the
  // server sent one (however long: the budget decides whether to wait it),
  // else full jitter over initial_backoff * 2^(retry-1), capped at max_backoff.
  std::chrono::milliseconds delay(int retry, const http::Result& failed);

  // Calls `attempt` until it returns a result that is not transient, or the
  // budget is spent (see RetryBudget); returns the last result. A pause that
  // would end beyond the budget (a long Retry-After) is not waited: the last
  // result comes back at once. `progress` measures the work (default: the
  // attempt's body bytes). `on_retry` (optional) hears of each failed attempt
  // before the pause. Thread-safe.
  http::Result run(const std::function<http::Result()>& attempt, const OnRetry& on_retry = {},
                   const ProgressMeter& progress = {});

  int max_attempts() const noexcept { return options_.max_attempts; }
  const RetryBudget& budget() const noexcept { return budget_; }

 private:
  RetryOptions options_;
  RetryBudget budget_;
  Sleeper sleeper_;
  SteadyClock clock_;
  std::mutex rng_mutex_;
  std::mt19937_64 rng_;
};

}  // namespace e2s::detail
