// hf:// packages against the fake Hub and its CDN (tests/servers/hf_server.py):
// root forms, small and LFS files, tokens, Hub errors, redirects, integrity,
// commit pinning and listing, all through the public Package API.
#include <curl/curl.h>
#include <openssl/evp.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "e2s/error.hpp"
#include "e2s/package.hpp"
#include "support/fixtures.hpp"
#include "support/env_guard.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"
#include "util/hash.hpp"

namespace {

namespace fs = std::filesystem;
using e2s::test::contains;
using e2s::test::error_of;
using e2s::test::get_json;
using e2s::test::hex;
using e2s::test::lower;
using e2s::test::make_bytes;
using e2s::test::EnvGuard;
using e2s::test::ScopedEnv;
using e2s::test::TempDir;
using e2s::test::TestServer;
using nlohmann::json;

// Known to the fake (--token): access to private repos, but not approved for
// the gated one.
constexpr const char* kToken = "hf_validtoken";
// The one token the gated repo lets in (its repo.json "tokens").
constexpr const char* kApprovedToken = "hf_approved";

// The git blob id the Hub sends as ETag for a non-LFS file.
std::string git_blob_sha1(const std::string& content) {
  const std::string blob = "blob " + std::to_string(content.size()) + std::string(1, '\0') + content;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned size = 0;
  EVP_Digest(blob.data(), blob.size(), digest, &size, EVP_sha1(), nullptr);
  return hex(digest, size);
}

class HfTest : public ::testing::Test, protected e2s::test::CacheFolder {
 protected:
  HfTest()
      : weights_(make_bytes(300000, 1)),
        pangu6_(make_bytes(4096, 2)),
        private_weights_(make_bytes(20000, 3)),
        hub_("hf_server.py",
             {"--root", repos_.path().string(), "--page-size", "3", "--token", kToken}) {
    env_.set("HF_ENDPOINT", hub_.url());
    env_.unset("HF_TOKEN");
    env_.unset("HUGGING_FACE_HUB_TOKEN");
    env_.unset("HF_TOKEN_PATH");
    env_.set("HF_HOME", home_.path().string());
    env_.unset("HF_HUB_DISABLE_IMPLICIT_TOKEN");
    env_.unset("EARTH2STUDIO_OFFLINE");
    env_.unset("http_proxy");
    env_.unset("ALL_PROXY");
    env_.unset("all_proxy");
    // models/acme/weather: branches, a tag, a PR, small and LFS files, sub-folders.
    repos_.write_file("models/acme/weather/repo.json",
                      R"({"revisions": {"main": "main", "v1.0": "v1", "refs/pr/1": "pr1"}})");
    repos_.write_file("models/acme/weather/main/config.json", R"({"revision": "main"})");
    repos_.write_file("models/acme/weather/main/weights.bin", weights_);
    repos_.write_file("models/acme/weather/main/pangu/pangu_6.onnx", pangu6_);
    repos_.write_file("models/acme/weather/main/pangu/pangu_24.onnx", "onnx-24");
    repos_.write_file("models/acme/weather/main/pangu/readme.md", "# pangu\n");
    repos_.write_file("models/acme/weather/main/pangu/data/a.txt", "a");
    repos_.write_file("models/acme/weather/main/pangu/data/b.txt", "bb");
    repos_.write_file("models/acme/weather/main/pangu/data/c/d.txt", "ddd");
    repos_.write_file("models/acme/weather/main/other/x.txt", "x");
    repos_.write_file("models/acme/weather/v1/config.json", R"({"revision": "v1.0"})");
    repos_.write_file("models/acme/weather/v1/pangu/readme.md", "# pangu v1.0\n");
    repos_.write_file("models/acme/weather/pr1/config.json", R"({"revision": "refs/pr/1"})");
    repos_.write_file("models/acme/weather/pr1/pangu/readme.md", "# pangu refs/pr/1\n");
    // A dataset and a space.
    repos_.write_file("datasets/acme/era5/main/stats.json", R"({"mean": 1})");
    repos_.write_file("spaces/acme/demo/main/app.py", "print('demo')\n");
    // Private: needs a known token; enough files for several tree pages.
    repos_.write_file("models/acme/private/repo.json", R"({"private": true})");
    repos_.write_file("models/acme/private/main/secret.txt", "secret\n");
    repos_.write_file("models/acme/private/main/weights.bin", private_weights_);
    for (int i = 1; i <= 4; ++i) {
      repos_.write_file("models/acme/private/main/more/" + std::to_string(i) + ".txt", "more");
    }
    // Gated: only kApprovedToken has accepted the licence.
    repos_.write_file("models/acme/gated/repo.json",
                      R"({"gated": "manual", "tokens": ["hf_approved"]})");
    repos_.write_file("models/acme/gated/main/model.bin", "gated\n");
    // Renamed to acme/weather: every request answers a relative 307.
    repos_.write_file("models/acme/old-name/repo.json", R"({"moved_to": "acme/weather"})");
    repos_.write_file("models/acme/disabled/repo.json", R"({"disabled": true})");
    repos_.write_file("models/acme/disabled/main/x.txt", "x");
    // Small files first answer a relative 307 to /api/resolve-cache/...
    repos_.write_file("models/acme/cached/repo.json", R"({"resolve_cache": true})");
    repos_.write_file("models/acme/cached/main/f.txt", "via resolve-cache\n");
  }

