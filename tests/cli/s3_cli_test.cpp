// `e2s resolve` and `e2s ls` on s3:// roots against the real moto server
// (tests/servers/moto_s3.py) and on gs:// roots against the fake GCS
// (tests/servers/gcs_server.py): output, exit statuses, error lines.
//
// The two moto instances ("open": no auth enforced; "secure": SigV4 and IAM
// enforced) are shared by every test of this binary and started on first use.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/cli_runner.hpp"
#include "support/fixtures.hpp"
#include "support/moto_server.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"

namespace {

using e2s::test::CliRun;

namespace fs = std::filesystem;
using e2s::test::contains;
using e2s::test::expect_one_error_line;
using e2s::test::lines;
using e2s::test::make_bytes;
using e2s::test::MotoServer;
using e2s::test::TempDir;
using e2s::test::TestServer;
using nlohmann::json;

constexpr const char* kConfig = "{\"model\": \"s3\"}\n";
constexpr const char* kSecret = "secret bytes\n";
constexpr int kManyKeys = 1003;

const std::string& weights() {
  static const std::string bytes = make_bytes(300000, 1);
  return bytes;
}

// Variables of the runner that would let its own cloud settings, caches or
// proxies leak in (every AWS_* is dropped as well).
bool scrubbed(const std::string& name) {
  static const std::vector<std::string> names = {
      "HOME", "STORAGE_EMULATOR_HOST", "CLOUD_STORAGE_EMULATOR_ENDPOINT",
      "GOOGLE_CLOUD_UNIVERSE_DOMAIN", "XDG_CACHE_HOME", "EARTH2STUDIO_OFFLINE",
      "EARTH2STUDIO_MODEL_CACHE", "EARTH2STUDIO_CACHE", "http_proxy", "HTTP_PROXY", "https_proxy",
      "HTTPS_PROXY", "ALL_PROXY", "all_proxy"};
  return name.rfind("AWS_", 0) == 0 || std::find(names.begin(), names.end(), name) != names.end();
}

// Runs the e2s binary in the test's environment minus the scrubbed variables, plus `env`.
CliRun run_e2s(const std::vector<std::string>& args, const std::map<std::string, std::string>& env) {
  return e2s::test::run_e2s(args, env, scrubbed);
}

// ---- the shared moto instances ----------------------------------------------

class MotoEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    open_.reset();
    secure_.reset();
  }

  const MotoServer& open() {
    if (!open_) {
      json setup = {
          {"buckets",
           {{{"name", "public-models"},
             {"public", true},
             {"objects",
              {{{"key", "pkg/config.json"}, {"text", kConfig}},
               {{"key", "pkg/weights.bin"},
                {"file", data_.write_file("weights.bin", weights()).string()}},
               {{"key", "pkg/liar.bin"},
                {"text", "the real bytes\n"},
                {"etag", "0123456789abcdef0123456789abcdef"}},
               {{"key", "pkg/odd/with space+plus.txt"}, {"text", "odd"}}}},
             {"generate", {{{"prefix", "many/"}, {"count", kManyKeys}}}}},
            {{"name", "private-models"},
             {"objects", {{{"key", "pkg/secret.bin"}, {"text", kSecret}}}}},
            {{"name", "tiny-bucket"},
             {"public", true},
             {"objects",
              {{{"key", "a.txt"}, {"text", "a"}}, {{"key", "b/c.txt"}, {"text", "bc"}}}}}}}};
      open_ = std::make_unique<MotoServer>(setup);
    }
    return *open_;
  }

  const MotoServer& secure() {
    if (!secure_) {
      json setup = {{"buckets",
                     {{{"name", "private-models"},
                       {"objects", {{{"key", "pkg/secret.bin"}, {"text", kSecret}}}}}}},
                    {"users", {{{"name", "alice"}}}}};
      secure_ = std::make_unique<MotoServer>(setup, /*enforce_auth=*/true);
    }
    return *secure_;
  }

 private:
  TempDir data_;
  std::unique_ptr<MotoServer> open_;
  std::unique_ptr<MotoServer> secure_;
};

MotoEnvironment* const moto_environment = static_cast<MotoEnvironment*>(
    ::testing::AddGlobalTestEnvironment(new MotoEnvironment));

class S3CliTest : public ::testing::Test {
 protected:
  // Environment of the e2s child: its cache and HOME here, nothing of the runner's AWS setup.
  std::map<std::string, std::string> env(const MotoServer& moto) const {
    return {{"EARTH2STUDIO_CACHE", cache_.path().string()},
            {"HOME", home_.path().string()},
            {"AWS_ENDPOINT_URL", moto.endpoint()}};
  }

  std::map<std::string, std::string> alice_env() const {
    const MotoServer& moto = moto_environment->secure();
    auto e = env(moto);
    const json& alice = moto.credentials().at("users").at("alice");
    e["AWS_ACCESS_KEY_ID"] = alice.at("access_key_id").get<std::string>();
    e["AWS_SECRET_ACCESS_KEY"] = alice.at("secret_access_key").get<std::string>();
    return e;
  }

