// What a store hands the transfer engine: the request that fetches a file
// and what the store promised about it (size, ETag, digests, version). It
// lives below both so that neither depends on the other.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "http/client.hpp"

namespace e2s::detail {

// What to download and what the store promised about it.
struct RemoteFile {
  std::string uri;                     // for messages; never holds credentials
  http::Request request;               // GET of the whole file; may carry credentials
  std::optional<std::uint64_t> size;   // expected size, when known beforehand
  std::string etag;                    // ETag known beforehand ("" when none), unquoted
  std::string sha256;                  // expected lowercase hex, when the store knows it
  std::string md5;                     // expected lowercase hex (S3 ETag, GCS md5), or ""
  std::optional<std::uint32_t> crc32c; // expected CRC-32C (GCS), when known
  std::string version;                 // the store's version of the file (e.g. a commit), or ""
  // Optional: a fresh request for the same file, for download URLs that
  // expire (signed URLs). Called when the server answers 401, 403 or 410
  // part-way; the download then continues at its offset.
  std::function<http::Request()> renew;
};

// Unquoted entity tag: strips a weak prefix W/ and surrounding quotes. Every
// ETag is compared in this form, whether a store or a reply gave it.
inline std::string unquote_etag(std::string_view etag) {
  if (etag.starts_with("W/")) etag.remove_prefix(2);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') {
    etag = etag.substr(1, etag.size() - 2);
  }
  return std::string(etag);
}

}  // namespace e2s::detail
