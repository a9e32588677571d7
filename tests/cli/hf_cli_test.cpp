// `e2s resolve` and `e2s ls` on hf:// roots against the fake Hub and its CDN
// (tests/servers/hf_server.py): output, exit statuses, error lines, tokens.
#include <curl/curl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
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
using e2s::test::TempDir;
using e2s::test::TestServer;
using nlohmann::json;

constexpr const char* kToken = "hf_validtoken";

// Variables that would let the runner's own Hub settings or proxy leak in.
const std::set<std::string> kScrubbed = {
    "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HOME", "HF_ENDPOINT",
    "XDG_CACHE_HOME", "HF_HUB_DISABLE_IMPLICIT_TOKEN", "HF_HUB_OFFLINE", "EARTH2STUDIO_OFFLINE",
    "EARTH2STUDIO_MODEL_CACHE", "EARTH2STUDIO_CACHE", "http_proxy", "ALL_PROXY", "all_proxy"};

// Runs the e2s binary in the test's environment minus kScrubbed, plus `env`.
CliRun run_e2s(const std::vector<std::string>& args, const std::map<std::string, std::string>& env) {
  return e2s::test::run_e2s(args, env, [](const std::string& name) { return kScrubbed.count(name) != 0; });
}

class HfCliTest : public ::testing::Test {
 protected:
  HfCliTest()
      : weights_(300000, 'w'),
        hub_("hf_server.py",
             {"--root", repos_.path().string(), "--page-size", "3", "--token", kToken}) {
    repos_.write_file("models/acme/weather/repo.json",
                      R"({"revisions": {"main": "main", "v1.0": "v1", "refs/pr/1": "pr1"}})");
    repos_.write_file("models/acme/weather/main/config.json", "main\n");
    repos_.write_file("models/acme/weather/main/weights.bin", weights_);
    repos_.write_file("models/acme/weather/main/pangu/pangu_6.onnx", std::string(4096, '6'));
    repos_.write_file("models/acme/weather/main/pangu/pangu_24.onnx", "onnx-24");
    repos_.write_file("models/acme/weather/main/pangu/readme.md", "# pangu\n");
    repos_.write_file("models/acme/weather/main/pangu/data/a.txt", "a");
    repos_.write_file("models/acme/weather/main/pangu/data/b.txt", "bb");
    repos_.write_file("models/acme/weather/main/pangu/data/c/d.txt", "ddd");
    repos_.write_file("models/acme/weather/v1/config.json", "v1.0\n");
    repos_.write_file("models/acme/weather/pr1/config.json", "refs/pr/1\n");
    repos_.write_file("datasets/acme/era5/main/stats.json", "{}\n");
    repos_.write_file("models/acme/private/repo.json", R"({"private": true})");
    repos_.write_file("models/acme/private/main/weights.bin", std::string(20000, 'p'));
    repos_.write_file("models/acme/gated/repo.json", R"({"gated": "auto", "tokens": []})");
    repos_.write_file("models/acme/gated/main/model.bin", "gated\n");
    repos_.write_file("models/acme/old-name/repo.json", R"({"moved_to": "acme/weather"})");
  }

  std::map<std::string, std::string> env() const {
    return {{"EARTH2STUDIO_CACHE", cache_.path().string()},
            {"HF_ENDPOINT", hub_.url()},
            {"HF_HOME", home_.path().string()}};
  }

  // The commit of a revision of acme/weather, from the fake's GET /_info.
  std::string commit(const std::string& revision) const {
    return get_json(hub_.url("/_info")).at("repos").at("models/acme/weather").at("revisions").at(revision);
  }

  std::vector<json> requests(const std::string& host) const {
    return e2s::test::recorded_requests(hub_, host);
  }

  TempDir repos_;
  TempDir home_;
  TempDir cache_;
  std::string weights_;
  TestServer hub_;
};

