// What a library user can hand a Package in code instead of the environment:
// credentials and endpoints, the cache root, the clock, the reader's buffer,
// and where log lines go. Each is checked against loopback servers with the
// environment pointing elsewhere, so that only the value given in code can
// make the test pass.
#include "e2s/options.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <iterator>
#include <mutex>
#include <string>
#include <vector>

#include "e2s/error.hpp"
#include "e2s/log.hpp"
#include "e2s/package.hpp"
#include "support/env_guard.hpp"
#include "support/fixtures.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"

namespace {

namespace fs = std::filesystem;
using e2s::test::make_bytes;
using e2s::test::ScopedEnv;
using e2s::test::TempDir;
using e2s::test::TestServer;
using json = nlohmann::json;

constexpr char kToken[] = "hf_in_code_token";

using e2s::test::quick_retry_options;

std::size_t gets_of(const TestServer& server, const std::string& path_part) {
  std::size_t count = 0;
  const json stats = server.stats();
  for (const auto& request : stats.at("requests")) {
    if (request.value("method", "") == "GET" && request.value("path", "").find(path_part) != std::string::npos) {
      ++count;
    }
  }
  return count;
}

class HttpOptionsTest : public ::testing::Test {
 protected:
  HttpOptionsTest() : server_("http_server.py", {"--root", served_.path().string()}) {
    served_.write_file("pkg/weights.bin", make_bytes(70000, 3));
  }
  ~HttpOptionsTest() override { e2s::set_log_handler(nullptr); }

  TempDir served_;
  TempDir cache_;
  TestServer server_;
};

TEST_F(HttpOptionsTest, TheClockGivenDecidesWhenACachedFileExpires) {
  auto now = std::chrono::system_clock::now();
  e2s::PackageOptions o = quick_retry_options(cache_.path() / "store");
  o.cache_options.expiry_time = std::chrono::hours(1);
  o.clock = [&now] { return now; };
  {
    e2s::Package package(server_.url("/pkg"), o);
    package.resolve("weights.bin");
    now += std::chrono::minutes(59);
    package.resolve("weights.bin");
  }
  EXPECT_EQ(gets_of(server_, "weights.bin"), 1u) << "fetched again before it expired";
  now += std::chrono::minutes(2);  // 61 minutes after the download
  e2s::Package later(server_.url("/pkg"), o);
  later.resolve("weights.bin");
  EXPECT_EQ(gets_of(server_, "weights.bin"), 2u) << "an expired file was not fetched again";
}

TEST_F(HttpOptionsTest, TheCacheRootGivenWinsOverTheEnvironment) {
  TempDir elsewhere;
  ScopedEnv model_cache("EARTH2STUDIO_MODEL_CACHE", elsewhere.path().string());
  e2s::PackageOptions o;
  o.cache_root = cache_.path() / "root";
  e2s::Package package(server_.url("/pkg"), o);
  const fs::path path = package.resolve("weights.bin");
  EXPECT_EQ(package.cache().parent_path(), cache_.path() / "root" / "packages");
  EXPECT_EQ(path.string().rfind((cache_.path() / "root").string(), 0), 0u) << path;
  EXPECT_TRUE(fs::is_empty(elsewhere.path()));
}

TEST_F(HttpOptionsTest, ATinyBlockSizeStillReadsEveryByte) {
  e2s::PackageOptions o = quick_retry_options(cache_.path() / "store");
  o.block_size = 7;
  e2s::Package package(server_.url("/pkg"), o);
  auto in = package.open("weights.bin");
  const std::string read((std::istreambuf_iterator<char>(*in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(read, make_bytes(70000, 3));
}

TEST_F(HttpOptionsTest, ALogHandlerReceivesTheLinesAndCanSilenceThem) {
  std::mutex mutex;
  std::vector<std::string> lines;
  e2s::set_log_handler(
      [&](e2s::LogLevel level, std::string_view message) {
        std::lock_guard lock(mutex);
        if (level == e2s::LogLevel::debug) lines.emplace_back(message);
      },
      e2s::LogLevel::debug);
  e2s::Package(server_.url("/pkg"), quick_retry_options(cache_.path() / "a")).resolve("weights.bin");
  {
    std::lock_guard lock(mutex);
    ASSERT_FALSE(lines.empty());
    bool named = false;
    for (const auto& line : lines) named = named || line.find("weights.bin") != std::string::npos;
    EXPECT_TRUE(named) << "no line names the file downloaded";
    lines.clear();
  }
  std::atomic<int> calls{0};
  e2s::set_log_handler([&](e2s::LogLevel, std::string_view) { ++calls; }, e2s::LogLevel::off);
  e2s::Package(server_.url("/pkg"), quick_retry_options(cache_.path() / "b")).resolve("weights.bin");
  EXPECT_EQ(calls.load(), 0);
}

class HubOptionsTest : public ::testing::Test {
 protected:
  HubOptionsTest()
      : hub_("hf_server.py", {"--root", repos_.path().string(), "--token", kToken}),
        endpoint_("HF_ENDPOINT", "http://127.0.0.1:9"),  // nothing listens there
        token_("HF_TOKEN", "hf_wrong_token_from_the_environment"),
        home_env_("HF_HOME", home_.path().string()),
        offline_("EARTH2STUDIO_OFFLINE", std::nullopt) {
    repos_.write_file("models/acme/private/repo.json", R"({"private": true})");
    repos_.write_file("models/acme/private/main/secret.txt", "secret\n");
  }

  TempDir repos_;
  TempDir home_;
  TempDir cache_;
  TestServer hub_;
  ScopedEnv endpoint_;
  ScopedEnv token_;
  ScopedEnv home_env_;
  ScopedEnv offline_;
};

TEST_F(HubOptionsTest, TheEndpointAndTokenGivenInCodeWinOverTheEnvironment) {
  e2s::PackageOptions o = quick_retry_options(cache_.path() / "store");
  o.hf.endpoint = hub_.url();
  o.hf.token = kToken;
  e2s::Package package("hf://acme/private", o);
  EXPECT_EQ(TempDir::read_file(package.resolve("secret.txt")), "secret\n");
}

TEST_F(HubOptionsTest, AnEmptyTokenInCodeSendsNone) {
  e2s::PackageOptions o = quick_retry_options(cache_.path() / "store");
  o.hf.endpoint = hub_.url();
  o.hf.token = "";
  const e2s::Error e = e2s::test::error_of([&] { e2s::Package("hf://acme/private", o).resolve("secret.txt"); });
  EXPECT_TRUE(e.code() == e2s::Errc::unauthorized || e.code() == e2s::Errc::not_found) << e.what();
  const json stats = hub_.stats();
  for (const auto& request : stats.at("requests")) {
    EXPECT_FALSE(request.at("headers").contains("authorization")) << request.dump();
  }
}

}  // namespace
