// gs:// packages against the fake Google Cloud Storage
// (tests/servers/gcs_server.py) reached through STORAGE_EMULATOR_HOST:
// public object URLs, X-Goog-Hash md5/crc32c checks (two header lines or one),
// composite and lying objects, JSON API listing with page tokens, errors.
#include <curl/curl.h>
#include <openssl/evp.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "e2s/error.hpp"
#include "e2s/package.hpp"
#include "support/fixtures.hpp"
#include "support/env_guard.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"

namespace {

namespace fs = std::filesystem;
using e2s::test::contains;
using e2s::test::error_of;
using e2s::test::get_json;
using e2s::test::make_bytes;
using e2s::test::md5_hex;
using e2s::test::EnvGuard;
using e2s::test::ScopedEnv;
using e2s::test::TempDir;
using e2s::test::TestServer;
using nlohmann::json;

constexpr const char* kConfig = "{\"model\": \"gcs\"}\n";

const std::vector<std::string> kAwkwardNames = {
    "with space.txt", "plus+sign.txt", "100%.txt",
    "\xc3\xbcnic\xc3\xb6" "de-\xe6\x97\xa5\xe6\x9c\xac.txt",  // "ünicöde-日本.txt"
    "a=b&c=d.txt", "dir with space/in+dir.txt"};

// Percent-encoding of an object name in a public URL: all but A-Z a-z 0-9 - _ . ~ /.
std::string url_encode(const std::string& name) {
  static const char* digits = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : name) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += digits[c >> 4];
      out += digits[c & 15];
    }
  }
  return out;
}

class GcsTest : public ::testing::Test, protected e2s::test::CacheFolder {
 protected:
  GcsTest()
      : weights_(make_bytes(300000, 4)),
        composite_(make_bytes(5000, 5)),
        server_("gcs_server.py", {"--root", root_.path().string(), "--page-size", "3"}) {
    env_.set("STORAGE_EMULATOR_HOST", "127.0.0.1:" + std::to_string(server_.port()));
    env_.unset("CLOUD_STORAGE_EMULATOR_ENDPOINT");
    env_.unset("GOOGLE_CLOUD_UNIVERSE_DOMAIN");
    env_.set("HOME", home_.path().string());
    env_.unset("EARTH2STUDIO_OFFLINE");
    env_.unset("http_proxy");
    env_.unset("HTTP_PROXY");
    env_.unset("ALL_PROXY");
    env_.unset("all_proxy");
    root_.write_file("models/pkg/config.json", kConfig);
    root_.write_file("models/pkg/weights.bin", weights_);
    root_.write_file("models/pkg/sub/deep/x.txt", "deep\n");
    root_.write_file("models/pkg/composite.bin", composite_);
    root_.write_file("models/pkg/liar.bin", "the real bytes\n");
    root_.write_file("models/pkg/composite-liar.bin", "composite real bytes\n");
    root_.write_file("models/pkg/md5-liar.bin", "md5 lies, crc32c does not\n");
    root_.write_file("models/pkg/private.bin", "private\n");
    for (const auto& name : kAwkwardNames) root_.write_file("models/pkg/odd/" + name, name);
    root_.write_file("models/pkg2/x.txt", "outside the prefix\n");
    root_.write_file("models/pkgx.txt", "outside the prefix too\n");
    root_.write_file("tiny/a.txt", "a");
    root_.write_file("tiny/b/c.txt", "bc");
    root_.write_file("locked/pkg/s.txt", "locked\n");
    root_.write_file(".gcs.json", json({{"lies", {"models/pkg/liar.bin",
                                                  "models/pkg/composite-liar.bin"}},
                                        {"md5_lies", {"models/pkg/md5-liar.bin"}},
                                        {"composite", {"models/pkg/composite.bin",
                                                       "models/pkg/composite-liar.bin"}},
                                        {"private", {"models/pkg/private.bin", "locked/"}}})
                                      .dump());
  }

  std::vector<json> requests() const {
    return e2s::test::recorded_requests(server_);
  }

  // The object resource the fake's JSON API gives for `name` in bucket models.
  json object(const std::string& name) const {
    std::string encoded = url_encode(name);
    std::string slashless;
    for (char c : encoded) slashless += c == '/' ? std::string("%2F") : std::string(1, c);
    return get_json(server_.url("/storage/v1/b/models/o/" + slashless));
  }