TEST_F(HfCliTest, ResolveEveryRootForm) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"hf://acme/weather", "main\n"},
      {"hf://acme/weather@main", "main\n"},
      {"hf://acme/weather@v1.0", "v1.0\n"},
      {"hf://acme/weather@refs/pr/1", "refs/pr/1\n"},
      {"hf://acme/weather@refs%2Fpr%2F1", "refs/pr/1\n"},
  };
  for (const auto& [root, content] : cases) {
    SCOPED_TRACE(root);
    CliRun run = run_e2s({"resolve", root, "config.json"}, env());
    ASSERT_EQ(run.status, 0) << run.err;
    const auto out = lines(run.out);
    ASSERT_EQ(out.size(), 1u) << run.out;
    EXPECT_TRUE(fs::path(out[0]).is_absolute()) << out[0];
    EXPECT_EQ(TempDir::read_file(out[0]), content);
    EXPECT_TRUE(run.err.empty()) << run.err;
  }
}

TEST_F(HfCliTest, ResolveSmallAndLfsFilesOfASubFolderAndADataset) {
  CliRun run = run_e2s({"resolve", "hf://acme/weather", "weights.bin", "config.json"}, env());
  ASSERT_EQ(run.status, 0) << run.err;
  auto out = lines(run.out);
  ASSERT_EQ(out.size(), 2u) << run.out;
  EXPECT_EQ(fs::path(out[0]).filename(), "weights.bin");
  EXPECT_EQ(TempDir::read_file(out[0]), weights_);
  EXPECT_EQ(TempDir::read_file(out[1]), "main\n");
  EXPECT_FALSE(requests("cdn").empty());

  run = run_e2s({"resolve", "hf://acme/weather/pangu", "data/c/d.txt"}, env());
  ASSERT_EQ(run.status, 0) << run.err;
  out = lines(run.out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(fs::path(out[0]).filename(), "d.txt");
  EXPECT_EQ(fs::path(out[0]).parent_path().filename(), "c");
  EXPECT_EQ(TempDir::read_file(out[0]), "ddd");

  run = run_e2s({"resolve", "hf://datasets/acme/era5", "stats.json"}, env());
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(TempDir::read_file(lines(run.out).at(0)), "{}\n");
}

TEST_F(HfCliTest, RenamedRepoResolves) {
  CliRun run = run_e2s({"resolve", "hf://acme/old-name", "config.json"}, env());
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(TempDir::read_file(lines(run.out).at(0)), "main\n");
}

TEST_F(HfCliTest, TokenReachesTheHubButNotTheCdn) {
  auto with_token = env();
  with_token["HF_TOKEN"] = kToken;
  CliRun run = run_e2s({"resolve", "hf://acme/private", "weights.bin"}, with_token);
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(TempDir::read_file(lines(run.out).at(0)), std::string(20000, 'p'));
  const auto hub = requests("hub");
  const auto cdn = requests("cdn");
  ASSERT_FALSE(hub.empty());
  ASSERT_FALSE(cdn.empty());
  for (const auto& request : hub) {
    EXPECT_EQ(request.at("headers").value("authorization", ""), std::string("Bearer ") + kToken);
  }
  for (const auto& request : cdn) {
    EXPECT_FALSE(request.at("headers").contains("authorization")) << request.dump();
  }
}

TEST_F(HfCliTest, TokenFromHfHomeFile) {
  home_.write_file("token", std::string(kToken) + "\n");
  CliRun run = run_e2s({"resolve", "hf://acme/private", "weights.bin"}, env());
  EXPECT_EQ(run.status, 0) << run.err;
}

TEST_F(HfCliTest, PrivateRepoWithoutTokenExitsThreeAndMentionsHfToken) {
  CliRun run = run_e2s({"resolve", "hf://acme/private", "weights.bin"}, env());
  EXPECT_EQ(run.status, 3) << run.err;
  expect_one_error_line(run);
  EXPECT_TRUE(contains(run.err, "HF_TOKEN")) << run.err;
}

TEST_F(HfCliTest, GatedRepoExitsFourWithTheHint) {
  CliRun run = run_e2s({"resolve", "hf://acme/gated", "model.bin"}, env());
  EXPECT_EQ(run.status, 4) << run.err;
  expect_one_error_line(run);
  EXPECT_TRUE(contains(run.err, "HF_TOKEN")) << run.err;
  EXPECT_TRUE(contains(run.err, hub_.url("/acme/gated"))) << run.err;
}

TEST_F(HfCliTest, MissingRevisionAndFileExitThreeAndSayWhich) {
  CliRun run = run_e2s({"resolve", "hf://acme/weather@nope-branch", "config.json"}, env());
  EXPECT_EQ(run.status, 3) << run.err;
  expect_one_error_line(run);
  EXPECT_TRUE(contains(run.err, "revision")) << run.err;
  EXPECT_TRUE(contains(run.err, "nope-branch")) << run.err;

  run = run_e2s({"resolve", "hf://acme/weather", "missing.bin"}, env());
  EXPECT_EQ(run.status, 3) << run.err;
  expect_one_error_line(run);
  EXPECT_TRUE(contains(run.err, "missing.bin")) << run.err;

  run = run_e2s({"resolve", "hf://acme/nothere", "config.json"}, env());
  EXPECT_EQ(run.status, 3) << run.err;
  expect_one_error_line(run);
}

TEST_F(HfCliTest, LyingCdnExitsSix) {
  hub_.fault({{"host", "cdn"}, {"path", "*"}, {"kind", "corrupt"}, {"times", -1},
              {"methods", {"GET"}}});
  CliRun run = run_e2s({"resolve", "hf://acme/weather", "weights.bin"}, env());
  EXPECT_EQ(run.status, 6) << run.err;
  expect_one_error_line(run);
}

TEST_F(HfCliTest, MalformedRootExitsTwoAndListsTheForms) {
  CliRun run = run_e2s({"resolve", "hf://single", "config.json"}, env());
  EXPECT_EQ(run.status, 2) << run.err;
  expect_one_error_line(run);
  EXPECT_TRUE(contains(run.err, "datasets/")) << run.err;
  EXPECT_TRUE(hub_.stats().at("requests").empty());
}

TEST_F(HfCliTest, SecondResolveOfAPinnedCommitMakesNoRequest) {
  const std::string root = "hf://acme/weather@" + commit("main");
  CliRun first = run_e2s({"resolve", root, "config.json", "weights.bin"}, env());
  ASSERT_EQ(first.status, 0) << first.err;
  hub_.reset();
  CliRun again = run_e2s({"resolve", root, "config.json", "weights.bin"}, env());
  EXPECT_EQ(again.status, 0) << again.err;
  EXPECT_EQ(again.out, first.out);
  EXPECT_TRUE(hub_.stats().at("requests").empty()) << hub_.stats().dump();
}

TEST_F(HfCliTest, LsPrintsSizeTabPathSortedAndRelativeToTheSubFolder) {
  CliRun run = run_e2s({"ls", "hf://acme/weather/pangu"}, env());
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out,
            "1\tdata/a.txt\n"
            "2\tdata/b.txt\n"
            "3\tdata/c/d.txt\n"
            "7\tpangu_24.onnx\n"
            "4096\tpangu_6.onnx\n"
            "8\treadme.md\n");
  EXPECT_TRUE(run.err.empty()) << run.err;
  std::size_t with_cursor = 0;
  for (const auto& request : requests("hub")) {
    if (contains(request.at("path"), "cursor=")) ++with_cursor;
  }
  EXPECT_GE(with_cursor, 2u) << "8 tree entries at 3 a page";
}