  // The commit the fake gives revision `revision` of repo `repo` ("models/acme/weather").
  std::string commit(const std::string& repo, const std::string& revision) const {
    return get_json(hub_.url("/_info")).at("repos").at(repo).at("revisions").at(revision);
  }

  // Recorded requests to one host ("hub" or "cdn").
  std::vector<json> requests(const std::string& host) const {
    return e2s::test::recorded_requests(hub_, host);
  }

  // The Authorization header of the first Hub request a fresh resolve makes
  // ("" when none was sent).
  std::string authorization_sent(const std::string& sub) {
    hub_.reset();
    e2s::Package package("hf://acme/weather", options(sub));
    package.resolve("config.json");
    const auto hub = requests("hub");
    if (hub.empty()) {
      ADD_FAILURE() << "no request reached the Hub";
      return "";
    }
    return hub.front().at("headers").value("authorization", "");
  }

  void expect_config(const std::string& root, const std::string& revision,
                     const std::string& sub) {
    SCOPED_TRACE(root);
    e2s::Package package(root, options(sub));
    const fs::path path = package.resolve("config.json");
    EXPECT_EQ(TempDir::read_file(path), R"({"revision": ")" + revision + R"("})");
  }

  TempDir repos_;
  TempDir home_;  // HF_HOME: empty, so no token of the machine's user leaks in
  std::string weights_;
  std::string pangu6_;
  std::string private_weights_;
  TestServer hub_;
  EnvGuard env_;
};

// ---- root forms -----------------------------------------------------------

TEST_F(HfTest, DefaultRevisionIsMain) { expect_config("hf://acme/weather", "main", "a"); }

TEST_F(HfTest, ExplicitBranch) { expect_config("hf://acme/weather@main", "main", "a"); }

TEST_F(HfTest, Tag) { expect_config("hf://acme/weather@v1.0", "v1.0", "a"); }

TEST_F(HfTest, PinnedCommits) {
  expect_config("hf://acme/weather@" + commit("models/acme/weather", "main"), "main", "a");
  expect_config("hf://acme/weather@" + commit("models/acme/weather", "v1.0"), "v1.0", "b");
}

TEST_F(HfTest, PullRequestRevisionLiteralAndEncoded) {
  expect_config("hf://acme/weather@refs/pr/1", "refs/pr/1", "a");
  expect_config("hf://acme/weather@refs%2Fpr%2F1", "refs/pr/1", "b");
  // On the wire the revision is one percent-encoded segment, as huggingface_hub sends it.
  for (const auto& request : requests("hub")) {
    EXPECT_TRUE(contains(request.at("path"), "/resolve/refs%2Fpr%2F1/config.json"))
        << request.dump();
  }
}

TEST_F(HfTest, SubFolderRoot) {
  e2s::Package package("hf://acme/weather/pangu", options());
  EXPECT_EQ(TempDir::read_file(package.resolve("data/c/d.txt")), "ddd");
  EXPECT_EQ(TempDir::read_file(package.resolve("pangu_6.onnx")), pangu6_);
  EXPECT_EQ(hub_.count("HEAD", "/acme/weather/resolve/main/pangu/data/c/d.txt"), 1u);
}

TEST_F(HfTest, SubFolderRootWithRevision) {
  const std::pair<const char*, const char*> cases[] = {
      {"hf://acme/weather@v1.0/pangu", "# pangu v1.0\n"},
      {"hf://acme/weather@refs/pr/1/pangu", "# pangu refs/pr/1\n"},
      {"hf://acme/weather@refs%2Fpr%2F1/pangu", "# pangu refs/pr/1\n"},
  };
  int n = 0;
  for (const auto& [root, content] : cases) {
    SCOPED_TRACE(root);
    e2s::Package package(root, options("sub" + std::to_string(n++)));
    EXPECT_EQ(TempDir::read_file(package.resolve("readme.md")), content);
  }
}

TEST_F(HfTest, DatasetRoot) {
  e2s::Package package("hf://datasets/acme/era5", options());
  EXPECT_EQ(TempDir::read_file(package.resolve("stats.json")), R"({"mean": 1})");
  EXPECT_EQ(hub_.count("HEAD", "/datasets/acme/era5/resolve/main/stats.json"), 1u);
}

TEST_F(HfTest, SpaceRoot) {
  e2s::Package package("hf://spaces/acme/demo", options());
  EXPECT_EQ(TempDir::read_file(package.resolve("app.py")), "print('demo')\n");
  EXPECT_EQ(hub_.count("HEAD", "/spaces/acme/demo/resolve/main/app.py"), 1u);
}

TEST_F(HfTest, MalformedRootsAreInvalidAndListTheAcceptedForms) {
  for (const char* root : {"hf://single", "hf://datasets/single", "hf://", "hf://acme/weather@",
                           "hf:///weather", "hf://acme//weather"}) {
    SCOPED_TRACE(root);
    const e2s::Error e = error_of([&] { e2s::Package(root, options()).resolve("config.json"); });
    EXPECT_EQ(e.code(), e2s::Errc::invalid_uri) << e.what();
    EXPECT_TRUE(contains(e.what(), "datasets/") && contains(e.what(), "spaces/")) << e.what();
  }
  EXPECT_EQ(hub_.stats().at("requests").size(), 0u);
}

// ---- small files, LFS files, integrity ------------------------------------

TEST_F(HfTest, SmallFileComesStraightFromTheHub) {
  e2s::Package package("hf://acme/weather", options());
  const std::string content = R"({"revision": "main"})";
  EXPECT_EQ(TempDir::read_file(package.resolve("config.json")), content);
  EXPECT_TRUE(requests("cdn").empty());
  EXPECT_EQ(hub_.count("GET", "/acme/weather/resolve/main/config.json"), 1u);
  const json m = meta("config.json");
  EXPECT_EQ(m.value("etag", ""), git_blob_sha1(content)) << m.dump();
  EXPECT_EQ(m.value("sha256", ""), e2s::detail::sha256_hex(content)) << m.dump();
  EXPECT_EQ(m.value("size", 0u), content.size()) << m.dump();
}

TEST_F(HfTest, LfsFileComesFromTheCdnAndCarriesItsSha256) {
  e2s::Package package("hf://acme/weather", options());
  const fs::path path = package.resolve("weights.bin");
  EXPECT_EQ(path, e2s::test::data_file(cache_.path() / "store", "weights.bin"));
  EXPECT_EQ(TempDir::read_file(path), weights_);
  const auto cdn = requests("cdn");
  ASSERT_FALSE(cdn.empty());
  EXPECT_TRUE(contains(cdn.front().at("path"), "/lfs/" + e2s::detail::sha256_hex(weights_)));
  // The Hub's 302 is not followed with a GET of the Hub URL for the bytes.
  EXPECT_EQ(hub_.count("GET", "/acme/weather/resolve/main/weights.bin"), 0u);
  const json m = meta("weights.bin");
  EXPECT_EQ(m.value("etag", ""), e2s::detail::sha256_hex(weights_)) << m.dump();
  EXPECT_EQ(m.value("sha256", ""), e2s::detail::sha256_hex(weights_)) << m.dump();
}

TEST_F(HfTest, LyingCdnIsAnIntegrityErrorAndNothingIsCommitted) {
  // Same size and headers, one byte flipped: only the sha256 can tell.
  hub_.fault({{"host", "cdn"}, {"path", "*"}, {"kind", "corrupt"}, {"times", -1},
              {"methods", {"GET"}}});
  e2s::Package package("hf://acme/weather", options());
  const e2s::Error e = error_of([&] { package.resolve("weights.bin"); });
  EXPECT_EQ(e.code(), e2s::Errc::integrity) << e.what();
  EXPECT_FALSE(fs::exists(e2s::test::data_file(cache_.path() / "store", "weights.bin")));
  EXPECT_TRUE(cached_files().empty());
  EXPECT_TRUE(meta("weights.bin").is_null());
  EXPECT_FALSE(requests("cdn").empty());
}

TEST_F(HfTest, SmallFileOfTheWrongSizeIsAnIntegrityError) {
  // The GET body is 5 bytes longer than the size the HEAD announced.
  hub_.fault({{"path", "/acme/weather/resolve/main/config.json"}, {"kind", "long"},
              {"extra", 5}, {"times", -1}, {"methods", {"GET"}}});
  e2s::Package package("hf://acme/weather", options());
  const e2s::Error e = error_of([&] { package.resolve("config.json"); });
  EXPECT_EQ(e.code(), e2s::Errc::integrity) << e.what();
  EXPECT_FALSE(fs::exists(e2s::test::data_file(cache_.path() / "store", "config.json")));
  EXPECT_TRUE(cached_files().empty());
}

TEST_F(HfTest, HubServiceUnavailableThenSuccess) {
  hub_.fault({{"path", "/acme/weather/resolve/main/config.json"}, {"kind", "status"},
              {"status", 503}, {"times", 2}});
  e2s::Package package("hf://acme/weather", options());
  EXPECT_EQ(TempDir::read_file(package.resolve("config.json")), R"({"revision": "main"})");
  EXPECT_GE(hub_.count("HEAD", "/acme/weather/resolve/main/config.json") +
                hub_.count("GET", "/acme/weather/resolve/main/config.json"),
            3u);
}

TEST_F(HfTest, CdnServiceUnavailableThenSuccess) {
  hub_.fault({{"host", "cdn"}, {"path", "*"}, {"kind", "status"}, {"status", 503},
              {"methods", {"GET"}}});
  e2s::Package package("hf://acme/weather", options());
  EXPECT_EQ(TempDir::read_file(package.resolve("weights.bin")), weights_);
  EXPECT_EQ(requests("cdn").size(), 2u);
}

TEST_F(HfTest, CdnCutMidBodyResumesAndStillMatchesTheSha256) {
  hub_.fault({{"host", "cdn"}, {"path", "*"}, {"kind", "cut"}, {"after", 100000},
              {"methods", {"GET"}}});
  e2s::Package package("hf://acme/weather", options());
  EXPECT_EQ(TempDir::read_file(package.resolve("weights.bin")), weights_);
  EXPECT_GE(requests("cdn").size(), 2u);
}

// ---- tokens ---------------------------------------------------------------

TEST_F(HfTest, NoTokenSendsNoAuthorization) {
  e2s::Package package("hf://acme/weather", options());
  package.resolve("weights.bin");
  const json stats = hub_.stats();
  ASSERT_FALSE(stats.at("requests").empty());
  for (const auto& request : stats.at("requests")) {
    EXPECT_FALSE(request.at("headers").contains("authorization")) << request.dump();
  }
}

TEST_F(HfTest, TokenGoesToTheHubAndNeverToTheCdn) {
  ScopedEnv token("HF_TOKEN", kToken);
  e2s::Package package("hf://acme/private", options());
  EXPECT_EQ(TempDir::read_file(package.resolve("weights.bin")), private_weights_);
  EXPECT_EQ(TempDir::read_file(package.resolve("secret.txt")), "secret\n");
  const auto hub = requests("hub");
  ASSERT_FALSE(hub.empty());
  for (const auto& request : hub) {
    EXPECT_EQ(request.at("headers").value("authorization", ""), std::string("Bearer ") + kToken)
        << request.dump();
  }
  const auto cdn = requests("cdn");
  ASSERT_FALSE(cdn.empty());
  for (const auto& request : cdn) {
    EXPECT_FALSE(request.at("headers").contains("authorization")) << request.dump();
    // The signed query of the Location is kept as is.
    EXPECT_TRUE(contains(request.at("path"), "X-Amz-Signature=")) << request.dump();
  }
}

TEST_F(HfTest, TokenResolutionOrder) {
  const fs::path path_file = home_.write_file("elsewhere/token", "hf_pathfile");
  home_.write_file("token", "hf_homefile");
  {
    ScopedEnv a("HF_TOKEN", "hf_env");
    ScopedEnv b("HUGGING_FACE_HUB_TOKEN", "hf_legacy");
    ScopedEnv c("HF_TOKEN_PATH", path_file.string());
    EXPECT_EQ(authorization_sent("1"), "Bearer hf_env");
  }
  {
    ScopedEnv b("HUGGING_FACE_HUB_TOKEN", "hf_legacy");
    ScopedEnv c("HF_TOKEN_PATH", path_file.string());
    EXPECT_EQ(authorization_sent("2"), "Bearer hf_legacy");
  }
  {
    ScopedEnv c("HF_TOKEN_PATH", path_file.string());
    EXPECT_EQ(authorization_sent("3"), "Bearer hf_pathfile");
  }
  EXPECT_EQ(authorization_sent("4"), "Bearer hf_homefile");
  fs::remove(home_.path() / "token");
  EXPECT_EQ(authorization_sent("5"), "");
}

TEST_F(HfTest, TokenWhitespaceAndLineBreaksAreStripped) {
  {
    ScopedEnv a("HF_TOKEN", "hf_env\n");
    EXPECT_EQ(authorization_sent("1"), "Bearer hf_env");
  }
  home_.write_file("token", "  hf_homefile \r\n");
  EXPECT_EQ(authorization_sent("2"), "Bearer hf_homefile");
}

TEST_F(HfTest, EmptyHfTokenCountsAsUnset) {
  ScopedEnv a("HF_TOKEN", "");
  ScopedEnv b("HUGGING_FACE_HUB_TOKEN", "hf_legacy");
  EXPECT_EQ(authorization_sent("1"), "Bearer hf_legacy");
}

TEST_F(HfTest, TokenFileOpensThePrivateRepo) {
  home_.write_file("token", std::string(kToken) + "\n");
  e2s::Package package("hf://acme/private", options());
  EXPECT_EQ(TempDir::read_file(package.resolve("secret.txt")), "secret\n");
}

// ---- Hub errors -----------------------------------------------------------

TEST_F(HfTest, PrivateRepoWithoutTokenIsNotFoundAndMentionsHfToken) {
  e2s::Package package("hf://acme/private", options());
  const e2s::Error e = error_of([&] { package.resolve("secret.txt"); });
  EXPECT_EQ(e.code(), e2s::Errc::not_found) << e.what();
  EXPECT_EQ(e.http_status(), 401);
  EXPECT_TRUE(contains(e.what(), "HF_TOKEN")) << e.what();
  EXPECT_TRUE(cached_files().empty());
}

TEST_F(HfTest, GatedRepoWithoutTokenIsUnauthorizedWithTheHint) {
  e2s::Package package("hf://acme/gated", options());
  const e2s::Error e = error_of([&] { package.resolve("model.bin"); });
  EXPECT_EQ(e.code(), e2s::Errc::unauthorized) << e.what();
  EXPECT_EQ(e.http_status(), 401);
  const std::string message = e.what();
  EXPECT_TRUE(contains(message, "HF_TOKEN")) << message;
  EXPECT_TRUE(contains(lower(message), "licen")) << message;
  EXPECT_TRUE(contains(message, hub_.url("/acme/gated"))) << "the model page: " << message;
}

TEST_F(HfTest, GatedRepoWithAnUnapprovedTokenIsUnauthorized) {
  ScopedEnv token("HF_TOKEN", kToken);  // known to the Hub, licence not accepted: 403
  e2s::Package package("hf://acme/gated", options());
  const e2s::Error e = error_of([&] { package.resolve("model.bin"); });
  EXPECT_EQ(e.code(), e2s::Errc::unauthorized) << e.what();
  EXPECT_EQ(e.http_status(), 403);
  EXPECT_TRUE(contains(e.what(), "HF_TOKEN")) << e.what();
}

TEST_F(HfTest, GatedRepoWithAnApprovedTokenWorks) {
  ScopedEnv token("HF_TOKEN", kApprovedToken);
  e2s::Package package("hf://acme/gated", options());
  EXPECT_EQ(TempDir::read_file(package.resolve("model.bin")), "gated\n");
}

TEST_F(HfTest, DisabledRepoIsUnauthorized) {
  e2s::Package package("hf://acme/disabled", options());
  const e2s::Error e = error_of([&] { package.resolve("x.txt"); });
  EXPECT_EQ(e.code(), e2s::Errc::unauthorized) << e.what();
  EXPECT_EQ(e.http_status(), 403);
  EXPECT_TRUE(contains(lower(e.what()), "disabled")) << e.what();
}

TEST_F(HfTest, MissingRepoIsNotFoundAndSaysRepo) {
  e2s::Package package("hf://acme/nothere", options());
  const e2s::Error e = error_of([&] { package.resolve("config.json"); });
  EXPECT_EQ(e.code(), e2s::Errc::not_found) << e.what();
  EXPECT_TRUE(contains(lower(e.what()), "repo")) << e.what();
}

TEST_F(HfTest, MissingRevisionIsNotFoundAndSaysRevision) {
  e2s::Package package("hf://acme/weather@no-such-branch", options());
  const e2s::Error e = error_of([&] { package.resolve("config.json"); });
  EXPECT_EQ(e.code(), e2s::Errc::not_found) << e.what();
  EXPECT_EQ(e.http_status(), 404);
  EXPECT_TRUE(contains(lower(e.what()), "revision")) << e.what();
  EXPECT_TRUE(contains(e.what(), "no-such-branch")) << e.what();
}

TEST_F(HfTest, MissingFileIsNotFoundAndNamesTheFile) {
  e2s::Package package("hf://acme/weather/pangu", options());
  const e2s::Error e = error_of([&] { package.resolve("missing.bin"); });
  EXPECT_EQ(e.code(), e2s::Errc::not_found) << e.what();
  EXPECT_EQ(e.http_status(), 404);
  EXPECT_TRUE(contains(e.what(), "missing.bin")) << e.what();
  EXPECT_TRUE(cached_files().empty());
}

// ---- redirects inside the Hub ---------------------------------------------

TEST_F(HfTest, RenamedRepoFollowsTheRelativeRedirect) {
  e2s::Package package("hf://acme/old-name", options());
  EXPECT_EQ(TempDir::read_file(package.resolve("config.json")), R"({"revision": "main"})");
  EXPECT_EQ(TempDir::read_file(package.resolve("weights.bin")), weights_);
  bool redirected = false;
  for (const auto& request : requests("hub")) {
    if (contains(request.at("path"), "/acme/old-name/")) {
      EXPECT_EQ(request.at("status"), 307) << request.dump();
      redirected = true;
    }
  }
  EXPECT_TRUE(redirected);
  EXPECT_GE(hub_.count("HEAD", "/acme/weather/resolve/main/config.json"), 1u);
}

TEST_F(HfTest, ResolveCacheRedirectIsFollowedByPath) {
  e2s::Package package("hf://acme/cached", options());
  EXPECT_EQ(TempDir::read_file(package.resolve("f.txt")), "via resolve-cache\n");
  const json m = meta("f.txt");
  EXPECT_EQ(m.value("etag", ""), git_blob_sha1("via resolve-cache\n")) << m.dump();
  EXPECT_EQ(m.value("version", ""), commit("models/acme/cached", "main")) << m.dump();
}

// ---- commits and the cache ------------------------------------------------

TEST_F(HfTest, CommitPinnedRootIsACacheHitWithZeroRequests) {
  const std::string root = "hf://acme/weather@" + commit("models/acme/weather", "main");
  fs::path config, weights;
  {
    e2s::Package package(root, options());
    config = package.resolve("config.json");
    weights = package.resolve("weights.bin");
  }
  hub_.reset();
  e2s::Package again(root, options());
  EXPECT_EQ(again.resolve("config.json"), config);
  EXPECT_EQ(again.resolve("weights.bin"), weights);
  EXPECT_EQ(TempDir::read_file(weights), weights_);
  EXPECT_EQ(hub_.stats().at("requests").size(), 0u) << hub_.stats().dump();
}

TEST_F(HfTest, BranchRootRecordsTheCommitItResolvedTo) {
  e2s::Package package("hf://acme/weather", options());
  package.resolve("config.json");
  package.resolve("weights.bin");
  const std::string main_commit = commit("models/acme/weather", "main");
  EXPECT_EQ(meta("config.json").value("version", ""), main_commit) << meta("config.json").dump();
  EXPECT_EQ(meta("weights.bin").value("version", ""), main_commit) << meta("weights.bin").dump();

  e2s::Package tag("hf://acme/weather@v1.0", options("tag"));
  tag.resolve("config.json");
  EXPECT_EQ(meta("config.json", "tag").value("version", ""), commit("models/acme/weather", "v1.0"));
  e2s::Package pr("hf://acme/weather@refs%2Fpr%2F1", options("pr"));
  pr.resolve("config.json");
  EXPECT_EQ(meta("config.json", "pr").value("version", ""),
            commit("models/acme/weather", "refs/pr/1"));
}

// ---- listing --------------------------------------------------------------

std::vector<std::pair<std::string, std::uint64_t>> entries(const std::vector<e2s::FileEntry>& files) {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  for (const auto& file : files) out.emplace_back(file.path, file.size.value_or(~0ull));
  return out;
}

using Entries = std::vector<std::pair<std::string, std::uint64_t>>;

TEST_F(HfTest, ListOfASubFolderFollowsEveryPageAndGivesRelativePaths) {
  e2s::Package package("hf://acme/weather/pangu", options());
  const Entries expected = {{"data/a.txt", 1},    {"data/b.txt", 2},     {"data/c/d.txt", 3},
                            {"pangu_24.onnx", 7}, {"pangu_6.onnx", 4096}, {"readme.md", 8}};
  EXPECT_EQ(entries(package.list()), expected);
  // 8 entries (2 folders) at 3 a page: the Link header was followed.
  std::size_t pages = 0, with_cursor = 0;
  for (const auto& request : requests("hub")) {
    const std::string path = request.at("path");
    if (!contains(path, "/api/models/acme/weather/tree/")) continue;
    ++pages;
    if (contains(path, "cursor=")) ++with_cursor;
    EXPECT_EQ(path.rfind("/api/models/acme/weather/tree/main/pangu", 0), 0u) << path;
  }
  EXPECT_GE(pages, 3u);
  EXPECT_GE(with_cursor, 2u);
  EXPECT_TRUE(requests("cdn").empty());
}

TEST_F(HfTest, ListOfTheWholeRepo) {
  e2s::Package package("hf://acme/weather", options());
  const Entries expected = {{"config.json", 20},        {"other/x.txt", 1},
                            {"pangu/data/a.txt", 1},    {"pangu/data/b.txt", 2},
                            {"pangu/data/c/d.txt", 3},  {"pangu/pangu_24.onnx", 7},
                            {"pangu/pangu_6.onnx", 4096}, {"pangu/readme.md", 8},
                            {"weights.bin", 300000}};
  EXPECT_EQ(entries(package.list()), expected);
}

TEST_F(HfTest, ListOfANestedSubFolderAtARevision) {
  EXPECT_EQ(entries(e2s::Package("hf://acme/weather/pangu/data", options()).list()),
            (Entries{{"a.txt", 1}, {"b.txt", 2}, {"c/d.txt", 3}}));
  EXPECT_EQ(entries(e2s::Package("hf://acme/weather@refs%2Fpr%2F1", options()).list()),
            (Entries{{"config.json", 25}, {"pangu/readme.md", 18}}));
  EXPECT_EQ(entries(e2s::Package("hf://datasets/acme/era5", options()).list()),
            (Entries{{"stats.json", 11}}));
}

TEST_F(HfTest, ListOfARenamedRepo) {
  EXPECT_EQ(entries(e2s::Package("hf://acme/old-name/pangu/data", options()).list()),
            (Entries{{"a.txt", 1}, {"b.txt", 2}, {"c/d.txt", 3}}));
}

TEST_F(HfTest, ListOfAPrivateRepoSendsTheTokenWithEveryPage) {
  {
    e2s::Package package("hf://acme/private", options());
    const e2s::Error e = error_of([&] { package.list(); });
    EXPECT_EQ(e.code(), e2s::Errc::not_found) << e.what();
    EXPECT_TRUE(contains(e.what(), "HF_TOKEN")) << e.what();
  }
  hub_.reset();
  ScopedEnv token("HF_TOKEN", kToken);
  e2s::Package package("hf://acme/private", options());
  EXPECT_EQ(entries(package.list()),
            (Entries{{"more/1.txt", 4}, {"more/2.txt", 4}, {"more/3.txt", 4}, {"more/4.txt", 4},
                     {"secret.txt", 7}, {"weights.bin", 20000}}));
  const auto hub = requests("hub");
  EXPECT_GE(hub.size(), 3u);
  for (const auto& request : hub) {
    EXPECT_EQ(request.at("headers").value("authorization", ""), std::string("Bearer ") + kToken)
        << request.dump();
  }
}

TEST_F(HfTest, ListOfAMissingSubFolderIsNotFound) {
  e2s::Package package("hf://acme/weather/nowhere", options());
  const e2s::Error e = error_of([&] { package.list(); });
  EXPECT_EQ(e.code(), e2s::Errc::not_found) << e.what();
}

}  // namespace