  static std::vector<std::string> paths(const std::vector<e2s::FileEntry>& entries) {
    std::vector<std::string> out;
    for (const auto& entry : entries) out.push_back(entry.path);
    return out;
  }

  TempDir root_;
  TempDir home_;
  std::string weights_;
  std::string composite_;
  TestServer server_;
  EnvGuard env_;
};

// ---- resolving -------------------------------------------------------------

TEST_F(GcsTest, TheEndpointGivenInCodeWinsOverTheEnvironment) {
  env_.set("STORAGE_EMULATOR_HOST", "127.0.0.1:9");  // nothing listens there
  e2s::PackageOptions o = options();
  o.gcs.endpoint = server_.url();
  e2s::Package package("gs://models/pkg", o);
  EXPECT_EQ(TempDir::read_file(package.resolve("config.json")), kConfig);
}

TEST_F(GcsTest, ResolvesThroughAnEmulatorHostWithoutScheme) {
  e2s::Package package("gs://models/pkg", options());
  const fs::path config = package.resolve("config.json");
  EXPECT_EQ(TempDir::read_file(config), kConfig);
  EXPECT_EQ(config.filename(), "config.json");
  EXPECT_EQ(TempDir::read_file(package.resolve("weights.bin")), weights_);
  EXPECT_GE(server_.count("HEAD", "/models/pkg/config.json") +
                server_.count("GET", "/models/pkg/config.json"),
            1u);
  for (const auto& request : requests()) {
    EXPECT_FALSE(request.at("headers").contains("authorization")) << request.dump();
  }
}

TEST_F(GcsTest, ResolvesThroughAnEmulatorHostWithHttpScheme) {
  ScopedEnv emulator("STORAGE_EMULATOR_HOST", server_.url());
  e2s::Package package("gs://models/pkg", options());
  EXPECT_EQ(TempDir::read_file(package.resolve("config.json")), kConfig);
  EXPECT_GE(server_.count("GET", "/models/pkg/config.json"), 1u);
}

TEST_F(GcsTest, BucketRootAndDeeperPrefixes) {
  e2s::Package bucket("gs://tiny", options("a"));
  EXPECT_EQ(TempDir::read_file(bucket.resolve("b/c.txt")), "bc");
  e2s::Package deep("gs://models/pkg/sub", options("b"));
  const fs::path x = deep.resolve("deep/x.txt");
  EXPECT_EQ(TempDir::read_file(x), "deep\n");
  EXPECT_EQ(x.parent_path().filename(), "deep");
}

TEST_F(GcsTest, MetadataRecordsTheEtagAndTheGeneration) {
  e2s::Package package("gs://models/pkg", options());
  package.resolve("weights.bin");
  const json resource = object("pkg/weights.bin");
  const json recorded = meta("weights.bin");
  EXPECT_EQ(recorded.value("etag", ""), md5_hex(weights_)) << recorded.dump();
  EXPECT_EQ(recorded.value("version", ""), resource.at("generation").get<std::string>())
      << recorded.dump();
  EXPECT_EQ(recorded.value("size", 0u), weights_.size());
}

TEST_F(GcsTest, AwkwardObjectNamesResolveEncodedOnce) {
  e2s::Package package("gs://models/pkg", options());
  for (const auto& name : kAwkwardNames) {
    SCOPED_TRACE(name);
    server_.reset();
    EXPECT_EQ(TempDir::read_file(package.resolve("odd/" + name)), name);
    const auto recorded = requests();
    ASSERT_FALSE(recorded.empty());
    for (const auto& request : recorded) {
      EXPECT_EQ(request.at("path"), "/models/" + url_encode("pkg/odd/" + name)) << request.dump();
    }
  }
}

// ---- hashes ------------------------------------------------------------------

TEST_F(GcsTest, Md5IsVerified) {
  server_.fault({{"path", "/models/pkg/weights.bin"},
                 {"kind", "corrupt"},
                 {"times", -1},
                 {"methods", {"GET"}}});
  e2s::Package package("gs://models/pkg", options());
  const auto e = error_of([&] { package.resolve("weights.bin"); });
  EXPECT_EQ(e.code(), e2s::Errc::integrity) << e.what();
  EXPECT_TRUE(cached_files().empty());
}

