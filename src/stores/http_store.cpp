#include "stores/store.hpp"

namespace e2s::detail {
namespace {

class HttpStore final : public Store {
 public:
  HttpStore(const Location& location, const StoreContext& context)
      : base_url_(location.base_url), context_(context) {}

  // No HEAD: one round trip per file is what many small files cost most.
  // The GET's own headers give size and ETag, and a large file switches to
  // parallel ranges from there (download_file).
  RemoteFile stat(std::string_view file_path, const std::string& uri) override {
    RemoteFile file;
    file.uri = uri;
    file.request.url = base_url_ + "/" + percent_encode(file_path, /*keep_slash=*/true);
    return file;
  }

  // A HEAD: a server that refuses it (405) leaves the size unknown.
  RemoteFile stat_with_size(std::string_view file_path, const std::string& uri) override {
    RemoteFile file = stat(file_path, uri);
    http::Request request = file.request;
    request.method = "HEAD";
    int attempts = 0;
    const http::Result result = perform_with_retries(context_, request, uri, attempts);
    if (result.transport != http::Transport::ok) throw error_for(result, uri, attempts);
    if (http::is_2xx(result.response.status)) {
      file.size = http::parse_decimal(result.response.header("content-length"));
      file.etag = unquote_etag(result.response.header("etag"));
    } else if (result.response.status == 404) {
      throw error_for(result, uri, attempts);
    }
    return file;
  }

  // One conditional HEAD (If-None-Match): 304 means unchanged; a 200 is
  // compared by its ETag, for servers that ignore the condition.
  bool unchanged(std::string_view file_path, const std::string& uri, const CachedCopy& cached) override {
    if (cached.etag.empty()) return false;  // nothing to compare with: download to be sure
    http::Request request = stat(file_path, uri).request;
    request.method = "HEAD";
    request.headers.push_back("If-None-Match: \"" + cached.etag + "\"");
    int attempts = 0;
    const http::Result result = perform_with_retries(context_, request, uri, attempts);
    if (result.transport != http::Transport::ok) throw error_for(result, uri, attempts);
    const int status = result.response.status;
    if (status == 304) return true;
    if (http::is_2xx(status)) {
      return unquote_etag(result.response.header("etag")) == cached.etag &&
             http::parse_decimal(result.response.header("content-length")).value_or(cached.size) ==
                 cached.size;
    }
    throw error_for(result, uri, attempts);
  }

 private:
  std::string base_url_;
  StoreContext context_;
};

}  // namespace

std::unique_ptr<Store> make_http_store(const Location& location, const StoreContext& context) {
  return std::make_unique<HttpStore>(location, context);
}

}  // namespace e2s::detail
