#include "stores/store.hpp"

namespace e2s::detail {
namespace {

class HttpStore final : public Store {
 public:
  explicit HttpStore(const Location& location)
      : base_url_(location.base_url) {}

  // No HEAD: one round trip per file is what many small files cost most.
  // The GET's own headers give size and ETag, and a large file switches to
  // parallel ranges from there (download_file).
  RemoteFile stat(std::string_view file_path, const std::string& uri) override {
    RemoteFile file;
    file.uri = uri;
    file.request.url = base_url_ + "/" + percent_encode(file_path, /*keep_slash=*/true);
    return file;
  }

 private:
  std::string base_url_;
};

}  // namespace

std::unique_ptr<Store> make_http_store(const Location& location, const StoreContext&) {
  return std::make_unique<HttpStore>(location);
}

}  // namespace e2s::detail
