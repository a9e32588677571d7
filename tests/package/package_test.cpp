// Package against a loopback HTTP server that supports Range and ETag and
// injects faults: the whole resolve path, end to end.
#include "e2s/package.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <iterator>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "e2s/auto_model.hpp"
#include "e2s/error.hpp"
#include "support/env_guard.hpp"
#include "support/fixtures.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"
#include "util/hash.hpp"

namespace {

using e2s::test::make_bytes;

namespace fs = std::filesystem;
using e2s::test::TempDir;
using e2s::test::TestServer;

// Deterministic bytes, different for each seed.

class PackageTest : public ::testing::Test {
 protected:
  PackageTest()
      : big_(make_bytes(3 << 20, 7)),
        server_("http_server.py", {"--root", (served_.path()).string()}) {}

  void SetUp() override {
    served_.write_file("pkg/config.json", R"({"layers": 4})");
    served_.write_file("pkg/weights/big.bin", big_);
    served_.write_file("pkg/notes/a b+c.txt", "spaces and plus");
  }

  // Options that keep retries fast and the cache inside the test's folder.
  e2s::PackageOptions options(bool same_names = true) {
    e2s::PackageOptions o;
    o.cache_options.cache_storage = cache_.path() / "store";
    o.cache_options.same_names = same_names;
    o.retry.initial_backoff = std::chrono::milliseconds(1);
    o.retry.max_backoff = std::chrono::milliseconds(20);
    return o;
  }

  std::string root() const { return server_.url("/pkg"); }

  // Every file under the cache folder except the cache's own bookkeeping.
  std::vector<fs::path> cached_files() const {
    std::vector<fs::path> files;
    if (!fs::exists(cache_.path())) return files;
    for (const auto& entry : fs::recursive_directory_iterator(cache_.path())) {
      // Metadata and lock files are bookkeeping; temp files are not.
      const std::string path = entry.path().string();
      if (entry.is_regular_file() && path.find("/.e2s/meta/") == std::string::npos &&
          path.find("/.e2s/locks/") == std::string::npos) {
        files.push_back(entry.path());
      }
    }
    return files;
  }

