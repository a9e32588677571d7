// Parallel ranged download of one file: N workers fetch the parts a Plan
// hands out with Range requests and write them at their offsets. A hashing
// thread follows the contiguous written prefix, so digests come out right
// whatever order the parts finish in, without a second pass after the
// download.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "transfer/plan.hpp"
#include "transfer/transfer_parts.hpp"
#include "util/posix.hpp"
#include "log.hpp"

namespace e2s::detail {
namespace {

using namespace transfer_parts;

// Pieces of the plan: big early, small at the end (see plan.hpp).
constexpr std::uint64_t kMinPiece = 1u << 20;
constexpr std::uint64_t kMaxPiece = 64u << 20;
constexpr std::size_t kHashBlock = 1u << 20;
// A 206 that delivers nothing this many times in a row is a broken server.
constexpr int kMaxEmptyReplies = 3;

enum class RangeSupport { unknown, yes, no };

class ParallelDownload {
 public:
  ParallelDownload(const RemoteFile& file, const std::filesystem::path& temp_path,
                   const TransferContext& context, const Partial* resume, bool vouched)
      : file_(file),
        temp_path_(temp_path),
        context_(context),
        size_(*file.size),
        connections_(static_cast<int>(std::clamp<std::uint64_t>(
            (size_ + kMinPiece - 1) / kMinPiece, 1, static_cast<std::uint64_t>(context.max_connections)))),
        plan_(size_, PlanOptions{connections_, kMinPiece, kMaxPiece, std::chrono::milliseconds(1000), {}}, resume),
        hashes_(file),
        resume_(resume),
        checkpointer_(context),
        request_(file.request) {
    if (resume_ != nullptr) served_etag_ = resume_->served_etag;
    // A reply of this process has just vouched for the bytes on disk and
    // shown that the server takes ranges: every connection starts at once.
    if (vouched && resume_ != nullptr) support_.store(RangeSupport::yes);
  }

  Outcome run() {
    File out(open_output(temp_path_, file_.uri, /*keep=*/resume_ != nullptr, checkpointer_));
    fd_ = out.get();
    if (resume_ != nullptr) {
      received_.store(resume_->bytes());
      if (context_.progress) context_.progress(received_.load(), size_);
    }
    // Reserve the whole file now: a full disk shows before any byte moves.
    if (int error = ::posix_fallocate(fd_, 0, static_cast<off_t>(size_)); error != 0) {
      if (error != EOPNOTSUPP && error != EINVAL) throw write_error(temp_path_, file_.uri, error);
      if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0) throw write_error(temp_path_, file_.uri, errno);
    }

    std::thread hasher([this] { hash_in_order(); });
    std::vector<std::thread> workers;
    for (int i = 0; i < connections_; ++i) workers.emplace_back([this, i] { work(i == 0); });
    for (auto& worker : workers) worker.join();
    finished_.store(true);
    wake_hasher();
    hasher.join();

    if (version_changed_.load()) return Outcome::start_afresh();
    if (support_ == RangeSupport::no) return Outcome::in_one_stream();
    if (failure_) {
      // What arrived stays usable for a later attempt.
      checkpointer_.save([this] { return snapshot(); }, /*force=*/true);
      throw *failure_;
    }
    if (hashed_ != size_) {
      throw Error(Errc::integrity,
                  "incomplete download of " + file_.uri + ": " + std::to_string(hashed_) + " of " +
                      std::to_string(size_) + " bytes arrived; try again",
                  file_.uri);
    }
    Downloaded downloaded{size_, hashes_.verify(file_), file_.etag.empty() ? served_etag_ : file_.etag,
                          served_etag_};
    if (::fsync(fd_) != 0) throw write_error(temp_path_, file_.uri, errno);
    if (context_.progress) context_.progress(size_, size_);
    return Outcome::finished(std::move(downloaded));
  }

 private:
  // One connection: the first worker's first request also finds out whether
  // the server honours Range; the others wait for that answer.
  void work(bool probe) {
    if (!probe && !wait_for_range_support()) return;
    while (!stopped()) {
      Part* part = plan_.take();
      if (part == nullptr) {
        // Nothing left to fetch (a resume that had it all): nobody waits on a probe.
        if (probe) set_support(RangeSupport::yes);
        if (plan_.parts_held() == 0) return;
        // Others are still at work: one of them may come to lag and be
        // split, so this connection stays ready for a while.
        std::unique_lock lock(mutex_);
        idle_.wait_for(lock, kIdlePoll, [this] { return stopped(); });
        continue;
      }
      if (!fetch(*part, probe)) return;
      plan_.finish(part);
      wake_hasher();
      probe = false;
    }
  }

  // How often an idle connection looks for a lagging part to split.
  static constexpr std::chrono::milliseconds kIdlePoll{100};

  bool wait_for_range_support() {
    std::unique_lock lock(mutex_);
    support_known_.wait(lock, [this] { return support_ != RangeSupport::unknown || failure_ || stopped(); });
    return support_ == RangeSupport::yes && !failure_ && !stopped();
  }

