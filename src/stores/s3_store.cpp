// Amazon S3 and S3-compatible stores (protocols.md §3): anonymous or SigV4
// signed by libcurl, HEAD for metadata, ListObjectsV2 for listing.
#include <charconv>
#include <pugixml.hpp>

#include "env.hpp"
#include "stores/store.hpp"

namespace e2s::detail {
namespace {

// SHA-256 of an empty payload: every request here is a GET or HEAD, and
// libcurl 7.88.1 does not add x-amz-content-sha256 by itself.
constexpr const char* kEmptyPayloadSha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr int kMaxListPages = 1000000;

bool is_md5_hex(std::string_view text) {
  if (text.size() != 32) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// <Error><Code>...</Code></Error> of an S3 error reply; "" when there is none.
std::string error_code(const std::string& body) {
  pugi::xml_document document;
  if (!document.load_buffer(body.data(), body.size())) return {};
  return document.child("Error").child_value("Code");
}

class S3Store final : public Store {
 public:
  S3Store(const Location& location, const StoreContext& context)
      : bucket_(location.bucket), root_(location.root), context_(context), settings_(aws_settings(context.s3)) {}

  RemoteFile stat(std::string_view file_path, const std::string& uri) override {
    RemoteFile file;
    file.uri = uri;
    file.request = request_for(object_path(key_of(file_path)), "");
    http::Request head = file.request;
    head.method = "HEAD";
    int attempts = 0;
    http::Result result = perform_with_retries(context_, head, uri, attempts);
    if (result.transport != http::Transport::ok || result.response.status < 200 ||
        result.response.status >= 300) {
      throw error_for(with_error_body(result, file.request), uri, attempts);
    }
    file.size = http::parse_decimal(result.response.header("content-length"));
    file.etag = unquote_etag(result.response.header("etag"));
    // A plain 32-hex ETag is the MD5 of a single-part, unencrypted upload;
    // multipart ("...-N") and KMS ETags are not, so those get a size check.
    if (is_md5_hex(file.etag)) file.md5 = file.etag;
    file.version = result.response.header("x-amz-version-id");
    return file;
  }

  std::vector<FileEntry> list(const std::string& uri) override {
    const std::string prefix = bucket_.prefix.empty() ? "" : bucket_.prefix + "/";
    std::vector<FileEntry> files;
    std::string token;
    for (int page = 0; page < kMaxListPages; ++page) {
      // libcurl 7.88.1 signs the query as given: it must already be sorted
      // by name and encoded (protocols.md §3.7).
      std::string query;
      if (!token.empty()) query += "continuation-token=" + percent_encode(token, false) + "&";
      query += "encoding-type=url&list-type=2";
      if (!prefix.empty()) query += "&prefix=" + percent_encode(prefix, false);
      http::Request request = request_for(bucket_path(), query);

      const TextReply reply = fetch_text(context_, request, uri);
      if (!reply.ok()) throw error_for(reply.result, uri, reply.attempts);
      pugi::xml_document document;
      if (!document.load_buffer(reply.body.data(), reply.body.size())) throw malformed(uri);
      pugi::xml_node listing = document.child("ListBucketResult");
      if (!listing) throw malformed(uri);
      for (pugi::xml_node object : listing.children("Contents")) {
        std::string key = percent_decode_plus(object.child_value("Key"));
        // Zero-byte "folder" markers end in '/': not files.
        if (!key.starts_with(prefix) || key.size() == prefix.size() || key.ends_with('/')) continue;
        files.push_back({key.substr(prefix.size()), http::parse_decimal(object.child_value("Size"))});
      }
      token = listing.child_value("NextContinuationToken");
      if (std::string_view(listing.child_value("IsTruncated")) != "true" || token.empty()) break;
    }
    return files;
  }

  Error error_for(const http::Result& failed, const std::string& uri, int attempts) const override {
    if (failed.transport != http::Transport::ok) return http_error(failed, uri, attempts);
    const int status = failed.response.status;
    const std::string code = error_code(failed.response.error_body);
    const std::string where = "s3://" + bucket_.bucket;
    if (code == "NoSuchKey" || (code.empty() && status == 404)) {
      return Error(Errc::not_found, "not found: " + uri + " (no such key in " + where +
                                        "); check the file name and the prefix",
                   uri, status);
    }
    if (code == "NoSuchBucket") {
      return Error(Errc::not_found,
                   "bucket " + bucket_.bucket + " does not exist (" + uri +
                       "); check the bucket name" + endpoint_note(),
                   uri, status);
    }
    if (code == "SignatureDoesNotMatch") {
      return Error(Errc::unauthorized,
                   "S3 rejected the request signature for " + uri + " (SignatureDoesNotMatch); "
                   "check AWS_SECRET_ACCESS_KEY (credentials from " + settings_.credentials_source + ")",
                   uri, status);
    }
    if (code == "InvalidAccessKeyId") {
      return Error(Errc::unauthorized,
                   "S3 does not know the access key used for " + uri +
                       " (InvalidAccessKeyId); check AWS_ACCESS_KEY_ID or AWS_PROFILE" + endpoint_note(),
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
                   "bucket " + bucket_.bucket + " is not in region " + settings_.region + " (" + uri +
                       "); set AWS_REGION" + (region.empty() ? "" : " to " + region),
                   uri, status);
    }
    if (status >= 300 && status < 400 && !settings_.access_key.empty()) {
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
      const std::string hint =
          settings_.access_key.empty()
              ? "the bucket refuses anonymous reads; set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, to credentials with access"
              : "the credentials from " + settings_.credentials_source +
                    " have no access to it; check AWS_ACCESS_KEY_ID / AWS_PROFILE";
      return Error(Errc::unauthorized,
                   "access denied to " + uri + " (" + (code.empty() ? "HTTP " + std::to_string(status) : code) +
                       "); " + hint,
                   uri, status);
    }
    return http_error(failed, uri, attempts);
  }

 private:
  std::string key_of(std::string_view file_path) const {
    return bucket_.prefix.empty() ? std::string(file_path) : bucket_.prefix + "/" + std::string(file_path);
  }

  // Path-style when an endpoint is set (MinIO, Ceph, moto) and for dotted
  // bucket names (their TLS certificates do not cover virtual hosts);
  // virtual-hosted on AWS otherwise, as the SDKs do.
  bool path_style() const {
    return !settings_.endpoint.empty() || bucket_.bucket.find('.') != std::string::npos;
  }

  std::string host() const {
    if (!settings_.endpoint.empty()) return settings_.endpoint;
    if (path_style()) return "https://s3." + settings_.region + ".amazonaws.com";
    return "https://" + bucket_.bucket + ".s3." + settings_.region + ".amazonaws.com";
  }

  std::string bucket_path() const { return path_style() ? "/" + bucket_.bucket : "/"; }

  // Each key segment encoded once: S3's canonical URI is the path as sent.
  std::string object_path(const std::string& key) const {
    return (path_style() ? "/" + bucket_.bucket + "/" : "/") + percent_encode(key, true);
  }

  http::Request request_for(const std::string& path, const std::string& query) const {
    http::Request request;
    request.url = host() + path + (query.empty() ? "" : "?" + query);
    if (!settings_.access_key.empty()) {
      // Signed requests are not redirected, as botocore never follows one:
      // the signature is for this host alone, and libcurl would carry the
      // x-amz-security-token header (it only drops Authorization) to
      // whichever host the Location names. error_for() says where it pointed.
      request.follow_redirects = false;
      request.aws_sigv4 = http::AwsSigV4{settings_.region, "s3", settings_.access_key, settings_.secret_key};
      request.headers.push_back(std::string("x-amz-content-sha256: ") + kEmptyPayloadSha256);
      if (!settings_.session_token.empty()) {
        request.headers.push_back("x-amz-security-token: " + settings_.session_token);
      }
    }
    return request;
  }

  // HEAD errors have no body, so the S3 error code is unknown; one ranged GET
  // of the first byte brings the XML that says what is wrong.
  http::Result with_error_body(const http::Result& head_failure, http::Request get) {
    if (head_failure.transport != http::Transport::ok || !head_failure.response.error_body.empty()) {
      return head_failure;
    }
    get.range_begin = 0;
    get.range_end = 0;
    http::Result result = context_.client->perform(get, [](const char*, std::size_t) { return true; });
    if (result.transport != http::Transport::ok || result.response.status < 300) return head_failure;
    return result;
  }

  static std::string percent_decode_plus(std::string_view text) {
    // encoding-type=url encodes keys like a form: '+' is a space there.
    std::string spaced(text);
    for (char& c : spaced) {
      if (c == '+') c = ' ';
    }
    return percent_decode(spaced);
  }

  std::string endpoint_note() const {
    return settings_.endpoint.empty() ? "" : " at " + settings_.endpoint;
  }

  Error malformed(const std::string& uri) const {
    return Error(Errc::other,
                 "the S3 endpoint " + host() + " answered something that is not an S3 listing for " +
                     uri + "; check AWS_ENDPOINT_URL",
                 uri);
  }

  BucketLocation bucket_;
  std::string root_;
  StoreContext context_;
  AwsSettings settings_;
};

}  // namespace

std::unique_ptr<Store> make_s3_store(const Location& location, const StoreContext& context) {
  return std::make_unique<S3Store>(location, context);
}

}  // namespace e2s::detail
