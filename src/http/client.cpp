#include "http/client.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iterator>
#include <limits>
#include <mutex>
#include <new>
#include <stdexcept>
#include <utility>

#include "e2s/version.hpp"
#include "util/posix.hpp"
#include "util/text.hpp"

namespace e2s::detail::http {
namespace {

constexpr long kMaxRedirects = 10;
constexpr std::size_t kMaxErrorBody = 64 * 1024;
// Idle handles kept for reuse. Each one owns its live connections, so this
// bounds idle sockets too (times curl's per-handle default of 5).
constexpr std::size_t kMaxIdleHandles = 16;
// Larger than curl's 16 KiB default: fewer callbacks on multi-GB checkpoints.
constexpr long kReceiveBufferSize = 128 * 1024;
constexpr const char* kAllowedProtocols = "http,https";

void global_init() {
  static std::once_flag once;
  static CURLcode result = CURLE_OK;
  std::call_once(once, [] { result = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (result != CURLE_OK) {
    throw std::runtime_error(std::string("libcurl initialisation failed: ") +
                             curl_easy_strerror(result));
  }
}

struct EasyDeleter {
  void operator()(CURL* handle) const noexcept { curl_easy_cleanup(handle); }
};
using EasyHandle = std::unique_ptr<CURL, EasyDeleter>;

struct SlistDeleter {
  void operator()(curl_slist* list) const noexcept { curl_slist_free_all(list); }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// The request body as curl reads it: from memory or from a file range.
struct Upload {
  const std::string* memory = nullptr;  // when sending bytes in memory
  FileRange file;                       // else
  std::uint64_t length = 0;
  std::uint64_t sent = 0;               // bytes handed to curl since the last rewind
  std::string failure;                  // why reading the body failed, for Result::detail
};

// State of one perform() call, reached from curl's callbacks.
struct Transfer {
  using Clock = std::chrono::steady_clock;

  CURL* handle = nullptr;
  const BodySink* sink = nullptr;
  const std::function<bool(const Response&)>* on_response = nullptr;
  Response* response = nullptr;
  std::uint64_t body_bytes = 0;
  long block_status = 0;      // status of the header block being received
  int status_lines = 0;       // > 0 once any response started
  std::string last_header;    // for obsolete folded continuation lines
  bool sink_refused = false;
  bool response_announced = false;  // on_response has run
  bool response_refused = false;    // ... and returned false
  std::exception_ptr callback_error;  // rethrown after curl has returned
  // The stall check (see progress_callback).
  Clock::duration stall_window{};     // zero: no stall check
  std::uint64_t window_min_bytes = 0; // what a window must bring at least
  Clock::time_point last_progress = Clock::now();
  Clock::time_point window_start = Clock::now();
  std::uint64_t moved = 0;            // bytes received (headers, body) and sent (body) so far
  std::uint64_t window_moved = 0;     // `moved` when the window started
  enum class Stall { none, silent, slow } stalled = Stall::none;
  Upload upload;
  bool follow_redirects = false;
  std::string refused_redirect;  // why a Location was refused before curl followed it
  char error_buffer[CURL_ERROR_SIZE] = {};
};

// Why an http(s) redirect target has no host ("///etc/passwd", "http:/x",
// "https:///x"), "" when it is fine. libcurl would read the first path
// segment of such a Location as a host name and look it up. Other schemes
// are left to CURLOPT_REDIR_PROTOCOLS_STR.
std::string hostless_redirect(std::string_view location) {
  std::string_view rest = location;
  const auto colon = location.find(':');
  const auto slash = location.find('/');
  if (colon != std::string_view::npos && (slash == std::string_view::npos || colon < slash)) {
    const std::string scheme = ascii_lower(location.substr(0, colon));
    if (scheme != "http" && scheme != "https") return {};
    rest = location.substr(colon + 1);
    if (!rest.starts_with("//")) return "a redirect to an http(s) URL without a host";
  } else if (!rest.starts_with("//")) {
    return {};  // a path on the same host
  }
  const std::string_view authority = rest.substr(2, rest.find_first_of("/?#", 2) - 2);
  return authority.empty() ? "a redirect to a URL without a host" : std::string();
}

long parse_status(std::string_view status_line) {
  // "HTTP/1.1 200 OK", "HTTP/2 404"
  auto space = status_line.find(' ');
  if (space == std::string_view::npos) return 0;
  long code = 0;
  for (std::size_t i = space + 1; i < status_line.size(); ++i) {
    char c = status_line[i];
    if (c < '0' || c > '9') break;
    code = code * 10 + (c - '0');
    if (code > 999) return 0;
  }
  return code;
}

void on_header_line(Transfer& t, std::string_view line) {
  if (line.starts_with("HTTP/")) {
    // Redirects, 1xx and proxy CONNECT replies each bring a header block;
    // only the last one describes the body the caller gets.
    t.response->headers.clear();
    t.response->error_body.clear();
    t.block_status = parse_status(line);
    t.response->status = static_cast<int>(t.block_status);
    ++t.status_lines;
    t.last_header.clear();
    return;
  }
  if (!line.empty() && (line.front() == ' ' || line.front() == '\t')) {
    auto more = trim(line);
    if (!t.last_header.empty() && !more.empty()) {
      auto& value = t.response->headers[t.last_header];
      value += ' ';
      value += more;
    }
    return;
  }
  auto colon = line.find(':');
  if (colon == std::string_view::npos) return;  // the blank line ending the block
  auto name = ascii_lower(trim(line.substr(0, colon)));
  auto value = trim(line.substr(colon + 1));
  auto [it, inserted] = t.response->headers.try_emplace(name, value);
  if (!inserted) {
    // Repeated fields (e.g. two X-Goog-Hash lines) combine as RFC 9110 says.
    it->second += ", ";
    it->second += value;
  }
  if (t.follow_redirects && t.block_status >= 300 && t.block_status < 400 && name == "location") {
    t.refused_redirect = hostless_redirect(value);
  }
  t.last_header = std::move(name);
}

// Plain C++ functions, not extern "C": g++ exports extern "C" names even from
// an unnamed namespace, and these generic names would clash in a user's link.
std::size_t header_callback(char* buffer, std::size_t size, std::size_t count, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  const std::size_t n = size * count;
  t.last_progress = Transfer::Clock::now();
  t.moved += n;
  try {
    on_header_line(t, std::string_view(buffer, n));
    if (!t.refused_redirect.empty()) return 0;  // stop before curl follows it
  } catch (...) {
    // Exceptions must not unwind through libcurl's C frames.
    t.callback_error = std::current_exception();
    return 0;
  }
  return n;
}

// Runs Request::on_response for a final 2xx response. Body bytes only arrive
// for the final response (curl skips the bodies of redirects it follows), so
// the first 2xx body byte is the earliest point where "final" is certain
// without second-guessing curl's redirect rules.
bool announce_response(Transfer& t) {
  if (t.response_announced) return !t.response_refused;
  t.response_announced = true;
  if (!*t.on_response) return true;
  char* url = nullptr;
  if (t.handle && curl_easy_getinfo(t.handle, CURLINFO_EFFECTIVE_URL, &url) == CURLE_OK && url)
    t.response->effective_url = url;
  t.response_refused = !(*t.on_response)(*t.response);
  return !t.response_refused;
}

std::size_t write_callback(char* data, std::size_t size, std::size_t count, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  const std::size_t n = size * count;
  t.last_progress = Transfer::Clock::now();
  t.moved += n;
  try {
    if (is_2xx(t.block_status)) {
      if (!announce_response(t)) return 0;
      // Without a sink the body is discarded but still counted, so a caller
      // can measure a body without keeping it.
      if (*t.sink && !(*t.sink)(data, n)) {
        t.sink_refused = true;
        return 0;
      }
      t.body_bytes += n;
    } else {
      auto& body = t.response->error_body;
      if (body.size() < kMaxErrorBody) body.append(data, std::min(n, kMaxErrorBody - body.size()));
    }
  } catch (...) {
    t.callback_error = std::current_exception();
    return 0;
  }
  return n;
}

// Hands curl the next bytes of the request body. A file that ends early or
// cannot be read aborts the transfer: a body shorter than announced must
// never reach the server as if it were whole.
std::size_t read_callback(char* buffer, std::size_t size, std::size_t count, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  Upload& u = t.upload;
  std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(size * count, u.length - u.sent));
  if (n == 0) return 0;
  if (u.memory != nullptr) {
    std::memcpy(buffer, u.memory->data() + u.sent, n);
  } else {
    const ssize_t got = pread_some(u.file.fd, buffer, n, static_cast<off_t>(u.file.offset + u.sent));
    if (got <= 0) {
      u.failure = got < 0 ? std::string("cannot read the request body from its file: ") +
                                std::strerror(errno)
                          : "the file of the request body ended " + std::to_string(u.length - u.sent) +
                                " bytes before the end of its range (did it shrink?)";
      return CURL_READFUNC_ABORT;
    }
    n = static_cast<std::size_t>(got);
  }
  u.sent += n;
  t.moved += n;
  t.last_progress = Transfer::Clock::now();
  return n;
}

// Starts the body over: curl rewinds when it sends the request again (a
// redirect it follows, a connection it reused that had closed).
int seek_callback(void* user, curl_off_t offset, int origin) {
  auto& u = static_cast<Transfer*>(user)->upload;
  if (origin != SEEK_SET || offset < 0 || static_cast<std::uint64_t>(offset) > u.length)
    return CURL_SEEKFUNC_FAIL;
  u.sent = static_cast<std::uint64_t>(offset);
  return CURL_SEEKFUNC_OK;
}

// The stall check. curl's LOW_SPEED check compares a speed averaged over
// about five seconds in whole seconds, so a burst followed by silence is only
// noticed up to five seconds late. This callback, run by curl at least once
// a second, measures the silence itself, and the rate over consecutive
// windows: a server that trickles a byte a second never passes for alive.
int progress_callback(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto& t = *static_cast<Transfer*>(user);
  if (t.stall_window == Transfer::Clock::duration::zero()) return 0;
  const auto now = Transfer::Clock::now();
  if (now - t.last_progress >= t.stall_window) {
    t.stalled = Transfer::Stall::silent;
    return 1;  // CURLE_ABORTED_BY_CALLBACK
  }
  if (now - t.window_start >= t.stall_window) {
    if (t.moved - t.window_moved < t.window_min_bytes) {
      t.stalled = Transfer::Stall::slow;
      return 1;
    }
    t.window_start = now;
    t.window_moved = t.moved;
  }
  return 0;
}

Transport classify(CURLcode code, const Transfer& t) {
  switch (code) {
    case CURLE_OK:
      return Transport::ok;
    case CURLE_OPERATION_TIMEDOUT:
      return Transport::timeout;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_PROXY:
      return Transport::connect_failed;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return Transport::interrupted;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
      return Transport::tls;
    case CURLE_TOO_MANY_REDIRECTS:
      return Transport::too_many_redirects;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
      // A response already arrived, so the refused URL came from a Location
      // header (REDIR_PROTOCOLS, or one that does not parse); otherwise the
      // caller's own URL was bad.
      return t.status_lines > 0 ? Transport::too_many_redirects : Transport::other;
    case CURLE_WRITE_ERROR:
      if (!t.refused_redirect.empty()) return Transport::too_many_redirects;
      return t.sink_refused || t.response_refused ? Transport::aborted : Transport::other;
    case CURLE_ABORTED_BY_CALLBACK:
      return t.stalled != Transfer::Stall::none ? Transport::timeout : Transport::aborted;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
      return Transport::protocol;
    case CURLE_OUT_OF_MEMORY:
      // libcurl refuses a header line over 100 KiB with "out of memory".
      return t.status_lines > 0 ? Transport::protocol : Transport::other;
    default:
      return Transport::other;
  }
}

bool has_line_break(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

bool sends_body(const Request& request) { return request.method == "PUT" || request.method == "POST"; }

bool has_header(const Request& request, std::string_view lowercase_name) {
  return std::any_of(request.headers.begin(), request.headers.end(), [&](std::string_view header) {
    const auto colon = header.find(':');
    return colon != std::string_view::npos && ascii_lower(trim(header.substr(0, colon))) == lowercase_name;
  });
}

// A range pread() can reach: offsets are off_t.
bool is_readable_range(const FileRange& file) {
  constexpr auto kMaxOffset = static_cast<std::uint64_t>(std::numeric_limits<off_t>::max());
  return file.fd >= 0 && file.length <= kMaxOffset && file.offset <= kMaxOffset - file.length;
}

// Returns the reason the request cannot be sent, or "" when it is fine. The
// reason never quotes a header: headers carry credentials.
std::string validate(const Request& request) {
  static const char* const kMethods[] = {"GET", "HEAD", "PUT", "POST", "DELETE"};
  if (std::find(std::begin(kMethods), std::end(kMethods), request.method) == std::end(kMethods))
    return "unsupported HTTP method (only GET, HEAD, PUT, POST and DELETE)";
  if (request.url.empty() || has_line_break(request.url)) return "invalid URL";
  for (const auto& header : request.headers) {
    if (has_line_break(header) || header.find(':') == std::string::npos)
      return "malformed request header (expected \"Name: value\" on one line)";
  }
  if (request.range_end && !request.range_begin) return "range end given without a range begin";
  if (request.range_end && *request.range_end < *request.range_begin)
    return "range end precedes range begin";
  const bool has_body = !std::holds_alternative<std::monostate>(request.body);
  if (has_body && !sends_body(request)) return "a request body is only sent with PUT or POST";
  if (request.range_begin && request.method != "GET" && request.method != "HEAD")
    return "a range is only asked for with GET or HEAD";
  if (const auto* file = std::get_if<FileRange>(&request.body); file && !is_readable_range(*file))
    return "invalid file range for the request body";
  if (has_body && request.aws_sigv4 && !has_header(request, "x-amz-content-sha256"))
    return "a signed request with a body needs an x-amz-content-sha256 header";
  return {};
}

// "3 s", "0.5 s": a duration for messages.
std::string seconds_text(std::chrono::milliseconds duration) {
  char text[32];
  std::snprintf(text, sizeof(text), "%g s", static_cast<double>(duration.count()) / 1000);
  return text;
}

}  // namespace

const std::string& Response::header(const std::string& lowercase_name) const {
  static const std::string kEmpty;
  auto it = headers.find(lowercase_name);
  return it == headers.end() ? kEmpty : it->second;
}

std::optional<std::uint64_t> parse_decimal(std::string_view text) {
  std::uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
  return value;
}

std::string user_agent() {
  global_init();
  static const std::string agent = std::string("e2s/") + E2S_VERSION + " libcurl/" +
                                   curl_version_info(CURLVERSION_NOW)->version;
  return agent;
}

struct Client::Impl {
  ClientOptions options;
  std::string agent = user_agent();

  // DNS answers and TLS sessions are shared by all handles so parallel range
  // requests to one host resolve once and resume TLS. Connections are not
  // shared (CURL_LOCK_DATA_CONNECT has had thread-safety bugs); instead each
  // pooled handle keeps its own, and a LIFO pool hands a thread back the
  // handle, hence the connection, it used last.
  CURLSH* share = nullptr;
  std::array<std::mutex, static_cast<std::size_t>(CURL_LOCK_DATA_LAST)> share_locks;

  std::mutex pool_mutex;
  std::vector<EasyHandle> idle;

  explicit Impl(ClientOptions opts) : options(std::move(opts)) {
    share = curl_share_init();
    if (share == nullptr) throw std::bad_alloc();
    bool ok = curl_share_setopt(share, CURLSHOPT_LOCKFUNC, &Impl::lock) == CURLSHE_OK &&
              curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, &Impl::unlock) == CURLSHE_OK &&
              curl_share_setopt(share, CURLSHOPT_USERDATA, this) == CURLSHE_OK &&
              curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) == CURLSHE_OK &&
              curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) == CURLSHE_OK;
    if (!ok) {
      curl_share_cleanup(share);
      throw std::runtime_error("libcurl share setup failed");
    }
    idle.reserve(kMaxIdleHandles);  // release() runs in a destructor: no throwing push_back
  }