TEST_F(HfCliTest, LsOfTheWholeRepoAndAtARevision) {
  CliRun run = run_e2s({"ls", "hf://acme/weather"}, env());
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out,
            "5\tconfig.json\n"
            "1\tpangu/data/a.txt\n"
            "2\tpangu/data/b.txt\n"
            "3\tpangu/data/c/d.txt\n"
            "7\tpangu/pangu_24.onnx\n"
            "4096\tpangu/pangu_6.onnx\n"
            "8\tpangu/readme.md\n"
            "300000\tweights.bin\n");
  run = run_e2s({"ls", "hf://acme/weather@refs%2Fpr%2F1"}, env());
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, "10\tconfig.json\n");
}

TEST_F(HfCliTest, LsErrorsExitLikeResolve) {
  CliRun run = run_e2s({"ls", "hf://acme/private"}, env());
  EXPECT_EQ(run.status, 3) << run.err;
  expect_one_error_line(run);
  run = run_e2s({"ls", "hf://acme/nothere"}, env());
  EXPECT_EQ(run.status, 3) << run.err;
  expect_one_error_line(run);
  run = run_e2s({"ls", "hf://single"}, env());
  EXPECT_EQ(run.status, 2) << run.err;
  expect_one_error_line(run);
}

TEST_F(HfCliTest, FetchDownloadsTheWholeRepoThenOfflineNeedsNoRequest) {
  CliRun run = run_e2s({"fetch", "hf://acme/weather"}, env());
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_TRUE(contains(run.out, "8 files")) << run.out;
  EXPECT_TRUE(contains(run.out, "downloaded 8 files")) << run.out;
  EXPECT_EQ(requests("cdn").size(), 2u) << "the LFS files (weights.bin, pangu_6.onnx), once each";

  // Offline, by either variable: every file resolves and no request is made.
  hub_.reset();
  for (const char* variable : {"EARTH2STUDIO_OFFLINE", "HF_HUB_OFFLINE"}) {
    auto offline = env();
    offline[variable] = "1";
    run = run_e2s({"resolve", "hf://acme/weather", "weights.bin", "pangu/data/c/d.txt"}, offline);
    ASSERT_EQ(run.status, 0) << variable << ": " << run.err;
    EXPECT_EQ(TempDir::read_file(lines(run.out).at(1)), "ddd");
    // A file that was not fetched: exit 7, naming it and the command to fetch it.
    run = run_e2s({"resolve", "hf://acme/weather@v1.0", "config.json"}, offline);
    EXPECT_EQ(run.status, 7) << run.err;
    expect_one_error_line(run);
    EXPECT_TRUE(contains(run.err, "hf://acme/weather@v1.0/config.json")) << run.err;
    EXPECT_TRUE(contains(run.err, "e2s fetch hf://acme/weather@v1.0 config.json")) << run.err;
  }
  EXPECT_EQ(hub_.stats().at("requests").size(), 0u);
  run = run_e2s({"--offline", "ls", "hf://acme/weather"}, env());
  EXPECT_EQ(run.status, 7) << run.err;
  EXPECT_EQ(hub_.stats().at("requests").size(), 0u);
}

