// Tests of the libcurl client against tests/servers/http_server.py.
#include "http/client.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <iterator>
#include <ostream>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "e2s/version.hpp"
#include "support/fixtures.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"

namespace e2s::detail::http {

// Readable gtest failure messages (found by ADL; internal linkage so that
// other test files may define their own).
[[maybe_unused]] static void PrintTo(Transport transport, std::ostream* out) {
  static constexpr const char* kNames[] = {
      "ok", "timeout", "connect_failed", "interrupted", "tls", "too_many_redirects",
      "aborted", "other"};
  const auto index = static_cast<std::size_t>(transport);
  *out << (index < std::size(kNames) ? kNames[index] : "?");
}

namespace {

using e2s::test::TempDir;
using e2s::test::TestServer;
using namespace std::chrono_literals;


// A folder of files served by its own http_server.py.
struct Site {
  TempDir dir;
  TestServer server;
  Site() : server("http_server.py", {"--root", dir.path().string()}) {}
};

// Records what a BodySink received.
struct Collector {
  std::string data;
  int calls = 0;
  BodySink sink() {
    return [this](const char* p, std::size_t n) {
      data.append(p, n);
      ++calls;
      return true;
    };
  }
};

Request get(std::string url) {
  Request request;
  request.url = std::move(url);
  return request;
}

const nlohmann::json& last_request_to(const nlohmann::json& stats, std::string_view path) {
  const nlohmann::json* found = nullptr;
  for (const auto& r : stats.at("requests"))
    if (r.at("path") == path) found = &r;
  if (found == nullptr) throw std::runtime_error("no request to " + std::string(path));
  return *found;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

TEST(HttpClient, GetsWholeFile) {
  Site site;
  const auto content = e2s::test::make_bytes(1024 * 1024 + 7, 42);
  site.dir.write_file("models/weights.bin", content);
  Client client;
  Collector body;

  auto result = client.perform(get(site.server.url("/models/weights.bin")), body.sink());

  EXPECT_EQ(result.transport, Transport::ok) << result.detail;
  EXPECT_EQ(result.response.status, 200);
  EXPECT_EQ(result.body_bytes, content.size());
  EXPECT_TRUE(body.data == content);
  EXPECT_EQ(result.response.header("content-length"), std::to_string(content.size()));
  EXPECT_EQ(result.response.effective_url, site.server.url("/models/weights.bin"));
  EXPECT_TRUE(result.response.error_body.empty());
}

TEST(HttpClient, HeadReturnsTrimmedLowercaseHeadersOfFinalResponseOnly) {
  Site site;
  site.dir.write_file("f.bin", e2s::test::make_bytes(5000, 42));
  site.server.add_headers("/start", {{"X-Only-On-Redirect", "1"}});
  site.server.add_headers("/f.bin", {{"X-Custom-Thing", "  padded value  "}});
  site.server.fault({{"path", "/start"}, {"kind", "redirect"}, {"location", "/f.bin"}});
  Client client;
  Collector body;
  Request request = get(site.server.url("/start"));
  request.method = "HEAD";

  auto result = client.perform(request, body.sink());

  ASSERT_EQ(result.transport, Transport::ok) << result.detail;
  EXPECT_EQ(result.response.status, 200);
  EXPECT_EQ(result.response.header("x-custom-thing"), "padded value");
  EXPECT_EQ(result.response.header("content-length"), "5000");
  EXPECT_EQ(result.response.header("accept-ranges"), "bytes");
  EXPECT_EQ(result.response.headers.count("x-only-on-redirect"), 0u);
  EXPECT_EQ(result.response.headers.count("location"), 0u);
  for (const auto& [name, value] : result.response.headers) {
    for (char c : name) EXPECT_FALSE(std::isupper(static_cast<unsigned char>(c))) << name;
  }
  EXPECT_EQ(result.response.effective_url, site.server.url("/f.bin"));
  EXPECT_EQ(body.calls, 0);
  EXPECT_EQ(result.body_bytes, 0u);
  EXPECT_EQ(site.server.count("HEAD", "/f.bin"), 1u);
  EXPECT_EQ(site.server.count("GET", "/f.bin"), 0u);
}

TEST(HttpClient, RangeRequestGetsPartialContent) {
  Site site;
  const auto content = e2s::test::make_bytes(10000, 42);
  site.dir.write_file("f.bin", content);
  Client client;

  Collector closed;
  Request request = get(site.server.url("/f.bin"));
  request.range_begin = 100;
  request.range_end = 199;
  auto result = client.perform(request, closed.sink());
  ASSERT_EQ(result.transport, Transport::ok) << result.detail;
  EXPECT_EQ(result.response.status, 206);
  EXPECT_EQ(closed.data, content.substr(100, 100));
  EXPECT_EQ(result.response.header("content-range"), "bytes 100-199/10000");

  Collector open;
  request.range_begin = 9990;
  request.range_end.reset();
  result = client.perform(request, open.sink());
  ASSERT_EQ(result.transport, Transport::ok) << result.detail;
  EXPECT_EQ(result.response.status, 206);
  EXPECT_EQ(open.data, content.substr(9990));

  const auto stats = site.server.stats();
  ASSERT_EQ(stats["requests"].size(), 2u);
  EXPECT_EQ(stats["requests"][0]["range"], "bytes=100-199");
  EXPECT_EQ(stats["requests"][1]["range"], "bytes=9990-");
}

TEST(HttpClient, FollowsRedirectToAnotherPath) {
  Site site;
  site.dir.write_file("new.bin", "new content");
  site.server.fault({{"path", "/old.bin"}, {"kind", "redirect"}, {"location", "/new.bin"},
                     {"status", 302}});
  Client client;
  Collector body;

  auto result = client.perform(get(site.server.url("/old.bin")), body.sink());

  ASSERT_EQ(result.transport, Transport::ok) << result.detail;
  EXPECT_EQ(result.response.status, 200);
  EXPECT_EQ(body.data, "new content");
  EXPECT_EQ(result.response.effective_url, site.server.url("/new.bin"));
  EXPECT_EQ(site.server.count("GET", "/old.bin"), 1u);
  EXPECT_EQ(site.server.count("GET", "/new.bin"), 1u);
}

TEST(HttpClient, ReturnsRedirectItselfWhenNotFollowing) {
  Site site;
  site.dir.write_file("new.bin", "new content");
  site.server.fault({{"path", "/old.bin"}, {"kind", "redirect"}, {"location", "/new.bin"},
                     {"status", 307}});
  Client client;
  Collector body;
  Request request = get(site.server.url("/old.bin"));
  request.follow_redirects = false;

  auto result = client.perform(request, body.sink());

  ASSERT_EQ(result.transport, Transport::ok) << result.detail;
  EXPECT_EQ(result.response.status, 307);
  EXPECT_EQ(result.response.header("location"), "/new.bin");
  EXPECT_EQ(body.calls, 0);
  EXPECT_EQ(site.server.count("GET", "/new.bin"), 0u);
}

TEST(HttpClient, RedirectLoopIsTooManyRedirects) {
  Site site;
  site.server.fault(
      {{"path", "/loop"}, {"kind", "redirect"}, {"location", "/loop"}, {"times", -1}});
  Client client;
  Collector body;

  auto result = client.perform(get(site.server.url("/loop")), body.sink());

  EXPECT_EQ(result.transport, Transport::too_many_redirects) << result.detail;
  EXPECT_FALSE(result.detail.empty());
  EXPECT_EQ(body.calls, 0);
  // The first request plus exactly 10 followed redirects.
  EXPECT_EQ(site.server.count("GET", "/loop"), 11u);
}

TEST(HttpClient, RedirectToFileSchemeIsRefused) {
  Site site;
  const auto secret = site.dir.write_file("secret.txt", "local secret");
  site.server.fault({{"path", "/f.bin"}, {"kind", "redirect"},
                     {"location", "file://" + secret.string()}});
  Client client;
  Collector body;

  auto result = client.perform(get(site.server.url("/f.bin")), body.sink());

  EXPECT_EQ(result.transport, Transport::too_many_redirects) << result.detail;
  EXPECT_EQ(body.calls, 0);
  EXPECT_EQ(body.data.find("local secret"), std::string::npos);
}

TEST(HttpClient, UnsupportedSchemeOfTheRequestIsOther) {
  Client client;
  auto result = client.perform(get("ftp://127.0.0.1:1/x"));
  EXPECT_EQ(result.transport, Transport::other);
  EXPECT_FALSE(result.detail.empty());
}

TEST(HttpClient, NotFoundBodyGoesToErrorBodyNotSink) {
  Site site;
  Client client;
  Collector body;

  auto result = client.perform(get(site.server.url("/missing.bin")), body.sink());

  EXPECT_EQ(result.transport, Transport::ok) << result.detail;
  EXPECT_EQ(result.response.status, 404);
  EXPECT_EQ(result.response.error_body, "not found\n");
  EXPECT_EQ(body.calls, 0);
  EXPECT_EQ(result.body_bytes, 0u);
}

TEST(HttpClient, ErrorBodyIsCappedAt64KiB) {
  Site site;
  site.server.fault({{"path", "/f.bin"}, {"kind", "status"}, {"status", 500},
                     {"body", std::string(100 * 1024, 'x')}});
  Client client;

  auto result = client.perform(get(site.server.url("/f.bin")));

  EXPECT_EQ(result.transport, Transport::ok) << result.detail;
  EXPECT_EQ(result.response.status, 500);
  EXPECT_EQ(result.response.error_body.size(), 64u * 1024u);
}

TEST(HttpClient, ConnectionCutMidBodyIsInterrupted) {
  Site site;
  site.dir.write_file("f.bin", e2s::test::make_bytes(1024 * 1024, 42));
  Client client;
  // "cut" ends with a TCP reset, "short" with an early orderly close.
  for (const char* kind : {"cut", "short"}) {
    site.server.fault({{"path", "/f.bin"}, {"kind", kind}, {"after", 5000}});
    Collector body;

    auto result = client.perform(get(site.server.url("/f.bin")), body.sink());

    EXPECT_EQ(result.transport, Transport::interrupted) << kind << ": " << result.detail;
    EXPECT_EQ(result.response.status, 200) << kind;
    EXPECT_LE(result.body_bytes, 5000u) << kind;
    EXPECT_EQ(result.body_bytes, body.data.size()) << kind;
  }
}

TEST(HttpClient, StallTimesOutAfterStallTimeout) {
  Site site;
  site.dir.write_file("f.bin", e2s::test::make_bytes(100000, 42));
  site.server.fault({{"path", "/f.bin"}, {"kind", "stall"}, {"after", 1000}, {"seconds", 20}});
  ClientOptions options;
  options.stall_window = 500ms;
  options.min_rate = 0;
  Client client(options);

  const auto start = std::chrono::steady_clock::now();
  auto result = client.perform(get(site.server.url("/f.bin")), Collector().sink());
  const double elapsed = seconds_since(start);

  EXPECT_EQ(result.transport, Transport::timeout) << result.detail;
  EXPECT_NE(result.detail.find("no data received for 0.5 s"), std::string::npos) << result.detail;
  EXPECT_EQ(result.body_bytes, 1000u);
  EXPECT_GE(elapsed, 0.45);
  EXPECT_LT(elapsed, 3.0);
}

TEST(HttpClient, ABodyBelowTheMinimumRateIsAStall) {
  Site site;
  site.dir.write_file("f.bin", e2s::test::make_bytes(1024 * 1024, 42));
  site.server.fault({{"path", "/f.bin"}, {"kind", "trickle"}, {"bytes_per_sec", 500}});
  ClientOptions options;
  options.stall_window = 1s;
  options.min_rate = 1024;
  Client client(options);

  const auto start = std::chrono::steady_clock::now();
  auto result = client.perform(get(site.server.url("/f.bin")), Collector().sink());
  const double elapsed = seconds_since(start);

  EXPECT_EQ(result.transport, Transport::timeout) << result.detail;
  EXPECT_NE(result.detail.find("less than 1024 bytes/s"), std::string::npos) << result.detail;
  EXPECT_GT(result.body_bytes, 0u);  // it was slow, not silent
  EXPECT_GE(elapsed, 0.9);
  EXPECT_LT(elapsed, 3.0);
}

TEST(HttpClient, ABodyAtTheMinimumRateIsNeverCut) {
  Site site;
  site.dir.write_file("f.bin", e2s::test::make_bytes(8000, 42));
  site.server.fault({{"path", "/f.bin"}, {"kind", "trickle"}, {"bytes_per_sec", 4000}});
  ClientOptions options;
  options.stall_window = 500ms;
  options.min_rate = 1024;
  Client client(options);
  auto result = client.perform(get(site.server.url("/f.bin")), Collector().sink());
  EXPECT_EQ(result.transport, Transport::ok) << result.detail;
  EXPECT_EQ(result.body_bytes, 8000u);
}

TEST(HttpClient, ClosedPortIsConnectFailed) {
  // A bound socket that does not listen: connecting to it is refused, and no
  // other process can take the port while we hold it.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  socklen_t length = sizeof address;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const int port = ntohs(address.sin_port);
  Client client;
  Request request = get("http://127.0.0.1:" + std::to_string(port) + "/f.bin");
  request.headers = {"Authorization: Bearer sekrit-token-123"};

  auto result = client.perform(request);
  ::close(fd);

  EXPECT_EQ(result.transport, Transport::connect_failed) << result.detail;
  EXPECT_EQ(result.response.status, 0);
  EXPECT_FALSE(result.detail.empty());
  EXPECT_EQ(result.detail.find("sekrit"), std::string::npos) << result.detail;
}

TEST(HttpClient, TlsHandshakeWithPlainServerIsTls) {
  Site site;
  site.dir.write_file("f.bin", "x");
  Client client;
  std::string url = site.server.url("/f.bin");
  url.replace(0, 4, "https");

  auto result = client.perform(get(url));

  EXPECT_EQ(result.transport, Transport::tls) << result.detail;
}

TEST(HttpClient, SinkReturningFalseAborts) {
  Site site;
  site.dir.write_file("f.bin", e2s::test::make_bytes(1024 * 1024, 42));
  Client client;
  int calls = 0;

  auto result = client.perform(get(site.server.url("/f.bin")), [&](const char*, std::size_t) {
    ++calls;
    return false;
  });

  EXPECT_EQ(result.transport, Transport::aborted) << result.detail;
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(result.body_bytes, 0u);
}

TEST(HttpClient, SinkExceptionPropagatesAndClientStaysUsable) {
  Site site;
  site.dir.write_file("f.bin", e2s::test::make_bytes(300000, 42));
  Client client;

  EXPECT_THROW(client.perform(get(site.server.url("/f.bin")),
                              [](const char*, std::size_t) -> bool {
                                throw std::runtime_error("disk full");
                              }),
               std::runtime_error);

  Collector body;
  auto result = client.perform(get(site.server.url("/f.bin")), body.sink());
  EXPECT_EQ(result.transport, Transport::ok) << result.detail;
  EXPECT_EQ(body.data.size(), 300000u);
}

TEST(HttpClient, AuthorizationIsNotSentToAnotherPortAfterRedirect) {
  Site first;
  Site second;
  second.dir.write_file("f.bin", "from the second server");
  first.server.fault({{"path", "/f.bin"}, {"kind", "redirect"},
                      {"location", second.server.url("/f.bin")}});
  Client client;
  Collector body;
  Request request = get(first.server.url("/f.bin"));
  request.headers = {"Authorization: Bearer sekrit-token-123", "X-Trace: 7"};

  auto result = client.perform(request, body.sink());

  ASSERT_EQ(result.transport, Transport::ok) << result.detail;
  EXPECT_EQ(body.data, "from the second server");
  const auto first_stats = first.server.stats();
  const auto& sent_first = last_request_to(first_stats, "/f.bin").at("headers");
  EXPECT_EQ(sent_first.value("authorization", ""), "Bearer sekrit-token-123");
  const auto second_stats = second.server.stats();
  const auto& sent_second = last_request_to(second_stats, "/f.bin").at("headers");
  EXPECT_FALSE(sent_second.contains("authorization")) << sent_second.dump();
  // Other custom headers do follow, so the absence above is curl's choice.
  EXPECT_EQ(sent_second.value("x-trace", ""), "7");
}

TEST(HttpClient, AuthorizationIsNotSentToAnotherHostNameAfterRedirect) {
  Site site;
  site.dir.write_file("f.bin", "same port, other name");
  const std::string other_name = "http://localhost:" + std::to_string(site.server.port());
  site.server.fault(
      {{"path", "/start"}, {"kind", "redirect"}, {"location", other_name + "/f.bin"}});
  Client client;
  Collector body;
  Request request = get(site.server.url("/start"));
  request.headers = {"Authorization: Bearer sekrit-token-123"};

  auto result = client.perform(request, body.sink());

  ASSERT_EQ(result.transport, Transport::ok) << result.detail;
  EXPECT_EQ(body.data, "same port, other name");
  const auto stats = site.server.stats();
  const auto& sent = last_request_to(stats, "/f.bin").at("headers");
  EXPECT_FALSE(sent.contains("authorization")) << sent.dump();
}

TEST(HttpClient, AuthorizationIsKeptOnSameHostRedirect) {
  Site site;
  site.dir.write_file("f.bin", "same host");
  site.server.fault({{"path", "/start"}, {"kind", "redirect"},
                     {"location", site.server.url("/f.bin")}});
  Client client;
  Collector body;
  Request request = get(site.server.url("/start"));
  request.headers = {"Authorization: Bearer sekrit-token-123"};

  auto result = client.perform(request, body.sink());

  ASSERT_EQ(result.transport, Transport::ok) << result.detail;
  EXPECT_EQ(body.data, "same host");
  const auto stats = site.server.stats();
  const auto& sent = last_request_to(stats, "/f.bin").at("headers");
  EXPECT_EQ(sent.value("authorization", ""), "Bearer sekrit-token-123");
}

TEST(HttpClient, SendsUserAgentAndCustomHeadersButNoAcceptEncoding) {
  Site site;
  site.dir.write_file("f.bin", "x");
  Client client;
  Request request = get(site.server.url("/f.bin"));
  request.headers = {"X-Custom: yes"};

  auto result = client.perform(request);

  ASSERT_EQ(result.transport, Transport::ok) << result.detail;
  const auto stats = site.server.stats();
  const auto& sent = last_request_to(stats, "/f.bin").at("headers");
  EXPECT_EQ(sent.value("user-agent", ""), user_agent());
  EXPECT_EQ(user_agent().rfind(std::string("e2s/") + E2S_VERSION + " libcurl/", 0), 0u)
      << user_agent();
  EXPECT_EQ(sent.value("x-custom", ""), "yes");
  EXPECT_FALSE(sent.contains("accept-encoding"));
}

TEST(HttpClient, MalformedRequestHeaderIsRefusedWithoutSending) {
  Site site;
  site.dir.write_file("f.bin", "x");
  Client client;
  Request request = get(site.server.url("/f.bin"));
  request.headers = {"Authorization: Bearer sekrit\r\nX-Injected: 1"};

  auto result = client.perform(request);

  EXPECT_EQ(result.transport, Transport::other);
  EXPECT_EQ(result.detail.find("sekrit"), std::string::npos) << result.detail;
  EXPECT_EQ(site.server.count("GET", "/f.bin"), 0u);
}

TEST(HttpClient, BodiesGoOnlyWithPutOrPostAndSignedOnesNeedTheirHash) {
  // Refused before connecting: nothing listens on the discard port.
  Client client;
  Request with_body = get("http://127.0.0.1:9/f.bin");
  with_body.body = std::string("x");
  auto result = client.perform(with_body);
  EXPECT_EQ(result.transport, Transport::other);
  EXPECT_NE(result.detail.find("PUT or POST"), std::string::npos) << result.detail;

  with_body.method = "PUT";
  with_body.aws_sigv4 = AwsSigV4{"us-east-1", "s3", "AKIDEXAMPLE", "sekrit"};
  result = client.perform(with_body);
  EXPECT_EQ(result.transport, Transport::other);
  EXPECT_NE(result.detail.find("x-amz-content-sha256"), std::string::npos) << result.detail;
  EXPECT_EQ(result.detail.find("sekrit"), std::string::npos) << result.detail;

  with_body.method = "PATCH";
  EXPECT_EQ(client.perform(with_body).transport, Transport::other);
}

TEST(HttpClient, IgnoredRangeIsReportedAsPlainOk) {
  Site site;
  const auto content = e2s::test::make_bytes(4000, 42);
  site.dir.write_file("f.bin", content);
  site.server.fault({{"path", "/f.bin"}, {"kind", "ignore_range"}});
  Client client;
  Collector body;
  Request request = get(site.server.url("/f.bin"));
  request.range_begin = 1000;

  auto result = client.perform(request, body.sink());

  // Judging a 200 to a Range request is the caller's business.
  ASSERT_EQ(result.transport, Transport::ok) << result.detail;
  EXPECT_EQ(result.response.status, 200);
  EXPECT_TRUE(body.data == content);
}

TEST(HttpClient, OnResponseSeesFinalHeadersBeforeFirstBodyByte) {
  Site site;
  const auto content = e2s::test::make_bytes(200000, 42);
  site.dir.write_file("f.bin", content);
  site.server.fault({{"path", "/start"}, {"kind", "redirect"}, {"location", "/f.bin"}});
  Client client;
  Collector body;
  int calls = 0;
  int status_seen = 0;
  std::string range_seen;
  std::string url_seen;
  int body_calls_before = -1;
  Request request = get(site.server.url("/start"));
  request.range_begin = 10;
  request.on_response = [&](const Response& response) {
    ++calls;
    status_seen = response.status;
    range_seen = response.header("content-range");
    url_seen = response.effective_url;
    body_calls_before = body.calls;
    return true;
  };

  auto result = client.perform(request, body.sink());

  ASSERT_EQ(result.transport, Transport::ok) << result.detail;
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(status_seen, 206);
  EXPECT_EQ(range_seen, "bytes 10-199999/200000");
  EXPECT_EQ(url_seen, site.server.url("/f.bin"));
  EXPECT_EQ(body_calls_before, 0);
  EXPECT_TRUE(body.data == content.substr(10));
}

TEST(HttpClient, OnResponseReturningFalseAbortsBeforeTheSink) {
  Site site;
  site.dir.write_file("f.bin", e2s::test::make_bytes(100000, 42));
  site.server.fault({{"path", "/f.bin"}, {"kind", "ignore_range"}});
  Client client;
  Collector body;
  Request request = get(site.server.url("/f.bin"));
  request.range_begin = 500;
  request.on_response = [](const Response& response) { return response.status == 206; };

  auto result = client.perform(request, body.sink());

  EXPECT_EQ(result.transport, Transport::aborted) << result.detail;
  EXPECT_EQ(result.response.status, 200);
  EXPECT_EQ(body.calls, 0);
  EXPECT_EQ(result.body_bytes, 0u);
}

TEST(HttpClient, OnResponseAnnouncesBodilessSuccessButNotErrors) {
  Site site;
  site.dir.write_file("empty.bin", "");
  site.dir.write_file("f.bin", "x");
  Client client;
  int calls = 0;
  auto count_calls = [&](const Response&) {
    ++calls;
    return true;
  };

  Request empty = get(site.server.url("/empty.bin"));
  empty.on_response = count_calls;
  auto result = client.perform(empty, Collector().sink());
  ASSERT_EQ(result.transport, Transport::ok) << result.detail;
  EXPECT_EQ(calls, 1);

  Request head = get(site.server.url("/f.bin"));
  head.method = "HEAD";
  head.on_response = [](const Response&) { return false; };
  result = client.perform(head);
  EXPECT_EQ(result.transport, Transport::aborted) << result.detail;

  Request missing = get(site.server.url("/missing.bin"));
  missing.on_response = count_calls;
  result = client.perform(missing, Collector().sink());
  ASSERT_EQ(result.transport, Transport::ok) << result.detail;
  EXPECT_EQ(result.response.status, 404);
  EXPECT_EQ(calls, 1);  // not called for the 404
}

TEST(HttpClient, ReusesConnectionForSequentialRequests) {
  Site site;
  site.dir.write_file("a.bin", e2s::test::make_bytes(2000, 1));
  site.dir.write_file("b.bin", e2s::test::make_bytes(3000, 2));
  Client client;

  auto first = client.perform(get(site.server.url("/a.bin")), Collector().sink());
  auto second = client.perform(get(site.server.url("/b.bin")), Collector().sink());

  ASSERT_EQ(first.transport, Transport::ok) << first.detail;
  ASSERT_EQ(second.transport, Transport::ok) << second.detail;
  const auto stats = site.server.stats();
  ASSERT_EQ(stats["requests"].size(), 2u);
  EXPECT_EQ(stats["requests"][0]["client_port"], stats["requests"][1]["client_port"]);
}

TEST(HttpClient, ManyConcurrentRequestsFromEightThreadsSucceed) {
  Site site;
  const auto content = e2s::test::make_bytes(256 * 1024, 42);
  site.dir.write_file("f.bin", content);
  Client client;
  constexpr int kThreads = 8;
  constexpr int kPerThread = 10;
  std::atomic<int> good{0};
  std::vector<std::string> failures(kThreads);

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Request request = get(site.server.url("/f.bin"));
        const std::uint64_t begin = static_cast<std::uint64_t>(t * kPerThread + i) * 3000;
        request.range_begin = begin;
        request.range_end = begin + 4095;
        Collector body;
        auto result = client.perform(request, body.sink());
        if (result.transport == Transport::ok && result.response.status == 206 &&
            body.data == content.substr(begin, 4096)) {
          ++good;
        } else {
          failures[t] += "request " + std::to_string(i) + ": status " +
                         std::to_string(result.response.status) + " " + result.detail + "\n";
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();

  for (const auto& f : failures) EXPECT_TRUE(f.empty()) << f;
  EXPECT_EQ(good.load(), kThreads * kPerThread);
  EXPECT_EQ(site.server.count("GET", "/f.bin"), static_cast<std::size_t>(kThreads * kPerThread));
}

}  // namespace
}  // namespace e2s::detail::http
