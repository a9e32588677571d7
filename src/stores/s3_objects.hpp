// Objects of one S3 (or S3-compatible) bucket read and written whole: what a
// site mirror needs beside the S3 store's reads (protocols.md §7.3).
// Credentials, endpoint and region follow the S3 store's rules (S3Options,
// then the environment).
//
// Conditional creates: with `if_absent`, a write first asks HEAD (an object
// already there costs no upload), then sends If-None-Match: * so that a
// writer racing this one is caught by the server: 412 PreconditionFailed is
// Put::already_there. A server that refuses the header (501, or 400
// NotImplemented / InvalidArgument / InvalidRequest) gets the same write
// without it, and keeps getting it from this object; one that ignores it
// relies on the HEAD (a writer racing this one then wins or loses by
// timing). moto 5.2.1 honours it on PUT and on CompleteMultipartUpload, as
// AWS does.
//
// Every request goes under the retry policy. A conditional write whose
// reply was lost and that is sent again finds its own object: already_there.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "e2s/options.hpp"
#include "http/client.hpp"
#include "http/retry.hpp"
#include "stores/s3_common.hpp"

namespace e2s::detail {

// Thread-safe, as the client and the retrier it uses are.
class S3Objects {
 public:

  // `client` and `retrier` must outlive this object.
  S3Objects(std::string bucket, const S3Options& options, http::Client& client, Retrier& retrier);

  struct Info {
    std::uint64_t size = 0;
    std::string etag;  // unquoted
    // x-amz-meta-* names lowercased, without the prefix.
    std::map<std::string, std::string> metadata;
  };

  // nullopt: 404.
  std::optional<Info> head(const std::string& key);

  // already_there: a conditional create found the key.
  enum class Put { created, already_there };

  // Uploads `file`: one PUT (with Content-MD5) up to `multipart_above`
  // bytes (at most 5 GiB, S3's limit of one PUT), else a multipart upload
  // of `part_size` parts (at least 5 MiB; larger when 10,000 parts would not
  // hold the file), each with its Content-MD5, aborted (DELETE ?uploadId) on
  // any failure: no object and no pending upload are left. The file is read
  // through one descriptor, never whole into memory (each part twice: for
  // its Content-MD5, then to send it). One that shrinks while
  // it is sent fails with Error(io); a multipart upload also fails so when
  // the file's size or mtime changed before the Complete. Other changes
  // during one PUT are for the server's Content-MD5 check (AWS checks it;
  // moto 5.2.1 does not). `metadata` becomes x-amz-meta-<name> headers:
  // names of lowercase letters, digits, '-' and '_', values of printable
  // ASCII without leading or trailing spaces (so that they come back as
  // given); others are refused with Error(other) before anything is sent.
  Put put_file(const std::string& key, const std::filesystem::path& file,
               const std::map<std::string, std::string>& metadata, bool if_absent,
               std::uint64_t multipart_above = std::uint64_t{64} << 20,
               std::uint64_t part_size = std::uint64_t{16} << 20);

  // The same for bytes in memory: always one PUT.
  Put put_text(const std::string& key, const std::string& body,
               const std::map<std::string, std::string>& metadata, bool if_absent);

  // nullopt: 404. Error(other) when the object is larger than `max_bytes`.
  std::optional<std::string> get_text(const std::string& key, std::size_t max_bytes);

  // Deletes the object; one that is not there is fine.
  void remove(const std::string& key);

  // Every key under `prefix` ("" for the whole bucket), in S3's order,
  // through ListObjectsV2 pages of up to `page_size` keys (1..1000).
  std::vector<std::string> list(const std::string& prefix, int page_size = 1000);

  // A signed GET of the object, for the transfer engine.
  http::Request get_request(const std::string& key) const;

 private:
  // The most of a reply's body kept (an XML reply; a listing page of 1000
  // keys of 1 KiB, each URL-encoded, is a few MiB).
  static constexpr std::size_t kMaxReplyBytes = std::size_t{16} << 20;

  struct Reply;
  struct Source;

  std::string uri(const std::string& key) const;
  http::Request write_request(const std::string& method, const std::string& key,
                              const std::string& query, std::string_view payload_sha256) const;
  Reply send(const http::Request& request, const std::string& uri, std::size_t limit = kMaxReplyBytes);
  [[noreturn]] void fail(const Reply& reply, const std::string& uri, const Source* source = nullptr) const;

  Put put(const std::string& key, const Source& source, const std::map<std::string, std::string>& metadata,
          bool if_absent, std::uint64_t multipart_above, std::uint64_t part_size);
  Put put_whole(const std::string& key, const Source& source, const std::vector<std::string>& headers,
                bool conditional);
  Put put_parts(const std::string& key, const Source& source, const std::vector<std::string>& headers,
                bool conditional, std::uint64_t part_size);
  std::string create_upload(const std::string& key, const std::vector<std::string>& headers);
  std::string upload_part(const std::string& key, const std::string& upload_id, int number,
                          const Source& source, std::uint64_t offset, std::uint64_t length);
  Put complete(const std::string& key, const std::string& upload_id,
               const std::vector<std::string>& etags, bool conditional);
  void abort_upload(const std::string& key, const std::string& upload_id) noexcept;
  Put conditional_write(const std::function<http::Request(bool conditional)>& request,
                        const std::string& uri, bool conditional, const Source* source = nullptr);

  S3Bucket s3_;
  http::Client& client_;
  Retrier& retrier_;
  std::atomic<bool> conditions_refused_{false};  // the server refused If-None-Match once
};

}  // namespace e2s::detail
