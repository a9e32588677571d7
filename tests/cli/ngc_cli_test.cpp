// `e2s resolve` and `e2s ls` on ngc://models/... roots against the fake NGC
// (tests/servers/ngc_server.py): output, exit statuses, error lines, keys.
#include <curl/curl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/cli_runner.hpp"
#include "support/fixtures.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"

namespace {

using e2s::test::CliRun;

namespace fs = std::filesystem;
using e2s::test::contains;
using e2s::test::expect_one_error_line;
using e2s::test::get_json;
using e2s::test::lines;
using e2s::test::lower;
using e2s::test::TempDir;
using e2s::test::TestServer;
using nlohmann::json;

constexpr const char* kKey = "legacykey0123456789";
constexpr const char* kPersonalKey = "nvapi-personal0123456789";
constexpr const char* kSeed = "ngc://models/nvidia/modulus/modulus_fcn@v0.2";
constexpr const char* kSecret = "ngc://models/acme/secret@2.0";

// Variables that would let the runner's own NGC settings or proxy leak in.
const std::set<std::string> kScrubbed = {
    "NGC_CLI_API_URL", "NGC_CLI_SEARCH_SERVICE_URL", "NGC_CLI_URL", "NGC_CLI_AUTH_URL",
    "NGC_CLI_API_KEY", "NGC_API_KEY", "NGC_APP_KEY", "NGC_CLI_HOME", "NGC_CLI_ORG",
    "NGC_CLI_TEAM", "EARTH2STUDIO_OFFLINE", "EARTH2STUDIO_MODEL_CACHE", "EARTH2STUDIO_CACHE",
    "http_proxy", "ALL_PROXY", "all_proxy"};

// Runs the e2s binary in the test's environment minus kScrubbed, plus `env`.
CliRun run_e2s(const std::vector<std::string>& args, const std::map<std::string, std::string>& env) {
  return e2s::test::run_e2s(args, env, [](const std::string& name) { return kScrubbed.count(name) != 0; });
}

class NgcCliTest : public ::testing::Test {
 protected:
  NgcCliTest()
      : fcn_(300000, 'z'),
        ngc_("ngc_server.py", {"--root", models_.path().string(), "--key", kKey, "--key",
                               kPersonalKey, "--page-size", "2"}) {
    // Layout: <org or _>/<team or _>/<name>/<version>/<files>, model.json beside the versions.
    models_.write_file("nvidia/modulus/modulus_fcn/v0.2/fcn.zip", fcn_);
    models_.write_file("nvidia/modulus/modulus_fcn/v0.2/metadata.json", "{}\n");
    models_.write_file("acme/_/weather/1.0/config.json", "config\n");
    models_.write_file("acme/_/weather/1.0/data/a.txt", "a");
    models_.write_file("acme/_/weather/1.0/data/b.txt", "bb");
    models_.write_file("acme/_/weather/1.0/data/c/d.txt", "ddd");
    models_.write_file("acme/_/weather/1.0/weights.bin", std::string(4096, 'w'));
    models_.write_file("_/_/bare/1/bare.txt", "bare\n");
    models_.write_file("acme/_/secret/model.json", R"({"private": true})");
    models_.write_file("acme/_/secret/2.0/secret.txt", "secret\n");
    models_.write_file("acme/_/secret/2.0/more/1.txt", "one");
    models_.write_file("acme/_/licensed/model.json", R"({"licence_required": true})");
    models_.write_file("acme/_/licensed/1/l.bin", "l");
    models_.write_file("acme/_/nourls/model.json", R"({"urls": "empty"})");
    models_.write_file("acme/_/nourls/1/f.bin", "f");
    auth_port_ = get_json(ngc_.url("/_info")).at("auth_port").get<int>();
  }

  std::map<std::string, std::string> env() const {
    return {{"EARTH2STUDIO_CACHE", cache_.path().string()},
            {"NGC_CLI_API_URL", ngc_.url("/")},
            {"NGC_CLI_AUTH_URL", "http://127.0.0.1:" + std::to_string(auth_port_) + "/token"}};
  }