  ~Impl() {
    idle.clear();  // handles must detach before the share can go
    curl_share_cleanup(share);
  }

  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  static void lock(CURL*, curl_lock_data data, curl_lock_access, void* user) {
    auto* self = static_cast<Impl*>(user);
    self->share_locks.at(static_cast<std::size_t>(data)).lock();
  }
  static void unlock(CURL*, curl_lock_data data, void* user) {
    auto* self = static_cast<Impl*>(user);
    self->share_locks.at(static_cast<std::size_t>(data)).unlock();
  }

  EasyHandle acquire() {
    {
      std::lock_guard guard(pool_mutex);
      if (!idle.empty()) {
        EasyHandle handle = std::move(idle.back());
        idle.pop_back();
        return handle;
      }
    }
    EasyHandle handle(curl_easy_init());
    if (!handle) throw std::bad_alloc();
    return handle;
  }

  void release(EasyHandle handle) {
    // Drops every option (and pointers into the finished call's stack) but
    // keeps the live connections, which is the point of pooling.
    curl_easy_reset(handle.get());
    std::lock_guard guard(pool_mutex);
    if (idle.size() < kMaxIdleHandles) idle.push_back(std::move(handle));
    // else: the surplus handle is cleaned up when `handle` leaves scope
  }
};

Client::Client(ClientOptions options) {
  global_init();
  impl_ = std::make_unique<Impl>(std::move(options));
}

Client::~Client() = default;

namespace {

// The strings of a request that curl points to while it runs.
struct RequestText {
  Slist headers;
  std::string range;          // "begin-[end]", "" for the whole file
  std::string aws_provider;   // CURLOPT_AWS_SIGV4, when signing
  std::string aws_credentials;
};

RequestText request_text(const Request& request) {
  RequestText text;
  for (const auto& header : request.headers) {
    curl_slist* grown = curl_slist_append(text.headers.get(), header.c_str());
    if (grown == nullptr) throw std::bad_alloc();
    (void)text.headers.release();
    text.headers.reset(grown);
  }
  if (request.range_begin) {
    text.range = std::to_string(*request.range_begin) + "-";
    if (request.range_end) text.range += std::to_string(*request.range_end);
  }
  if (request.aws_sigv4) {
    // Region and service are always spelt out: curl would otherwise guess
    // them from the host name, wrongly for virtual-hosted buckets and IPs.
    text.aws_provider = "aws:amz:" + request.aws_sigv4->region + ":" + request.aws_sigv4->service;
    text.aws_credentials = request.aws_sigv4->access_key + ":" + request.aws_sigv4->secret_key;
  }
  return text;
}

// Every option of one transfer on handle `h`; the first one curl refuses.
CURLcode set_options(CURL* h, const Request& request, const RequestText& text, const ClientOptions& o,
                     CURLSH* share, const std::string& agent, Transfer& t) {
  CURLcode setup = CURLE_OK;
  auto check = [&setup](CURLcode c) {
    if (setup == CURLE_OK) setup = c;
  };
  check(curl_easy_setopt(h, CURLOPT_URL, request.url.c_str()));
  // curl_easy_reset keeps the share attached but resets the TLS session
  // limit that attaching sets; attaching again keeps the two consistent.
  check(curl_easy_setopt(h, CURLOPT_SHARE, share));
  check(curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L));
  check(curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, kAllowedProtocols));
  check(curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, kAllowedProtocols));
  check(curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, request.follow_redirects ? 1L : 0L));
  check(curl_easy_setopt(h, CURLOPT_MAXREDIRS, kMaxRedirects));
  // CURLOPT_UNRESTRICTED_AUTH stays off: curl then drops our Authorization
  // header when a redirect leaves the original host, port or scheme.
  check(curl_easy_setopt(h, CURLOPT_USERAGENT, agent.c_str()));
  if (text.headers) check(curl_easy_setopt(h, CURLOPT_HTTPHEADER, text.headers.get()));
  if (request.aws_sigv4) {
    check(curl_easy_setopt(h, CURLOPT_AWS_SIGV4, text.aws_provider.c_str()));
    check(curl_easy_setopt(h, CURLOPT_USERPWD, text.aws_credentials.c_str()));
  }
  if (request.method == "HEAD") {
    check(curl_easy_setopt(h, CURLOPT_NOBODY, 1L));
  } else if (sends_body(request)) {
    const auto size = static_cast<curl_off_t>(t.upload.length);
    if (request.method == "PUT") {
      check(curl_easy_setopt(h, CURLOPT_UPLOAD, 1L));
      check(curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, size));
    } else {
      check(curl_easy_setopt(h, CURLOPT_POST, 1L));
      check(curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, size));
    }
    check(curl_easy_setopt(h, CURLOPT_READFUNCTION, &read_callback));
    check(curl_easy_setopt(h, CURLOPT_READDATA, &t));
    check(curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, &seek_callback));
    check(curl_easy_setopt(h, CURLOPT_SEEKDATA, &t));
  } else {
    check(curl_easy_setopt(h, CURLOPT_HTTPGET, 1L));
    if (request.method == "DELETE") check(curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE"));
  }
  if (!text.range.empty()) check(curl_easy_setopt(h, CURLOPT_RANGE, text.range.c_str()));
  // No overall limit: a transfer that keeps the minimum rate is alive however
  // long the file takes. The stall check below bounds everything else.
  const auto connect_timeout =
      o.stall_window.count() > 0 ? std::min(o.connect_timeout, o.stall_window) : o.connect_timeout;
  check(curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(connect_timeout.count())));
  // Only the trust anchors change: SSL_VERIFYPEER and SSL_VERIFYHOST keep
  // their secure defaults (curl_easy_reset restores them too).
  if (!o.ca_bundle.empty()) check(curl_easy_setopt(h, CURLOPT_CAINFO, o.ca_bundle.c_str()));
  if (o.stall_window.count() > 0) {
    t.stall_window = o.stall_window;
    t.window_min_bytes = o.min_rate * static_cast<std::uint64_t>(o.stall_window.count()) / 1000;
    check(curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &progress_callback));
    check(curl_easy_setopt(h, CURLOPT_XFERINFODATA, &t));
    check(curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L));
    // Kept as a second line of defence should the callback not run; it is
    // the looser bound (see progress_callback).
    const long seconds = static_cast<long>((o.stall_window.count() + 999) / 1000);
    check(curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L));
    check(curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, seconds + 1));
  }
  check(curl_easy_setopt(h, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L));
  check(curl_easy_setopt(h, CURLOPT_BUFFERSIZE, kReceiveBufferSize));
  check(curl_easy_setopt(h, CURLOPT_ERRORBUFFER, t.error_buffer));
  check(curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &header_callback));
  check(curl_easy_setopt(h, CURLOPT_HEADERDATA, &t));
  check(curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &write_callback));
  check(curl_easy_setopt(h, CURLOPT_WRITEDATA, &t));
  return setup;
}