  TempDir home_;
  TempDir cache_;
};

TEST_F(S3CliTest, ResolvePublicObjectsAnonymously) {
  CliRun run = run_e2s({"resolve", "s3://public-models/pkg", "config.json", "weights.bin"},
                       env(moto_environment->open()));
  ASSERT_EQ(run.status, 0) << run.err;
  const auto out = lines(run.out);
  ASSERT_EQ(out.size(), 2u) << run.out;
  EXPECT_TRUE(fs::path(out[0]).is_absolute()) << out[0];
  EXPECT_EQ(fs::path(out[0]).filename(), "config.json");
  EXPECT_EQ(TempDir::read_file(out[0]), kConfig);
  EXPECT_EQ(TempDir::read_file(out[1]), weights());
  EXPECT_TRUE(run.err.empty()) << run.err;

  run = run_e2s({"resolve", "s3://public-models/pkg", "odd/with space+plus.txt"},
                env(moto_environment->open()));
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(TempDir::read_file(lines(run.out).at(0)), "odd");
}

TEST_F(S3CliTest, ResolveSignedWithKeysFromTheEnvironment) {
  CliRun run = run_e2s({"resolve", "s3://private-models/pkg", "secret.bin"}, alice_env());
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(TempDir::read_file(lines(run.out).at(0)), kSecret);
}

TEST_F(S3CliTest, WrongSecretExitsFourWithOneErrorLineAndNoSecret) {
  auto e = alice_env();
  const std::string right = e["AWS_SECRET_ACCESS_KEY"];
  e["AWS_SECRET_ACCESS_KEY"] = "wrongSecret+/Kz9wrongSecret+/Kz9wrongSec";
  CliRun run = run_e2s({"resolve", "s3://private-models/pkg", "secret.bin"}, e);
  EXPECT_EQ(run.status, 4) << run.err;
  expect_one_error_line(run);
  EXPECT_TRUE(contains(run.err, "AWS_")) << run.err;
  EXPECT_FALSE(contains(run.err, "wrongSecret")) << run.err;
  EXPECT_FALSE(contains(run.err, right)) << run.err;

  run = run_e2s({"ls", "s3://private-models/pkg"}, e);
  EXPECT_EQ(run.status, 4) << run.err;
  expect_one_error_line(run);
  EXPECT_FALSE(contains(run.err, "wrongSecret")) << run.err;
}

TEST_F(S3CliTest, AnonymousReadOfAPrivateBucketExitsFour) {
  CliRun run = run_e2s({"resolve", "s3://private-models/pkg", "secret.bin"},
                       env(moto_environment->secure()));
  EXPECT_EQ(run.status, 4) << run.err;
  expect_one_error_line(run);
  EXPECT_TRUE(contains(run.err, "AWS_ACCESS_KEY_ID")) << run.err;
}

TEST_F(S3CliTest, MissingKeyAndBucketExitThree) {
  CliRun run = run_e2s({"resolve", "s3://public-models/pkg", "missing.bin"},
                       env(moto_environment->open()));
  EXPECT_EQ(run.status, 3) << run.err;
  expect_one_error_line(run);
  EXPECT_TRUE(contains(run.err, "missing.bin")) << run.err;

  run = run_e2s({"resolve", "s3://no-such-bucket/pkg", "config.json"},
                env(moto_environment->open()));
  EXPECT_EQ(run.status, 3) << run.err;
  expect_one_error_line(run);
  EXPECT_TRUE(contains(run.err, "no-such-bucket")) << run.err;

  run = run_e2s({"ls", "s3://no-such-bucket/pkg"}, env(moto_environment->open()));
  EXPECT_EQ(run.status, 3) << run.err;
  expect_one_error_line(run);
}

TEST_F(S3CliTest, LyingEtagExitsSix) {
  CliRun run = run_e2s({"resolve", "s3://public-models/pkg", "liar.bin"},
                       env(moto_environment->open()));
  EXPECT_EQ(run.status, 6) << run.err;
  expect_one_error_line(run);
}

TEST_F(S3CliTest, LsPrintsSizeTabPathSortedAndRelativeToThePrefix) {
  CliRun run = run_e2s({"ls", "s3://public-models/pkg"}, env(moto_environment->open()));
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out,
            "16\tconfig.json\n"
            "15\tliar.bin\n"
            "3\todd/with space+plus.txt\n"
            "300000\tweights.bin\n");
  EXPECT_TRUE(run.err.empty()) << run.err;

  run = run_e2s({"ls", "s3://tiny-bucket"}, env(moto_environment->open()));
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, "1\ta.txt\n2\tb/c.txt\n");
}

