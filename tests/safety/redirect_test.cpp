// Redirects: a redirect to another scheme (file:, ftp:, gopher:, dict:) is
// refused with a clear error and nothing read; a scheme-relative Location
// stays on http; a chain of 10 redirects is followed and one of 11 is not;
// credentials never follow a redirect to another host (the Hugging Face
// token, S3 SigV4 with its session token, the NGC bearer token and API key),
// while a redirect within the Hub's own origin keeps the token, as curl and
// httpx do (protocols.md §1.4). Through the library and the CLI.
//
// "Another host" is tried both as another port on 127.0.0.1 and as
// 127.0.0.2 on the same port (a pure host change).
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "e2s/error.hpp"
#include "e2s/package.hpp"
#include "safety/safety_env.hpp"
#include "support/cli_runner.hpp"
#include "support/fixtures.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"

namespace {

namespace fs = std::filesystem;
using e2s::test::CliRun;
using e2s::test::contains;
using e2s::test::error_of;
using e2s::test::expect_one_error_line;
using e2s::test::get_json;
using e2s::test::lines;
using e2s::test::make_bytes;
using e2s::test::TempDir;
using e2s::test::TestServer;
using e2s::test::EnvGuard;
using e2s::test::recorded_requests;
using e2s::test::safety::scrubbed;
using nlohmann::json;

constexpr const char* kHfToken = "hf_redirectTokenQ7w2Lk9";
constexpr const char* kNgcKey = "ngcRedirectKeyZ3x8Vb1m";  // a legacy key: exchanged for a token
constexpr const char* kAwsKeyId = "AKIAREDIRECTTEST7Q2W";
constexpr const char* kAwsSecret = "redirectSecretKey/9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c";
constexpr const char* kAwsSessionToken = "redirectSessionTokenFQoGZXIvYXdzE7n4m1";

// An http_server.py on another loopback address (127.0.0.2) that a
// TestServer (which speaks to 127.0.0.1) cannot control: only its request
// log is read, over its own address.
class OtherHost {
 public:
  // `port` 0 lets the OS choose; the port of a server on 127.0.0.1 makes a
  // pure host change.
  OtherHost(const fs::path& root, int port)
      : server_("http_server.py",
                {"--root", root.string(), "--host", "127.0.0.2", "--port", std::to_string(port)}) {}

  std::string url(const std::string& path) const {
    return "http://127.0.0.2:" + std::to_string(server_.port()) + path;
  }
  std::vector<json> requests() const { return recorded_requests(get_json(url("/_stats"))); }

 private:
  TestServer server_;
};

// A request header, "" when absent.
std::string header(const json& request, const std::string& name) {
  return request.at("headers").value(name, "");
}

// True when `text` holds none of the credentials of this file.
bool holds_no_credential(const std::string& text) {
  for (const char* secret : {kHfToken, kNgcKey, kAwsSecret, kAwsSessionToken}) {
    if (contains(text, secret)) return false;
  }
  return true;
}

// No request `requests` recorded carried a credential in any header or in its target.
void expect_no_credentials(const std::vector<json>& requests) {
  for (const auto& request : requests) {
    EXPECT_FALSE(request.at("headers").contains("authorization")) << request.dump();
    EXPECT_FALSE(request.at("headers").contains("x-amz-security-token")) << request.dump();
    EXPECT_TRUE(holds_no_credential(request.dump())) << request.dump();
  }
}

class RedirectTest : public ::testing::Test {
 protected:
  RedirectTest() { env_.set("HOME", home_.path().string()); }

  // Fast retries, and the cache in this test's folder (`sub` keeps runs apart).
  e2s::PackageOptions options(const std::string& sub) const {
    return e2s::test::quick_retry_options(storage(sub));
  }

  fs::path storage(const std::string& sub) const { return cache_.path() / "lib" / sub; }

  // Runs the e2s binary with `env` on top of this test's cache and HOME.
  CliRun run_cli(const std::vector<std::string>& args, std::map<std::string, std::string> env = {}) const {
    env["EARTH2STUDIO_CACHE"] = (cache_.path() / "cli").string();
    env["HOME"] = home_.path().string();
    return e2s::test::run_e2s(args, env, scrubbed);
  }