  std::map<std::string, std::string> env_with(const std::string& name,
                                              const std::string& value) const {
    auto e = env();
    e[name] = value;
    return e;
  }

  std::vector<json> requests(const std::string& host) const {
    return e2s::test::recorded_requests(ngc_, host);
  }

  TempDir models_;
  TempDir cache_;
  std::string fcn_;
  TestServer ngc_;
  int auth_port_ = 0;
};

TEST_F(NgcCliTest, ResolveTheSeedExample) {
  CliRun run = run_e2s({"resolve", kSeed, "fcn.zip"}, env());
  ASSERT_EQ(run.status, 0) << run.err;
  const auto out = lines(run.out);
  ASSERT_EQ(out.size(), 1u) << run.out;
  EXPECT_TRUE(fs::path(out[0]).is_absolute()) << out[0];
  EXPECT_EQ(fs::path(out[0]).filename(), "fcn.zip");
  EXPECT_EQ(TempDir::read_file(out[0]), fcn_);
  EXPECT_TRUE(run.err.empty()) << run.err;
  EXPECT_EQ(ngc_.count("GET", "/v2/models/org/nvidia/team/modulus/modulus_fcn/v0.2/files"), 1u);
  EXPECT_EQ(requests("storage").size(), 1u);
}

TEST_F(NgcCliTest, FetchAVersionThenResolveOfflineWithoutARequest) {
  CliRun run = run_e2s({"fetch", "ngc://models/acme/weather@1.0"}, env());
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_NE(run.out.find("5 files"), std::string::npos) << run.out;
  ngc_.reset();
  auto offline = env();
  offline["EARTH2STUDIO_OFFLINE"] = "1";
  run = run_e2s({"resolve", "ngc://models/acme/weather@1.0", "data/c/d.txt", "weights.bin"}, offline);
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(TempDir::read_file(lines(run.out).at(0)), "ddd");
  // A version is pinned: --refresh has nothing to check.
  run = run_e2s({"--refresh", "resolve", "ngc://models/acme/weather@1.0", "config.json"}, env());
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(ngc_.stats().at("requests").size(), 0u);
}

TEST_F(NgcCliTest, ResolveEveryRootForm) {
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"ngc://models/acme/weather@1.0", "config.json", "config\n"},
      {"ngc://models/acme/weather@1.0/data", "c/d.txt", "ddd"},
      {"ngc://models/bare@1", "bare.txt", "bare\n"},
      {"ngc://models/no-org/no-team/bare@1", "bare.txt", "bare\n"},
  };
  for (const auto& [root, file, content] : cases) {
    SCOPED_TRACE(root);
    CliRun run = run_e2s({"resolve", root, file}, env());
    ASSERT_EQ(run.status, 0) << run.err;
    const auto out = lines(run.out);
    ASSERT_EQ(out.size(), 1u) << run.out;
    EXPECT_EQ(TempDir::read_file(out[0]), content);
    EXPECT_TRUE(fs::path(out[0]).generic_string().ends_with(file)) << out[0];
  }
}

TEST_F(NgcCliTest, ResolveSeveralFilesPrintsThemInOrder) {
  CliRun run = run_e2s({"resolve", kSeed, "metadata.json", "fcn.zip"}, env());
  ASSERT_EQ(run.status, 0) << run.err;
  const auto out = lines(run.out);
  ASSERT_EQ(out.size(), 2u) << run.out;
  EXPECT_EQ(TempDir::read_file(out[0]), "{}\n");
  EXPECT_EQ(TempDir::read_file(out[1]), fcn_);
}