TEST_F(S3CliTest, FetchABucketPrefixThenResolveOffline) {
  CliRun run = run_e2s({"fetch", "s3://public-models/pkg", "--exclude", "liar.bin"}, env(moto_environment->open()));
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_TRUE(run.out.find("3 files") != std::string::npos) << run.out;
  auto offline = env(moto_environment->open());
  offline["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9";  // nothing listens: any request would fail
  offline["EARTH2STUDIO_OFFLINE"] = "1";
  run = run_e2s({"resolve", "s3://public-models/pkg", "weights.bin", "odd/with space+plus.txt"}, offline);
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(TempDir::read_file(lines(run.out).at(0)), weights());
  // The lying object was left out, and fetching it alone still fails as it should.
  run = run_e2s({"resolve", "s3://public-models/pkg", "liar.bin"}, offline);
  EXPECT_EQ(run.status, 7) << run.err;
  run = run_e2s({"fetch", "s3://public-models/pkg", "liar.bin"}, env(moto_environment->open()));
  EXPECT_EQ(run.status, 6) << run.err;

  run = run_e2s({"fetch", "s3://tiny-bucket"}, env(moto_environment->open()));
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_TRUE(run.out.find("2 files") != std::string::npos) << run.out;
}

TEST_F(S3CliTest, LsFollowsContinuationTokens) {
  CliRun run = run_e2s({"ls", "s3://public-models/many"}, env(moto_environment->open()));
  ASSERT_EQ(run.status, 0) << run.err;
  const auto out = lines(run.out);
  ASSERT_EQ(out.size(), static_cast<std::size_t>(kManyKeys));
  for (int i = 0; i < kManyKeys; ++i) {
    char expected[32];
    std::snprintf(expected, sizeof expected, "14\t%05d.txt", i);
    ASSERT_EQ(out[static_cast<std::size_t>(i)], expected) << i;
  }
}

TEST_F(S3CliTest, LsSigned) {
  CliRun run = run_e2s({"ls", "s3://private-models/pkg"}, alice_env());
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, "13\tsecret.bin\n");
}

// ---- gs:// -----------------------------------------------------------------------

class GcsCliTest : public ::testing::Test {
 protected:
  GcsCliTest() : server_("gcs_server.py", {"--root", root_.path().string(), "--page-size", "2"}) {
    root_.write_file("models/pkg/config.json", "gcs\n");
    root_.write_file("models/pkg/weights.bin", weights());
    root_.write_file("models/pkg/sub/x.txt", "xx");
    root_.write_file("models/pkg/liar.bin", "the real bytes\n");
    root_.write_file("models/pkg/private.bin", "private\n");
    root_.write_file("models/other.txt", "not in pkg/\n");
    root_.write_file(".gcs.json", R"({"lies": ["models/pkg/liar.bin"],
                                      "private": ["models/pkg/private.bin"]})");
  }

  std::map<std::string, std::string> env(bool scheme = false) const {
    return {{"EARTH2STUDIO_CACHE", cache_.path().string()},
            {"HOME", home_.path().string()},
            {"STORAGE_EMULATOR_HOST",
             scheme ? server_.url() : "127.0.0.1:" + std::to_string(server_.port())}};
  }

  TempDir root_;
  TempDir home_;
  TempDir cache_;
  TestServer server_;
};

TEST_F(GcsCliTest, ResolveExitsZero) {
  for (bool scheme : {false, true}) {
    SCOPED_TRACE(scheme);
    CliRun run = run_e2s({"resolve", "gs://models/pkg", "config.json", "weights.bin"}, env(scheme));
    ASSERT_EQ(run.status, 0) << run.err;
    const auto out = lines(run.out);
    ASSERT_EQ(out.size(), 2u) << run.out;
    EXPECT_EQ(TempDir::read_file(out[0]), "gcs\n");
    EXPECT_EQ(TempDir::read_file(out[1]), weights());
    EXPECT_TRUE(run.err.empty()) << run.err;
  }
}

TEST_F(GcsCliTest, LyingObjectExitsSix) {
  CliRun run = run_e2s({"resolve", "gs://models/pkg", "liar.bin"}, env());
  EXPECT_EQ(run.status, 6) << run.err;
  expect_one_error_line(run);
  EXPECT_TRUE(contains(run.err, "liar.bin")) << run.err;
}

TEST_F(GcsCliTest, PrivateExitsFourAndMissingExitsThree) {
  CliRun run = run_e2s({"resolve", "gs://models/pkg", "private.bin"}, env());
  EXPECT_EQ(run.status, 4) << run.err;
  expect_one_error_line(run);
  run = run_e2s({"resolve", "gs://models/pkg", "missing.bin"}, env());
  EXPECT_EQ(run.status, 3) << run.err;
  expect_one_error_line(run);
}

TEST_F(GcsCliTest, LsPrintsSizeTabPathSorted) {
  CliRun run = run_e2s({"ls", "gs://models/pkg"}, env());
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out,
            "4\tconfig.json\n"
            "15\tliar.bin\n"
            "8\tprivate.bin\n"
            "2\tsub/x.txt\n"
            "300000\tweights.bin\n");
  EXPECT_TRUE(run.err.empty()) << run.err;
}

}  // namespace
