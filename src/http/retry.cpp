#include "http/retry.hpp"

#include <algorithm>
#include <charconv>
#include <ctime>
#include <limits>
#include <thread>

#include "http/errors.hpp"
#include "log.hpp"

namespace e2s::detail {

Sleeper real_sleeper() {
  return [](std::chrono::milliseconds delay) { std::this_thread::sleep_for(delay); };
}

bool is_transient(const http::Result& result) {
  switch (result.transport) {
    case http::Transport::timeout:
    case http::Transport::connect_failed:
    case http::Transport::interrupted:
      return true;
    case http::Transport::ok: {
      const int status = result.response.status;
      return status == 408 || status == 429 || (status >= 500 && status <= 599);
    }
    default:
      return false;
  }
}

std::optional<std::chrono::milliseconds> parse_retry_after(
    const std::string& value, std::chrono::system_clock::time_point now) {
  if (value.empty()) return std::nullopt;
  long long seconds = 0;
  auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
  if (ptr == value.data() + value.size() && ec == std::errc::result_out_of_range && value[0] != '-') {
    seconds = std::numeric_limits<long long>::max();
    ec = std::errc();
  }
  if (ec == std::errc() && ptr == value.data() + value.size()) {
    // Ten years stands for anything longer: no budget is that long.
    constexpr long long kForever = 10LL * 365 * 24 * 3600;
    return std::chrono::milliseconds(std::clamp(seconds, 0LL, kForever) * 1000);
  }
  // The other form RFC 9110 allows: an IMF-fixdate such as
  // "Wed, 21 Oct 2015 07:28:00 GMT".
  std::tm tm{};
  const char* end = strptime(value.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  const auto when = std::chrono::system_clock::from_time_t(timegm(&tm));
  const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(when - now);
  return std::max(wait, std::chrono::milliseconds(0));
}

void log_retry(const std::string& uri, const http::Result& failed, std::chrono::milliseconds pause) {
  log::info("{}: {}; retrying in {} ms", uri, describe(failed), pause.count());
}

Retrier::Retrier(RetryOptions options, RetryBudget budget, Sleeper sleeper, SteadyClock clock)
    : options_(options),
      budget_(budget),
      sleeper_(std::move(sleeper)),
      clock_(std::move(clock)),
      rng_(std::random_device{}()) {
  options_.max_attempts = std::max(1, options_.max_attempts);
  if (!clock_) clock_ = [] { return std::chrono::steady_clock::now(); };
}

std::chrono::milliseconds Retrier::delay(int retry, const http::Result& failed) {
  if (failed.transport == http::Transport::ok) {
    if (auto after = parse_retry_after(failed.response.header("retry-after"),
                                       std::chrono::system_clock::now())) {
      return *after;
    }
  }
  // Full jitter: many clients that failed together must not retry together.
  const int shift = std::clamp(retry - 1, 0, 30);
  const auto ceiling =
      std::min<long long>(options_.initial_backoff.count() << shift, options_.max_backoff.count());
  std::lock_guard lock(rng_mutex_);
  std::uniform_int_distribution<long long> jitter(0, std::max(0LL, ceiling));
  return std::chrono::milliseconds(jitter(rng_));
}

http::Result Retrier::run(const std::function<http::Result()>& attempt, const OnRetry& on_retry,
                          const ProgressMeter& progress) {
  // A transfer that keeps moving forward is not failing: like a resumable
  // reader, only attempts without progress count, and the budget is the time
  // since the last progress. A server that trickles a byte per connection is
  // not progress (too slow), nor is one that makes us start over each time.
  auto last_progress = clock_();
  std::uint64_t gained = 0;  // bytes since last_progress
  int failures_in_a_row = 0;
  for (;;) {
    const std::uint64_t before = progress ? progress() : 0;
    http::Result result = attempt();
    if (!is_transient(result)) return result;
    const auto now = clock_();
    const std::uint64_t after = progress ? progress() : before + result.body_bytes;
    gained += after > before ? after - before : 0;
    // Measured from the last progress, pauses included: a server that cuts
    // every connection after a few bytes is as slow as one that trickles.
    const double seconds = std::chrono::duration<double>(now - last_progress).count();
    if (gained > 0 && static_cast<double>(gained) >= static_cast<double>(budget_.min_rate) * seconds) {
      failures_in_a_row = 0;
      last_progress = now;
      gained = 0;
    }
    if (++failures_in_a_row >= options_.max_attempts) return result;
    const auto pause = delay(failures_in_a_row, result);
    if (now + pause - last_progress > budget_.budget) {
      log::debug("giving up after {}: the next attempt ({} ms from now) would pass the timeout "
                    "of {} ms without progress",
                    describe(result), pause.count(), budget_.budget.count());
      return result;
    }
    if (on_retry) on_retry(result, pause);
    sleeper_(pause);
  }
}

}  // namespace e2s::detail
