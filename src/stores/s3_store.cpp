// Amazon S3 and S3-compatible stores (protocols.md §3): anonymous or SigV4
// signed by libcurl, HEAD for metadata, ListObjectsV2 for listing.
#include "env.hpp"
#include "stores/s3_common.hpp"
#include "stores/store.hpp"

namespace e2s::detail {
namespace {

constexpr int kMaxListPages = 1000000;

bool is_md5_hex(std::string_view text) {
  if (text.size() != 32) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

class S3Store final : public Store {
 public:
  S3Store(const Location& location, const StoreContext& context)
      : bucket_(location.bucket), root_(location.root), context_(context),
        s3_(location.bucket.bucket, aws_settings(context.s3)) {}

  RemoteFile stat(std::string_view file_path, const std::string& uri) override {
    RemoteFile file;
    file.uri = uri;
    file.request = s3_.request(s3_.object_path(key_of(file_path)), "");
    http::Request head = file.request;
    head.method = "HEAD";
    int attempts = 0;
    http::Result result = perform_with_retries(context_, head, uri, attempts);
    if (result.transport != http::Transport::ok || result.response.status < 200 ||
        result.response.status >= 300) {
      throw error_for(with_error_body(*context_.client, result, file.request), uri, attempts);
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
      http::Request request = s3_.request(s3_.bucket_path(), s3_list_query(prefix, token));
      const TextReply reply = fetch_text(context_, request, uri);
      if (!reply.ok()) throw error_for(reply.result, uri, reply.attempts);
      const std::optional<S3ListPage> listing = parse_s3_list_page(reply.body);
      if (!listing) throw malformed(uri);
      for (const S3ListPage::Object& object : listing->objects) {
        const std::string& key = object.key;
        // Zero-byte "folder" markers end in '/': not files.
        if (!key.starts_with(prefix) || key.size() == prefix.size() || key.ends_with('/')) continue;
        files.push_back({key.substr(prefix.size()), object.size});
      }
      token = listing->next_token;
      if (token.empty()) break;
    }
    return files;
  }

  Error error_for(const http::Result& failed, const std::string& uri, int attempts) const override {
    return s3_error(failed, uri, attempts, s3_, S3Use::package);
  }

 private:
  std::string key_of(std::string_view file_path) const {
    return bucket_.prefix.empty() ? std::string(file_path) : bucket_.prefix + "/" + std::string(file_path);
  }

  Error malformed(const std::string& uri) const {
    return Error(Errc::other,
                 "the S3 endpoint " + s3_.host() + " answered something that is not an S3 listing for " +
                     uri + "; check AWS_ENDPOINT_URL",
                 uri);
  }

  BucketLocation bucket_;
  std::string root_;
  StoreContext context_;
  S3Bucket s3_;
};

}  // namespace

std::unique_ptr<Store> make_s3_store(const Location& location, const StoreContext& context) {
  return std::make_unique<S3Store>(location, context);
}

}  // namespace e2s::detail
