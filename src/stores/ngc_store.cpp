// The NGC model registry (protocols.md §2): the files endpoint hands out a
// signed download URL per file; private models need a bearer token that an
// API key is exchanged for.
#include <charconv>
#include <mutex>
#include <nlohmann/json.hpp>

#include "util/encoding.hpp"
#include "env.hpp"
#include "stores/store.hpp"

namespace e2s::detail {
namespace {

using Clock = std::chrono::steady_clock;

// Used when the auth reply gives no lifetime; refreshed this much before expiry.
constexpr std::chrono::seconds kDefaultTokenLifetime{3600};
constexpr std::chrono::seconds kTokenRefreshMargin{60};
constexpr int kMaxListPages = 100000;
constexpr std::string_view kPersonalKeyPrefix = "nvapi-";

http::Request plain_request(const std::string& url) {
  http::Request request;
  request.url = url;
  return request;
}

class NgcStore final : public Store {
 public:
  NgcStore(const Location& location, const StoreContext& context)
      : ngc_(location.ngc), root_(location.root), context_(context), settings_(ngc_settings(context.ngc)) {}

  RemoteFile stat(std::string_view file_path, const std::string& uri) override {
    const std::string path = in_version(file_path);
    RemoteFile file;
    file.uri = uri;
    file.version = ngc_.version;
    file.request = signed_url_request(path, uri);
    // The signed URL may expire during a long download: ask for a new one.
    file.renew = [this, path, uri] { return signed_url_request(path, uri); };
    return file;
  }

  std::vector<FileEntry> list(const std::string& uri) override {
    const std::string first = versions_url() + "/files?page-size=1000";
    const std::string prefix = ngc_.subfolder.empty() ? "" : ngc_.subfolder + "/";
    std::vector<FileEntry> files;
    std::string url = first;
    for (int page = 0; page < kMaxListPages && !url.empty(); ++page) {
      nlohmann::json reply = api_json(url, uri);
      const nlohmann::json& entries = reply.contains("modelFiles") ? reply["modelFiles"] : nlohmann::json();
      if (!entries.is_array()) throw malformed(uri, "a file listing without modelFiles");
      for (const auto& entry : entries) {
        if (!entry.is_object()) continue;
        std::string path = entry.value("path", "");
        while (path.starts_with('/')) path.erase(0, 1);
        if (!path.starts_with(prefix) || path.size() == prefix.size()) continue;
        FileEntry file{path.substr(prefix.size()), std::nullopt};
        if (auto size = entry.find("sizeInBytes"); size != entry.end() && size->is_number_unsigned()) {
          file.size = size->get<std::uint64_t>();
        }
        files.push_back(std::move(file));
      }
      url = next_page(first, reply.value("paginationInfo", nlohmann::json::object()));
    }
    return files;
  }

  // An NGC model version is immutable once published.
  bool pinned() const override { return true; }

  Error error_for(const http::Result& failed, const std::string& uri, int attempts) const override {
    if (failed.transport != http::Transport::ok) return http_error(failed, uri, attempts);
    const int status = failed.response.status;
    const std::string what = "model " + model_name() + ", version " + ngc_.version + file_note(uri);
    // The signed download URL lives on a storage host, not the API: its
    // refusals say nothing about the API key.
    const std::string& from = failed.response.effective_url;
    if (!from.empty() && url_origin(from) != url_origin(settings_.api_base)) {
      return Error(status == 404 ? Errc::not_found : Errc::network,
                   "the storage host refused the signed download URL for " + uri + " (HTTP " +
                       std::to_string(status) + ", also after asking NGC for new ones); try again later",
                   uri, status);
    }
    if (status == 404) {
      return Error(Errc::not_found,
                   "not found on NGC: " + what + " (" + uri +
                       "); check the model name, the version and the file path",
                   uri, status);
    }
    if (status == 412) {
      return Error(Errc::unauthorized,
                   "the licence of NGC " + what + " must be accepted before download (" + uri +
                       "): accept it on the model's page in the NGC catalog with the account "
                       "of your API key",
                   uri, status);
    }
    if (status == 401 || status == 403) {
      const std::string hint =
          settings_.api_key.empty()
              ? "set NGC_CLI_API_KEY to an NGC API key with access to this model"
              : "check NGC_CLI_API_KEY: the key (from " + settings_.key_source +
                    ") must be valid and have access to org " + (ngc_.org.empty() ? ngc_.name : ngc_.org);
      return Error(Errc::unauthorized,
                   "NGC refused access to " + what + " (HTTP " + std::to_string(status) + ", " +
                       uri + "); " + hint,
                   uri, status);
    }
    return http_error(failed, uri, attempts);
  }