  // Nothing at all is in the cache: no data file, no metadata record.
  void expect_empty_cache() const {
    EXPECT_TRUE(e2s::test::cached_files(cache_.path()).empty());
    if (!fs::exists(cache_.path())) return;
    for (const auto& entry : fs::recursive_directory_iterator(cache_.path())) {
      EXPECT_FALSE(contains(entry.path().string(), "/.e2s/meta/") && entry.is_regular_file())
          << entry.path();
    }
  }

  EnvGuard env_{e2s::test::safety::scrubbed};
  TempDir home_;
  TempDir cache_;
};

// ---- plain HTTP: schemes and chains -----------------------------------------------

class HttpRedirectTest : public RedirectTest {
 protected:
  HttpRedirectTest() : site_("http_server.py", {"--root", served_.path().string()}) {
    served_.write_file("pkg/a.txt", "the real a.txt\n");
    served_.write_file("real/a.txt", "a.txt at the end of the chain\n");
  }

  std::string root() const { return site_.url("/pkg"); }
  std::string uri() const { return root() + "/a.txt"; }

  // GET /pkg/a.txt answers redirects through `hops` - 1 more paths on the
  // site and then to /real/a.txt: `hops` redirects in all.
  void chain(int hops) const {
    site_.reset();
    std::string from = "/pkg/a.txt";
    for (int hop = 1; hop <= hops; ++hop) {
      const std::string to = hop == hops ? "/real/a.txt" : "/hop/" + std::to_string(hop);
      site_.fault({{"path", from}, {"kind", "redirect"}, {"location", site_.url(to)}});
      from = to;
    }
  }

