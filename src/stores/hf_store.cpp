// The Hugging Face Hub, spoken as huggingface_hub speaks it (protocols.md §1).
#include <algorithm>
#include <cctype>
#include <charconv>
#include <nlohmann/json.hpp>

#include "env.hpp"
#include "stores/store.hpp"
#include "util/hash.hpp"
#include "util/text.hpp"
#include "log.hpp"

namespace e2s::detail {
namespace {

// Relative redirects inside the Hub (renamed repos, resolve-cache) are
// followed by hand; more than this is a loop.
constexpr int kMaxHubRedirects = 10;

// The URL of rel="next" in a GitHub-style Link header, "" when none.
std::string next_link(const std::string& header) {
  std::size_t pos = 0;
  while (pos < header.size()) {
    const auto open = header.find('<', pos);
    if (open == std::string::npos) break;
    const auto close = header.find('>', open);
    if (close == std::string::npos) break;
    const auto end = header.find(',', close);
    const std::string params = header.substr(close + 1, end == std::string::npos ? end : end - close - 1);
    if (params.find("rel=\"next\"") != std::string::npos || params.find("rel=next") != std::string::npos) {
      return header.substr(open + 1, close - open - 1);
    }
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  return {};
}

// A request that carries no credentials.
http::Request plain_request(const std::string& url) {
  http::Request request;
  request.url = url;
  return request;
}

// The path (no query) of a host-less Location, as huggingface_hub follows it.
std::string location_path(const std::string& location) {
  return location.substr(0, location.find_first_of("?#"));
}

// The scheme of a Location ("https", "file", ...) lowercased, "" when it has
// none (a path, or "//host/path").
std::string location_scheme(std::string_view location) {
  const auto colon = location.find(':');
  if (colon == std::string_view::npos || colon == 0) return {};
  for (std::size_t i = 0; i < colon; ++i) {
    const char c = location[i];
    const bool scheme_char = std::isalpha(static_cast<unsigned char>(c)) ||
                             (i > 0 && (std::isdigit(static_cast<unsigned char>(c)) || c == '+' ||
                                        c == '-' || c == '.'));
    if (!scheme_char) return {};
  }
  return ascii_lower(location.substr(0, colon));
}

class HfStore final : public Store {
 public:
  HfStore(const Location& location, const StoreContext& context)
      : hf_(location.hf), context_(context), settings_(hf_settings(context.hf)) {
    origin_ = url_origin(settings_.endpoint);
    repo_url_ = settings_.endpoint + "/" + type_prefix() + hf_.repo_id;
  }

  RemoteFile stat(std::string_view file_path, const std::string& uri) override {
    const std::string repo_path =
        hf_.subfolder.empty() ? std::string(file_path) : hf_.subfolder + "/" + std::string(file_path);
    std::string url = repo_url_ + "/resolve/" + percent_encode(hf_.revision, false) + "/" +
                      percent_encode(repo_path, true);

    // HEAD without following redirects: a redirect inside the Hub is followed
    // by path; one to another host is the download URL (the CDN), where the
    // metadata is already known and the token must not go.
    http::Result result;
    std::string download_url;
    for (int hop = 0; download_url.empty(); ++hop) {
      http::Request head = hub_request(url);
      head.method = "HEAD";
      head.follow_redirects = false;
      int attempts = 0;
      result = perform_with_retries(context_, head, uri, attempts);
      if (result.transport != http::Transport::ok) throw error_for(result, uri, attempts);
      const int status = result.response.status;
      const std::string& location = result.response.header("location");
      if (status >= 300 && status < 400 && !location.empty()) {
        if (!location.starts_with("//") && location_scheme(location).empty()) {
          // Host-less: the same route on the Hub (a path without its leading
          // '/' is taken from the root, as huggingface_hub does).
          if (hop >= kMaxHubRedirects) {
            throw Error(Errc::network, "too many redirects inside the Hub for " + uri, uri, status);
          }
          url = origin_ + (location.starts_with("/") ? "" : "/") + location_path(location);
          continue;
        }
        download_url = absolute_location(location, uri, status);
      } else if (http::is_2xx(status)) {
        download_url = url;
      } else {
        throw error_for(result, uri, attempts);
      }
    }

    const http::Response& response = result.response;
    RemoteFile file;
    file.uri = uri;
    file.version = response.header("x-repo-commit");
    const std::string& linked_etag = response.header("x-linked-etag");
    file.etag = unquote_etag(linked_etag.empty() ? response.header("etag") : linked_etag);
    // LFS and Xet files are named by their sha256; git blobs by a sha1 that
    // is not a hash of the bytes alone, so those are checked by size only.
    if (is_lower_hex(file.etag, 64)) file.sha256 = file.etag;
    const bool redirected = response.status >= 300 && response.status < 400;
    file.size = http::parse_decimal(response.header("x-linked-size"));
    if (!file.size && !redirected) file.size = http::parse_decimal(response.header("content-length"));
    if (file.version.empty()) log::debug("{}: the Hub sent no X-Repo-Commit", uri);

    file.request = url_origin(download_url) == origin_ ? hub_request(download_url)
                                                       : plain_request(download_url);
    return file;
  }

  std::vector<FileEntry> list(const std::string& uri) override {
    std::string url = settings_.endpoint + "/api/" + type_prefix_api() + hf_.repo_id + "/tree/" +
                      percent_encode(hf_.revision, false);
    if (!hf_.subfolder.empty()) url += "/" + percent_encode(hf_.subfolder, false);
    url += "?recursive=true&expand=false";

    const std::string prefix = hf_.subfolder.empty() ? "" : hf_.subfolder + "/";
    std::vector<FileEntry> files;
    while (!url.empty()) {
      // The next page's URL comes from the server: the token goes with it
      // only while it stays on the Hub.
      http::Request request =
          url_origin(url) == origin_ ? hub_request(url) : plain_request(url);
      const TextReply reply = fetch_text(context_, request, uri);
      if (!reply.ok()) throw error_for(reply.result, uri, reply.attempts);
      nlohmann::json page = nlohmann::json::parse(reply.body, nullptr, /*allow_exceptions=*/false);
      if (!page.is_array()) throw malformed(uri, "a tree page that is not a JSON array");
      for (const auto& entry : page) {
        if (!entry.is_object() || entry.value("type", "") != "file") continue;
        const std::string path = entry.value("path", "");
        if (!path.starts_with(prefix) || path.size() == prefix.size()) continue;
        FileEntry file{path.substr(prefix.size()), std::nullopt};
        if (auto size = entry.find("size"); size != entry.end() && size->is_number_unsigned()) {
          file.size = size->get<std::uint64_t>();
        }
        files.push_back(std::move(file));
      }
      url = next_link(reply.result.response.header("link"));
    }
    return files;
  }

  // A revision that is a full commit hash names the same files forever;
  // a branch or tag may move.
  bool pinned() const override { return is_lower_hex(hf_.revision, 40); }

  Error error_for(const http::Result& failed, const std::string& uri, int attempts) const override {
    if (failed.transport != http::Transport::ok) return http_error(failed, uri, attempts);
    const http::Response& response = failed.response;
    const int status = response.status;
    const std::string& code = response.header("x-error-code");
    const std::string& message = response.header("x-error-message");
    const std::string repo = "Hugging Face repo " + type_prefix() + hf_.repo_id;
    const std::string page = repo_url_;

    if (code == "RevisionNotFound") {
      return Error(Errc::not_found,
                   "revision \"" + hf_.revision + "\" not found in " + repo + " (" + uri +
                       "); check the branch, tag or commit after '@'",
                   uri, status);
    }
    if (code == "EntryNotFound") {
      return Error(Errc::not_found,
                   "file not found: " + uri + " (no such entry in " + repo + " at revision \"" +
                       hf_.revision + "\"); check the file name and the sub-folder",
                   uri, status);
    }
    if (code == "GatedRepo") {
      return Error(Errc::unauthorized,
                   repo + " is gated (" + uri + "): accept its licence on " + page +
                       " and set HF_TOKEN to a token of an account that did",
                   uri, status);
    }
    if (message == "Access to this resource is disabled.") {
      return Error(Errc::unauthorized, repo + " has been disabled by the Hub (" + uri + ")", uri,
                   status);
    }
    if (status == 401 && message.starts_with("Invalid credentials")) {
      return Error(Errc::unauthorized,
                   "the Hub refused the token from " + token_source() + " (" + uri +
                       "); set HF_TOKEN to a valid token",
                   uri, status);
    }
    if (code == "RepoNotFound" || (status == 404 && code.empty())) {
      return Error(Errc::not_found,
                   repo + " not found (" + uri + "); check its name, or if it is private set " +
                       "HF_TOKEN to a token with access" + token_note(),
                   uri, status);
    }
    if (status == 401 || status == 403) {
      return Error(Errc::unauthorized,
                   "access denied to " + uri + " (HTTP " + std::to_string(status) +
                       "); set HF_TOKEN to a token with access, or accept the licence on " + page +
                       token_note(),
                   uri, status);
    }
    return http_error(failed, uri, attempts);
  }

 private:
  std::string type_prefix() const {
    if (hf_.repo_type == "dataset") return "datasets/";
    if (hf_.repo_type == "space") return "spaces/";
    return "";
  }
  std::string type_prefix_api() const { return hf_.repo_type + "s/"; }

  // The download URL a Location with a host names: a scheme-relative one
  // ("//host/path") takes the Hub's scheme. Throws Error(network) for any
  // scheme but http(s) (file:, ftp:, ...), as a followed redirect would be
  // refused; the message names the scheme only (the URL may be signed).
  std::string absolute_location(const std::string& location, const std::string& uri, int status) const {
    const std::string url =
        location.starts_with("//") ? origin_.substr(0, origin_.find("://") + 1) + location : location;
    const std::string scheme = location_scheme(url);
    std::string problem;
    if (scheme != "http" && scheme != "https") {
      problem = "a " + scheme + ": URL; only http(s) download URLs are followed";
    } else if (const std::string origin = url_origin(url); origin.size() <= scheme.size() + 3) {
      // "///etc/passwd", "http:///x": libcurl would read the path as a host name.
      problem = "a URL without a host";
    }
    if (!problem.empty()) {
      throw Error(Errc::network, "refused redirect fetching " + uri + ": the Hub pointed it at " + problem,
                  uri, status);
    }
    return url;
  }

  // A request to the Hub itself, with the token when there is one.
  http::Request hub_request(const std::string& url) const {
    http::Request request = plain_request(url);
    if (!settings_.token.empty()) request.headers.push_back("Authorization: Bearer " + settings_.token);
    return request;
  }

  std::string token_source() const {
    return settings_.token_source.empty() ? "the environment" : settings_.token_source;
  }
  std::string token_note() const {
    return settings_.token.empty() ? " (no token is set)" : " (the token from " + token_source() + " was sent)";
  }

  Error malformed(const std::string& uri, const std::string& what) const {
    return Error(Errc::other,
                 "the Hub at " + settings_.endpoint + " answered " + what + " for " + uri +
                     "; check HF_ENDPOINT",
                 uri);
  }

  HfLocation hf_;
  StoreContext context_;
  HfSettings settings_;
  std::string origin_;
  std::string repo_url_;  // <endpoint>/[datasets/|spaces/]ns/name
};

}  // namespace

std::unique_ptr<Store> make_hf_store(const Location& location, const StoreContext& context) {
  return std::make_unique<HfStore>(location, context);
}

}  // namespace e2s::detail
