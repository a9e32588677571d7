// Downloads one remote file into a local temp file: resumes interrupted
// transfers at their offset, hashes while receiving, checks the size and the
// hash the store announced. The cache decides where the temp file lives and
// commits it; this code only writes it.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <semaphore>
#include <string>

#include "e2s/error.hpp"
#include "http/client.hpp"
#include "http/remote_file.hpp"
#include "http/retry.hpp"
#include "transfer/partial.hpp"

namespace e2s::detail {

struct Downloaded {
  std::uint64_t size = 0;
  std::string sha256;       // of the bytes written
  std::string etag;         // RemoteFile::etag when the store gave one, else the response's (unquoted)
  std::string served_etag;  // the ETag of the replies the bytes came from, "" when none
};

using TransferProgress =
    std::function<void(std::uint64_t bytes_done, std::optional<std::uint64_t> bytes_total)>;

// Turns a failed result (after retries) into the Error the user sees. Stores
// provide their own to decode service-specific error replies.
using ErrorMapper = std::function<Error(const http::Result& failed, int attempts)>;

struct TransferContext {
  http::Client* client = nullptr;
  Retrier* retrier = nullptr;
  TransferProgress progress;  // optional; called from any download thread
  ErrorMapper error_for;      // optional; http_error when empty
  // Parallel ranged requests for one large file; 1 = one stream.
  int max_connections = 1;
  // Shared by every transfer of a package so that parallel files and parts
  // together keep to max_connections requests. Optional.
  std::counting_semaphore<16>* connection_slots = nullptr;
  // What an earlier attempt left in the temp file, if anything. It is used
  // only when the server still serves the same file (size and ETag) and
  // vouches for it on the first reply; otherwise the file is downloaded afresh.
  std::optional<Partial> resume{};
  // Receives, about once a second and when a download fails, the bytes that
  // are durably in the temp file (fdatasync comes first), so that a killed or
  // failed download can be resumed; an empty Partial when the temp file is
  // about to start over. Must record it durably, or remove the record and
  // throw Error(io) when neither is possible. Called from a download thread.
  // Optional.
  std::function<void(const Partial&)> checkpoint{};
  // How often `checkpoint` is called while bytes arrive.
  std::chrono::milliseconds checkpoint_interval{1000};
};

// Files smaller than this always go in one stream: a range request costs a
// round trip and buys nothing on a few MiB.
inline constexpr std::uint64_t kMinParallelSize = 8u << 20;

// Writes `file` into `temp_path` (created, or continued from context.resume)
// and fsyncs it. A file of known size >= kMinParallelSize goes as
// max_connections parallel byte ranges written at their offsets, when the
// server honours Range; otherwise as one stream that resumes at its offset
// after a cut.
// Throws Error: integrity when size or hash do not match, io on local write
// failures, and whatever error_for returns for failed responses. On any throw
// the temp file may remain; the caller removes it.
Downloaded download_file(const RemoteFile& file, const std::filesystem::path& temp_path,
                         const TransferContext& context);

}  // namespace e2s::detail
