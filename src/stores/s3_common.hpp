// What S3 reads (the s3:// store) and writes (a site mirror's bucket) share
// (protocols.md §3, §7.3): where a bucket's objects are, the requests that
// reach them signed, listing pages, and S3's error replies in words.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "e2s/error.hpp"
#include "env.hpp"
#include "http/client.hpp"

namespace e2s::detail {

// SHA-256 of an empty payload: what x-amz-content-sha256 says of a request
// without a body (libcurl 7.88.1 does not add the header by itself).
inline constexpr std::string_view kEmptyPayloadSha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
// ... and of a streamed body, whose hash is not known before it is sent.
inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";

// One bucket at the endpoint, region and credentials of `settings`.
class S3Bucket {
 public:
  S3Bucket(std::string name, AwsSettings settings);

  const std::string& name() const { return name_; }
  const AwsSettings& settings() const { return settings_; }

  // "https://..." without a trailing '/': where requests go.
  std::string host() const;
  // The path of the bucket ("/" when virtual-hosted) and of one of its keys.
  std::string bucket_path() const;
  std::string object_path(const std::string& key) const;

  // A request for host() + path [+ "?" + query], signed when there are
  // credentials (then never redirected). `query` must be canonical (sorted,
  // encoded, a bare name as "name="; protocols.md §3.7); `payload_sha256` is
  // what x-amz-content-sha256 says of the body.
  http::Request request(const std::string& path, const std::string& query,
                        std::string_view payload_sha256 = kEmptyPayloadSha256) const;

  // " at <endpoint>" for messages when an endpoint is set, else "".
  std::string endpoint_note() const;

 private:
  bool path_style() const;

  std::string name_;
  AwsSettings settings_;
};

// <Error><Code>...</Code></Error> of an S3 error reply; "" when there is none.
std::string s3_error_code(std::string_view body);

// The query of one ListObjectsV2 page (canonical: sorted, encoded) of the
// keys under `prefix` ("" for all), after `token` ("" for the first page);
// `max_keys` 0 leaves the page size to the server (1000).
std::string s3_list_query(const std::string& prefix, const std::string& token, int max_keys = 0);

// One decoded ListObjectsV2 page.
struct S3ListPage {
  struct Object {
    std::string key;  // decoded
    std::optional<std::uint64_t> size;
  };
  std::vector<Object> objects;
  std::string next_token;  // "" on the last page
};

// nullopt when `body` is not a ListBucketResult.
std::optional<S3ListPage> parse_s3_list_page(std::string_view body);

// HEAD errors have no body, so the S3 error code is unknown: when `head`
// failed so, one ranged GET of the first byte (`get`, the same object's GET)
// brings the XML that says what is wrong. Else, or when that GET does not
// fail, `head` as it is.
http::Result with_error_body(http::Client& client, const http::Result& head, http::Request get);

// Whom a failed request was for: a package's reads, or a site mirror's
// bucket (read and written); its messages say what to check.
enum class S3Use { package, mirror };

// A failed S3 request in words: S3's error code decoded, `uri` named, the
// next step said; never a credential.
Error s3_error(const http::Result& failed, const std::string& uri, int attempts,
               const S3Bucket& bucket, S3Use use);

}  // namespace e2s::detail