 private:
  // The private endpoints need an org; a bare model name goes the public way.
  bool is_private() const { return !settings_.api_key.empty() && !ngc_.org.empty(); }

  std::string model_name() const {
    std::string name = ngc_.org.empty() ? "" : ngc_.org + "/";
    if (!ngc_.team.empty()) name += ngc_.team + "/";
    return name + ngc_.name;
  }

  std::string file_note(const std::string& uri) const {
    if (uri.size() <= root_.size() + 1 || !uri.starts_with(root_)) return "";
    return ", file " + uri.substr(root_.size() + 1);
  }

  std::string in_version(std::string_view file_path) const {
    return ngc_.subfolder.empty() ? std::string(file_path) : ngc_.subfolder + "/" + std::string(file_path);
  }

  // The files endpoint of Earth2Studio (public) or ngc-cli (private).
  std::string files_url(const std::string& path) const {
    std::string url = settings_.api_base;
    if (is_private()) {
      url += "v2/org/" + ngc_.org + (ngc_.team.empty() ? "" : "/team/" + ngc_.team) + "/models/";
    } else {
      url += "v2/models/";
      if (!ngc_.org.empty()) url += "org/" + ngc_.org + "/";
      if (!ngc_.team.empty()) url += "team/" + ngc_.team + "/";
    }
    return url + ngc_.name + "/" + ngc_.version + "/files?path=" + percent_encode(path, true);
  }

  std::string versions_url() const {
    std::string url = settings_.api_base;
    if (is_private()) {
      url += "v2/org/" + ngc_.org + (ngc_.team.empty() ? "" : "/team/" + ngc_.team) + "/models/";
    } else {
      url += "v2/models/";
      if (!ngc_.org.empty()) url += ngc_.org + "/";
      if (!ngc_.team.empty()) url += ngc_.team + "/";
    }
    return url + ngc_.name + "/versions/" + ngc_.version;
  }

  // ngc-cli pages with an opaque nextPage; other NVIDIA code counts pages.
  static std::string next_page(const std::string& first, const nlohmann::json& info) {
    if (!info.is_object()) return {};
    if (auto next = info.find("nextPage"); next != info.end() && next->is_string() &&
                                           !next->get<std::string>().empty()) {
      return first + "&page-reference=" + percent_encode(next->get<std::string>(), false);
    }
    const long index = info.value("index", 0L);
    const long total = info.value("totalPages", 0L);
    if (total > index + 1) return first + "&page-number=" + std::to_string(index + 1);
    return {};
  }

  http::Request signed_url_request(const std::string& path, const std::string& uri) {
    nlohmann::json reply = api_json(files_url(path), uri);
    const auto urls = reply.find("urls");
    if (urls == reply.end() || !urls->is_array() || urls->empty() || !(*urls)[0].is_string() ||
        (*urls)[0].get<std::string>().empty()) {
      throw Error(Errc::other,
                  "NGC gave no download URL for " + uri + " (the files endpoint answered without "
                  "\"urls\"); the file may still be uploading, try again later or check the path",
                  uri);
    }
    // Signed URLs carry their own authorisation: NGC credentials stay here.
    return plain_request((*urls)[0].get<std::string>());
  }