TEST_F(NgcCliTest, PrivateModelWithoutKeyExitsFourNamingTheVariable) {
  CliRun run = run_e2s({"resolve", kSecret, "secret.txt"}, env());
  EXPECT_EQ(run.status, 4) << run.err;
  expect_one_error_line(run);
  EXPECT_TRUE(contains(run.err, "NGC_CLI_API_KEY")) << run.err;
}

TEST_F(NgcCliTest, PrivateModelWithEitherKeyVariable) {
  for (const char* variable : {"NGC_CLI_API_KEY", "NGC_API_KEY"}) {
    SCOPED_TRACE(variable);
    ngc_.reset();
    TempDir cache;
    auto e = env_with(variable, kKey);
    e["EARTH2STUDIO_CACHE"] = cache.path().string();
    CliRun run = run_e2s({"resolve", kSecret, "secret.txt", "more/1.txt"}, e);
    ASSERT_EQ(run.status, 0) << run.err;
    const auto out = lines(run.out);
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(TempDir::read_file(out[0]), "secret\n");
    EXPECT_EQ(TempDir::read_file(out[1]), "one");
    EXPECT_EQ(requests("auth").size(), 1u) << "one token for both files";
    EXPECT_FALSE(contains(run.err, kKey)) << run.err;
  }
}

TEST_F(NgcCliTest, PersonalKeyNeedsNoExchangeAndNeverReachesStorage) {
  CliRun run = run_e2s({"resolve", kSecret, "secret.txt"}, env_with("NGC_CLI_API_KEY", kPersonalKey));
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_TRUE(requests("auth").empty());
  const auto api = requests("api");
  ASSERT_EQ(api.size(), 1u);
  EXPECT_EQ(api[0].at("headers").value("authorization", ""), std::string("Bearer ") + kPersonalKey);
  const auto storage = requests("storage");
  ASSERT_EQ(storage.size(), 1u);
  EXPECT_FALSE(storage[0].at("headers").contains("authorization")) << storage[0].dump();
  EXPECT_FALSE(contains(storage[0].dump(), kPersonalKey)) << storage[0].dump();
}

TEST_F(NgcCliTest, RefusedKeyExitsFourWithoutQuotingIt) {
  CliRun run = run_e2s({"resolve", kSecret, "secret.txt"},
                       env_with("NGC_CLI_API_KEY", "wrongkey5555"));
  EXPECT_EQ(run.status, 4) << run.err;
  expect_one_error_line(run);
  EXPECT_TRUE(contains(run.err, "NGC_CLI_API_KEY")) << run.err;
  EXPECT_FALSE(contains(run.err, "wrongkey5555")) << run.err;
}

TEST_F(NgcCliTest, MissingFileExitsThreeNamingModelVersionAndFile) {
  CliRun run = run_e2s({"resolve", kSeed, "missing.bin"}, env());
  EXPECT_EQ(run.status, 3) << run.err;
  expect_one_error_line(run);
  EXPECT_TRUE(contains(run.err, "nvidia/modulus/modulus_fcn")) << run.err;
  EXPECT_TRUE(contains(run.err, "v0.2")) << run.err;
  EXPECT_TRUE(contains(run.err, "missing.bin")) << run.err;

  run = run_e2s({"resolve", "ngc://models/nvidia/modulus/modulus_fcn@v9", "fcn.zip"}, env());
  EXPECT_EQ(run.status, 3) << run.err;
  expect_one_error_line(run);
  EXPECT_TRUE(contains(run.err, "v9")) << run.err;
}

TEST_F(NgcCliTest, LicenceNotAcceptedExitsFourAndSaysSo) {
  CliRun run = run_e2s({"resolve", "ngc://models/acme/licensed@1", "l.bin"}, env());
  EXPECT_EQ(run.status, 4) << run.err;
  expect_one_error_line(run);
  EXPECT_TRUE(contains(lower(run.err), "licen")) << run.err;
  EXPECT_TRUE(requests("storage").empty());
}