// Why a transfer that curl ended with `code` failed, in words for the user.
void describe_failure(CURLcode code, const Transfer& t, const ClientOptions& o, Result& result) {
  result.detail = t.error_buffer[0] != '\0' ? std::string(t.error_buffer)
                                            : std::string(curl_easy_strerror(code));
  if (t.sink_refused) result.detail = "the body sink stopped the transfer";
  if (t.response_refused) result.detail = "the response was rejected by the caller";
  if (!t.refused_redirect.empty()) result.detail = t.refused_redirect;
  if (code == CURLE_OUT_OF_MEMORY && result.transport == Transport::protocol)
    result.detail = "the server sent an oversized header (a header line over libcurl's 100 KiB limit)";
  if (code == CURLE_WEIRD_SERVER_REPLY)
    result.detail = std::string("the server's reply is not valid HTTP (") +
                    (t.error_buffer[0] != '\0' ? t.error_buffer : curl_easy_strerror(code)) + ")";
  if (!t.upload.failure.empty()) result.detail = t.upload.failure;
  const char* moved = t.upload.length > 0 ? "sent or received" : "received";
  if (t.stalled == Transfer::Stall::silent)
    result.detail = std::string("no data ") + moved + " for " + seconds_text(o.stall_window) +
                    " (stall timeout)";
  if (t.stalled == Transfer::Stall::slow)
    result.detail = "less than " + std::to_string(o.min_rate) + " bytes/s " + moved + " over " +
                    seconds_text(o.stall_window) + " (stall timeout)";
  // curl says "error setting certificate file" for a missing file, a folder
  // and a file without PEM certificates alike.
  if (code == CURLE_SSL_CACERT_BADFILE && !o.ca_bundle.empty())
    result.detail = "cannot load the CA bundle " + o.ca_bundle.string() +
                    ": missing, unreadable or without PEM certificates";
}

}  // namespace