  TempDir served_;
  TestServer site_;
};

TEST_F(HttpRedirectTest, RedirectToAnotherSchemeOrNoHostIsRefusedAndNothingIsRead) {
  // What a local file:// read would bring back, were it followed.
  const std::string passwd_start = TempDir::read_file("/etc/passwd").substr(0, 12);
  const std::string other = "127.0.0.1:" + std::to_string(site_.port());
  const std::vector<std::string> locations = {
      "file:///etc/passwd", "FILE:///etc/passwd", "file:/etc/passwd",
      "file://localhost/etc/passwd", "ftp://" + other + "/pkg/a.txt",
      "gopher://" + other + "/1a.txt", "dict://" + other + "/d:a.txt",
      // Scheme-relative or http(s) without a host: libcurl would look up
      // "etc" as a host name; refused before that.
      "///etc/passwd", "http:///etc/passwd", "HTTPS:/etc/passwd"};
  int run = 0;
  for (const auto& location : locations) {
    SCOPED_TRACE(location);
    const std::string sub = std::to_string(run++);
    site_.reset();
    site_.fault({{"path", "/pkg/a.txt"}, {"kind", "redirect"}, {"location", location}, {"times", -1}});
    e2s::Package package(root(), options(sub));
    const e2s::Error e = error_of([&] { package.resolve("a.txt"); });
    EXPECT_EQ(e.code(), e2s::Errc::network) << e.what();
    EXPECT_EQ(e.uri(), uri());
    EXPECT_TRUE(contains(e.what(), "redirect")) << e.what();
    EXPECT_TRUE(contains(e.what(), uri())) << e.what();
    EXPECT_FALSE(contains(e.what(), passwd_start)) << e.what();
    // Refused, not retried: one request, and the site sent no body.
    EXPECT_EQ(site_.count("GET", "/pkg/a.txt"), 1u);
    EXPECT_EQ(site_.body_bytes(), 0u);
    EXPECT_FALSE(fs::exists(storage(sub) / "a.txt"));

    const CliRun cli = run_cli({"resolve", root(), "a.txt"});
    EXPECT_EQ(cli.status, 5) << cli.err;
    expect_one_error_line(cli);
    EXPECT_TRUE(contains(cli.err, uri())) << cli.err;
    EXPECT_TRUE(contains(cli.err, "redirect")) << cli.err;
    EXPECT_FALSE(contains(cli.err, passwd_start)) << cli.err;
    EXPECT_EQ(site_.count("GET", "/pkg/a.txt"), 2u);
  }
  expect_empty_cache();
}

TEST_F(HttpRedirectTest, MalformedRedirectIsRefusedAndTheNextDownloadStillWorks) {
  served_.write_file("pkg/b.txt", "b after a refused redirect\n");
  site_.fault({{"path", "/pkg/a.txt"}, {"kind", "redirect"}, {"location", "http://[::1:bad/a.txt"},
               {"times", -1}});
  e2s::Package package(root(), options("lib"));
  const e2s::Error e = error_of([&] { package.resolve("a.txt"); });
  EXPECT_EQ(e.code(), e2s::Errc::network) << e.what();
  EXPECT_TRUE(contains(e.what(), "redirect")) << e.what();
  EXPECT_TRUE(contains(e.what(), uri())) << e.what();
  EXPECT_EQ(site_.count("GET", "/pkg/a.txt"), 1u);
  EXPECT_EQ(TempDir::read_file(package.resolve("b.txt")), "b after a refused redirect\n");
  EXPECT_FALSE(fs::exists(storage("lib") / "a.txt"));
}

TEST_F(HttpRedirectTest, SchemeRelativeRedirectStaysOnHttp) {
  // "//host:port/etc/passwd" inherits http: the other host is asked for the
  // path over HTTP (it has no such file), nothing local is opened.
  TempDir empty;
  TestServer other("http_server.py", {"--root", empty.path().string()});
  const std::string location = "//127.0.0.1:" + std::to_string(other.port()) + "/etc/passwd";
  site_.fault({{"path", "/pkg/a.txt"}, {"kind", "redirect"}, {"location", location}, {"times", -1}});
  e2s::Package package(root(), options("lib"));
  const e2s::Error e = error_of([&] { package.resolve("a.txt"); });
  EXPECT_EQ(e.code(), e2s::Errc::not_found) << e.what();
  EXPECT_TRUE(contains(e.what(), uri())) << e.what();
  EXPECT_EQ(other.count("GET", "/etc/passwd"), 1u);

  const CliRun cli = run_cli({"resolve", root(), "a.txt"});
  EXPECT_EQ(cli.status, 3) << cli.err;
  expect_one_error_line(cli);
  EXPECT_EQ(other.count("GET", "/etc/passwd"), 2u);
  expect_empty_cache();
}

TEST_F(HttpRedirectTest, TenRedirectsAreFollowed) {
  chain(10);
  e2s::Package package(root(), options("lib"));
  EXPECT_EQ(TempDir::read_file(package.resolve("a.txt")), "a.txt at the end of the chain\n");
  EXPECT_EQ(site_.stats().at("requests").size(), 11u);
  EXPECT_EQ(site_.count("GET", "/real/a.txt"), 1u);

  chain(10);
  const CliRun cli = run_cli({"resolve", root(), "a.txt"});
  ASSERT_EQ(cli.status, 0) << cli.err;
  EXPECT_EQ(TempDir::read_file(lines(cli.out).at(0)), "a.txt at the end of the chain\n");
  EXPECT_EQ(site_.stats().at("requests").size(), 11u);
}

TEST_F(HttpRedirectTest, ElevenRedirectsAreRefused) {
  chain(11);
  e2s::Package package(root(), options("lib"));
  const e2s::Error e = error_of([&] { package.resolve("a.txt"); });
  EXPECT_EQ(e.code(), e2s::Errc::network) << e.what();
  EXPECT_TRUE(contains(e.what(), "redirect")) << e.what();
  EXPECT_TRUE(contains(e.what(), uri())) << e.what();
  // The first request and 10 redirects followed; the 11th is not, and the
  // chain is not retried.
  EXPECT_EQ(site_.stats().at("requests").size(), 11u);
  EXPECT_EQ(site_.count("GET", "/real/a.txt"), 0u);

  chain(11);
  const CliRun cli = run_cli({"resolve", root(), "a.txt"});
  EXPECT_EQ(cli.status, 5) << cli.err;
  expect_one_error_line(cli);
  EXPECT_TRUE(contains(cli.err, uri())) << cli.err;
  EXPECT_EQ(site_.count("GET", "/real/a.txt"), 0u);
  expect_empty_cache();
}

TEST_F(HttpRedirectTest, RootWithCredentialsIsRefusedBeforeAnyRequest) {
  // Plain HTTP has no credentials of its own: a root with them is refused.
  const std::string root = "http://user:hunter2pass@127.0.0.1:" + std::to_string(site_.port()) + "/pkg";
  const e2s::Error e = error_of([&] { e2s::Package(root, options("lib")).resolve("a.txt"); });
  EXPECT_EQ(e.code(), e2s::Errc::invalid_uri) << e.what();
  EXPECT_FALSE(contains(e.what(), "hunter2pass")) << e.what();
  const CliRun cli = run_cli({"resolve", root, "a.txt"});
  EXPECT_EQ(cli.status, 2) << cli.err;
  expect_one_error_line(cli);
  EXPECT_FALSE(contains(cli.err, "hunter2pass")) << cli.err;
  EXPECT_TRUE(site_.stats().at("requests").empty());
  expect_empty_cache();
}

// ---- Hugging Face: the token ---------------------------------------------------------

class HfRedirectTest : public RedirectTest {
 protected:
  HfRedirectTest()
      : hub_("hf_server.py", {"--root", repos_.path().string(), "--token", kHfToken}),
        other_port_(served_.path(), 0),
        other_host_(served_.path(), hub_.port()) {
    repos_.write_file("models/acme/weather/main/config.json", kConfig);
    repos_.write_file("models/acme/weather/main/copy.json", kConfig);
    repos_.write_file("models/acme/weather/main/weights.bin", weights_);
    served_.write_file("elsewhere/config.json", kConfig);
    served_.write_file("elsewhere/weights.bin", weights_);
    env_.set("HF_ENDPOINT", hub_.url());
    env_.set("HF_HOME", home_.path().string());
    env_.set("HF_TOKEN", kHfToken);
  }

