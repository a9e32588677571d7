#include "http/errors.hpp"

#include "util/text.hpp"
#include "uri/location.hpp"

namespace e2s::detail {

std::string describe(const http::Result& result) {
  switch (result.transport) {
    case http::Transport::ok:
      return "HTTP " + std::to_string(result.response.status);
    case http::Transport::timeout:
      return "timed out (" + result.detail + ")";
    case http::Transport::connect_failed:
      return "could not connect (" + result.detail + ")";
    case http::Transport::interrupted:
      return "connection interrupted (" + result.detail + ")";
    case http::Transport::tls:
      return "TLS failure (" + result.detail + ")";
    case http::Transport::too_many_redirects:
      return "redirect refused (" + result.detail + ")";
    case http::Transport::aborted:
      return "transfer aborted";
    case http::Transport::protocol:
      return "protocol error (" + result.detail + ")";
    case http::Transport::other:
      break;
  }
  return "transfer failed (" + result.detail + ")";
}

Error http_error(const http::Result& failed, const std::string& uri, int attempts) {
  const std::string tries =
      attempts > 1 ? " after " + std::to_string(attempts) + " attempts" : std::string();
  switch (failed.transport) {
    case http::Transport::ok:
      break;
    case http::Transport::timeout:
      return Error(Errc::timeout,
                   "timed out fetching " + uri + tries + " (" + failed.detail +
                       "); check the network or raise EARTH2STUDIO_PACKAGE_TIMEOUT / --timeout",
                   uri);
    case http::Transport::tls:
      return Error(Errc::network,
                   "TLS failure fetching " + uri + " (" + failed.detail +
                       "); for a site with its own CA, set CURL_CA_BUNDLE or SSL_CERT_FILE to "
                       "the site's CA bundle (a readable PEM file), otherwise check the "
                       "server's certificate",
                   uri);
    case http::Transport::too_many_redirects:
      return Error(Errc::network,
                   "refused redirect fetching " + uri + " (" + failed.detail +
                       "); only up to 10 redirects to http(s) URLs are followed",
                   uri);
    case http::Transport::protocol:
      return Error(Errc::other,
                   "protocol error fetching " + uri + ": " + failed.detail +
                       "; the server is not an HTTP file server e2s can use, check the package root",
                   uri);
    default:
      return Error(Errc::network,
                   "network failure fetching " + uri + tries + ": " + describe(failed) +
                       "; check the connection and proxy settings, then try again",
                   uri);
  }
  const int status = failed.response.status;
  // After a redirect the refusal is the target's, not the original URL's.
  const std::string by = failed.redirects > 0 && !url_origin(failed.response.effective_url).empty()
                             ? " from " + url_origin(failed.response.effective_url) + ", where the request was redirected"
                             : std::string();
  if (status == 404 || status == 410) {
    return Error(Errc::not_found,
                 "not found: " + uri + " (HTTP " + std::to_string(status) + by +
                     "); check the file name and the package root",
                 uri, status);
  }
  if (status == 401 || status == 403) {
    return Error(Errc::unauthorized,
                 "access denied to " + uri + " (HTTP " + std::to_string(status) + by +
                     "); check that the package is public or that your credentials allow it",
                 uri, status);
  }
  if (status == 408 || status == 429 || (status >= 500 && status <= 599)) {
    const std::string& retry_after = failed.response.header("retry-after");
    if (retry_after.empty()) {
      return Error(Errc::network,
                   "server kept failing for " + uri + tries + " (HTTP " + std::to_string(status) +
                       "); try again later",
                   uri, status);
    }
    return Error(Errc::network,
                 "server kept failing for " + uri + tries + " (HTTP " + std::to_string(status) +
                     ", Retry-After " + quoted(retry_after, 40) +
                     "); try again later (a Retry-After longer than the time left of "
                     "EARTH2STUDIO_PACKAGE_TIMEOUT / --timeout is not waited)",
                 uri, status);
  }
  return Error(Errc::other,
               "unexpected HTTP " + std::to_string(status) + " fetching " + uri +
                   "; the server may not be a file server, check the package root",
               uri, status);
}

}  // namespace e2s::detail