Result Client::perform(const Request& request, const BodySink& sink) {
  Result result;
  if (auto problem = validate(request); !problem.empty()) {
    result.detail = std::move(problem);
    return result;
  }

  // What curl keeps pointers to until the transfer ends.
  const RequestText text = request_text(request);

  Transfer t;
  t.sink = &sink;
  t.on_response = &request.on_response;
  t.response = &result.response;
  t.follow_redirects = request.follow_redirects;
  if (const auto* memory = std::get_if<std::string>(&request.body)) {
    t.upload.memory = memory;
    t.upload.length = memory->size();
  } else if (const auto* file = std::get_if<FileRange>(&request.body)) {
    t.upload.file = *file;
    t.upload.length = file->length;
  }

  // Returns the handle to the pool on every exit path. Declared after
  // `text` so that the handle is reset before the strings it points to die.
  struct Lease {
    Impl& impl;
    EasyHandle handle;
    // Only a handle whose transfer completed goes back to the pool: after
    // some failures (a URL that does not parse, a host that does not
    // resolve) libcurl 7.88.1 keeps the handle's receive buffer, and then
    // refuses CURLOPT_BUFFERSIZE, hence every later request on that handle.
    bool reusable = false;
    ~Lease() {
      if (reusable) impl.release(std::move(handle));
    }
    CURL* get() const { return handle.get(); }
  } lease{*impl_, impl_->acquire()};
  CURL* h = lease.get();
  t.handle = h;
  const ClientOptions& o = impl_->options;

  const CURLcode setup = set_options(h, request, text, o, impl_->share, impl_->agent, t);
  if (setup != CURLE_OK) {
    result.detail = std::string("libcurl rejected an option: ") + curl_easy_strerror(setup);
    return result;
  }

  t.last_progress = t.window_start = Transfer::Clock::now();
  const CURLcode code = curl_easy_perform(h);
  lease.reusable = code == CURLE_OK;

  long status = 0;
  if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK)
    result.response.status = static_cast<int>(status);
  long redirects = 0;
  if (curl_easy_getinfo(h, CURLINFO_REDIRECT_COUNT, &redirects) == CURLE_OK)
    result.redirects = static_cast<int>(redirects);
  char* effective_url = nullptr;
  if (curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &effective_url) == CURLE_OK && effective_url)
    result.response.effective_url = effective_url;

  if (t.callback_error) std::rethrow_exception(t.callback_error);

  result.transport = classify(code, t);
  result.body_bytes = t.body_bytes;
  if (result.transport == Transport::ok && (result.response.status < 100 || result.response.status > 599)) {
    // RFC 9110 has no status outside 100-599: not a server to retry or to trust.
    result.transport = Transport::protocol;
    result.detail = "the server answered with HTTP status " + std::to_string(result.response.status) +
                    ", which HTTP does not have";
    return result;
  }
  const bool success = is_2xx(result.response.status);
  if (code == CURLE_OK && success && !t.response_announced && !announce_response(t)) {
    // A 2xx without body bytes (HEAD, empty file) is announced only now.
    result.transport = Transport::aborted;
    result.detail = "the response was rejected by the caller";
    return result;
  }
  if (code != CURLE_OK) describe_failure(code, t, o, result);
  return result;
}

}  // namespace e2s::detail::http