  void set_support(RangeSupport support) {
    {
      std::lock_guard lock(mutex_);
      if (support_.load() == RangeSupport::unknown) support_.store(support);
    }
    support_known_.notify_all();
  }

  void fail(Error error) {
    {
      std::lock_guard lock(mutex_);
      if (!failure_) failure_ = std::move(error);
    }
    stop_.store(true);
    support_known_.notify_all();
    idle_.notify_all();
  }

  bool stopped() const { return stop_.load(); }

  // The server now serves another version than the bytes on disk (another
  // ETag or size): every connection stops, and the file starts afresh.
  void version_changed() {
    version_changed_.store(true);
    stop_.store(true);
    support_known_.notify_all();
    idle_.notify_all();
  }

  // Fetches the rest of `part`, retrying alone what fails. False when the
  // whole download must stop.
  bool fetch(Part& part, bool probe) {
    int empty_replies = 0;
    int attempts = 0;
    while (part.next.load() < part.end.load()) {
      if (stopped()) return false;
      const std::uint64_t before = part.next.load();
      std::string rejection;
      http::Result result = context_.retrier->run(
          [&] {
            ++attempts;
            return request_part(part, probe, rejection);
          },
          [this](const http::Result& failed, std::chrono::milliseconds pause) {
            log_retry(file_.uri, failed, pause);
          },
          [&part] { return part.next.load(); });
      if (support_ == RangeSupport::no) return false;
      if (stopped()) return false;
      if (is_success(result)) {
        // A 206 may stop short of what was asked (and a stolen tail ends the
        // request early on purpose): ask again from where it stopped.
        empty_replies = part.next.load() > before ? 0 : empty_replies + 1;
        if (empty_replies >= kMaxEmptyReplies) {
          fail(Error(Errc::network,
                     "the server keeps answering byte ranges of " + file_.uri + " without data; try "
                     "again, or use --connections 1",
                     file_.uri));
          return false;
        }
        continue;
      }
      if (result.transport == http::Transport::ok && is_expired(result.response.status) && renew()) {
        continue;
      }
      if (result.transport == http::Transport::ok && result.response.status == 416) {
        // Nothing at these bytes: the file is shorter than the one planned
        // for, another version.
        version_changed();
        return false;
      }
      if (!rejection.empty()) result.detail = rejection;
      fail(context_.error_for ? context_.error_for(result, attempts)
                              : http_error(result, file_.uri, attempts));
      return false;
    }
    return true;
  }

  http::Result request_part(Part& part, bool probe, std::string& rejection) {
    http::Request request = current_request();
    const std::uint64_t from = part.next.load();
    request.range_begin = from;
    request.range_end = part.end.load() - 1;
    request.on_response = [&, from, probe](const http::Response& response) {
      return accept(response, from, probe, rejection);
    };
    SlotGuard slot(context_.connection_slots);
    http::Result result = context_.client->perform(request, [&](const char* data, std::size_t size) {
      return write(part, data, size);
    });
    if (stopped()) {
      // The download is over (another version on the server, a failure
      // recorded in failure_): whatever this request met, it is not retried,
      // and fetch() returns without looking at it.
      result.transport = http::Transport::aborted;
      return result;
    }
    if (result.transport != http::Transport::aborted) return result;
    if (!rejection.empty()) {
      // Our own refusal of a reply (wrong range, no ETag): worth a retry.
      result.transport = http::Transport::interrupted;
      result.detail = rejection;
    } else {
      // The sink stopped at the part's end, lowered when another connection
      // took over its tail: the request did its share.
      result.transport = http::Transport::ok;
      result.response.status = 206;
    }
    return result;
  }

  bool accept(const http::Response& response, std::uint64_t from, bool probe, std::string& rejection) {
    if (response.status == 200) {
      if (probe) {
        set_support(RangeSupport::no);
        return false;
      }
      rejection = "the server stopped honouring Range requests";
      return false;
    }
    const std::string& range = response.header("content-range");
    const auto total = content_range_total(range);
    if (total && *total != size_) {
      rejection = "the file changed on the server: it now has " + std::to_string(*total) + " bytes";
      version_changed();
      return false;
    }
    if (content_range_start(range) != from || !total) {
      rejection = "the server answered a byte range that was not asked for (" + range + ")";
      return false;
    }
    // Every part must come from the version of the bytes already on disk:
    // the same ETag, and a missing one is never the same. The first reply of
    // a fresh download names that version; without an ETag, parts of two
    // versions could not be told apart, so the file goes as one stream.
    const std::string etag = unquote_etag(response.header("etag"));
    enum class Verdict { same, unnamed, changed } verdict = Verdict::same;
    {
      std::lock_guard lock(mutex_);
      if (served_etag_.empty()) {
        if (etag.empty()) {
          verdict = Verdict::unnamed;
        } else {
          served_etag_ = etag;
        }
      } else if (etag != served_etag_) {
        verdict = Verdict::changed;
      }
    }
    if (verdict == Verdict::unnamed) {
      rejection = "the server names no version of the file (no ETag)";
      if (probe) set_support(RangeSupport::no);
      return false;
    }
    if (verdict == Verdict::changed) {
      rejection = "the file changed on the server since the bytes on disk were written";
      version_changed();
      return false;
    }
    if (probe) set_support(RangeSupport::yes);
    return true;
  }

