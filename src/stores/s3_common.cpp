#include "stores/s3_common.hpp"

#include <pugixml.hpp>

#include <cctype>
#include <utility>

#include "http/errors.hpp"
#include "uri/location.hpp"

namespace e2s::detail {
namespace {

// encoding-type=url encodes keys like a form: '+' is a space there.
std::string percent_decode_plus(std::string_view text) {
  std::string spaced(text);
  for (char& c : spaced) {
    if (c == '+') c = ' ';
  }
  return percent_decode(spaced);
}

// An error code from the server, fit for a message: S3's codes are letters
// and digits, so anything else (or anything long) is dropped.
std::string safe_code(const std::string& code) {
  if (code.empty() || code.size() > 64) return {};
  for (char c : code) {
    if (!std::isalnum(static_cast<unsigned char>(c))) return {};
  }
  return code;
}

std::string status_and_code(int status, const std::string& code) {
  const std::string safe = safe_code(code);
  return "HTTP " + std::to_string(status) + (safe.empty() ? "" : " " + safe);
}

// A mirror's request that failed for a reason the shared rules do not name.
Error mirror_error(const http::Result& failed, const std::string& uri, int attempts,
                  const S3Bucket& bucket, const std::string& code) {
  const std::string tries =
      attempts > 1 ? " after " + std::to_string(attempts) + " attempts" : std::string();
  if (failed.transport != http::Transport::ok) {
    return Error(failed.transport == http::Transport::timeout ? Errc::timeout : Errc::network,
                 "network failure reaching " + uri + tries + ": " + describe(failed) +
                     "; check the connection to " + bucket.host() + ", then try again",
                 uri);
  }
  const int status = failed.response.status;
  if (code == "BadDigest" || code == "InvalidDigest") {
    return Error(Errc::integrity,
                 "S3 received bytes for " + uri + " that do not match their Content-MD5 (" + code +
                     "); the file changed while it was sent or the bytes were damaged on the way: "
                     "write it again",
                 uri, status);
  }
  if (code == "NoSuchUpload") {
    return Error(Errc::other,
                 "the multipart upload of " + uri + " is gone (NoSuchUpload: aborted, or expired "
                 "by a lifecycle rule of the bucket); write the file again",
                 uri, status);
  }
  if (status == 408 || status == 429 || status >= 500) {
    return Error(Errc::network,
                 "S3 kept failing for " + uri + tries + " (" + status_and_code(status, code) +
                     "); try again later",
                 uri, status);
  }
  return Error(Errc::other,
               "S3 refused a request for " + uri + " (" + status_and_code(status, code) +
                   "); check the mirror's bucket" + bucket.endpoint_note() + " and its settings",
               uri, status);
}

}  // namespace

S3Bucket::S3Bucket(std::string name, AwsSettings settings)
    : name_(std::move(name)), settings_(std::move(settings)) {}

// Path-style when an endpoint is set (MinIO, Ceph, moto) and for dotted
// bucket names (their TLS certificates do not cover virtual hosts);
// virtual-hosted on AWS otherwise, as the SDKs do.
bool S3Bucket::path_style() const {
  return !settings_.endpoint.empty() || name_.find('.') != std::string::npos;
}

std::string S3Bucket::host() const {
  if (!settings_.endpoint.empty()) return settings_.endpoint;
  if (path_style()) return "https://s3." + settings_.region + ".amazonaws.com";
  return "https://" + name_ + ".s3." + settings_.region + ".amazonaws.com";
}

std::string S3Bucket::bucket_path() const { return path_style() ? "/" + name_ : "/"; }

// Each key segment encoded once: S3's canonical URI is the path as sent.
std::string S3Bucket::object_path(const std::string& key) const {
  return (path_style() ? "/" + name_ + "/" : "/") + percent_encode(key, true);
}

http::Request S3Bucket::request(const std::string& path, const std::string& query,
                                std::string_view payload_sha256) const {
  http::Request request;
  request.url = host() + path + (query.empty() ? "" : "?" + query);
  if (!settings_.access_key.empty()) {
    // Signed requests are not redirected, as botocore never follows one:
    // the signature is for this host alone, and libcurl would carry the
    // x-amz-security-token header (it only drops Authorization) to
    // whichever host the Location names. s3_error() says where it pointed.
    request.follow_redirects = false;
    request.aws_sigv4 = http::AwsSigV4{settings_.region, "s3", settings_.access_key, settings_.secret_key};
    request.headers.push_back("x-amz-content-sha256: " + std::string(payload_sha256));
    if (!settings_.session_token.empty()) {
      request.headers.push_back("x-amz-security-token: " + settings_.session_token);
    }
  }
  return request;
}

std::string S3Bucket::endpoint_note() const {
  return settings_.endpoint.empty() ? "" : " at " + settings_.endpoint;
}

std::string s3_error_code(std::string_view body) {
  pugi::xml_document document;
  if (!document.load_buffer(body.data(), body.size())) return {};
  return document.child("Error").child_value("Code");
}

std::string s3_list_query(const std::string& prefix, const std::string& token, int max_keys) {
  // libcurl 7.88.1 signs the query as given: it must already be sorted by
  // name and encoded (protocols.md §3.7).
  std::string query;
  if (!token.empty()) query += "continuation-token=" + percent_encode(token, false) + "&";
  query += "encoding-type=url&list-type=2";
  if (max_keys > 0) query += "&max-keys=" + std::to_string(max_keys);
  if (!prefix.empty()) query += "&prefix=" + percent_encode(prefix, false);
  return query;
}

std::optional<S3ListPage> parse_s3_list_page(std::string_view body) {
  pugi::xml_document document;
  if (!document.load_buffer(body.data(), body.size())) return std::nullopt;
  pugi::xml_node listing = document.child("ListBucketResult");
  if (!listing) return std::nullopt;
  S3ListPage page;
  for (pugi::xml_node object : listing.children("Contents")) {
    page.objects.push_back(
        {percent_decode_plus(object.child_value("Key")), http::parse_decimal(object.child_value("Size"))});
  }
  if (std::string_view(listing.child_value("IsTruncated")) == "true") {
    page.next_token = listing.child_value("NextContinuationToken");
  }
  return page;
}

http::Result with_error_body(http::Client& client, const http::Result& head, http::Request get) {
  if (head.transport != http::Transport::ok || !head.response.error_body.empty()) return head;
  get.range_begin = 0;
  get.range_end = 0;
  http::Result result = client.perform(get, [](const char*, std::size_t) { return true; });
  if (result.transport != http::Transport::ok || result.response.status < 300) return head;
  return result;
}

Error s3_error(const http::Result& failed, const std::string& uri, int attempts,
               const S3Bucket& bucket, S3Use use) {
  const bool mirror = use == S3Use::mirror;
  if (failed.transport != http::Transport::ok) {
    return mirror ? mirror_error(failed, uri, attempts, bucket, {}) : http_error(failed, uri, attempts);
  }
  const AwsSettings& settings = bucket.settings();
  const int status = failed.response.status;
  const std::string code = s3_error_code(failed.response.error_body);
  const std::string where = "s3://" + bucket.name();
  if (code == "NoSuchKey" || (code.empty() && status == 404)) {
    return Error(Errc::not_found, "not found: " + uri + " (no such key in " + where +
                                      "); check the file name and the prefix",
                 uri, status);
  }
  if (code == "NoSuchBucket") {
    return Error(Errc::not_found,
                 "bucket " + bucket.name() + " does not exist (" + uri +
                     "); check the bucket name" + bucket.endpoint_note(),
                 uri, status);
  }
  if (code == "SignatureDoesNotMatch") {
    return Error(Errc::unauthorized,
                 "S3 rejected the request signature for " + uri + " (SignatureDoesNotMatch); "
                 "check AWS_SECRET_ACCESS_KEY (credentials from " + settings.credentials_source + ")",
                 uri, status);
  }
  if (code == "InvalidAccessKeyId") {
    return Error(Errc::unauthorized,
                 "S3 does not know the access key used for " + uri +
                     " (InvalidAccessKeyId); check AWS_ACCESS_KEY_ID or AWS_PROFILE" + bucket.endpoint_note(),
                 uri, status);
  }
  if (code == "ExpiredToken" || code == "TokenRefreshRequired") {
    return Error(Errc::unauthorized,
                 "the session credentials have expired (" + uri + ", " + code +
                     "); refresh AWS_SESSION_TOKEN and the keys that go with it",
                 uri, status);
  }
  if (code == "InvalidToken") {
    return Error(Errc::unauthorized,
                 "S3 rejected the session token for " + uri +
                     " (InvalidToken); check AWS_SESSION_TOKEN and the keys that go with it",
                 uri, status);
  }
  if (code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed") {
    const std::string& region = failed.response.header("x-amz-bucket-region");
    return Error(Errc::other,
                 "bucket " + bucket.name() + " is not in region " + settings.region + " (" + uri +
                     "); set AWS_REGION" + (region.empty() ? "" : " to " + region),
                 uri, status);
  }
  if (status >= 300 && status < 400 && !settings.access_key.empty()) {
    const std::string& region = failed.response.header("x-amz-bucket-region");
    const std::string target = url_origin(failed.response.header("location"));
    return Error(Errc::other,
                 "S3 redirected the signed request for " + uri + " (HTTP " + std::to_string(status) +
                     (target.empty() ? "" : " to " + target) +
                     "); credentials are not sent to another host: set AWS_REGION" +
                     (region.empty() ? "" : " to " + region) +
                     " or AWS_ENDPOINT_URL to the bucket's endpoint",
                 uri, status);
  }
  if (code == "AccessDenied" || code == "AllAccessDisabled" || status == 401 || status == 403) {
    std::string hint;
    if (mirror) {
      hint = settings.access_key.empty()
                 ? "the mirror's bucket takes no anonymous writes; set AWS_ACCESS_KEY_ID and "
                   "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, to credentials that may write to it"
                 : "the credentials from " + settings.credentials_source +
                       " may not do this in the mirror's bucket; check the AWS credentials for "
                       "the mirror (AWS_ACCESS_KEY_ID / AWS_PROFILE) and the bucket's policy";
    } else {
      hint = settings.access_key.empty()
                 ? "the bucket refuses anonymous reads; set AWS_ACCESS_KEY_ID and "
                   "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, to credentials with access"
                 : "the credentials from " + settings.credentials_source +
                       " have no access to it; check AWS_ACCESS_KEY_ID / AWS_PROFILE";
    }
    return Error(Errc::unauthorized,
                 "access denied to " + uri + " (" + (code.empty() ? "HTTP " + std::to_string(status) : code) +
                     "); " + hint,
                 uri, status);
  }
  return mirror ? mirror_error(failed, uri, attempts, bucket, code) : http_error(failed, uri, attempts);
}

}  // namespace e2s::detail
