// The HTTP(S) client: the only code that talks to libcurl. One call = one
// attempt; retry decisions are made by the caller (http/retry.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace e2s::detail::http {

struct Response;

// AWS Signature Version 4, computed by libcurl (CURLOPT_AWS_SIGV4). libcurl
// 7.88.1 signs the URL's path and query verbatim, so the caller must give
// them already canonical (each path segment percent-encoded once, query
// parameters sorted and encoded, a bare name as "name="), and must add
// x-amz-content-sha256 (and x-amz-security-token for session credentials)
// as headers: every header is signed. libcurl signs the payload hash that
// header gives (7.87.0 and later); without it, it would hash only
// CURLOPT_POSTFIELDS, never a streamed body, so a signed request with a body
// must carry it (the body's hex SHA-256, or UNSIGNED-PAYLOAD).
struct AwsSigV4 {
  std::string region;      // e.g. "us-east-1"
  std::string service;     // "s3"
  std::string access_key;
  std::string secret_key;  // never logged
};

// `length` bytes of an open file from `offset`, sent as a request body as
// libcurl asks for them (pread: never read whole into memory). The caller
// keeps `fd` open until perform() returns. A file that ends before
// offset + length fails the request (Transport::aborted), never pads it.
struct FileRange {
  int fd = -1;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
};

// What a PUT or POST sends: nothing (an empty body), bytes in memory, or a
// part of a file. Each perform() sends it from its start, so a retried or
// redirected request is whole.
using RequestBody = std::variant<std::monostate, std::string, FileRange>;

struct Request {
  std::string method = "GET";             // "GET", "HEAD", "PUT", "POST" or "DELETE"
  std::string url;
  // "Name: value"; never logged. A followed redirect to another scheme,
  // host or port drops Authorization (libcurl's rule) but carries every
  // other header: a request with a secret in another header (e.g.
  // x-amz-security-token) must not follow redirects.
  std::vector<std::string> headers;
  std::optional<std::uint64_t> range_begin;  // sends Range: bytes=begin-[end]
  std::optional<std::uint64_t> range_end;    // inclusive; open-ended when absent
  bool follow_redirects = true;           // at most 10, to http(s) URLs with a host
  std::optional<AwsSigV4> aws_sigv4;      // sign the request; absent: unsigned
  // PUT and POST only. libcurl sends a POST without a Content-Type header
  // as application/x-www-form-urlencoded: give one.
  RequestBody body;
  // Called once with the final response's status and headers, before the
  // first body byte of a 2xx response reaches the sink (so a caller can choose
  // where the bytes go, e.g. restart when a Range request got a 200). Return
  // false to abort the transfer (Transport::aborted). Optional.
  // Only 2xx responses are announced; a 2xx without body bytes (HEAD, empty
  // file) is announced when it completes. An exception thrown here (or by the
  // sink) ends the transfer and propagates out of Client::perform.
  std::function<bool(const Response&)> on_response;
};

struct Response {
  int status = 0;
  std::string effective_url;                   // after redirects
  std::map<std::string, std::string> headers;  // of the final response; names lowercased
  std::string error_body;                      // first 64 KiB of a non-2xx body

  // Value of header `lowercase_name`, "" when absent.
  const std::string& header(const std::string& lowercase_name) const;
};

// How the attempt ended at the transport level.
enum class Transport {
  ok,                 // a complete response was received (any status)
  timeout,            // overall or stall timeout
  connect_failed,     // DNS, refused, unreachable
  interrupted,        // connection reset or closed mid-response, body shorter than announced
  tls,                // certificate or handshake failure
  too_many_redirects, // more than 10, to a scheme other than http/https, malformed or host-less
  aborted,            // the sink returned false
  protocol,           // the server broke HTTP: a status outside 100-599, an oversized
                      // or malformed header; not retried
  other,
};

struct Result {
  Transport transport = Transport::other;
  std::string detail;        // curl's message for transport failures
  Response response;         // status 0 when no response arrived
  std::uint64_t body_bytes = 0;  // bytes handed to the sink
  int redirects = 0;         // redirects followed to reach response.effective_url
};

// Receives the body of a 2xx response in order; return false to abort.
using BodySink = std::function<bool(const char* data, std::size_t size)>;

struct ClientOptions {
  // A request is abandoned as stalled (Transport::timeout) when no byte
  // arrived (or, of a request body, left) for this long, or fewer than
  // `min_rate` bytes a second over a window this long; connecting and
  // waiting for the first byte count.
  // Zero turns both checks off. Default: 30 s.
  std::chrono::milliseconds stall_window{30000};
  // Bytes a second a request must at least receive (or send), averaged over each
  // stall_window; 0 checks only for silence. Default: 1024.
  std::uint64_t min_rate = 1024;
  // Limit of the TCP+TLS connect; never more than stall_window. Default: 30 s.
  std::chrono::milliseconds connect_timeout{30000};
  // PEM file of the CA certificates servers are verified against, instead of
  // libcurl's default store. Peer and host verification are always on. A file
  // that cannot be loaded fails each https request with Transport::tls and a
  // detail naming it. Default: empty (libcurl's default store).
  std::filesystem::path ca_bundle;
};

// Thread-safe. Keeps idle connections for reuse between calls.
class Client {
 public:
  explicit Client(ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Performs one request. Never throws for network or HTTP failures: they are
  // reported in Result. Body bytes of 2xx responses go to `sink` (may be empty
  // for HEAD); bodies of other statuses are kept in Response::error_body.
  Result perform(const Request& request, const BodySink& sink = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A non-negative decimal such as a Content-Length; nullopt when `text` is
// empty or anything but digits.
std::optional<std::uint64_t> parse_decimal(std::string_view text);

// "e2s/<version> libcurl/<version>"
std::string user_agent();

// A final 2xx status: the request did what it asked.
inline bool is_2xx(int status) { return status >= 200 && status < 300; }

// A transfer that completed with a 2xx response.
inline bool is_success(const Result& result) {
  return result.transport == Transport::ok && is_2xx(result.response.status);
}

}  // namespace e2s::detail::http