  bool write(Part& part, const char* data, std::size_t size) {
    if (stopped()) return false;
    std::uint64_t position = part.next.load();
    const std::uint64_t end = part.end.load();
    if (position >= end) return false;
    const std::size_t count = static_cast<std::size_t>(std::min<std::uint64_t>(size, end - position));
    if (!pwrite_all(fd_, data, count, static_cast<off_t>(position))) {
      fail(write_error(temp_path_, file_.uri, errno));
      return false;
    }
    part.next.store(position + count);
    const std::uint64_t received = received_.fetch_add(count) + count;
    if (context_.progress) context_.progress(std::min(received, size_), size_);
    if (received - last_wake_.load() >= kHashBlock) {
      last_wake_.store(received);
      wake_hasher();
    }
    return count == size;  // false: the rest belongs to a part someone took over
  }

  // Signed URLs that expired: one worker asks for a new one, the others use it.
  bool renew() {
    if (!file_.renew) return false;
    std::lock_guard lock(request_mutex_);
    if (renewals_ >= kMaxRenewals) return false;
    ++renewals_;
    log::info("{}: download URL refused; asking for a new one", file_.uri);
    request_ = file_.renew();
    return true;
  }

  http::Request current_request() {
    std::lock_guard lock(request_mutex_);
    return request_;
  }

  void wake_hasher() {
    { std::lock_guard lock(hash_mutex_); }
    hash_wake_.notify_one();
  }

  // Feeds the digests with the written prefix of the file, in order, as it
  // grows. The bytes come back from the page cache, just written.
  void hash_in_order() {
    std::vector<char> block(kHashBlock);
    for (;;) {
      const std::uint64_t until = plan_.written_until(hashed_);
      while (hashed_ < until) {
        const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(block.size(), until - hashed_));
        const ssize_t n = pread_some(fd_, block.data(), want, static_cast<off_t>(hashed_));
        if (n <= 0) {
          fail(Error(Errc::io, "cannot read back " + temp_path_.string() + " to hash it: " +
                                   errno_text(n < 0 ? errno : EIO),
                     file_.uri));
          return;
        }
        hashes_.update(block.data(), static_cast<std::size_t>(n));
        hashed_ += static_cast<std::uint64_t>(n);
      }
      if (hashed_ >= size_ || stopped()) return;
      checkpointer_.save([this] { return snapshot(); });
      std::unique_lock lock(hash_mutex_);
      if (finished_.load() && plan_.written_until(hashed_) == hashed_) return;
      hash_wake_.wait_for(lock, std::chrono::milliseconds(20));
    }
  }

  Partial snapshot() {
    std::lock_guard lock(mutex_);
    return Partial{size_, file_.etag, served_etag_, plan_.written()};
  }

  const RemoteFile& file_;
  const std::filesystem::path& temp_path_;
  const TransferContext& context_;
  const std::uint64_t size_;
  const int connections_;
  Plan plan_;
  StreamHashes hashes_;
  const Partial* resume_;
  int fd_ = -1;
  Checkpointer checkpointer_;

  std::mutex mutex_;  // guards failure_, served_etag_ and changes of support_
  std::condition_variable support_known_;
  std::condition_variable idle_;  // idle connections, woken when the download stops
  std::atomic<RangeSupport> support_{RangeSupport::unknown};
  std::optional<Error> failure_;
  std::string served_etag_;  // the version of the bytes on disk; "" until a reply names it
  std::atomic<bool> version_changed_{false};  // a reply showed they are of another version
  std::atomic<bool> stop_{false};

  std::mutex request_mutex_;  // guards request_, renewals_
  http::Request request_;
  int renewals_ = 0;

  std::atomic<std::uint64_t> received_{0};
  std::atomic<std::uint64_t> last_wake_{0};
  std::mutex hash_mutex_;
  std::condition_variable hash_wake_;
  std::atomic<bool> finished_{false};
  std::uint64_t hashed_ = 0;  // owned by the hashing thread until it is joined
};

}  // namespace

namespace transfer_parts {

Outcome download_parallel(const RemoteFile& file, const std::filesystem::path& temp_path,
                          const TransferContext& context, const Partial* resume, bool vouched) {
  ensure_room(temp_path, *file.size, resume ? resume->bytes() : 0, file.uri);
  return ParallelDownload(file, temp_path, context, resume, vouched).run();
}

}  // namespace transfer_parts

}  // namespace e2s::detail