  // GET of an API URL as JSON, with the bearer token for private models; a
  // 401 gets one fresh token (it may have been revoked or expired early).
  nlohmann::json api_json(const std::string& url, const std::string& uri) {
    for (bool refreshed = false;; refreshed = true) {
      http::Request request = plain_request(url);
      request.headers.push_back("Accept: application/json");
      if (is_private()) request.headers.push_back("Authorization: Bearer " + bearer(refreshed));
      const TextReply text = fetch_text(context_, request, uri);
      const http::Result& result = text.result;
      if (result.transport == http::Transport::ok && result.response.status == 200) {
        nlohmann::json reply = nlohmann::json::parse(text.body, nullptr, /*allow_exceptions=*/false);
        if (!reply.is_object()) throw malformed(uri, "a reply that is not a JSON object");
        return reply;
      }
      const bool may_refresh = is_private() && !refreshed && !is_personal_key();
      if (result.transport == http::Transport::ok && result.response.status == 401 && may_refresh) {
        continue;
      }
      throw error_for(result, uri, text.attempts);
    }
  }

  bool is_personal_key() const { return settings_.api_key.starts_with(kPersonalKeyPrefix); }

  // The bearer token for private endpoints: a personal key is one already;
  // a legacy key is exchanged at the auth endpoint and the token kept for its
  // lifetime (shared by every file of this package).
  std::string bearer(bool force_refresh) {
    if (is_personal_key()) return settings_.api_key;
    std::lock_guard lock(token_mutex_);
    if (force_refresh || token_.empty() || Clock::now() >= token_expiry_) exchange_key();
    return token_;
  }

  void exchange_key() {
    std::string url = settings_.auth_url;
    url += url.find('?') == std::string::npos ? "?" : "&";
    url += "service=ngc&scope=group/ngc:" + ngc_.org;
    if (!ngc_.team.empty()) url += "&scope=group/ngc:" + ngc_.org + "/" + ngc_.team;
    http::Request request = plain_request(url);
    request.headers.push_back("Accept: application/json");
    request.headers.push_back("Authorization: Basic " + base64_encode("$oauthtoken:" + settings_.api_key));

    const std::string what = "the NGC auth endpoint " + url_origin(settings_.auth_url);
    const TextReply text = fetch_text(context_, request, what);
    const http::Result& result = text.result;
    if (result.transport != http::Transport::ok) {
      const Error failure = http_error(result, what, text.attempts);
      throw Error(failure.code(), std::string(failure.what()) + "; check NGC_CLI_AUTH_URL", root_);
    }
    const int status = result.response.status;
    if (status == 401 || status == 403) {
      throw Error(Errc::unauthorized,
                  "NGC refused the API key from " + settings_.key_source + " for org " + ngc_.org +
                      " (HTTP " + std::to_string(status) +
                      "); check NGC_CLI_API_KEY: a valid key with access to that org",
                  root_, status);
    }
    nlohmann::json reply = nlohmann::json::parse(text.body, nullptr, /*allow_exceptions=*/false);
    if (status != 200 || !reply.is_object() || !reply.contains("token") || !reply["token"].is_string()) {
      throw Error(Errc::other,
                  what + " answered HTTP " + std::to_string(status) +
                      " without a token; check NGC_CLI_AUTH_URL",
                  root_, status);
    }
    token_ = reply["token"].get<std::string>();
    std::chrono::seconds lifetime = kDefaultTokenLifetime;
    if (auto expires = reply.find("expires_in"); expires != reply.end() && expires->is_number()) {
      lifetime = std::chrono::seconds(expires->get<long long>());
    }
    token_expiry_ = Clock::now() + std::max(std::chrono::seconds(0), lifetime - kTokenRefreshMargin);
  }

  Error malformed(const std::string& uri, const std::string& what) const {
    return Error(Errc::other,
                 "NGC at " + settings_.api_base + " answered " + what + " for " + uri +
                     "; check NGC_CLI_API_URL",
                 uri);
  }

  NgcLocation ngc_;
  std::string root_;
  StoreContext context_;
  NgcSettings settings_;

  std::mutex token_mutex_;
  std::string token_;  // never logged
  Clock::time_point token_expiry_;
};

}  // namespace

std::unique_ptr<Store> make_ngc_store(const Location& location, const StoreContext& context) {
  return std::make_unique<NgcStore>(location, context);
}

}  // namespace e2s::detail