  std::map<std::string, std::string> cli_env() const {
    return {{"HF_ENDPOINT", hub_.url()}, {"HF_TOKEN", kHfToken}};
  }

  std::vector<json> hub_requests(const std::string& method) const {
    std::vector<json> out;
    for (const auto& request : recorded_requests(hub_)) {
      if (request.at("host") == "hub" && request.at("method") == method) out.push_back(request);
    }
    return out;
  }

  static constexpr const char* kConfig = "{\"model\": \"redirected\"}\n";
  const std::string weights_ = make_bytes(20000, 5);
  TempDir repos_;
  TempDir served_;
  TestServer hub_;
  OtherHost other_port_;  // 127.0.0.2, another port
  OtherHost other_host_;  // 127.0.0.2, the Hub's port
};

TEST_F(HfRedirectTest, TokenIsNotSentToAnotherHostTheDownloadIsRedirectedTo) {
  int run = 0;
  for (const OtherHost* other : {&other_port_, &other_host_}) {
    const std::string target = other->url("/elsewhere/config.json");
    SCOPED_TRACE(target);
    hub_.reset();
    // The HEAD answers normally (200, size, ETag); the GET is redirected.
    hub_.fault({{"path", "/acme/weather/resolve/main/config.json"}, {"kind", "redirect"},
                {"location", target}, {"methods", {"GET"}}, {"times", 2}});
    const std::string sub = std::to_string(run++);
    e2s::Package package("hf://acme/weather", options(sub));
    EXPECT_EQ(TempDir::read_file(package.resolve("config.json")), kConfig);
    const CliRun cli = run_cli({"--cache-dir", (cache_.path() / "cli" / sub).string(), "resolve",
                                "hf://acme/weather", "config.json"},
                               cli_env());
    ASSERT_EQ(cli.status, 0) << cli.err;
    EXPECT_EQ(TempDir::read_file(lines(cli.out).at(0)), kConfig);

    // The Hub itself got the token on every request, so it was in play.
    const auto heads = hub_requests("HEAD");
    ASSERT_EQ(heads.size(), 2u);
    for (const auto& request : hub_requests("GET")) {
      EXPECT_EQ(header(request, "authorization"), std::string("Bearer ") + kHfToken) << request.dump();
    }
    const auto at_other = other->requests();
    EXPECT_GE(at_other.size(), 2u);
    expect_no_credentials(at_other);
  }
}

TEST_F(HfRedirectTest, TokenIsNotSentToAnotherHostTheHeadPointsTo) {
  // An absolute or scheme-relative Location on the HEAD names the download
  // URL (as the Hub's CDN redirects do): the token stays on the Hub.
  int run = 0;
  for (const std::string& location : {other_host_.url("/elsewhere/weights.bin"),
                                      other_port_.url("/elsewhere/weights.bin").substr(5)}) {
    SCOPED_TRACE(location);
    hub_.reset();
    hub_.fault({{"path", "/acme/weather/resolve/main/weights.bin"}, {"kind", "redirect"},
                {"location", location}, {"methods", {"HEAD"}}});
    e2s::Package package("hf://acme/weather", options(std::to_string(run++)));
    EXPECT_EQ(TempDir::read_file(package.resolve("weights.bin")), weights_);
    EXPECT_EQ(header(hub_requests("HEAD").at(0), "authorization"), std::string("Bearer ") + kHfToken);
  }
  expect_no_credentials(other_host_.requests());
  expect_no_credentials(other_port_.requests());
  EXPECT_EQ(other_host_.requests().size(), 1u);
  EXPECT_EQ(other_port_.requests().size(), 1u);
}

TEST_F(HfRedirectTest, TokenIsKeptOnARedirectWithinTheHub) {
  // Same scheme, host and port: curl and httpx keep Authorization there.
  hub_.fault({{"path", "/acme/weather/resolve/main/config.json"}, {"kind", "redirect"},
              {"location", hub_.url("/acme/weather/resolve/main/copy.json")}, {"methods", {"GET"}}});
  e2s::Package package("hf://acme/weather", options("lib"));
  EXPECT_EQ(TempDir::read_file(package.resolve("config.json")), kConfig);
  EXPECT_EQ(hub_.count("GET", "/acme/weather/resolve/main/copy.json"), 1u);
  for (const auto& request : hub_requests("GET")) {
    EXPECT_EQ(header(request, "authorization"), std::string("Bearer ") + kHfToken) << request.dump();
  }
}

TEST_F(HfRedirectTest, PathRelativeLocationStaysOnTheHub) {
  // A Location without a leading '/' is a path on the Hub, as huggingface_hub
  // reads it: the token goes along, it is the same origin.
  hub_.fault({{"path", "/acme/weather/resolve/main/config.json"}, {"kind", "redirect"},
              {"location", "acme/weather/resolve/main/copy.json"}, {"methods", {"HEAD"}}});
  e2s::Package package("hf://acme/weather", options("lib"));
  EXPECT_EQ(TempDir::read_file(package.resolve("config.json")), kConfig);
  EXPECT_EQ(hub_.count("HEAD", "/acme/weather/resolve/main/copy.json"), 1u);
  for (const auto& request : hub_requests("HEAD")) {
    EXPECT_EQ(header(request, "authorization"), std::string("Bearer ") + kHfToken) << request.dump();
  }
}

TEST_F(HfRedirectTest, HeadRedirectToAnotherSchemeIsRefused) {
  const std::string uri = "hf://acme/weather/config.json";
  // "///etc/passwd" is scheme-relative with no host: libcurl would look
  // "etc" up as a host name, so it is refused before any request.
  for (const char* location : {"file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://127.0.0.1/1x",
                               "///etc/passwd", "http:///etc/passwd"}) {
    SCOPED_TRACE(location);
    hub_.reset();
    hub_.fault({{"path", "/acme/weather/resolve/main/config.json"}, {"kind", "redirect"},
                {"location", location}, {"methods", {"HEAD"}}, {"times", -1}});
    e2s::Package package("hf://acme/weather", options("lib"));
    const e2s::Error e = error_of([&] { package.resolve("config.json"); });
    EXPECT_EQ(e.code(), e2s::Errc::network) << e.what();
    EXPECT_TRUE(contains(e.what(), uri)) << e.what();
    EXPECT_TRUE(contains(e.what(), "redirect")) << e.what();

    EXPECT_EQ(hub_requests("HEAD").size(), 1u) << "refused, not retried";
    EXPECT_TRUE(hub_requests("GET").empty());
    const CliRun cli = run_cli({"resolve", "hf://acme/weather", "config.json"}, cli_env());
    EXPECT_EQ(cli.status, 5) << cli.err;
    expect_one_error_line(cli);
    EXPECT_TRUE(contains(cli.err, uri)) << cli.err;
  }
  expect_empty_cache();
}

TEST_F(HfRedirectTest, MalformedDownloadUrlFailsAloneAndTheNextFileStillWorks) {
  hub_.fault({{"path", "/acme/weather/resolve/main/config.json"}, {"kind", "redirect"},
              {"location", "http://[::1:bad/config.json"}, {"methods", {"HEAD"}}, {"times", -1}});
  e2s::Package package("hf://acme/weather", options("lib"));
  const e2s::Error e = error_of([&] { package.resolve("config.json"); });
  EXPECT_EQ(e.code(), e2s::Errc::network) << e.what();
  EXPECT_TRUE(contains(e.what(), "hf://acme/weather/config.json")) << e.what();
  // libcurl 7.88.1 keeps a buffer in a handle whose URL did not parse, and
  // refuses CURLOPT_BUFFERSIZE on it from then on: such a handle must not
  // serve the next request.
  EXPECT_EQ(TempDir::read_file(package.resolve("copy.json")), kConfig);
  EXPECT_FALSE(fs::exists(e2s::test::data_file(storage("lib"), "config.json")));
}

TEST_F(HfRedirectTest, ElevenRedirectsInsideTheHubAreRefusedTenAreFollowed) {
  // Relative redirects (renamed repos) are followed by path, by e2s itself.
  for (const int hops : {10, 11}) {
    SCOPED_TRACE(std::to_string(hops) + " redirects");
    hub_.reset();
    std::string from = "/acme/weather/resolve/main/alias.json";
    for (int hop = 1; hop <= hops; ++hop) {
      const std::string to =
          hop == hops ? "/acme/weather/resolve/main/config.json" : "/hop/" + std::to_string(hop);
      hub_.fault({{"path", from}, {"kind", "redirect"}, {"location", to}, {"status", 307},
                  {"methods", {"HEAD"}}});
      from = to;
    }
    e2s::Package package("hf://acme/weather", options(std::to_string(hops)));
    if (hops == 10) {
      EXPECT_EQ(TempDir::read_file(package.resolve("alias.json")), kConfig);
    } else {
      const e2s::Error e = error_of([&] { package.resolve("alias.json"); });
      EXPECT_EQ(e.code(), e2s::Errc::network) << e.what();
      EXPECT_TRUE(contains(e.what(), "redirect")) << e.what();
      EXPECT_EQ(hub_.count("HEAD", "/acme/weather/resolve/main/config.json"), 0u);
    }
    EXPECT_EQ(hub_requests("HEAD").size(), 11u);
  }
}

// ---- S3: SigV4 and the session token ---------------------------------------------------

// http_server.py poses as an S3-compatible endpoint (moto cannot redirect):
// it answers the object with a redirect to another host.
class S3RedirectTest : public RedirectTest {
 protected:
  S3RedirectTest()
      : endpoint_("http_server.py", {"--root", endpoint_root_.path().string()}),
        other_host_(other_root_.path(), endpoint_.port()) {
    endpoint_root_.write_file("bucket/pkg/config.json", kConfig);
    other_root_.write_file("bucket/pkg/config.json", kConfig);
    env_.set("AWS_ENDPOINT_URL", endpoint_.url());
    env_.set("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    env_.set("AWS_CONFIG_FILE", "/dev/null");
    endpoint_.fault({{"path", "/bucket/pkg/config.json"}, {"kind", "redirect"}, {"status", 307},
                     {"location", other_host_.url("/bucket/pkg/config.json")}, {"times", -1}});
  }

  void use_credentials() {
    env_.set("AWS_ACCESS_KEY_ID", kAwsKeyId);
    env_.set("AWS_SECRET_ACCESS_KEY", kAwsSecret);
    env_.set("AWS_SESSION_TOKEN", kAwsSessionToken);
  }

  std::map<std::string, std::string> cli_env(bool signed_requests) const {
    std::map<std::string, std::string> env = {{"AWS_ENDPOINT_URL", endpoint_.url()},
                                              {"AWS_SHARED_CREDENTIALS_FILE", "/dev/null"},
                                              {"AWS_CONFIG_FILE", "/dev/null"}};
    if (signed_requests) {
      env["AWS_ACCESS_KEY_ID"] = kAwsKeyId;
      env["AWS_SECRET_ACCESS_KEY"] = kAwsSecret;
      env["AWS_SESSION_TOKEN"] = kAwsSessionToken;
    }
    return env;
  }

  static constexpr const char* kConfig = "{\"model\": \"s3\"}\n";
  TempDir endpoint_root_;
  TempDir other_root_;
  TestServer endpoint_;
  OtherHost other_host_;  // 127.0.0.2, the endpoint's port
};

TEST_F(S3RedirectTest, SignedRequestsCarryNoCredentialToAnotherHost) {
  // As botocore, a signed request is not redirected at all: its signature
  // is for the endpoint alone. The error says where it pointed.
  use_credentials();
  e2s::Package package("s3://bucket/pkg", options("lib"));
  const e2s::Error e = error_of([&] { package.resolve("config.json"); });
  EXPECT_EQ(e.code(), e2s::Errc::other) << e.what();
  EXPECT_EQ(e.http_status(), 307);
  EXPECT_TRUE(contains(e.what(), "s3://bucket/pkg/config.json")) << e.what();
  EXPECT_TRUE(contains(e.what(), "redirect")) << e.what();
  EXPECT_TRUE(contains(e.what(), "AWS_REGION")) << e.what();
  EXPECT_TRUE(holds_no_credential(e.what())) << e.what();
  const CliRun cli = run_cli({"resolve", "s3://bucket/pkg", "config.json"}, cli_env(true));
  EXPECT_EQ(cli.status, 1) << cli.err;
  expect_one_error_line(cli);
  EXPECT_TRUE(contains(cli.err, "s3://bucket/pkg/config.json")) << cli.err;
  EXPECT_TRUE(holds_no_credential(cli.err)) << cli.err;
  expect_empty_cache();

  // The endpoint got signed requests with the session token: credentials were in play.
  const auto at_endpoint = recorded_requests(endpoint_);
  ASSERT_FALSE(at_endpoint.empty());
  for (const auto& request : at_endpoint) {
    EXPECT_EQ(header(request, "authorization").rfind("AWS4-HMAC-SHA256 Credential=" + std::string(kAwsKeyId), 0), 0u)
        << request.dump();
    EXPECT_EQ(header(request, "x-amz-security-token"), kAwsSessionToken) << request.dump();
  }
  expect_no_credentials(other_host_.requests());
  EXPECT_TRUE(other_host_.requests().empty());
}

TEST_F(S3RedirectTest, AnonymousRequestsFollowTheRedirect) {
  e2s::Package package("s3://bucket/pkg", options("lib"));
  EXPECT_EQ(TempDir::read_file(package.resolve("config.json")), kConfig);
  const CliRun cli = run_cli({"resolve", "s3://bucket/pkg", "config.json"}, cli_env(false));
  ASSERT_EQ(cli.status, 0) << cli.err;
  EXPECT_EQ(TempDir::read_file(lines(cli.out).at(0)), kConfig);
  EXPECT_GE(other_host_.requests().size(), 2u);
  expect_no_credentials(other_host_.requests());
}

// ---- NGC: the bearer token and the API key ------------------------------------------------

class NgcRedirectTest : public RedirectTest {
 protected:
  NgcRedirectTest() : ngc_("ngc_server.py", {"--root", models_.path().string(), "--key", kNgcKey}) {
    models_.write_file("acme/_/secret/model.json", R"({"private": true})");
    models_.write_file("acme/_/secret/1.0/f.bin", kBytes);
    const json info = get_json(ngc_.url("/_info"));
    auth_url_ = "http://127.0.0.1:" + std::to_string(info.at("auth_port").get<int>()) + "/token";
    other_api_ = std::make_unique<OtherHost>(other_root_.path(), ngc_.port());
    other_auth_ = std::make_unique<OtherHost>(other_root_.path(), info.at("auth_port").get<int>());
    // What the other host answers in NGC's place: a files reply pointing at
    // itself, and a token NGC does not know (401 on the API, then a fresh one).
    other_root_.write_file("files.json", json({{"urls", {other_api_->url("/data/f.bin")}}}).dump());
    other_root_.write_file("data/f.bin", kBytes);
    other_root_.write_file("token.json", R"({"token": "not-an-ngc-token", "expires_in": 3600})");
    for (const auto& [name, value] : cli_env()) env_.set(name, value);
  }

