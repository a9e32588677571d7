#include "transfer/retry.hpp"

#include <algorithm>
#include <charconv>
#include <ctime>
#include <spdlog/spdlog.h>
#include <thread>

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
  if (ec == std::errc() && ptr == value.data() + value.size()) {
    return std::chrono::milliseconds(std::max(0LL, seconds) * 1000);
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

std::string describe(const http::Result& result) {
  switch (result.transport) {
    case http::Transport::ok:
      return "HTTP " + std::to_string(result.response.status);
    case http::Transport::timeout:
      return "timed out (" + result.detail + ")";
    case http::Transport::connect_failed:
      return "could not connect (" + result.detail + ")";
    case http::Transport::interrupted:
      return "connection interrupted (" + result.detail + ")";
    case http::Transport::tls:
      return "TLS failure (" + result.detail + ")";
    case http::Transport::too_many_redirects:
      return "redirect refused (" + result.detail + ")";
    case http::Transport::aborted:
      return "transfer aborted";
    case http::Transport::other:
      break;
  }
  return "transfer failed (" + result.detail + ")";
}

void log_retry(const std::string& uri, const http::Result& failed, std::chrono::milliseconds pause) {
  spdlog::info("{}: {}; retrying in {} ms", uri, describe(failed), pause.count());
}

Retrier::Retrier(RetryOptions options, Sleeper sleeper)
    : options_(options), sleeper_(std::move(sleeper)), rng_(std::random_device{}()) {
  options_.max_attempts = std::max(1, options_.max_attempts);
}

std::chrono::milliseconds Retrier::delay(int retry, const http::Result& failed) {
  if (failed.transport == http::Transport::ok) {
    if (auto after = parse_retry_after(failed.response.header("retry-after"),
                                       std::chrono::system_clock::now())) {
      return std::min(*after, options_.max_backoff);
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

http::Result Retrier::run(
    const std::function<http::Result()>& attempt,
    const std::function<void(const http::Result&, std::chrono::milliseconds)>& on_retry) {
  // A transfer that keeps moving forward is not failing: like huggingface_hub,
  // an attempt that delivered bytes resets the count. The overall cap stops a
  // server that trickles a byte per connection from holding us forever.
  const int total_cap = options_.max_attempts * kProgressAttemptsFactor;
  int failures_in_a_row = 0;
  for (int number = 1;; ++number) {
    http::Result result = attempt();
    if (!is_transient(result)) return result;
    failures_in_a_row = result.body_bytes > 0 ? 1 : failures_in_a_row + 1;
    if (failures_in_a_row >= options_.max_attempts || number >= total_cap) return result;
    const auto pause = delay(failures_in_a_row, result);
    if (on_retry) on_retry(result, pause);
    sleeper_(pause);
  }
}

}  // namespace e2s::detail