TEST_F(NgcCliTest, NoDownloadUrlExitsOne) {
  CliRun run = run_e2s({"resolve", "ngc://models/acme/nourls@1", "f.bin"}, env());
  EXPECT_EQ(run.status, 1) << run.err;
  expect_one_error_line(run);
  EXPECT_TRUE(contains(lower(run.err), "url")) << run.err;
}

TEST_F(NgcCliTest, InvalidRootsExitTwoWithoutARequest) {
  for (const char* root : {"ngc://models/a/b/c/d@1.0", "ngc://models/nvidia/modulus/modulus_fcn",
                           "ngc://models/org/name"}) {
    SCOPED_TRACE(root);
    CliRun run = run_e2s({"resolve", root, "fcn.zip"}, env());
    EXPECT_EQ(run.status, 2) << run.err;
    expect_one_error_line(run);
    run = run_e2s({"ls", root}, env());
    EXPECT_EQ(run.status, 2) << run.err;
    expect_one_error_line(run);
  }
  EXPECT_TRUE(ngc_.stats().at("requests").empty());
}

TEST_F(NgcCliTest, SecondResolveMakesNoRequest) {
  CliRun first = run_e2s({"resolve", kSeed, "fcn.zip", "metadata.json"}, env());
  ASSERT_EQ(first.status, 0) << first.err;
  ngc_.reset();
  CliRun again = run_e2s({"resolve", kSeed, "fcn.zip", "metadata.json"}, env());
  EXPECT_EQ(again.status, 0) << again.err;
  EXPECT_EQ(again.out, first.out);
  EXPECT_TRUE(ngc_.stats().at("requests").empty()) << ngc_.stats().dump();
}

TEST_F(NgcCliTest, CutDownloadResumes) {
  ngc_.fault({{"host", "storage"}, {"path", "*"}, {"kind", "cut"}, {"after", 100000},
              {"methods", {"GET"}}});
  CliRun run = run_e2s({"--quiet", "resolve", kSeed, "fcn.zip"}, env());
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(TempDir::read_file(lines(run.out).at(0)), fcn_);
  const auto storage = requests("storage");
  ASSERT_EQ(storage.size(), 2u);
  EXPECT_EQ(storage[1].at("status"), 206);
}

TEST_F(NgcCliTest, LsPrintsSizeTabPathSortedOverSeveralPages) {
  CliRun run = run_e2s({"ls", "ngc://models/acme/weather@1.0"}, env());
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out,
            "7\tconfig.json\n"
            "1\tdata/a.txt\n"
            "2\tdata/b.txt\n"
            "3\tdata/c/d.txt\n"
            "4096\tweights.bin\n");
  EXPECT_TRUE(run.err.empty()) << run.err;
  std::size_t with_reference = 0;
  for (const auto& request : requests("api")) {
    if (contains(request.at("path"), "page-reference=")) ++with_reference;
  }
  EXPECT_EQ(with_reference, 2u) << "5 files at 2 a page";
  EXPECT_TRUE(requests("storage").empty());
}

TEST_F(NgcCliTest, LsOfASubFolderAndOfAPrivateModel) {
  CliRun run = run_e2s({"ls", "ngc://models/acme/weather@1.0/data"}, env());
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, "1\ta.txt\n2\tb.txt\n3\tc/d.txt\n");

  run = run_e2s({"ls", kSecret}, env_with("NGC_CLI_API_KEY", kKey));
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, "3\tmore/1.txt\n7\tsecret.txt\n");
}

TEST_F(NgcCliTest, LsErrorsExitLikeResolve) {
  CliRun run = run_e2s({"ls", kSecret}, env());
  EXPECT_EQ(run.status, 4) << run.err;
  expect_one_error_line(run);
  EXPECT_TRUE(contains(run.err, "NGC_CLI_API_KEY")) << run.err;
  run = run_e2s({"ls", "ngc://models/acme/weather@9.9"}, env());
  EXPECT_EQ(run.status, 3) << run.err;
  expect_one_error_line(run);
}

}  // namespace
