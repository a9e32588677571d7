#include "transfer/download.hpp"


#include "transfer/transfer_parts.hpp"
#include "util/posix.hpp"
#include "log.hpp"

namespace e2s::detail {

using namespace transfer_parts;

namespace {

// The first request of a stream that may hand over asks for this much: all
// of a small file (one request, as a plain GET), or the first piece of a
// large one, whose reply tells the size. A closed range, so that going
// parallel costs no byte sent twice.
constexpr std::uint64_t kFirstPiece = 1u << 20;

// A server that ends this many replies in a row early, without data, is broken.
constexpr int kMaxShortReplies = 3;

// One stream, resumed at its offset after a cut. With `may_hand_off` (the
// size unknown beforehand, parallel transfers allowed) it starts with the
// first piece and hands a large file over to the parallel path. run()
// answers done or go_parallel, and throws Error on any failure.
class SingleStream {
 public:
  SingleStream(const RemoteFile& file, const std::filesystem::path& temp_path,
               const TransferContext& context, bool may_hand_off)
      : file_(file),
        temp_path_(temp_path),
        context_(context),
        checkpointer_(context),
        hashes_(file),
        total_(file.size),
        first_piece_(may_hand_off),
        current_(file.request) {}

  // Downloads the file, continuing from the written prefix of `resume` when given.
  Outcome run(const Partial* resume);

 private:
  void open(const Partial* resume);
  void restart();
  Partial snapshot() const;
  bool accept(const http::Response& response, bool asked_range);
  void expect_size(std::uint64_t announced);
  http::Result attempt();
  void write(const char* data, std::size_t size);
  http::Result request_with_renewals();
  Downloaded finish();