TEST_F(GcsTest, CompositeObjectWithOnlyACrc32cResolves) {
  const json resource = object("pkg/composite.bin");
  ASSERT_FALSE(resource.contains("md5Hash")) << resource.dump();
  e2s::Package package("gs://models/pkg", options());
  EXPECT_EQ(TempDir::read_file(package.resolve("composite.bin")), composite_);
}

TEST_F(GcsTest, CompositeObjectIsVerifiedByItsCrc32c) {
  server_.fault({{"path", "/models/pkg/composite.bin"},
                 {"kind", "corrupt"},
                 {"times", -1},
                 {"methods", {"GET"}}});
  e2s::Package package("gs://models/pkg", options());
  const auto e = error_of([&] { package.resolve("composite.bin"); });
  EXPECT_EQ(e.code(), e2s::Errc::integrity) << e.what();
  EXPECT_TRUE(cached_files().empty());
}

TEST_F(GcsTest, LyingObjectIsAnIntegrityErrorAndNothingIsCached) {
  e2s::Package package("gs://models/pkg", options());
  for (const std::string name : {"liar.bin", "composite-liar.bin"}) {
    SCOPED_TRACE(name);
    const auto e = error_of([&] { package.resolve(name); });
    EXPECT_EQ(e.code(), e2s::Errc::integrity) << e.what();
    EXPECT_TRUE(contains(e.what(), name)) << e.what();
    EXPECT_TRUE(meta(name).is_null());
  }
  EXPECT_TRUE(cached_files().empty());
}

TEST_F(GcsTest, Md5OnTheSecondHashLineIsRead) {
  // X-Goog-Hash: crc32c=<true> and X-Goog-Hash: md5=<of other bytes>, as two
  // header lines: a store that read only the first line would accept it.
  e2s::Package package("gs://models/pkg", options());
  const auto e = error_of([&] { package.resolve("md5-liar.bin"); });
  EXPECT_EQ(e.code(), e2s::Errc::integrity) << e.what();
  EXPECT_TRUE(cached_files().empty());
}

TEST_F(GcsTest, HashesOnOneHeaderLine) {
  const json config = object("pkg/config.json");
  const json weights = object("pkg/weights.bin");
  const std::string crc32c = config.at("crc32c");
  server_.add_headers("/models/pkg/config.json",
                      {{"X-Goog-Hash", "crc32c=" + crc32c + ",md5=" +
                                           config.at("md5Hash").get<std::string>()}});
  e2s::Package good("gs://models/pkg", options("a"));
  EXPECT_EQ(TempDir::read_file(good.resolve("config.json")), kConfig);

  server_.reset();
  server_.add_headers("/models/pkg/config.json",
                      {{"X-Goog-Hash", "crc32c=" + crc32c + ",md5=" +
                                           weights.at("md5Hash").get<std::string>()}});
  e2s::Package lying("gs://models/pkg", options("b"));
  const auto e = error_of([&] { lying.resolve("config.json"); });
  EXPECT_EQ(e.code(), e2s::Errc::integrity) << e.what();
}

// ---- transfers -----------------------------------------------------------------

TEST_F(GcsTest, ServiceUnavailableIsRetried) {
  server_.fault({{"path", "/models/pkg/config.json"},
                 {"kind", "status"},
                 {"status", 503},
                 {"times", 2},
                 {"methods", {"GET"}}});
  e2s::Package package("gs://models/pkg", options());
  EXPECT_EQ(TempDir::read_file(package.resolve("config.json")), kConfig);
  EXPECT_EQ(server_.count("GET", "/models/pkg/config.json"), 3u);
}

TEST_F(GcsTest, CutDownloadResumesWithARangeAndStillMatchesTheHash) {
  server_.fault({{"path", "/models/pkg/weights.bin"},
                 {"kind", "cut"},
                 {"after", 100000},
                 {"methods", {"GET"}}});
  e2s::Package package("gs://models/pkg", options());
  EXPECT_EQ(TempDir::read_file(package.resolve("weights.bin")), weights_);
  bool ranged = false;
  for (const auto& request : requests()) {
    if (request.at("method") == "GET" && request.at("range").is_string()) ranged = true;
  }
  EXPECT_TRUE(ranged) << server_.stats().dump();
}