TEST_F(HfCliTest, FetchWithIncludeAndExcludeGlobs) {
  CliRun run = run_e2s({"fetch", "hf://acme/weather", "--include", "pangu/*", "--exclude", "*.onnx"}, env());
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_TRUE(contains(run.out, "4 files")) << run.out;  // readme.md and data/a, b, c/d
  auto offline = env();
  offline["HF_HUB_OFFLINE"] = "1";
  run = run_e2s({"resolve", "hf://acme/weather", "pangu/readme.md", "pangu/data/c/d.txt"}, offline);
  EXPECT_EQ(run.status, 0) << run.err;
  run = run_e2s({"resolve", "hf://acme/weather", "pangu/pangu_24.onnx"}, offline);
  EXPECT_EQ(run.status, 7) << run.err;
  run = run_e2s({"fetch", "hf://acme/weather", "--include", "*.nothing"}, env());
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_TRUE(contains(run.out, "no file")) << run.out;
}

TEST_F(HfCliTest, RefreshChecksABranchButNeverAPinnedCommit) {
  ASSERT_EQ(run_e2s({"resolve", "hf://acme/weather", "weights.bin"}, env()).status, 0);
  hub_.reset();
  CliRun run = run_e2s({"--refresh", "resolve", "hf://acme/weather", "weights.bin"}, env());
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(requests("hub").size(), 1u) << "one HEAD";
  EXPECT_EQ(requests("hub").at(0).at("method"), "HEAD");
  EXPECT_EQ(requests("cdn").size(), 0u) << "unchanged: nothing downloaded";

  // The branch moves on: the next refresh downloads the new bytes.
  repos_.write_file("models/acme/weather/main/weights.bin", std::string(300000, 'x'));
  hub_.reset();
  run = run_e2s({"--refresh", "resolve", "hf://acme/weather", "weights.bin"}, env());
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(TempDir::read_file(lines(run.out).at(0)), std::string(300000, 'x'));
  EXPECT_EQ(requests("cdn").size(), 1u);

  const std::string pinned = "hf://acme/weather@" + commit("main");
  ASSERT_EQ(run_e2s({"resolve", pinned, "config.json"}, env()).status, 0);
  hub_.reset();
  run = run_e2s({"--refresh", "resolve", pinned, "config.json"}, env());
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(hub_.stats().at("requests").size(), 0u) << "a commit never changes";
}

}  // namespace