  const RemoteFile& file_;
  const std::filesystem::path& temp_path_;
  const TransferContext& context_;
  Checkpointer checkpointer_;
  std::optional<File> out_;
  StreamHashes hashes_;
  std::uint64_t written_ = 0;
  std::optional<std::uint64_t> total_;
  // The ETag of the server that sent the bytes on disk: a resumed range must
  // come from the same version, and bytes that came without one cannot be
  // continued at all. The store's own ETag (file.etag) may name the file
  // differently (the Hub's sha256 vs. its CDN's ETag), so it is kept apart.
  std::string served_etag_;
  // Bytes of an earlier attempt that no reply has vouched for yet.
  bool unconfirmed_ = false;
  // The next request asks for the first piece only (see kFirstPiece).
  bool first_piece_;
  bool closed_range_ = false;  // the last request asked for a closed range
  std::string rejection_;      // why the last response was refused, if it was
  int attempts_ = 0;
  http::Request current_;      // replaced when an expired URL is renewed
};

Outcome SingleStream::run(const Partial* resume) {
  open(resume);
  if (context_.progress && written_ > 0) context_.progress(written_, total_);
  // Requests until the file is whole: one, unless the first piece was asked
  // for alone, or a server ends a reply early without error.
  bool restarted_past_end = false;
  for (int short_replies = 0;;) {
    const std::uint64_t before = written_;
    const http::Result result = request_with_renewals();
    if (closed_range_ && written_ == 0 && !total_ && result.transport == http::Transport::ok &&
        result.response.status == 416) {
      // An empty file has no first piece to give: asked for again, whole.
      first_piece_ = false;
      continue;
    }
    if (before > 0 && result.transport == http::Transport::ok &&
        result.response.status == 416 && !restarted_past_end) {
      // Nothing lies past the bytes on disk: the file changed into a smaller
      // version since they were written. They cannot be continued; the file
      // is asked for again from zero (once: a second 416 is the server's).
      restarted_past_end = true;
      restart();
      continue;
    }
    if (!is_success(result)) {
      // What arrived stays usable for a later attempt.
      checkpointer_.save([this] { return snapshot(); }, /*force=*/true);
      throw context_.error_for ? context_.error_for(result, attempts_)
                               : http_error(result, file_.uri, attempts_);
    }
    const bool asked_piece = closed_range_;
    first_piece_ = false;
    if (!total_ || written_ >= *total_) {
      // An open-ended reply that ended is the whole file; a closed one of a
      // file of unknown size is followed by an open-ended one.
      if (!(asked_piece && !total_)) break;
      continue;
    }
    if (asked_piece && result.response.status == 206 && *total_ >= kMinParallelSize && !served_etag_.empty()) {
      // A large file on a server that takes ranges and names its version:
      // the other connections go on from here, nothing fetched twice.
      checkpointer_.save([this] { return snapshot(); }, /*force=*/true);
      return Outcome::hand_off(Partial{*total_, file_.etag, served_etag_, {{0, written_}}});
    }
    // The rest comes in the next request (a server ending a reply early is
    // asked again, a few times, from where it stopped).
    short_replies = written_ > before ? 0 : short_replies + 1;
    if (short_replies >= kMaxShortReplies) {
      throw Error(Errc::network,
                  "the server keeps ending replies of " + file_.uri + " early without data; try again",
                  file_.uri);
    }
  }
  return Outcome::finished(finish());
}

// Opens the temp file and takes over the written prefix of `resume`, or
// starts from nothing.
void SingleStream::open(const Partial* resume) {
  // A resumed download always asks for at least its last byte, so that the
  // server vouches for the bytes on disk before they are committed.
  const std::uint64_t resumed =
      resume ? std::min(resume->prefix(), resume->size > 0 ? resume->size - 1 : 0) : 0;
  if (resumed > 0) {
    // The journal may describe more than the prefix (ranges of a parallel
    // attempt): it is cut down to the prefix before the data file is.
    checkpointer_.replace(Partial{resume->size, resume->etag, resume->served_etag, {{0, resumed}}});
  }
  out_.emplace(open_output(temp_path_, file_.uri, /*keep=*/resumed > 0, checkpointer_));
  if (resumed == 0) return;
  first_piece_ = false;
  if (hash_existing(out_->get(), resumed, hashes_) &&
      ::ftruncate(out_->get(), static_cast<off_t>(resumed)) == 0 &&
      ::lseek(out_->get(), static_cast<off_t>(resumed), SEEK_SET) == static_cast<off_t>(resumed)) {
    written_ = resumed;
    total_ = resume->size;
    served_etag_ = resume->served_etag;
    unconfirmed_ = true;
  } else {
    restart();
  }
}

// Drops every byte on disk: the journal first, then the data.
void SingleStream::restart() {
  checkpointer_.replace(Partial{});
  hashes_.reset();
  written_ = 0;
  total_ = file_.size;
  served_etag_.clear();
  unconfirmed_ = false;
  if (::ftruncate(out_->get(), 0) != 0 || ::lseek(out_->get(), 0, SEEK_SET) != 0) {
    throw write_error(temp_path_, file_.uri, errno);
  }
}

Partial SingleStream::snapshot() const {
  Partial partial{total_.value_or(0), file_.etag, served_etag_, {}};
  // Bytes not yet vouched for are still those the journal described.
  if (written_ > 0 && !served_etag_.empty()) partial.written.push_back({0, written_});
  return partial;
}

// Decides, once the response headers are in, whether the body continues what
// is on disk or replaces it. False refuses the reply, with the reason in
// rejection_.
bool SingleStream::accept(const http::Response& response, bool asked_range) {
  const std::string response_etag = unquote_etag(response.header("etag"));
  std::optional<std::uint64_t> announced;
  if (response.status == 206) {
    const auto start = content_range_start(response.header("content-range"));
    announced = content_range_total(response.header("content-range"));
    // A range we did not ask for cannot be stitched to anything. Bytes on
    // disk need the server's word that they are of this file: the same
    // ETag (a missing one, on either side, is not the same) and, for an
    // earlier attempt's bytes, the same size.
    if (!asked_range || start != written_) {
      rejection_ = "the server answered a byte range that was not asked for";
      return false;
    }
    if (written_ > 0 &&
        (response_etag.empty() || response_etag != served_etag_ || (unconfirmed_ && announced != total_))) {
      rejection_ = "the file changed on the server since the bytes on disk were written";
      return false;
    }
    if (written_ == 0) served_etag_ = response_etag;
    unconfirmed_ = false;
  } else {
    if (asked_range && written_ > 0) restart();  // server ignored Range: start over
    served_etag_ = response_etag;  // every byte on disk comes from this reply
    announced = content_length(response);
  }
  if (announced) expect_size(*announced);
  return true;
}

// Holds the download to the size a reply announced: it must fit on the disk,
// and match the size known before, if any. Throws Error(io, integrity).
void SingleStream::expect_size(std::uint64_t announced) {
  if (!total_) {
    ensure_room(temp_path_, announced, written_, file_.uri);
  } else if (*total_ != announced) {
    throw Error(Errc::integrity,
                "size mismatch for " + file_.uri + ": expected " + std::to_string(*total_) +
                    " bytes, the server now sends " + std::to_string(announced) +
                    "; the file changed on the server, try again",
                file_.uri);
  }
  total_ = announced;
}

// One request for the rest of the file (or its first piece). Local failures
// (a full disk, a journal that cannot be written) throw out of it.
http::Result SingleStream::attempt() {
  ++attempts_;
  // Bytes that came without an ETag cannot be continued: no reply could
  // vouch that the rest is of the same version.
  if (written_ > 0 && served_etag_.empty()) restart();
  http::Request request = current_;
  // The first piece is asked for until it is whole, also after a cut.
  closed_range_ = first_piece_ && written_ < kFirstPiece;
  const bool asked_range = written_ > 0 || closed_range_;
  if (asked_range) {
    request.range_begin = written_;
    if (closed_range_) {
      request.range_end = kFirstPiece - 1;
    } else {
      request.range_end.reset();
    }
  }
  request.on_response = [this, asked_range](const http::Response& response) {
    return accept(response, asked_range);
  };
  SlotGuard slot(context_.connection_slots);
  http::Result result = context_.client->perform(request, [this](const char* data, std::size_t size) {
    write(data, size);
    return true;
  });
  if (result.transport == http::Transport::aborted) {
    // accept() refused the reply (wrong range, changed file): the file is
    // asked for again from zero, as after a cut, so the retry policy applies.
    restart();
    result.transport = http::Transport::interrupted;
    result.detail = rejection_;
  }
  return result;
}

void SingleStream::write(const char* data, std::size_t size) {
  if (!write_all(out_->get(), data, size)) throw write_error(temp_path_, file_.uri, errno);
  hashes_.update(data, size);
  written_ += size;
  if (context_.progress) context_.progress(written_, total_);
  checkpointer_.save([this] { return snapshot(); });
}

// Requests under the retry policy. A signed URL that expired part-way is
// renewed, not failed: the bytes on disk stay and the next request resumes
// at their end.
http::Result SingleStream::request_with_renewals() {
  const auto once = [this] { return attempt(); };
  const auto on_retry = [this](const http::Result& failed, std::chrono::milliseconds pause) {
    log_retry(file_.uri, failed, pause);
  };
  // Progress is the bytes of this version on disk: a restart from zero is none.
  const Retrier::ProgressMeter on_disk = [this] { return written_; };
  http::Result result = context_.retrier->run(once, on_retry, on_disk);
  for (int renewals = 0; file_.renew && renewals < kMaxRenewals &&
                         result.transport == http::Transport::ok && is_expired(result.response.status);
       ++renewals) {
    log::info("{}: download URL refused (HTTP {}); asking for a new one", file_.uri,
                 result.response.status);
    current_ = file_.renew();
    result = context_.retrier->run(once, on_retry, on_disk);
  }
  return result;
}

// Checks the whole file against what was promised and makes it durable.
Downloaded SingleStream::finish() {
  if (total_ && written_ != *total_) {
    throw Error(Errc::integrity,
                "size mismatch for " + file_.uri + ": expected " + std::to_string(*total_) +
                    " bytes, received " + std::to_string(written_) + "; try again",
                file_.uri);
  }
  Downloaded downloaded{written_, hashes_.verify(file_), file_.etag.empty() ? served_etag_ : file_.etag,
                        served_etag_};
  if (::fsync(out_->get()) != 0) throw write_error(temp_path_, file_.uri, errno);
  if (context_.progress) context_.progress(written_, written_);
  return downloaded;
}

Outcome download_single(const RemoteFile& file, const std::filesystem::path& temp_path,
                        const TransferContext& context, bool may_hand_off, const Partial* resume) {
  return SingleStream(file, temp_path, context, may_hand_off).run(resume);
}

// Whether the parallel path should continue `resume`: it can use bytes
// anywhere in the file, a single stream only a prefix from byte 0.
bool resume_in_parallel(const Partial& resume, const TransferContext& context) {
  return context.max_connections > 1 &&
         (resume.size >= kMinParallelSize || resume.written.size() > 1 || resume.prefix() == 0);
}

// The parallel path for `file` of `size` bytes, from `resume` when given; one
// stream from nothing when the server turns out to refuse ranges or name no
// version. Answers done or afresh.
Outcome parallel_else_one_stream(const RemoteFile& file, std::uint64_t size,
                                 const std::filesystem::path& temp_path, const TransferContext& context,
                                 const Partial* resume, bool vouched) {
  RemoteFile sized = file;
  sized.size = size;
  Outcome outcome = download_parallel(sized, temp_path, context, resume, vouched);
  if (outcome.next != Outcome::Next::one_stream) return outcome;
  log::debug("{}: the server ignores Range or names no version; downloading in one stream", file.uri);
  return download_single(file, temp_path, context, /*may_hand_off=*/false, nullptr);
}

// Answers done or afresh.
Outcome download_fresh(const RemoteFile& file, const std::filesystem::path& temp_path,
                       const TransferContext& context) {
  const bool parallel = context.max_connections > 1;
  if (parallel && file.size && *file.size >= kMinParallelSize) {
    return parallel_else_one_stream(file, *file.size, temp_path, context, nullptr, /*vouched=*/false);
  }
  // Stores that do not know the size up front (plain HTTP saves the HEAD
  // round trip, which dominates many small files) learn it from the reply.
  Outcome stream = download_single(file, temp_path, context, parallel && !file.size, nullptr);
  if (stream.next != Outcome::Next::go_parallel) return stream;
  return parallel_else_one_stream(file, stream.handoff->size, temp_path, context, &*stream.handoff,
                                  /*vouched=*/true);
}

// Continues `resume`, or starts from nothing when it is null. Answers done or afresh.
Outcome download_from(const RemoteFile& file, const std::filesystem::path& temp_path,
                      const TransferContext& context, const Partial* resume) {
  if (resume == nullptr) return download_fresh(file, temp_path, context);
  log::debug("{}: resuming with {} of {} bytes already on disk", file.uri, resume->bytes(), resume->size);
  if (!resume_in_parallel(*resume, context)) {
    return download_single(file, temp_path, context, /*may_hand_off=*/false, resume);
  }
  return parallel_else_one_stream(file, resume->size, temp_path, context, resume, /*vouched=*/false);
}

// How often a download starts the file over because the server's copy
// changed under it (another ETag) before it gives up.
constexpr int kMaxFreshStarts = 3;

}  // namespace

Downloaded download_file(const RemoteFile& file, const std::filesystem::path& temp_path,
                         const TransferContext& context) {
  const Partial* resume = usable_resume(file, context.resume);
  if (file.size) ensure_room(temp_path, *file.size, resume ? resume->bytes() : 0, file.uri);
  if (context.resume && !context.resume->written.empty() && resume == nullptr) {
    log::debug("{}: the bytes of an earlier attempt are of another version; starting afresh",
                  file.uri);
  }
  for (int starts = 1;; ++starts) {
    Outcome outcome = download_from(file, temp_path, context, resume);
    if (outcome.next == Outcome::Next::done) return std::move(*outcome.downloaded);
    if (starts >= kMaxFreshStarts) {
      throw Error(Errc::network,
                  "the server's copy of " + file.uri +
                      " kept changing while it downloaded (another ETag or size, or none, in each reply); "
                      "try again later",
                  file.uri);
    }
    log::debug("{}: the file changed on the server since its first bytes arrived; starting afresh",
                  file.uri);
    resume = nullptr;
  }
}

}  // namespace e2s::detail
