// Google Cloud Storage, read anonymously as Earth2Studio does (protocols.md
// §4): objects through the public object URL, listing through the JSON API.
#include <charconv>
#include <nlohmann/json.hpp>

#include "util/encoding.hpp"
#include "env.hpp"
#include "stores/store.hpp"

namespace e2s::detail {
namespace {

constexpr int kMaxListPages = 1000000;

// "crc32c=<b64>,md5=<b64>" (two header lines arrive joined by ", ").
void read_goog_hash(const std::string& header, RemoteFile& file) {
  std::size_t pos = 0;
  while (pos < header.size()) {
    auto end = header.find(',', pos);
    if (end == std::string::npos) end = header.size();
    std::string_view item(header.data() + pos, end - pos);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    const auto equals = item.find('=');
    if (equals != std::string_view::npos) {
      const std::string_view name = item.substr(0, equals);
      const auto raw = base64_decode(item.substr(equals + 1));
      if (raw && name == "md5" && raw->size() == 16) file.md5 = to_hex(*raw);
      if (raw && name == "crc32c" && raw->size() == 4) {
        const auto* b = reinterpret_cast<const unsigned char*>(raw->data());
        file.crc32c = (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) |
                      (std::uint32_t{b[2]} << 8) | std::uint32_t{b[3]};
      }
    }
    pos = end + 1;
  }
}

class GcsStore final : public Store {
 public:
  GcsStore(const Location& location, const StoreContext& context)
      : bucket_(location.bucket), context_(context), base_(gcs_base_url(context.gcs)) {}

  RemoteFile stat(std::string_view file_path, const std::string& uri) override {
    const std::string object =
        bucket_.prefix.empty() ? std::string(file_path) : bucket_.prefix + "/" + std::string(file_path);
    RemoteFile file;
    file.uri = uri;
    file.request.url = base_ + "/" + bucket_.bucket + "/" + percent_encode(object, true);
    http::Request head = file.request;
    head.method = "HEAD";
    int attempts = 0;
    http::Result result = perform_with_retries(context_, head, uri, attempts);
    if (result.transport != http::Transport::ok || result.response.status < 200 ||
        result.response.status >= 300) {
      throw error_for(result, uri, attempts);
    }
    const http::Response& response = result.response;
    file.size = http::parse_decimal(response.header("content-length"));
    file.etag = unquote_etag(response.header("etag"));
    file.version = response.header("x-goog-generation");
    read_goog_hash(response.header("x-goog-hash"), file);
    // md5 when the object has one; composite objects only have a CRC-32C.
    if (!file.md5.empty()) file.crc32c.reset();
    return file;
  }

  std::vector<FileEntry> list(const std::string& uri) override {
    const std::string prefix = bucket_.prefix.empty() ? "" : bucket_.prefix + "/";
    const std::string first = base_ + "/storage/v1/b/" + percent_encode(bucket_.bucket, false) +
                              "/o?prefix=" + percent_encode(prefix, false);
    std::vector<FileEntry> files;
    std::string url = first;
    for (int page = 0; page < kMaxListPages && !url.empty(); ++page) {
      http::Request request;
      request.url = url;
      const TextReply text = fetch_text(context_, request, uri);
      if (!text.ok()) throw error_for(text.result, uri, text.attempts);
      nlohmann::json reply = nlohmann::json::parse(text.body, nullptr, /*allow_exceptions=*/false);
      if (!reply.is_object()) throw malformed(uri);
      if (auto items = reply.find("items"); items != reply.end() && items->is_array()) {
        for (const auto& item : *items) {
          if (!item.is_object()) continue;
          const std::string name = item.value("name", "");
          if (!name.starts_with(prefix) || name.size() == prefix.size() || name.ends_with('/')) continue;
          // The JSON API sends sizes as decimal strings.
          std::optional<std::uint64_t> size;
          if (auto s = item.find("size"); s != item.end() && s->is_string()) size = http::parse_decimal(s->get<std::string>());
          files.push_back({name.substr(prefix.size()), size});
        }
      }
      const std::string token = reply.value("nextPageToken", "");
      url = token.empty() ? "" : first + "&pageToken=" + percent_encode(token, false);
    }
    return files;
  }

  Error error_for(const http::Result& failed, const std::string& uri, int attempts) const override {
    if (failed.transport != http::Transport::ok) return http_error(failed, uri, attempts);
    const int status = failed.response.status;
    if (status == 401 || status == 403) {
      return Error(Errc::unauthorized,
                   "access denied to " + uri + " (HTTP " + std::to_string(status) +
                       "); e2s reads Google Cloud Storage anonymously, so the object must be public",
                   uri, status);
    }
    if (status == 404) {
      return Error(Errc::not_found,
                   "not found: " + uri + " (no such object or bucket); check the bucket, prefix "
                   "and file name",
                   uri, status);
    }
    return http_error(failed, uri, attempts);
  }

 private:
  Error malformed(const std::string& uri) const {
    return Error(Errc::other,
                 "Google Cloud Storage at " + base_ + " answered something that is not a JSON "
                 "object listing for " + uri + "; check STORAGE_EMULATOR_HOST",
                 uri);
  }

  BucketLocation bucket_;
  StoreContext context_;
  std::string base_;
};

}  // namespace

std::unique_ptr<Store> make_gcs_store(const Location& location, const StoreContext& context) {
  return std::make_unique<GcsStore>(location, context);
}

}  // namespace e2s::detail
