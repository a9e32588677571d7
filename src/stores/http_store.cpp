#include <charconv>

#include "stores/store.hpp"

namespace e2s::detail {
namespace {

class HttpStore final : public Store {
 public:
  HttpStore(const Location& location, const StoreContext& context)
      : base_url_(location.base_url), context_(context) {}

  RemoteFile stat(std::string_view file_path, const std::string& uri) override {
    RemoteFile file;
    file.uri = uri;
    file.request.url = base_url_ + "/" + percent_encode(file_path, /*keep_slash=*/true);

    // HEAD tells size and ETag before any body byte moves, so the download can
    // be checked against them. Servers that refuse HEAD are still usable: the
    // GET's own headers then stand in.
    http::Request head = file.request;
    head.method = "HEAD";
    int attempts = 0;
    http::Result result = perform_with_retries(context_, head, uri, attempts);
    if (result.transport == http::Transport::ok) {
      const int status = result.response.status;
      if (status >= 200 && status < 300) {
        file.size = http::parse_decimal(result.response.header("content-length"));
        file.etag = unquote_etag(result.response.header("etag"));
        return file;
      }
      if (status == 405 || status == 501) return file;
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