  TempDir served_;
  TempDir cache_;
  std::string big_;
  TestServer server_;
};

TEST_F(PackageTest, ResolveDownloadsIntoTheCacheUnderTheFilesOwnName) {
  e2s::Package package(root(), options());
  fs::path path = package.resolve("weights/big.bin");
  EXPECT_TRUE(path.is_absolute());
  EXPECT_EQ(path, e2s::test::data_file(cache_.path() / "store", "weights/big.bin"));
  EXPECT_EQ(TempDir::read_file(path), big_);
  EXPECT_EQ(package.cache(), cache_.path() / "store");
}

TEST_F(PackageTest, SecondResolveIsACacheHitWithZeroRequests) {
  {
    e2s::Package package(root(), options());
    package.resolve("config.json");
  }
  const auto before = server_.stats()["requests"].size();
  e2s::Package again(root(), options());
  fs::path path = again.resolve("config.json");
  EXPECT_EQ(TempDir::read_file(path), R"({"layers": 4})");
  EXPECT_EQ(server_.stats()["requests"].size(), before);
}

TEST_F(PackageTest, HashedNamesWhenSameNamesIsFalse) {
  e2s::Package package(root(), options(/*same_names=*/false));
  fs::path path = package.resolve("weights/big.bin");
  EXPECT_EQ(path.parent_path(), cache_.path() / "store" / ".e2s" / "files");
  EXPECT_EQ(path.filename().string(), e2s::detail::sha256_hex(root() + "/weights/big.bin"));
  EXPECT_EQ(TempDir::read_file(path), big_);
}

TEST_F(PackageTest, KeysWithSpacesAndPlusAreEncoded) {
  e2s::Package package(root(), options());
  EXPECT_EQ(TempDir::read_file(package.resolve("notes/a b+c.txt")), "spaces and plus");
  EXPECT_EQ(server_.count("GET", "/pkg/notes/a%20b%2Bc.txt"), 1u);
}

TEST_F(PackageTest, DefaultCacheHonoursEarth2StudioCache) {
  e2s::test::ScopedEnv model_cache("EARTH2STUDIO_MODEL_CACHE", std::nullopt);
  e2s::test::ScopedEnv cache("EARTH2STUDIO_CACHE", cache_.path().string());
  e2s::PackageOptions o = options();
  o.cache_options.cache_storage.clear();
  e2s::Package package(root(), o);
  fs::path path = package.resolve("config.json");
  EXPECT_EQ(path.string().rfind((cache_.path() / "packages").string(), 0), 0u) << path;
  EXPECT_TRUE(fs::exists(path));
}

TEST_F(PackageTest, OpenReadsTheCachedBytes) {
  e2s::Package package(root(), options());
  auto in = package.open("weights/big.bin");
  std::string bytes((std::istreambuf_iterator<char>(*in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(bytes, big_);
}

TEST_F(PackageTest, DeprecatedGetIsResolve) {
  e2s::Package package(root(), options());
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  EXPECT_EQ(package.get("config.json"), package.resolve("config.json"));
#pragma GCC diagnostic pop
}

TEST_F(PackageTest, MissingFileIsNotFoundAndLeavesNothing) {
  e2s::Package package(root(), options());
  try {
    package.resolve("nope.bin");
    FAIL() << "expected not_found";
  } catch (const e2s::Error& e) {
    EXPECT_EQ(e.code(), e2s::Errc::not_found);
    EXPECT_EQ(e.http_status(), 404);
    EXPECT_NE(std::string(e.what()).find(root() + "/nope.bin"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(cached_files().empty());
}

TEST_F(PackageTest, EscapingPathsAreRejectedBeforeAnyRequest) {
  e2s::Package package(root(), options());
  for (const char* bad : {"../secret", "/etc/passwd", "a/../../b", "%2e%2e/x"}) {
    try {
      package.resolve(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const e2s::Error& e) {
      EXPECT_EQ(e.code(), e2s::Errc::invalid_uri) << bad;
    }
  }
  EXPECT_EQ(server_.stats()["requests"].size(), 0u);
}

TEST_F(PackageTest, ServiceUnavailableThenSuccessIsRetried) {
  server_.fault({{"path", "/pkg/config.json"}, {"kind", "status"}, {"status", 503}, {"times", 2}, {"methods", {"GET"}}});
  e2s::Package package(root(), options());
  EXPECT_EQ(TempDir::read_file(package.resolve("config.json")), R"({"layers": 4})");
  EXPECT_EQ(server_.count("GET", "/pkg/config.json"), 3u);
}

TEST_F(PackageTest, TooManyRequestsWithRetryAfterIsRetried) {
  server_.fault({{"path", "/pkg/config.json"}, {"kind", "status"}, {"status", 429}, {"retry_after", "1"}, {"methods", {"GET"}}});
  e2s::Package package(root(), options());
  EXPECT_TRUE(fs::exists(package.resolve("config.json")));
  EXPECT_EQ(server_.count("GET", "/pkg/config.json"), 2u);
}

TEST_F(PackageTest, PersistentServerErrorFailsAsNetworkAfterRetries) {
  server_.fault({{"path", "/pkg/config.json"}, {"kind", "status"}, {"status", 502}, {"times", 100}});
  e2s::PackageOptions o = options();
  o.retry.max_attempts = 3;
  e2s::Package package(root(), o);
  try {
    package.resolve("config.json");
    FAIL() << "expected failure";
  } catch (const e2s::Error& e) {
    EXPECT_EQ(e.code(), e2s::Errc::network);
    EXPECT_EQ(e.http_status(), 502);
    EXPECT_NE(std::string(e.what()).find("3 attempts"), std::string::npos) << e.what();
  }
  EXPECT_EQ(server_.count("GET", "/pkg/config.json"), 3u);
  EXPECT_TRUE(cached_files().empty());
}

TEST_F(PackageTest, ConnectionCutMidBodyResumesFromTheOffset) {
  server_.fault({{"path", "/pkg/weights/big.bin"}, {"kind", "cut"}, {"after", 1 << 20}, {"methods", {"GET"}}});
  e2s::Package package(root(), options());
  fs::path path = package.resolve("weights/big.bin");
  EXPECT_EQ(TempDir::read_file(path), big_);
  // The first GET asked for the first 1 MiB (the size is not known
  // beforehand); the second only for what was missing.
  std::vector<std::string> ranges;
  const nlohmann::json stats = server_.stats();
  for (const auto& request : stats["requests"]) {
    if (request["method"] == "GET") ranges.push_back(request["range"].is_string() ? request["range"] : "");
  }
  EXPECT_EQ(ranges, (std::vector<std::string>{"bytes=0-1048575", "bytes=1048576-"})) << stats.dump();
  EXPECT_LT(server_.body_bytes(), big_.size() + (1u << 20) + 1);
}

TEST_F(PackageTest, ServerIgnoringRangeOnResumeRestartsCleanly) {
  server_.fault({{"path", "/pkg/weights/big.bin"}, {"kind", "cut"}, {"after", 100000}, {"methods", {"GET"}}});
  e2s::Package package(root(), options());
  // The resume gets the whole body with 200; the bytes must not be appended.
  server_.fault({{"path", "/pkg/weights/big.bin"}, {"kind", "ignore_range"}, {"methods", {"GET"}}, {"times", 5}});
  EXPECT_EQ(TempDir::read_file(package.resolve("weights/big.bin")), big_);
}

TEST_F(PackageTest, ShorterBodyThanAnnouncedNeverReachesTheFinalPath) {
  // Some bytes, then replies that end before their first byte: the attempts
  // after the first bring nothing, so they count and the download fails.
  server_.fault({{"path", "/pkg/weights/big.bin"}, {"kind", "short"}, {"after", 100000}, {"methods", {"GET"}}});
  server_.fault({{"path", "/pkg/weights/big.bin"}, {"kind", "short"}, {"after", 0}, {"times", 100}, {"methods", {"GET"}}});
  e2s::PackageOptions o = options();
  o.retry.max_attempts = 3;
  e2s::Package package(root(), o);
  try {
    package.resolve("weights/big.bin");
    FAIL() << "expected failure";
  } catch (const e2s::Error& e) {
    EXPECT_EQ(e.code(), e2s::Errc::network) << e.what();
  }
  EXPECT_FALSE(fs::exists(e2s::test::data_file(cache_.path() / "store", "weights/big.bin")));
  // What arrived intact is kept, as a partial download and nowhere else...
  for (const fs::path& file : cached_files()) {
    EXPECT_NE(file.string().find("/.e2s/tmp/"), std::string::npos) << file;
  }
  // ...and the next attempt continues from it rather than starting over.
  server_.reset();
  EXPECT_EQ(TempDir::read_file(package.resolve("weights/big.bin")), big_);
  EXPECT_LT(server_.body_bytes(), big_.size());
  EXPECT_TRUE(fs::is_empty(cache_.path() / "store" / ".e2s" / "tmp"));
}

TEST_F(PackageTest, StalledTransferTimesOutAndLeavesNothing) {
  server_.fault({{"path", "/pkg/weights/big.bin"}, {"kind", "stall"}, {"after", 0}, {"seconds", 30}, {"times", 100}, {"methods", {"GET"}}});
  e2s::PackageOptions o = options();
  o.retry.max_attempts = 2;
  o.stall_timeout = std::chrono::milliseconds(300);
  e2s::Package package(root(), o);
  const auto start = std::chrono::steady_clock::now();
  try {
    package.resolve("weights/big.bin");
    FAIL() << "expected timeout";
  } catch (const e2s::Error& e) {
    EXPECT_EQ(e.code(), e2s::Errc::timeout) << e.what();
    EXPECT_NE(std::string(e.what()).find("EARTH2STUDIO_PACKAGE_TIMEOUT"), std::string::npos);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_TRUE(cached_files().empty());
}

TEST_F(PackageTest, SlowTrickleBelowTheStallLimitStillSucceeds) {
  server_.fault({{"path", "/pkg/config.json"}, {"kind", "trickle"}, {"bytes_per_sec", 20}, {"methods", {"GET"}}});
  e2s::PackageOptions o = options();
  o.stall_timeout = std::chrono::seconds(2);
  e2s::Package package(root(), o);
  EXPECT_EQ(TempDir::read_file(package.resolve("config.json")), R"({"layers": 4})");
}

TEST_F(PackageTest, ExpiredEntriesAreFetchedAgain) {
  e2s::PackageOptions o = options();
  o.cache_options.expiry_time = std::chrono::seconds(0);
  e2s::Package package(root(), o);
  package.resolve("config.json");
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  package.resolve("config.json");
  EXPECT_EQ(server_.count("GET", "/pkg/config.json"), 2u);
}

TEST_F(PackageTest, CacheOffFetchesEveryTime) {
  e2s::PackageOptions o = options();
  o.cache = false;
  e2s::Package package(root(), o);
  package.resolve("config.json");
  package.resolve("config.json");
  EXPECT_EQ(server_.count("GET", "/pkg/config.json"), 2u);
}

TEST_F(PackageTest, OfflineMissFailsWithoutARequest) {
  e2s::PackageOptions o = options();
  o.offline = true;
  e2s::Package package(root(), o);
  try {
    package.resolve("config.json");
    FAIL() << "expected offline_miss";
  } catch (const e2s::Error& e) {
    EXPECT_EQ(e.code(), e2s::Errc::offline_miss);
  }
  EXPECT_EQ(server_.stats()["requests"].size(), 0u);
}

TEST_F(PackageTest, OfflineFromTheEnvironmentServesHitsEvenExpiredAndNamesMisses) {
  e2s::PackageOptions o = options();
  e2s::Package online(root(), o);
  const fs::path cached = online.resolve("config.json");
  server_.reset();
  e2s::test::ScopedEnv offline("EARTH2STUDIO_OFFLINE", "1");
  o.cache_options.expiry_time = std::chrono::seconds(0);  // every entry has expired
  e2s::Package package(root(), o);
  EXPECT_EQ(package.resolve("config.json"), cached);
  try {
    package.resolve("weights/big.bin");
    FAIL() << "expected offline_miss";
  } catch (const e2s::Error& e) {
    EXPECT_EQ(e.code(), e2s::Errc::offline_miss);
    EXPECT_NE(std::string(e.what()).find("e2s fetch " + root() + " weights/big.bin"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(server_.stats()["requests"].size(), 0u);
}

TEST_F(PackageTest, HubOfflineVariableLeavesOtherRootsOnline) {
  e2s::test::ScopedEnv offline("HF_HUB_OFFLINE", "1");
  e2s::Package package(root(), options());
  EXPECT_FALSE(*package.options().offline);
  EXPECT_EQ(TempDir::read_file(package.resolve("config.json")), TempDir::read_file(served_.path() / "pkg" / "config.json"));
}

TEST_F(PackageTest, RefreshMakesOneConditionalRequestAndDownloadsOnlyOnChange) {
  e2s::Package first(root(), options());
  first.resolve("config.json");
  server_.reset();
  e2s::PackageOptions o = options();
  o.refresh = true;
  {
    e2s::Package package(root(), o);
    const fs::path path = package.resolve("config.json");
    package.resolve("config.json");  // checked once per Package
    const auto stats = server_.stats();
    ASSERT_EQ(stats["requests"].size(), 1u) << stats.dump();
    EXPECT_EQ(stats["requests"][0]["method"], "HEAD");
    EXPECT_TRUE(stats["requests"][0]["headers"].contains("if-none-match")) << stats.dump();
    EXPECT_EQ(stats["requests"][0]["status"], 304);
  }
  served_.write_file("pkg/config.json", "{\"changed\": true}\n");
  server_.reset();
  e2s::Package package(root(), o);
  EXPECT_EQ(TempDir::read_file(package.resolve("config.json")), "{\"changed\": true}\n");
  EXPECT_EQ(server_.count("HEAD", "/pkg/config.json"), 1u);
  EXPECT_EQ(server_.count("GET", "/pkg/config.json"), 1u);
}

TEST_F(PackageTest, RevalidationAfterAnAgeOnlyForOlderEntries) {
  e2s::Package first(root(), options());
  first.resolve("config.json");
  server_.reset();
  e2s::PackageOptions o = options();
  o.revalidate_after = std::chrono::hours(1);
  e2s::Package young(root(), o);
  young.resolve("config.json");
  EXPECT_EQ(server_.stats()["requests"].size(), 0u) << "fetched a moment ago";
  o.revalidate_after = std::chrono::seconds(0);
  e2s::Package old(root(), o);
  old.resolve("config.json");
  EXPECT_EQ(server_.count("HEAD", "/pkg/config.json"), 1u);
  EXPECT_EQ(server_.count("GET", "/pkg/config.json"), 0u);
}

TEST_F(PackageTest, RefreshWithTheServerDownKeepsTheCachedCopy) {
  e2s::Package first(root(), options());
  const fs::path cached = first.resolve("config.json");
  server_.fault({{"path", "/pkg/config.json"}, {"kind", "status"}, {"status", 503}, {"times", -1},
                 {"retry_after", "0"}, {"methods", {"HEAD"}}});
  e2s::PackageOptions o = options();
  o.refresh = true;
  o.retry.max_attempts = 2;
  e2s::Package package(root(), o);
  EXPECT_EQ(package.resolve("config.json"), cached);
}

TEST_F(PackageTest, ProgressReportsBytesAndFinishes) {
  std::mutex mutex;
  std::vector<e2s::Progress> events;
  e2s::PackageOptions o = options();
  o.progress = [&](const e2s::Progress& p) {
    std::lock_guard lock(mutex);
    events.push_back(p);
  };
  e2s::Package package(root(), o);
  package.resolve("weights/big.bin");
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().file, "weights/big.bin");
  EXPECT_TRUE(events.back().finished);
  EXPECT_EQ(events.back().bytes_done, big_.size());
  EXPECT_EQ(events.back().bytes_total, big_.size());
  for (std::size_t i = 1; i < events.size(); ++i) EXPECT_GE(events[i].bytes_done, events[i - 1].bytes_done);
}

TEST_F(PackageTest, ParallelResolvesOfOnePackageAllSucceed) {
  e2s::Package package(root(), options());
  std::vector<std::thread> threads;
  std::vector<fs::path> paths(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] { paths[i] = package.resolve(i % 2 ? "config.json" : "weights/big.bin"); });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(TempDir::read_file(paths[i]), i % 2 ? std::string(R"({"layers": 4})") : big_);
  }
}

TEST_F(PackageTest, ResolveAllReturnsPathsInOrderAndRunsInParallel) {
  TempDir many;
  std::vector<std::string> files;
  for (int i = 0; i < 12; ++i) {
    files.push_back("many/f" + std::to_string(i) + ".bin");
    served_.write_file("pkg/" + files.back(), make_bytes(1000 + i, i));
  }
  TestServer slow("http_server.py", {"--root", served_.path().string(), "--latency-ms", "200"});
  e2s::PackageOptions o = options();
  o.max_connections = 4;
  e2s::Package package(slow.url("/pkg"), o);
  auto paths = package.resolve_all(files);
  ASSERT_EQ(paths.size(), files.size());
  for (std::size_t i = 0; i < files.size(); ++i) {
    EXPECT_EQ(paths[i], e2s::test::data_file(cache_.path() / "store", files[i]));
    EXPECT_EQ(TempDir::read_file(paths[i]), make_bytes(1000 + i, static_cast<unsigned>(i)));
  }
  const auto stats = slow.stats();
  EXPECT_GT(stats["max_concurrent"].get<int>(), 1) << "files must download side by side";
  EXPECT_LE(stats["max_concurrent"].get<int>(), 4) << "and within max_connections";
}

TEST_F(PackageTest, ResolveAllThrowsTheFirstFailureAndKeepsTheRest) {
  e2s::Package package(root(), options());
  try {
    package.resolve_all({"config.json", "missing-1.bin", "weights/big.bin", "missing-2.bin"});
    FAIL() << "expected not_found";
  } catch (const e2s::Error& e) {
    EXPECT_EQ(e.code(), e2s::Errc::not_found);
    EXPECT_NE(std::string(e.what()).find("missing-1.bin"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::exists(e2s::test::data_file(cache_.path() / "store", "config.json")));
  EXPECT_TRUE(fs::exists(e2s::test::data_file(cache_.path() / "store", "weights/big.bin")));
}

TEST_F(PackageTest, RepeatedResolveIsServedFromMemoryButNoticesARemovedFile) {
  e2s::Package package(root(), options());
  const fs::path path = package.resolve("config.json");
  // Without its metadata the disk cache would miss; the Package remembers.
  fs::remove_all(cache_.path() / "store" / ".e2s" / "meta");
  EXPECT_EQ(package.resolve("config.json"), path);
  EXPECT_EQ(server_.count("GET", "/pkg/config.json"), 1u);
  // A removed (or replaced by a different size) file is fetched again.
  fs::remove(path);
  EXPECT_EQ(package.resolve("config.json"), path);
  EXPECT_EQ(server_.count("GET", "/pkg/config.json"), 2u);
  EXPECT_EQ(TempDir::read_file(path), R"({"layers": 4})");
}

TEST_F(PackageTest, PlainHttpSmallFileCostsOneRequest) {
  e2s::Package package(root(), options());
  package.resolve("config.json");
  const nlohmann::json stats = server_.stats();
  ASSERT_EQ(stats["requests"].size(), 1u) << stats.dump();
  EXPECT_EQ(stats["requests"][0]["method"], "GET");
}

TEST_F(PackageTest, LargeFilesDownloadAsParallelRanges) {
  const std::string large = make_bytes(20 << 20, 11);
  served_.write_file("pkg/large.bin", large);
  e2s::Package package(root(), options());
  EXPECT_EQ(TempDir::read_file(package.resolve("large.bin")), large);
  const nlohmann::json stats = server_.stats();
  int ranged = 0;
  for (const auto& request : stats["requests"]) {
    if (request["method"] == "GET" && request["range"].is_string()) ++ranged;
  }
  EXPECT_GE(ranged, 8);
}

TEST_F(PackageTest, MetadataHoldsNoCredentialsOrQuery) {
  e2s::Package package(root(), options());
  package.resolve("config.json");
  for (const auto& entry : fs::recursive_directory_iterator(cache_.path() / "store" / ".e2s" / "meta")) {
    const std::string meta = TempDir::read_file(entry.path());
    EXPECT_NE(meta.find(root() + "/config.json"), std::string::npos) << meta;
    EXPECT_EQ(meta.find("Authorization"), std::string::npos);
  }
}

TEST(PackageRoots, UserinfoInAnHttpRootIsRefused) {
  try {
    e2s::Package package("https://user:secret@example.com/pkg");
    FAIL() << "expected invalid_uri";
  } catch (const e2s::Error& e) {
    EXPECT_EQ(e.code(), e2s::Errc::invalid_uri);
    EXPECT_EQ(std::string(e.what()).find("secret"), std::string::npos) << e.what();
  }
}

TEST(PackageRoots, ConstructionNeverTouchesTheNetwork) {
  // load_default_package() must be free: every root form parses offline.
  for (const char* root : {"hf://nvidia/fourcastnet3@main", "ngc://models/nvidia/modulus/modulus_fcn@v0.2",
                           "s3://noaa-swpc-pds", "gs://dm_graphcast/gencast",
                           "https://get.ecmwf.int/repository/earthkit/regrid/db/1/mir_16_linear"}) {
    e2s::PackageOptions options;
    options.offline = true;  // any request would fail loudly
    e2s::Package package(root, options);
    EXPECT_EQ(package.root(), root);
    EXPECT_FALSE(package.cache().empty()) << root;
  }
}

TEST(LocalPackage, FilesAreUsedInPlaceAndNeverCached) {
  TempDir dir;
  dir.write_file("sub/w.bin", "local bytes");
  for (const std::string& root : {dir.path().string(), "file://" + dir.path().string()}) {
    e2s::Package package(root);
    EXPECT_TRUE(package.cache().empty());
    EXPECT_EQ(package.resolve("sub/w.bin"), dir.path() / "sub" / "w.bin");
    auto in = package.open("sub/w.bin");
    std::string bytes((std::istreambuf_iterator<char>(*in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(bytes, "local bytes");
    try {
      package.resolve("missing.bin");
      ADD_FAILURE();
    } catch (const e2s::Error& e) {
      EXPECT_EQ(e.code(), e2s::Errc::not_found);
    }
  }
}

TEST(LocalPackage, ListGivesEveryFileSortedWithSizes) {
  TempDir dir;
  dir.write_file("b.bin", "12345");
  dir.write_file("a/z.txt", "1");
  dir.write_file("a/c/d.txt", "");
  std::filesystem::create_directories(dir.path() / "empty");
  auto files = e2s::Package(dir.path().string()).list();
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0].path, "a/c/d.txt");
  EXPECT_EQ(files[1].path, "a/z.txt");
  EXPECT_EQ(files[2].path, "b.bin");
  EXPECT_EQ(files[2].size, 5u);
}

TEST_F(PackageTest, PlainHttpCannotListAndSaysSo) {
  e2s::Package package(root(), options());
  try {
    package.list();
    FAIL() << "expected unsupported";
  } catch (const e2s::Error& e) {
    EXPECT_EQ(e.code(), e2s::Errc::unsupported);
    EXPECT_NE(std::string(e.what()).find(root()), std::string::npos) << e.what();
  }
}

// A minimal AutoModel: the contract in action.
struct TinyModel {
  std::string config;
  static e2s::Package load_default_package() { return e2s::Package(default_root()); }
  static TinyModel load_model(e2s::Package& package) {
    std::ifstream in(package.resolve("config.json"));
    return TinyModel{std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>())};
  }
  static std::string& default_root() {
    static std::string root;
    return root;
  }
};
static_assert(e2s::AutoModel<TinyModel>);

TEST(AutoModel, FromPretrainedUsesTheDefaultPackageOrTheGivenRoot) {
  TempDir default_dir, other_dir;
  default_dir.write_file("config.json", "default");
  other_dir.write_file("config.json", "other");
  TinyModel::default_root() = default_dir.path().string();
  EXPECT_EQ(e2s::from_pretrained<TinyModel>().config, "default");
  EXPECT_EQ(e2s::from_pretrained<TinyModel>(other_dir.path().string()).config, "other");
}

}  // namespace
