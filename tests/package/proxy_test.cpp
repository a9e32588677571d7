// Proxies come from the usual environment variables, as curl reads them.
#include <gtest/gtest.h>

#include "e2s/package.hpp"
#include "support/env_guard.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"

namespace {

using e2s::test::TempDir;
using e2s::test::TestServer;

TEST(Proxy, HttpProxyFromTheEnvironmentCarriesTheRequests) {
  TempDir served, cache;
  served.write_file("pkg/a.txt", "via proxy");
  // The test server answers absolute-form requests ("GET http://host/pkg/a.txt")
  // by their path, which is all a forward proxy needs to do here.
  TestServer proxy("http_server.py", {"--root", served.path().string()});
  e2s::test::ScopedEnv http_proxy("http_proxy", proxy.url());
  e2s::test::ScopedEnv no_proxy("no_proxy", std::nullopt);
  e2s::test::ScopedEnv no_proxy_upper("NO_PROXY", std::nullopt);

  e2s::PackageOptions options;
  options.cache_options.cache_storage = cache.path();
  options.retry.max_attempts = 1;
  // .invalid never resolves (RFC 2606): only the proxy can answer.
  e2s::Package package("http://models.example.invalid/pkg", options);
  auto path = package.resolve("a.txt");

  EXPECT_EQ(TempDir::read_file(path), "via proxy");
  const auto stats = proxy.stats();
  ASSERT_FALSE(stats["requests"].empty());
  EXPECT_EQ(stats["requests"].back()["path"], "http://models.example.invalid/pkg/a.txt");
}

TEST(Proxy, NoProxyBypassesIt) {
  TempDir served, cache;
  served.write_file("pkg/a.txt", "direct");
  TestServer origin("http_server.py", {"--root", served.path().string()});
  TestServer proxy("http_server.py", {"--root", cache.path().string()});
  e2s::test::ScopedEnv http_proxy("http_proxy", proxy.url());
  e2s::test::ScopedEnv no_proxy("no_proxy", "127.0.0.1");

  e2s::PackageOptions options;
  options.cache_options.cache_storage = cache.path() / "c";
  e2s::Package package(origin.url("/pkg"), options);
  auto path = package.resolve("a.txt");

  EXPECT_EQ(TempDir::read_file(path), "direct");
  EXPECT_TRUE(proxy.stats()["requests"].empty());
}

}  // namespace
