#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <optional>
#include <string>

#include "e2s/package.hpp"
#include "support/env_guard.hpp"

namespace {

using e2s::test::ScopedEnv;

TEST(DefaultCache, ModelCacheWinsOverCacheWinsOverHome) {
  ScopedEnv home("HOME", "/home/user");
  {
    ScopedEnv model("EARTH2STUDIO_MODEL_CACHE", std::nullopt);
    ScopedEnv cache("EARTH2STUDIO_CACHE", std::nullopt);
    EXPECT_EQ(e2s::Package::default_cache(), "/home/user/.cache/earth2studio");
    EXPECT_EQ(e2s::Package::default_cache("fcn"), "/home/user/.cache/earth2studio/fcn");
  }
  {
    ScopedEnv model("EARTH2STUDIO_MODEL_CACHE", std::nullopt);
    ScopedEnv cache("EARTH2STUDIO_CACHE", "/scratch/e2");
    EXPECT_EQ(e2s::Package::default_cache("fcn"), "/scratch/e2/fcn");
  }
  {
    ScopedEnv model("EARTH2STUDIO_MODEL_CACHE", "/models");
    ScopedEnv cache("EARTH2STUDIO_CACHE", "/scratch/e2");
    EXPECT_EQ(e2s::Package::default_cache("fcn"), "/models/fcn");
  }
  {
    // Empty counts as unset, as in Earth2Studio.
    ScopedEnv model("EARTH2STUDIO_MODEL_CACHE", "");
    ScopedEnv cache("EARTH2STUDIO_CACHE", "/scratch/e2");
    EXPECT_EQ(e2s::Package::default_cache(), "/scratch/e2");
  }
}

TEST(DefaultTimeout, ReadsTheEnvironmentAndFallsBackTo300) {
  {
    ScopedEnv timeout("EARTH2STUDIO_PACKAGE_TIMEOUT", std::nullopt);
    EXPECT_EQ(e2s::Package::default_timeout(), std::chrono::seconds(300));
  }
  {
    ScopedEnv timeout("EARTH2STUDIO_PACKAGE_TIMEOUT", "42");
    EXPECT_EQ(e2s::Package::default_timeout(), std::chrono::seconds(42));
  }
  for (const char* bad : {"abc", "-5", "0", "12s", "1.5", ""}) {
    ScopedEnv timeout("EARTH2STUDIO_PACKAGE_TIMEOUT", std::string(bad));
    EXPECT_EQ(e2s::Package::default_timeout(), std::chrono::seconds(300)) << bad;
  }
}

// resolve() promises absolute paths: a relative cache root (a relative
// --cache-dir or variable, no HOME) is made absolute once, at the start.
TEST(DefaultCache, ARelativeRootIsMadeAbsolute) {
  const std::filesystem::path cwd = std::filesystem::current_path();
  {
    ScopedEnv model("EARTH2STUDIO_MODEL_CACHE", "rel/cache/");
    EXPECT_EQ(e2s::Package::default_cache(), cwd / "rel" / "cache");
    EXPECT_EQ(e2s::Package::default_cache("fcn"), cwd / "rel" / "cache" / "fcn");
    EXPECT_EQ(e2s::Package("http://127.0.0.1:1/pkg").cache().parent_path(), cwd / "rel" / "cache" / "packages");
  }
  e2s::PackageOptions options;
  options.cache_options.cache_storage = "mine/./here/";
  EXPECT_EQ(e2s::Package("http://127.0.0.1:1/pkg", options).cache(), cwd / "mine" / "here");
}

// huggingface_hub's own timeout variable wins for the Hub, as Earth2Studio
// leaves a user's value in place; other roots keep Earth2Studio's.
TEST(DefaultTimeout, HfHubDownloadTimeoutIsTheTimeoutOfTheHub) {
  ScopedEnv package_timeout("EARTH2STUDIO_PACKAGE_TIMEOUT", "77");
  {
    ScopedEnv hub("HF_HUB_DOWNLOAD_TIMEOUT", "12.5");
    EXPECT_EQ(e2s::Package("hf://ns/name").options().timeout, std::chrono::milliseconds(12500));
    EXPECT_EQ(e2s::Package("http://127.0.0.1:1/pkg").options().timeout, std::chrono::seconds(77));
    e2s::PackageOptions options;
    options.timeout = std::chrono::seconds(5);
    EXPECT_EQ(e2s::Package("hf://ns/name", options).options().timeout, std::chrono::seconds(5)) << "code wins";
  }
  for (const char* unusable : {"", "abc", "0", "-3"}) {
    ScopedEnv hub("HF_HUB_DOWNLOAD_TIMEOUT", std::string(unusable));
    EXPECT_EQ(e2s::Package("hf://ns/name").options().timeout, std::chrono::seconds(77)) << unusable;
  }
}

TEST(DefaultBlocksize, IsOneMebibyte) { EXPECT_EQ(e2s::Package::default_blocksize(), 1u << 20); }

TEST(PackageOptions, DefaultsAreFilledFromTheEnvironment) {
  ScopedEnv timeout("EARTH2STUDIO_PACKAGE_TIMEOUT", "77");
  ScopedEnv model("EARTH2STUDIO_MODEL_CACHE", "/models");
  e2s::Package package("http://127.0.0.1:1/pkg");
  EXPECT_EQ(package.options().timeout, std::chrono::seconds(77));
  EXPECT_EQ(package.options().block_size, 1u << 20);
  EXPECT_EQ(package.cache().parent_path(), "/models/packages");
  EXPECT_EQ(package.cache().filename().string().rfind("pkg-", 0), 0u) << package.cache();
}

}  // namespace