// ---- errors --------------------------------------------------------------------

TEST_F(GcsTest, PrivateObjectIsUnauthorized) {
  e2s::Package package("gs://models/pkg", options());
  const auto e = error_of([&] { package.resolve("private.bin"); });
  EXPECT_EQ(e.code(), e2s::Errc::unauthorized) << e.what();
  EXPECT_EQ(e.http_status(), 403);
  EXPECT_TRUE(contains(e.what(), "private.bin")) << e.what();
  EXPECT_TRUE(cached_files().empty());
}

TEST_F(GcsTest, PrivateBucketListingIsUnauthorized) {
  e2s::Package package("gs://locked/pkg", options());
  const auto e = error_of([&] { package.list(); });
  EXPECT_EQ(e.code(), e2s::Errc::unauthorized) << e.what();
  EXPECT_EQ(e.http_status(), 401);
  const auto read = error_of([&] { package.resolve("s.txt"); });
  EXPECT_EQ(read.code(), e2s::Errc::unauthorized) << read.what();
}

TEST_F(GcsTest, MissingObjectAndBucketAreNotFound) {
  e2s::Package package("gs://models/pkg", options("a"));
  const auto e = error_of([&] { package.resolve("missing.bin"); });
  EXPECT_EQ(e.code(), e2s::Errc::not_found) << e.what();
  EXPECT_EQ(e.http_status(), 404);
  EXPECT_TRUE(contains(e.what(), "missing.bin")) << e.what();
  e2s::Package nowhere("gs://no-such-bucket/pkg", options("b"));
  const auto bucket = error_of([&] { nowhere.resolve("config.json"); });
  EXPECT_EQ(bucket.code(), e2s::Errc::not_found) << bucket.what();
  const auto listing = error_of([&] { nowhere.list(); });
  EXPECT_EQ(listing.code(), e2s::Errc::not_found) << listing.what();
  EXPECT_TRUE(cached_files().empty());
}

// ---- listing -------------------------------------------------------------------

TEST_F(GcsTest, ListingFollowsPageTokensAndStaysInsideThePrefix) {
  e2s::Package package("gs://models/pkg", options());
  const auto entries = package.list();
  std::vector<std::string> expected = {"composite-liar.bin", "composite.bin", "config.json",
                                       "liar.bin",           "md5-liar.bin",  "private.bin",
                                       "sub/deep/x.txt",     "weights.bin"};
  for (const auto& name : kAwkwardNames) expected.push_back("odd/" + name);
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(paths(entries), expected);
  std::map<std::string, std::optional<std::uint64_t>> sizes;
  for (const auto& entry : entries) sizes[entry.path] = entry.size;
  EXPECT_EQ(sizes["weights.bin"], std::optional<std::uint64_t>(weights_.size()));
  EXPECT_EQ(sizes["config.json"], std::optional<std::uint64_t>(std::string(kConfig).size()));
  EXPECT_EQ(sizes["odd/with space.txt"], std::optional<std::uint64_t>(14));

  // 14 objects at 3 a page: 5 pages, all but the first with a pageToken.
  std::size_t pages = 0;
  std::size_t with_token = 0;
  for (const auto& request : requests()) {
    const std::string target = request.at("path");
    if (target.rfind("/storage/v1/b/models/o?", 0) != 0) continue;
    ++pages;
    if (contains(target, "pageToken=")) ++with_token;
    EXPECT_TRUE(contains(target, "prefix=pkg%2F") || contains(target, "prefix=pkg/")) << target;
  }
  EXPECT_EQ(pages, 5u);
  EXPECT_EQ(with_token, 4u);
}

TEST_F(GcsTest, ListingOfAWholeBucket) {
  e2s::Package package("gs://tiny", options());
  const auto entries = package.list();
  ASSERT_EQ(paths(entries), (std::vector<std::string>{"a.txt", "b/c.txt"}));
  EXPECT_EQ(entries[0].size, std::optional<std::uint64_t>(1));
  EXPECT_EQ(entries[1].size, std::optional<std::uint64_t>(2));
}

}  // namespace
