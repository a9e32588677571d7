#include "transfer/download.hpp"

#include <spdlog/spdlog.h>

#include "text.hpp"
#include "transfer/transfer_parts.hpp"
#include "uri/location.hpp"

namespace e2s::detail {

using namespace transfer_parts;

namespace {

// How a single stream ended: the whole file, or, when it was allowed to hand
// over, the first piece of a large file on a server that takes ranges (and
// names its version), on disk for the parallel path to go on from.
struct StreamEnd {
  std::optional<Downloaded> done;
  std::optional<Partial> handoff;
};

// The first request of a stream that may hand over asks for this much: all
// of a small file (one request, as a plain GET), or the first piece of a
// large one, whose reply tells the size. A closed range, so that going
// parallel costs no byte sent twice.
constexpr std::uint64_t kFirstPiece = 1u << 20;

// One stream, resumed at its offset after a cut. With `may_hand_off` (the
// size unknown beforehand, parallel transfers allowed) it starts with the
// first piece and hands a large file over to the parallel path. Continues
// from the written prefix of `resume` when given.
StreamEnd download_single(const RemoteFile& file, const std::filesystem::path& temp_path,
                          const TransferContext& context, bool may_hand_off, const Partial* resume);

// Whether the parallel path should continue `resume`: it can use bytes
// anywhere in the file, a single stream only a prefix from byte 0.
bool resume_in_parallel(const Partial& resume, const TransferContext& context) {
  return context.max_connections > 1 &&
         (resume.size >= kMinParallelSize || resume.written.size() > 1 || resume.prefix() == 0);
}

Downloaded download_fresh(const RemoteFile& file, const std::filesystem::path& temp_path,
                          const TransferContext& context) {
  const bool parallel = context.max_connections > 1;
  if (parallel && file.size && *file.size >= kMinParallelSize) {
    if (auto done = download_parallel(file, temp_path, context)) return *done;
    spdlog::debug("{}: the server ignores Range or names no version; downloading in one stream", file.uri);
    return *download_single(file, temp_path, context, false, nullptr).done;
  }
  // Stores that do not know the size up front (plain HTTP saves the HEAD
  // round trip, which dominates many small files) learn it from the reply.
  StreamEnd stream = download_single(file, temp_path, context, parallel && !file.size, nullptr);
  if (stream.done) return *stream.done;
  RemoteFile sized = file;
  sized.size = stream.handoff->size;
  if (auto done = download_parallel(sized, temp_path, context, &*stream.handoff, /*vouched=*/true)) return *done;
  return *download_single(file, temp_path, context, false, nullptr).done;
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
    spdlog::debug("{}: the bytes of an earlier attempt are of another version; starting afresh",
                  file.uri);
  }
  for (int fresh_starts = 0;; ++fresh_starts) {
    try {
      if (resume == nullptr) return download_fresh(file, temp_path, context);
      spdlog::debug("{}: resuming with {} of {} bytes already on disk", file.uri, resume->bytes(),
                    resume->size);
      if (!resume_in_parallel(*resume, context)) {
        return *download_single(file, temp_path, context, false, resume).done;
      }
      RemoteFile sized = file;
      sized.size = resume->size;
      if (auto done = download_parallel(sized, temp_path, context, resume)) return *done;
      return *download_single(file, temp_path, context, false, nullptr).done;
    } catch (const VersionChanged&) {
      if (fresh_starts + 1 >= kMaxFreshStarts) {
        throw Error(Errc::network,
                    "the server's copy of " + file.uri +
                        " kept changing while it downloaded (another ETag, or none, in each reply); "
                        "try again later",
                    file.uri);
      }
      spdlog::debug("{}: the file changed on the server since its first bytes arrived; starting afresh",
                    file.uri);
      resume = nullptr;
    }
  }
}

namespace {

StreamEnd download_single(const RemoteFile& file, const std::filesystem::path& temp_path,
                          const TransferContext& context, bool may_hand_off, const Partial* resume) {
  // A resumed download always asks for at least its last byte, so that the
  // server vouches for the bytes on disk before they are committed.
  const std::uint64_t resumed =
      resume ? std::min(resume->prefix(), resume->size > 0 ? resume->size - 1 : 0) : 0;
  Checkpointer checkpointer(context);
  if (resumed > 0) {
    // The journal may describe more than the prefix (ranges of a parallel
    // attempt): it is cut down to the prefix before the data file is.
    checkpointer.replace(Partial{resume->size, resume->etag, resume->served_etag, {{0, resumed}}});
  }
  File out(open_output(temp_path, file.uri, /*keep=*/resumed > 0, checkpointer));

  StreamHashes hashes(file);
  std::uint64_t written = 0;
  std::optional<std::uint64_t> total = file.size;
  // The ETag of the server that sent the bytes on disk: a resumed range must
  // come from the same version, and bytes that came without one cannot be
  // continued at all. The store's own ETag (file.etag) may name the file
  // differently (the Hub's sha256 vs. its CDN's ETag), so it is kept apart.
  std::string served_etag;
  // Bytes of an earlier attempt that no reply has vouched for yet.
  bool unconfirmed = false;
  // The first request asks for the first piece only (see kFirstPiece).
  bool first_piece = may_hand_off && resumed == 0;
  std::optional<Error> local_failure;  // a disk error ends the download, no retry
  std::string rejection;               // why the last response was refused, if it was
  int attempts = 0;

  auto snapshot = [&] {
    Partial partial{total.value_or(0), file.etag, served_etag, {}};
    // Bytes not yet vouched for are still those the journal described.
    if (written > 0 && !served_etag.empty()) partial.written.push_back({0, written});
    return partial;
  };
  // Drops every byte on disk: the journal first, then the data.
  auto restart = [&] {
    checkpointer.replace(Partial{});
    hashes.reset();
    written = 0;
    total = file.size;
    served_etag.clear();
    unconfirmed = false;
    if (::ftruncate(out.get(), 0) != 0 || ::lseek(out.get(), 0, SEEK_SET) != 0) {
      local_failure = write_error(temp_path, file.uri, errno);
      return false;
    }
    return true;
  };

  if (resumed > 0) {
    if (hash_existing(out.get(), resumed, hashes) && ::ftruncate(out.get(), static_cast<off_t>(resumed)) == 0 &&
        ::lseek(out.get(), static_cast<off_t>(resumed), SEEK_SET) == static_cast<off_t>(resumed)) {
      written = resumed;
      total = resume->size;
      served_etag = resume->served_etag;
      unconfirmed = true;
    } else if (!restart()) {
      throw *local_failure;
    }
  }

  if (context.progress && written > 0) context.progress(written, total);

  // Decides, once the response headers are in, whether the body continues what
  // is on disk or replaces it.
  auto accept_response = [&](const http::Response& response, bool asked_range) {
    std::string response_etag = unquote_etag(response.header("etag"));
    std::optional<std::uint64_t> announced;
    if (response.status == 206) {
      auto start = content_range_start(response.header("content-range"));
      announced = content_range_total(response.header("content-range"));
      // A range we did not ask for cannot be stitched to anything. Bytes on
      // disk need the server's word that they are of this file: the same
      // ETag (a missing one, on either side, is not the same) and, for an
      // earlier attempt's bytes, the same size.
      if (!asked_range || start != written) {
        rejection = "the server answered a byte range that was not asked for";
        return false;
      }
      if (written > 0 &&
          (response_etag.empty() || response_etag != served_etag || (unconfirmed && announced != total))) {
        rejection = "the file changed on the server since the bytes on disk were written";
        return false;
      }
      if (written == 0) served_etag = response_etag;
      unconfirmed = false;
    } else {
      if (asked_range && written > 0 && !restart()) return false;  // server ignored Range: start over
      served_etag = response_etag;  // every byte on disk comes from this reply
      announced = content_length(response);
    }
    if (announced && !total) {
      try {
        ensure_room(temp_path, *announced, written, file.uri);
      } catch (const Error& error) {
        local_failure = error;
        return false;
      }
    }
    if (announced) {
      if (total && *total != *announced) {
        local_failure = Error(Errc::integrity,
                              "size mismatch for " + file.uri + ": expected " +
                                  std::to_string(*total) + " bytes, the server now sends " +
                                  std::to_string(*announced) +
                                  "; the file changed on the server, try again",
                              file.uri);
        return false;
      }
      total = announced;
    }
    return true;
  };

  http::Request current = file.request;  // replaced when an expired URL is renewed
  bool closed_range = false;              // the last request asked for a closed range
  auto attempt_once = [&]() -> http::Result {
    ++attempts;
    // Bytes that came without an ETag cannot be continued: no reply could
    // vouch that the rest is of the same version.
    if (written > 0 && served_etag.empty() && !restart()) {
      http::Result failed;
      failed.transport = http::Transport::aborted;
      return failed;
    }
    http::Request request = current;
    // The first piece is asked for until it is whole, also after a cut.
    closed_range = first_piece && written < kFirstPiece;
    const bool asked_range = written > 0 || closed_range;
    if (asked_range) {
      request.range_begin = written;
      if (closed_range) {
        request.range_end = kFirstPiece - 1;
      } else {
        request.range_end.reset();
      }
    }
    request.on_response = [&, asked_range](const http::Response& response) {
      return accept_response(response, asked_range);
    };
    SlotGuard slot(context.connection_slots);
    http::Result attempt = context.client->perform(request, [&](const char* data, std::size_t size) {
      for (std::size_t done = 0; done < size;) {
        ssize_t n = ::write(out.get(), data + done, size - done);
        if (n < 0) {
          if (errno == EINTR) continue;
          local_failure = write_error(temp_path, file.uri, errno);
          return false;
        }
        done += static_cast<std::size_t>(n);
      }
      hashes.update(data, size);
      written += size;
      if (context.progress) context.progress(written, total);
      checkpointer.save(snapshot);
      return true;
    });
    if (local_failure) {
      attempt.transport = http::Transport::aborted;  // final, not retried
      return attempt;
    }
    if (attempt.transport == http::Transport::aborted) {
      // Rejected response (wrong range, changed file): retry from zero.
      attempt.transport = restart() ? http::Transport::interrupted : http::Transport::aborted;
      attempt.detail = rejection;
    }
    return attempt;
  };
  auto on_retry = [&file](const http::Result& failed, std::chrono::milliseconds pause) {
    log_retry(file.uri, failed, pause);
  };

  // Progress is the bytes of this version on disk: a restart from zero is none.
  const Retrier::ProgressMeter on_disk = [&written] { return written; };
  // Requests until the file is whole: one, unless the first piece was asked
  // for alone, or a server ends a reply early without error.
  for (int short_replies = 0;;) {
    const std::uint64_t before = written;
    http::Result result = context.retrier->run(attempt_once, on_retry, on_disk);
    // A signed URL that expired part-way is renewed, not failed: the bytes on
    // disk stay and the next request resumes at their end.
    for (int renewals = 0; file.renew && renewals < kMaxRenewals && !local_failure &&
                           result.transport == http::Transport::ok && is_expired(result.response.status);
         ++renewals) {
      spdlog::info("{}: download URL refused (HTTP {}); asking for a new one", file.uri,
                   result.response.status);
      current = file.renew();
      result = context.retrier->run(attempt_once, on_retry, on_disk);
    }
    if (local_failure) throw *local_failure;
    if (closed_range && written == 0 && !total && result.transport == http::Transport::ok &&
        result.response.status == 416) {
      // An empty file has no first piece to give: asked for again, whole.
      first_piece = false;
      continue;
    }
    if (!is_success(result)) {
      checkpointer.save(snapshot, /*force=*/true);  // what arrived stays usable for a later attempt
      throw context.error_for ? context.error_for(result, attempts)
                              : http_error(result, file.uri, attempts);
    }
    const bool asked_piece = closed_range;
    first_piece = false;
    if (!total || written >= *total) {
      // An open-ended reply that ended is the whole file; a closed one of a
      // file of unknown size is followed by an open-ended one.
      if (!(asked_piece && !total)) break;
      continue;
    }
    if (asked_piece && result.response.status == 206 && *total >= kMinParallelSize && !served_etag.empty()) {
      // A large file on a server that takes ranges and names its version:
      // the other connections go on from here, nothing fetched twice.
      checkpointer.save(snapshot, /*force=*/true);
      return {std::nullopt, Partial{*total, file.etag, served_etag, {{0, written}}}};
    }
    // The rest comes in the next request (a server ending a reply early is
    // asked again, a few times, from where it stopped).
    short_replies = written > before ? 0 : short_replies + 1;
    if (short_replies >= 3) {
      throw Error(Errc::network,
                  "the server keeps ending replies of " + file.uri + " early without data; try again",
                  file.uri);
    }
  }
  if (total && written != *total) {
    throw Error(Errc::integrity,
                "size mismatch for " + file.uri + ": expected " + std::to_string(*total) +
                    " bytes, received " + std::to_string(written) + "; try again",
                file.uri);
  }
  Downloaded downloaded{written, hashes.verify(file), file.etag.empty() ? served_etag : file.etag, served_etag};
  if (::fsync(out.get()) != 0) throw write_error(temp_path, file.uri, errno);
  if (context.progress) context.progress(written, written);
  return {downloaded, std::nullopt};
}

}  // namespace

}  // namespace e2s::detail