  std::map<std::string, std::string> cli_env() const {
    return {{"NGC_CLI_API_URL", ngc_.url("/")}, {"NGC_CLI_AUTH_URL", auth_url_},
            {"NGC_CLI_API_KEY", kNgcKey}};
  }

  std::vector<json> requests(const std::string& host) const {
    return recorded_requests(ngc_, host);
  }

  static constexpr const char* kBytes = "ngc bytes\n";
  static constexpr const char* kRoot = "ngc://models/acme/secret@1.0";
  TempDir models_;
  TempDir other_root_;
  TestServer ngc_;
  std::string auth_url_;
  std::unique_ptr<OtherHost> other_api_;   // 127.0.0.2, the API's port
  std::unique_ptr<OtherHost> other_auth_;  // 127.0.0.2, the auth endpoint's port
};

TEST_F(NgcRedirectTest, BearerTokenIsNotSentToAnotherHost) {
  ngc_.fault({{"host", "api"}, {"path", "*"}, {"kind", "redirect"},
              {"location", other_api_->url("/files.json")}, {"times", 2}});
  e2s::Package package(kRoot, options("lib"));
  EXPECT_EQ(TempDir::read_file(package.resolve("f.bin")), kBytes);
  const CliRun cli = run_cli({"resolve", kRoot, "f.bin"}, cli_env());
  ASSERT_EQ(cli.status, 0) << cli.err;
  EXPECT_EQ(TempDir::read_file(lines(cli.out).at(0)), kBytes);

  const auto api = requests("api");
  ASSERT_EQ(api.size(), 2u);
  for (const auto& request : api) {
    EXPECT_EQ(header(request, "authorization").rfind("Bearer ", 0), 0u) << request.dump();
  }
  const auto at_other = other_api_->requests();
  EXPECT_EQ(at_other.size(), 4u);  // files.json and f.bin, twice
  expect_no_credentials(at_other);
}

TEST_F(NgcRedirectTest, ApiKeyIsNotSentToAnotherHost) {
  ngc_.fault({{"host", "auth"}, {"path", "*"}, {"kind", "redirect"},
              {"location", other_auth_->url("/token.json")}});
  e2s::Package package(kRoot, options("lib"));
  EXPECT_EQ(TempDir::read_file(package.resolve("f.bin")), kBytes);
  ngc_.fault({{"host", "auth"}, {"path", "*"}, {"kind", "redirect"},
              {"location", other_auth_->url("/token.json")}});
  const CliRun cli = run_cli({"resolve", kRoot, "f.bin"}, cli_env());
  ASSERT_EQ(cli.status, 0) << cli.err;

  // Each run: the redirected exchange, a 401 for the token from elsewhere,
  // then a fresh exchange with NGC itself.
  const auto auth = requests("auth");
  ASSERT_EQ(auth.size(), 4u);
  for (const auto& request : auth) {
    EXPECT_EQ(header(request, "authorization").rfind("Basic ", 0), 0u) << request.dump();
  }
  const auto at_other = other_auth_->requests();
  EXPECT_EQ(at_other.size(), 2u);
  expect_no_credentials(at_other);
}

}  // namespace
