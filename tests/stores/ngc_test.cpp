// ngc://models/... packages against the fake NGC (tests/servers/ngc_server.py):
// root forms, the public and private flows, key -> token exchange and its
// cache, errors, signed-URL resumes and renewals, listing, all through the
// public Package API.
#include <curl/curl.h>
#include <openssl/evp.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <thread>
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
using e2s::test::lower;
using e2s::test::make_bytes;
using e2s::test::EnvGuard;
using e2s::test::recorded_requests;
using e2s::test::ScopedEnv;
using e2s::test::TempDir;
using e2s::test::TestServer;
using nlohmann::json;

// A legacy API key the fake's auth host knows (--key): exchanged for a token.
constexpr const char* kKey = "legacykey0123456789";
// Another valid key, without access to the team model acme/research/tsecret.
constexpr const char* kOtherKey = "otherkey9876543210";
// A personal key (--key too): used as the bearer token directly.
constexpr const char* kPersonalKey = "nvapi-personal0123456789";

constexpr const char* kSeed = "ngc://models/nvidia/modulus/modulus_fcn@v0.2";
constexpr const char* kWeather = "ngc://models/acme/weather@1.0";
constexpr const char* kSecret = "ngc://models/acme/secret@2.0";
constexpr const char* kConfig = R"({"version": "1.0"})";
constexpr const char* kFcnMetadata = R"({"model": "fcn"})";

std::string base64(const std::string& text) {
  std::string out(4 * ((text.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

std::size_t append_to_string(char* data, std::size_t size, std::size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

// A GET or POST of the fake's control API that TestServer does not wrap
// (/_info, /_expire_tokens, /_expire_urls).
json call_json(const std::string& url, bool post = false) {
  std::string reply;
  CURL* h = curl_easy_init();
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &append_to_string);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &reply);
  if (post) curl_easy_setopt(h, CURLOPT_POSTFIELDS, "{}");
  const CURLcode code = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(h);
  if (code != CURLE_OK || status != 200) {
    throw std::runtime_error(url + ": " + (code != CURLE_OK ? curl_easy_strerror(code)
                                                            : "HTTP " + std::to_string(status)));
  }
  return json::parse(reply);
}

std::string percent_decode(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size()) {
      out += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

// The decoded values of query parameter `name` in a request target.
std::vector<std::string> query_values(const std::string& target, const std::string& name) {
  std::vector<std::string> out;
  const auto q = target.find('?');
  if (q == std::string::npos) return out;
  std::string query = target.substr(q + 1);
  std::size_t start = 0;
  while (start <= query.size()) {
    const auto end = std::min(query.find('&', start), query.size());
    const std::string item = query.substr(start, end - start);
    const auto eq = item.find('=');
    if (percent_decode(item.substr(0, eq)) == name) {
      out.push_back(eq == std::string::npos ? "" : percent_decode(item.substr(eq + 1)));
    }
    start = end + 1;
  }
  return out;
}

std::string without_query(const std::string& target) { return target.substr(0, target.find('?')); }

using Entries = std::vector<std::pair<std::string, std::uint64_t>>;

Entries entries(const std::vector<e2s::FileEntry>& files) {
  Entries out;
  for (const auto& file : files) out.emplace_back(file.path, file.size.value_or(~0ull));
  return out;
}

// Writes the fake's model folder (layout in ngc_server.py's docstring).
class Models {
 public:
  explicit Models(const TempDir& dir) : dir_(dir) {}
  // `model` is "org/team/name" with "_" for an absent org or team.
  void file(const std::string& model, const std::string& version, const std::string& path,
            const std::string& bytes) const {
    dir_.write_file(model + "/" + version + "/" + path, bytes);
  }
  void config(const std::string& model, const std::string& model_json) const {
    dir_.write_file(model + "/model.json", model_json);
  }

 private:
  const TempDir& dir_;
};

// The environment of one test: the NGC variables point at `server` (or are
// unset), nothing of the runner's own NGC or proxy settings leaks in.
class NgcEnv {
 public:
  explicit NgcEnv(const TestServer& server) {
    env_.set("NGC_CLI_API_URL", server.url("/"));
    env_.set("NGC_CLI_AUTH_URL",
             "http://127.0.0.1:" +
                 std::to_string(call_json(server.url("/_info")).at("auth_port").get<int>()) +
                 "/token");
    for (const char* name : {"NGC_CLI_SEARCH_SERVICE_URL", "NGC_CLI_URL", "NGC_CLI_API_KEY",
                             "NGC_API_KEY", "NGC_APP_KEY", "NGC_CLI_HOME", "EARTH2STUDIO_OFFLINE",
                             "http_proxy", "ALL_PROXY", "all_proxy"}) {
      env_.unset(name);
    }
  }

 private:
  EnvGuard env_;
};

class NgcTest : public ::testing::Test, protected e2s::test::CacheFolder {
 protected:
  NgcTest()
      : fcn_(make_bytes(300000, 1)),
        weights_(make_bytes(1 << 20, 2)),
        secret_weights_(make_bytes(200000, 3)),
        ngc_(start({"--page-size", "2"})),
        env_(ngc_) {}

  // The fake with this test's models and keys, plus `extra` arguments.
  TestServer start(std::vector<std::string> extra) {
    write_models();
    std::vector<std::string> args = {"--root",      models_dir_.path().string(),
                                     "--key",       kKey,
                                     "--key",       kOtherKey,
                                     "--key",       kPersonalKey};
    args.insert(args.end(), extra.begin(), extra.end());
    return TestServer("ngc_server.py", args);
  }

  void write_models() {
    const Models m(models_dir_);
    // The seed example: org/team/name.
    m.file("nvidia/modulus/modulus_fcn", "v0.2", "fcn.zip", fcn_);
    m.file("nvidia/modulus/modulus_fcn", "v0.2", "metadata.json", kFcnMetadata);
    // org/name, with folders and names that need encoding.
    m.file("acme/_/weather", "1.0", "config.json", kConfig);
    m.file("acme/_/weather", "1.0", "weights.bin", weights_);
    m.file("acme/_/weather", "1.0", "data/a.txt", "a");
    m.file("acme/_/weather", "1.0", "data/b.txt", "bb");
    m.file("acme/_/weather", "1.0", "data/c/d.txt", "ddd");
    m.file("acme/_/weather", "1.0", "odd name+1.txt", "odd");
    m.file("acme/_/weather", "2.0", "config.json", R"({"version": "2.0"})");
    // A model without org or team.
    m.file("_/_/bare", "1", "bare.txt", "bare\n");
    // Private, every valid key has access.
    m.config("acme/_/secret", R"({"private": true})");
    m.file("acme/_/secret", "2.0", "secret.txt", "secret\n");
    m.file("acme/_/secret", "2.0", "weights.bin", secret_weights_);
    m.file("acme/_/secret", "2.0", "more/1.txt", "one");
    m.file("acme/_/secret", "2.0", "more/2.txt", "two");
    // Private team model: only kKey and the personal key have access.
    m.config("acme/research/tsecret",
             std::string(R"({"private": true, "keys": [")") + kKey + R"(", ")" + kPersonalKey +
                 R"("]})");
    m.file("acme/research/tsecret", "1", "t.bin", "team secret\n");
    // Licence not accepted by anyone.
    m.config("acme/_/licensed", R"({"licence_required": true})");
    m.file("acme/_/licensed", "1", "l.bin", "licensed\n");
    // Files endpoints answering 200 without a usable URL.
    m.config("acme/_/nourls", R"({"urls": "missing"})");
    m.file("acme/_/nourls", "1", "f.bin", "f");
    m.config("acme/_/emptyurls", R"({"urls": "empty"})");
    m.file("acme/_/emptyurls", "1", "f.bin", "f");
  }

  // Recorded requests to one host ("api", "auth" or "storage") of the fake.
  std::vector<json> requests(const std::string& host) const { return recorded_requests(ngc_, host); }

  // API requests to a files endpoint (the signed-URL requests).
  std::vector<json> files_requests() const {
    std::vector<json> out;
    for (const auto& request : requests("api")) {
      const std::string path = request.at("path");
      if (without_query(path).ends_with("/files") && !contains(path, "/versions/")) {
        out.push_back(request);
      }
    }
    return out;
  }

  std::size_t total_requests() const { return ngc_.stats().at("requests").size(); }

  void post(const std::string& control) const { call_json(ngc_.url(control), true); }

  // Every bearer token the API received (without "Bearer ").
  std::vector<std::string> bearers_sent() const {
    std::vector<std::string> out;
    for (const auto& request : requests("api")) {
      const std::string value = request.at("headers").value("authorization", "");
      if (value.rfind("Bearer ", 0) == 0) out.push_back(value.substr(7));
    }
    return out;
  }

  // No request to the storage host carried credentials of any kind: no
  // Authorization, and neither `secrets` in any header nor in the target.
  void expect_storage_clean(const std::vector<std::string>& secrets) const {
    const auto storage = requests("storage");
    ASSERT_FALSE(storage.empty());
    for (const auto& request : storage) {
      const json& headers = request.at("headers");
      EXPECT_FALSE(headers.contains("authorization")) << request.dump();
      for (const auto& [name, value] : headers.items()) {
        EXPECT_FALSE(contains(lower(name), "ngc")) << request.dump();
        for (const auto& secret : secrets) {
          EXPECT_FALSE(contains(value.get<std::string>(), secret)) << name << ": " << request.dump();
        }
      }
      for (const auto& secret : secrets) {
        EXPECT_FALSE(contains(request.at("path").get<std::string>(), secret)) << request.dump();
      }
    }
  }

  static void expect_no_secret(const std::string& message, const std::vector<std::string>& secrets) {
    for (const auto& secret : secrets) {
      EXPECT_FALSE(contains(message, secret)) << "secret in: " << message;
    }
  }

  TempDir models_dir_;
  std::string fcn_;
  std::string weights_;
  std::string secret_weights_;
  TestServer ngc_;
  NgcEnv env_;
};

// ---- root forms and the public flow ---------------------------------------

TEST_F(NgcTest, SeedExampleResolvesFcnZip) {
  e2s::Package package(kSeed, options());
  const fs::path path = package.resolve("fcn.zip");
  EXPECT_EQ(path, e2s::test::data_file(cache_.path() / "store", "fcn.zip"));
  EXPECT_EQ(TempDir::read_file(path), fcn_);
  const auto api = requests("api");
  ASSERT_EQ(api.size(), 1u) << ngc_.stats().dump();
  EXPECT_EQ(api[0].at("method"), "GET");
  EXPECT_EQ(api[0].at("path"), "/v2/models/org/nvidia/team/modulus/modulus_fcn/v0.2/files?path=fcn.zip");
  const auto storage = requests("storage");
  ASSERT_EQ(storage.size(), 1u);
  // The size is not known beforehand: the first 1 MiB is asked for, which
  // is all of a small file.
  EXPECT_EQ(storage[0].at("status"), 206);
  EXPECT_EQ(storage[0].at("range"), "bytes=0-1048575");
  EXPECT_TRUE(contains(storage[0].at("path"), "Signature=")) << storage[0].dump();
  EXPECT_TRUE(requests("auth").empty());
}

TEST_F(NgcTest, OrgNameRoot) {
  e2s::Package package(kWeather, options());
  EXPECT_EQ(TempDir::read_file(package.resolve("config.json")), R"({"version": "1.0"})");
  EXPECT_EQ(ngc_.count("GET", "/v2/models/org/acme/weather/1.0/files"), 1u);
  e2s::Package other("ngc://models/acme/weather@2.0", options("v2"));
  EXPECT_EQ(TempDir::read_file(other.resolve("config.json")), R"({"version": "2.0"})");
}

TEST_F(NgcTest, BareNameRootAndNoOrgSpellings) {
  int n = 0;
  for (const char* root : {"ngc://models/bare@1", "ngc://models/no-org/bare@1",
                           "ngc://models/no-org/no-team/bare@1"}) {
    SCOPED_TRACE(root);
    ngc_.reset();
    e2s::Package package(root, options("b" + std::to_string(n++)));
    EXPECT_EQ(TempDir::read_file(package.resolve("bare.txt")), "bare\n");
    const auto api = requests("api");
    ASSERT_EQ(api.size(), 1u);
    EXPECT_EQ(api[0].at("path"), "/v2/models/bare/1/files?path=bare.txt");
  }
}

TEST_F(NgcTest, SubFolderAfterTheVersion) {
  e2s::Package package("ngc://models/acme/weather@1.0/data", options());
  const fs::path path = package.resolve("c/d.txt");
  EXPECT_EQ(TempDir::read_file(path), "ddd");
  EXPECT_EQ(path, e2s::test::data_file(cache_.path() / "store", "c/d.txt"));
  const auto api = requests("api");
  ASSERT_EQ(api.size(), 1u);
  // Percent-encoded with '/' kept.
  EXPECT_EQ(api[0].at("path"), "/v2/models/org/acme/weather/1.0/files?path=data/c/d.txt");
}

TEST_F(NgcTest, FilePathIsPercentEncodedInTheQuery) {
  e2s::Package package(kWeather, options());
  EXPECT_EQ(TempDir::read_file(package.resolve("odd name+1.txt")), "odd");
  const auto api = requests("api");
  ASSERT_EQ(api.size(), 1u);
  const std::string target = api[0].at("path");
  EXPECT_TRUE(contains(target, "path=odd%20name%2B1.txt")) << target;
}

TEST_F(NgcTest, SearchServiceUrlIsTheBaseWhenApiUrlIsUnset) {
  {
    // No trailing '/': joined like Python's urljoin after adding one.
    ScopedEnv api("NGC_CLI_API_URL", std::nullopt);
    ScopedEnv search("NGC_CLI_SEARCH_SERVICE_URL", ngc_.url());
    e2s::Package package(kSeed, options("a"));
    EXPECT_EQ(TempDir::read_file(package.resolve("metadata.json")), R"({"model": "fcn"})");
    EXPECT_EQ(ngc_.count("GET", "/v2/models/org/nvidia/team/modulus/modulus_fcn/v0.2/files"), 1u);
  }
  {
    // NGC_CLI_API_URL wins: the search URL points nowhere.
    ScopedEnv search("NGC_CLI_SEARCH_SERVICE_URL", "http://127.0.0.1:1/");
    e2s::Package package(kSeed, options("b"));
    EXPECT_EQ(TempDir::read_file(package.resolve("metadata.json")), R"({"model": "fcn"})");
  }
}

TEST_F(NgcTest, PublicFlowSendsNoCredentialsAnywhere) {
  e2s::Package package(kSeed, options());
  package.resolve("fcn.zip");
  package.resolve("metadata.json");
  const json stats = ngc_.stats();
  ASSERT_GE(stats.at("requests").size(), 4u);
  for (const auto& request : stats.at("requests")) {
    EXPECT_FALSE(request.at("headers").contains("authorization")) << request.dump();
  }
  EXPECT_TRUE(requests("auth").empty());
  expect_storage_clean({});
}

TEST_F(NgcTest, TransientApiErrorIsRetried) {
  ngc_.fault({{"path", "/v2/models/org/acme/weather/1.0/files"}, {"kind", "status"},
              {"status", 503}, {"times", 2}});
  e2s::Package package(kWeather, options());
  EXPECT_EQ(TempDir::read_file(package.resolve("config.json")), R"({"version": "1.0"})");
  EXPECT_EQ(files_requests().size(), 3u);
}

// ---- private models, keys and tokens ---------------------------------------

TEST_F(NgcTest, PrivateModelWithoutKeyIsUnauthorizedNamingTheVariable) {
  e2s::Package package(kSecret, options());
  const e2s::Error e = error_of([&] { package.resolve("secret.txt"); });
  EXPECT_EQ(e.code(), e2s::Errc::unauthorized) << e.what();
  EXPECT_EQ(e.http_status(), 401);
  EXPECT_TRUE(contains(e.what(), "NGC_CLI_API_KEY")) << e.what();
  EXPECT_TRUE(cached_files().empty());
  EXPECT_TRUE(requests("storage").empty());
}

TEST_F(NgcTest, KeyIsExchangedForATokenWithTheOrgScope) {
  ScopedEnv key("NGC_CLI_API_KEY", kKey);
  e2s::Package package(kSecret, options());
  EXPECT_EQ(TempDir::read_file(package.resolve("secret.txt")), "secret\n");

  const auto auth = requests("auth");
  ASSERT_EQ(auth.size(), 1u);
  const std::string target = auth[0].at("path");
  EXPECT_EQ(without_query(target), "/token");
  EXPECT_EQ(query_values(target, "service"), std::vector<std::string>{"ngc"}) << target;
  EXPECT_EQ(query_values(target, "scope"), std::vector<std::string>{"group/ngc:acme"}) << target;
  const json& headers = auth[0].at("headers");
  EXPECT_EQ(headers.value("authorization", ""), "Basic " + base64(std::string("$oauthtoken:") + kKey));
  EXPECT_TRUE(contains(headers.value("accept", ""), "application/json")) << auth[0].dump();

  const auto api = requests("api");
  ASSERT_EQ(api.size(), 1u);
  EXPECT_EQ(api[0].at("path"), "/v2/org/acme/models/secret/2.0/files?path=secret.txt");
  const std::string bearer = api[0].at("headers").value("authorization", "");
  EXPECT_EQ(bearer.rfind("Bearer ngc-token-", 0), 0u) << bearer;
  // The key itself never goes to the API.
  EXPECT_FALSE(contains(api[0].dump(), kKey));
}

TEST_F(NgcTest, AKeyGivenInCodeWinsOverTheEnvironment) {
  ScopedEnv key("NGC_CLI_API_KEY", kOtherKey);  // has no access to acme
  e2s::PackageOptions o = options();
  o.ngc.api_key = kKey;
  e2s::Package package(kSecret, o);
  EXPECT_EQ(TempDir::read_file(package.resolve("secret.txt")), "secret\n");
  const auto auth = requests("auth");
  ASSERT_EQ(auth.size(), 1u);
  EXPECT_EQ(auth[0].at("headers").value("authorization", ""),
            "Basic " + base64(std::string("$oauthtoken:") + kKey));
}

TEST_F(NgcTest, TeamModelTokenCarriesOrgAndTeamScopes) {
  ScopedEnv key("NGC_CLI_API_KEY", kKey);
  e2s::Package package("ngc://models/acme/research/tsecret@1", options());
  EXPECT_EQ(TempDir::read_file(package.resolve("t.bin")), "team secret\n");
  const auto auth = requests("auth");
  ASSERT_EQ(auth.size(), 1u);
  std::vector<std::string> scopes = query_values(auth[0].at("path"), "scope");
  std::sort(scopes.begin(), scopes.end());
  EXPECT_EQ(scopes, (std::vector<std::string>{"group/ngc:acme", "group/ngc:acme/research"}));
  EXPECT_EQ(ngc_.count("GET", "/v2/org/acme/team/research/models/tsecret/1/files"), 1u);
}

TEST_F(NgcTest, KeyWithoutAccessIsUnauthorized) {
  ScopedEnv key("NGC_CLI_API_KEY", kOtherKey);
  e2s::Package package("ngc://models/acme/research/tsecret@1", options());
  const e2s::Error e = error_of([&] { package.resolve("t.bin"); });
  EXPECT_EQ(e.code(), e2s::Errc::unauthorized) << e.what();
  EXPECT_EQ(e.http_status(), 403);
  EXPECT_TRUE(contains(e.what(), "NGC_CLI_API_KEY")) << e.what();
  expect_no_secret(e.what(), {kOtherKey});
  EXPECT_TRUE(cached_files().empty());
}

TEST_F(NgcTest, RefusedKeyIsUnauthorizedAndNeverQuoted) {
  ScopedEnv key("NGC_CLI_API_KEY", "wrongkey5555");
  e2s::Package package(kSecret, options());
  const e2s::Error e = error_of([&] { package.resolve("secret.txt"); });
  EXPECT_EQ(e.code(), e2s::Errc::unauthorized) << e.what();
  EXPECT_TRUE(contains(e.what(), "NGC_CLI_API_KEY")) << e.what();
  expect_no_secret(e.what(), {"wrongkey5555", base64("$oauthtoken:wrongkey5555")});
  EXPECT_EQ(requests("auth").size(), 1u);
  EXPECT_TRUE(requests("storage").empty());
}

TEST_F(NgcTest, NgcApiKeyIsTheFallbackAndNgcCliApiKeyWins) {
  {
    ScopedEnv key("NGC_API_KEY", kKey);
    e2s::Package package(kSecret, options("a"));
    EXPECT_EQ(TempDir::read_file(package.resolve("secret.txt")), "secret\n");
    const auto auth = requests("auth");
    ASSERT_EQ(auth.size(), 1u);
    EXPECT_EQ(auth[0].at("headers").value("authorization", ""),
              "Basic " + base64(std::string("$oauthtoken:") + kKey));
  }
  ngc_.reset();
  {
    ScopedEnv cli_key("NGC_CLI_API_KEY", kKey);
    ScopedEnv key("NGC_API_KEY", "wrongkey5555");
    e2s::Package package(kSecret, options("b"));
    EXPECT_EQ(TempDir::read_file(package.resolve("secret.txt")), "secret\n");
    const auto auth = requests("auth");
    ASSERT_EQ(auth.size(), 1u);
    EXPECT_EQ(auth[0].at("headers").value("authorization", ""),
              "Basic " + base64(std::string("$oauthtoken:") + kKey));
  }
}

TEST_F(NgcTest, PersonalKeyIsTheBearerWithoutExchange) {
  ScopedEnv key("NGC_CLI_API_KEY", kPersonalKey);
  e2s::Package package("ngc://models/acme/research/tsecret@1", options());
  EXPECT_EQ(TempDir::read_file(package.resolve("t.bin")), "team secret\n");
  EXPECT_TRUE(requests("auth").empty());
  EXPECT_EQ(bearers_sent(), std::vector<std::string>{kPersonalKey});
  expect_storage_clean({kPersonalKey});
}

TEST_F(NgcTest, TokenIsReusedForLaterFiles) {
  ScopedEnv key("NGC_CLI_API_KEY", kKey);
  e2s::Package package(kSecret, options());
  EXPECT_EQ(TempDir::read_file(package.resolve("secret.txt")), "secret\n");
  EXPECT_EQ(TempDir::read_file(package.resolve("more/1.txt")), "one");
  EXPECT_EQ(TempDir::read_file(package.resolve("more/2.txt")), "two");
  EXPECT_EQ(requests("auth").size(), 1u);
  const auto bearers = bearers_sent();
  ASSERT_EQ(bearers.size(), 3u);
  EXPECT_EQ(bearers[0], bearers[1]);
  EXPECT_EQ(bearers[1], bearers[2]);
}

TEST_F(NgcTest, ExpiredTokenIsRefreshedOnceAndTheCallRetried) {
  ScopedEnv key("NGC_CLI_API_KEY", kKey);
  e2s::Package package(kSecret, options());
  EXPECT_EQ(TempDir::read_file(package.resolve("secret.txt")), "secret\n");
  post("/_expire_tokens");
  ngc_.reset();
  EXPECT_EQ(TempDir::read_file(package.resolve("more/1.txt")), "one");
  EXPECT_EQ(requests("auth").size(), 1u);
  const auto api = requests("api");
  ASSERT_EQ(api.size(), 2u) << ngc_.stats().dump();
  EXPECT_EQ(api[0].at("status"), 401);
  EXPECT_EQ(api[1].at("status"), 200);
  const auto bearers = bearers_sent();
  ASSERT_EQ(bearers.size(), 2u);
  EXPECT_NE(bearers[0], bearers[1]);
}

TEST_F(NgcTest, TokenThatStaysRefusedFailsWithoutLooping) {
  ScopedEnv key("NGC_CLI_API_KEY", kKey);
  // Every files call answers 401, whatever the token.
  ngc_.fault({{"path", "/v2/org/acme/models/secret/2.0/files"}, {"kind", "status"},
              {"status", 401}, {"times", -1}});
  e2s::Package package(kSecret, options());
  const e2s::Error e = error_of([&] { package.resolve("secret.txt"); });
  EXPECT_EQ(e.code(), e2s::Errc::unauthorized) << e.what();
  EXPECT_EQ(requests("auth").size(), 2u);
  EXPECT_EQ(files_requests().size(), 2u);
}

TEST_F(NgcTest, ShortLivedTokenIsNotReusedPastItsLifetime) {
  // expires_in 1 s: each file needs a fresh token, and none is refused by the API.
  TestServer short_lived = start({"--token-ttl", "1"});
  NgcEnv env(short_lived);
  ScopedEnv key("NGC_CLI_API_KEY", kKey);
  e2s::Package package(kSecret, options());
  EXPECT_EQ(TempDir::read_file(package.resolve("secret.txt")), "secret\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_EQ(TempDir::read_file(package.resolve("more/1.txt")), "one");
  EXPECT_EQ(recorded_requests(short_lived, "auth").size(), 2u);
  for (const auto& request : recorded_requests(short_lived, "api")) {
    EXPECT_EQ(request.at("status"), 200) << request.dump();
  }
}

TEST_F(NgcTest, KeyAndTokenNeverReachTheStorageHost) {
  ScopedEnv key("NGC_CLI_API_KEY", kKey);
  e2s::Package package(kSecret, options());
  EXPECT_EQ(TempDir::read_file(package.resolve("weights.bin")), secret_weights_);
  EXPECT_EQ(TempDir::read_file(package.resolve("secret.txt")), "secret\n");
  const auto bearers = bearers_sent();
  ASSERT_FALSE(bearers.empty());
  expect_storage_clean({kKey, bearers[0], base64(std::string("$oauthtoken:") + kKey)});
  for (const auto& request : requests("storage")) EXPECT_EQ(request.at("status"), 206);
}

TEST_F(NgcTest, SecretsNeverAppearInErrorMessages) {
  ScopedEnv key("NGC_CLI_API_KEY", kKey);
  e2s::Package package(kSecret, options());
  std::vector<std::string> messages;
  messages.push_back(error_of([&] { package.resolve("missing.bin"); }).what());
  // The storage host refuses every URL (renewals included).
  ngc_.fault({{"host", "storage"}, {"path", "*"}, {"kind", "status"}, {"status", 403},
              {"times", -1}});
  messages.push_back(error_of([&] { package.resolve("secret.txt"); }).what());
  ngc_.fault({{"path", "/v2/org/acme/models/secret/2.0/files"}, {"kind", "status"},
              {"status", 500}, {"times", -1}});
  messages.push_back(error_of([&] { package.resolve("more/1.txt"); }).what());
  const auto bearers = bearers_sent();
  ASSERT_FALSE(bearers.empty());
  for (const auto& message : messages) {
    expect_no_secret(message, {kKey, bearers[0], base64(std::string("$oauthtoken:") + kKey)});
  }
}

// ---- errors ---------------------------------------------------------------

TEST_F(NgcTest, MissingFileIsNotFoundNamingModelVersionAndFile) {
  e2s::Package package(kSeed, options());
  const e2s::Error e = error_of([&] { package.resolve("missing.bin"); });
  EXPECT_EQ(e.code(), e2s::Errc::not_found) << e.what();
  EXPECT_EQ(e.http_status(), 404);
  const std::string message = e.what();
  EXPECT_TRUE(contains(message, "nvidia/modulus/modulus_fcn")) << message;
  EXPECT_TRUE(contains(message, "v0.2")) << message;
  EXPECT_TRUE(contains(message, "missing.bin")) << message;
  EXPECT_TRUE(cached_files().empty());
  EXPECT_TRUE(requests("storage").empty());
}

TEST_F(NgcTest, MissingVersionAndModelAreNotFound) {
  {
    e2s::Package package("ngc://models/nvidia/modulus/modulus_fcn@v9.9", options("a"));
    const e2s::Error e = error_of([&] { package.resolve("fcn.zip"); });
    EXPECT_EQ(e.code(), e2s::Errc::not_found) << e.what();
    EXPECT_TRUE(contains(e.what(), "v9.9")) << e.what();
    EXPECT_TRUE(contains(e.what(), "fcn.zip")) << e.what();
  }
  {
    e2s::Package package("ngc://models/nvidia/modulus/nothere@v0.2", options("b"));
    const e2s::Error e = error_of([&] { package.resolve("fcn.zip"); });
    EXPECT_EQ(e.code(), e2s::Errc::not_found) << e.what();
    EXPECT_TRUE(contains(e.what(), "nvidia/modulus/nothere")) << e.what();
  }
}

TEST_F(NgcTest, LicenceNotAcceptedIsUnauthorizedAndSaysSo) {
  for (const char* key : {"", kKey}) {
    SCOPED_TRACE(key);
    std::optional<ScopedEnv> with_key;
    if (*key) with_key.emplace("NGC_CLI_API_KEY", key);
    e2s::Package package("ngc://models/acme/licensed@1", options(*key ? "key" : "anon"));
    const e2s::Error e = error_of([&] { package.resolve("l.bin"); });
    EXPECT_EQ(e.code(), e2s::Errc::unauthorized) << e.what();
    EXPECT_EQ(e.http_status(), 412);
    EXPECT_TRUE(contains(lower(e.what()), "licen")) << e.what();
    EXPECT_TRUE(contains(e.what(), "NGC")) << e.what();
  }
  EXPECT_TRUE(cached_files().empty());
  EXPECT_TRUE(requests("storage").empty());
}

TEST_F(NgcTest, MissingOrEmptyUrlsIsAClearError) {
  for (const char* root : {"ngc://models/acme/nourls@1", "ngc://models/acme/emptyurls@1"}) {
    SCOPED_TRACE(root);
    e2s::Package package(root, options());
    const e2s::Error e = error_of([&] { package.resolve("f.bin"); });
    EXPECT_EQ(e.code(), e2s::Errc::other) << e.what();
    EXPECT_TRUE(contains(lower(e.what()), "url")) << e.what();
    EXPECT_TRUE(contains(e.what(), "f.bin")) << e.what();
  }
  EXPECT_TRUE(requests("storage").empty());
  EXPECT_TRUE(cached_files().empty());
}

TEST_F(NgcTest, InvalidRootsAreRejectedWithoutARequest) {
  for (const char* root : {"ngc://models/a/b/c/d@1.0", "ngc://models/a/b/c/d@1.0/file",
                           "ngc://models/nvidia/modulus/modulus_fcn", "ngc://models/org/name",
                           "ngc://models/org/name@", "ngc://models/or.g/name@1",
                           "ngc://models/"}) {
    SCOPED_TRACE(root);
    const e2s::Error e = error_of([&] { e2s::Package(root, options()).resolve("fcn.zip"); });
    EXPECT_EQ(e.code(), e2s::Errc::invalid_uri) << e.what();
  }
  EXPECT_EQ(total_requests(), 0u);
}

// ---- transfers: resume, renewal -------------------------------------------

TEST_F(NgcTest, CutMidFileResumesWithRangeOnTheSameUrl) {
  ngc_.fault({{"host", "storage"}, {"path", "*"}, {"kind", "cut"}, {"after", 400000},
              {"methods", {"GET"}}});
  e2s::Package package(kWeather, options());
  EXPECT_EQ(TempDir::read_file(package.resolve("weights.bin")), weights_);
  const auto storage = requests("storage");
  ASSERT_GE(storage.size(), 2u);
  EXPECT_EQ(storage[0].at("range"), "bytes=0-1048575") << storage[0].dump();
  const json& resumed = storage.back();
  EXPECT_EQ(resumed.at("status"), 206) << resumed.dump();
  ASSERT_TRUE(resumed.at("range").is_string()) << resumed.dump();
  const std::string range = resumed.at("range");
  EXPECT_EQ(range.rfind("bytes=", 0), 0u) << range;
  EXPECT_GT(std::stoull(range.substr(6)), 0u) << range;
  EXPECT_EQ(storage[0].at("path"), resumed.at("path")) << "the signed URL is still valid";
  EXPECT_EQ(files_requests().size(), 1u);
  EXPECT_LT(ngc_.body_bytes(), weights_.size() + 400000u) << "the first bytes were not refetched";
}

TEST_F(NgcTest, ShortBodyResumes) {
  ngc_.fault({{"host", "storage"}, {"path", "*"}, {"kind", "short"}, {"after", 1000},
              {"methods", {"GET"}}});
  e2s::Package package(kSeed, options());
  EXPECT_EQ(TempDir::read_file(package.resolve("fcn.zip")), fcn_);
  const auto storage = requests("storage");
  ASSERT_EQ(storage.size(), 2u);
  EXPECT_EQ(storage[1].at("range"), "bytes=1000-1048575") << storage[1].dump();
  EXPECT_EQ(meta("fcn.zip").value("size", 0u), fcn_.size());
}

TEST_F(NgcTest, UrlThatExpiresMidDownloadIsRenewedAndTheDownloadContinues) {
  // Cut after 400000 bytes, and every URL issued so far expires: the resume
  // on the old URL gets 403, a fresh URL continues at the offset.
  ngc_.fault({{"host", "storage"}, {"path", "*"}, {"kind", "cut"}, {"after", 400000},
              {"expire_urls", true}, {"methods", {"GET"}}});
  e2s::Package package(kWeather, options());
  EXPECT_EQ(TempDir::read_file(package.resolve("weights.bin")), weights_);
  EXPECT_EQ(files_requests().size(), 2u);
  const auto storage = requests("storage");
  ASSERT_EQ(storage.size(), 3u) << ngc_.stats().dump();
  EXPECT_EQ(storage[0].at("status"), 206);
  EXPECT_EQ(storage[1].at("status"), 403);
  EXPECT_EQ(storage[1].at("path"), storage[0].at("path"));
  EXPECT_EQ(storage[2].at("status"), 206);
  EXPECT_NE(storage[2].at("path"), storage[0].at("path")) << "a new signed URL";
  EXPECT_EQ(storage[2].at("range"), storage[1].at("range"));
  ASSERT_TRUE(storage[2].at("range").is_string());
  EXPECT_NE(storage[2].at("range"), "bytes=0-");
  EXPECT_LT(ngc_.body_bytes(), weights_.size() + 400000u);
}

TEST_F(NgcTest, PrivateUrlRenewalUsesTheCachedToken) {
  ScopedEnv key("NGC_CLI_API_KEY", kKey);
  ngc_.fault({{"host", "storage"}, {"path", "*"}, {"kind", "cut"}, {"after", 50000},
              {"expire_urls", true}, {"methods", {"GET"}}});
  e2s::Package package(kSecret, options());
  EXPECT_EQ(TempDir::read_file(package.resolve("weights.bin")), secret_weights_);
  EXPECT_EQ(files_requests().size(), 2u);
  EXPECT_EQ(requests("auth").size(), 1u);
  for (const auto& request : files_requests()) {
    EXPECT_EQ(without_query(request.at("path")), "/v2/org/acme/models/secret/2.0/files");
  }
  expect_storage_clean({kKey, bearers_sent().at(0)});
}

TEST_F(NgcTest, UrlRefusedBeforeAnyByteIsRenewed) {
  ngc_.fault({{"host", "storage"}, {"path", "*"}, {"kind", "status"}, {"status", 403}});
  e2s::Package package(kSeed, options());
  EXPECT_EQ(TempDir::read_file(package.resolve("fcn.zip")), fcn_);
  EXPECT_EQ(files_requests().size(), 2u);
}

TEST_F(NgcTest, StorageThatKeepsRefusingFailsAfterAFewRenewals) {
  ngc_.fault({{"host", "storage"}, {"path", "*"}, {"kind", "status"}, {"status", 403},
              {"times", -1}});
  e2s::Package package(kSeed, options());
  const e2s::Error e = error_of([&] { package.resolve("fcn.zip"); });
  EXPECT_EQ(e.http_status(), 403) << e.what();
  // The storage host refused a signed URL: no API key is to blame.
  EXPECT_NE(std::string(e.what()).find("storage host"), std::string::npos) << e.what();
  EXPECT_EQ(std::string(e.what()).find("NGC_CLI_API_KEY"), std::string::npos) << e.what();
  EXPECT_GE(files_requests().size(), 2u);
  EXPECT_LE(files_requests().size(), 4u);
  EXPECT_TRUE(cached_files().empty());
}

// ---- cache ----------------------------------------------------------------

TEST_F(NgcTest, CachedFileResolvesWithZeroRequests) {
  fs::path fcn, meta_path;
  {
    e2s::Package package(kSeed, options());
    fcn = package.resolve("fcn.zip");
    meta_path = package.resolve("metadata.json");
  }
  ngc_.reset();
  e2s::Package again(kSeed, options());
  EXPECT_EQ(again.resolve("fcn.zip"), fcn);
  EXPECT_EQ(again.resolve("metadata.json"), meta_path);
  EXPECT_EQ(TempDir::read_file(fcn), fcn_);
  EXPECT_EQ(total_requests(), 0u) << ngc_.stats().dump();
}

TEST_F(NgcTest, MetadataRecordsTheNgcVersion) {
  e2s::Package package(kSeed, options());
  package.resolve("fcn.zip");
  const json m = meta("fcn.zip");
  EXPECT_EQ(m.value("version", ""), "v0.2") << m.dump();
  EXPECT_EQ(m.value("size", 0u), fcn_.size()) << m.dump();
  EXPECT_EQ(m.value("sha256", ""), e2s::detail::sha256_hex(fcn_)) << m.dump();
  // Never a credential nor the (expiring) signed URL.
  EXPECT_FALSE(contains(m.dump(), "Signature=")) << m.dump();

  ScopedEnv key("NGC_CLI_API_KEY", kKey);
  e2s::Package private_package(kSecret, options("secret"));
  private_package.resolve("secret.txt");
  const json s = meta("secret.txt", "secret");
  EXPECT_EQ(s.value("version", ""), "2.0") << s.dump();
  expect_no_secret(s.dump(), {kKey, bearers_sent().at(0), "Signature="});
}

// ---- listing --------------------------------------------------------------

TEST_F(NgcTest, ListFollowsPageReferencesAndSorts) {
  e2s::Package package(kWeather, options());
  const Entries expected = {{"config.json", std::string(kConfig).size()},   {"data/a.txt", 1},  {"data/b.txt", 2},
                            {"data/c/d.txt", 3},   {"odd name+1.txt", 3},
                            {"weights.bin", 1u << 20}};
  EXPECT_EQ(entries(package.list()), expected);
  const auto api = requests("api");
  ASSERT_EQ(api.size(), 3u) << "6 files at 2 a page";
  EXPECT_EQ(api[0].at("path"), "/v2/models/acme/weather/versions/1.0/files?page-size=1000");
  for (std::size_t i = 1; i < api.size(); ++i) {
    const std::string path = api[i].at("path");
    EXPECT_EQ(query_values(path, "page-reference").size(), 1u) << path;
    EXPECT_EQ(query_values(path, "page-size"), std::vector<std::string>{"1000"}) << path;
  }
  for (const auto& request : api) {
    EXPECT_EQ(request.at("status"), 200) << request.dump();
    EXPECT_FALSE(request.at("headers").contains("authorization"));
  }
  EXPECT_TRUE(requests("storage").empty());
}

TEST_F(NgcTest, ListFollowsPageNumbers) {
  TestServer numbered = start({"--page-size", "2", "--page-style", "number"});
  NgcEnv env(numbered);
  e2s::Package package(kWeather, options());
  EXPECT_EQ(entries(package.list()).size(), 6u);
  const auto api = recorded_requests(numbered, "api");
  ASSERT_EQ(api.size(), 3u);
  EXPECT_TRUE(query_values(api[0].at("path"), "page-number").empty());
  EXPECT_EQ(query_values(api[1].at("path"), "page-number"), std::vector<std::string>{"1"});
  EXPECT_EQ(query_values(api[2].at("path"), "page-number"), std::vector<std::string>{"2"});
}

TEST_F(NgcTest, ListOfASubFolderRootIsRestrictedAndRelative) {
  e2s::Package package("ngc://models/acme/weather@1.0/data", options());
  EXPECT_EQ(entries(package.list()), (Entries{{"a.txt", 1}, {"b.txt", 2}, {"c/d.txt", 3}}));
  e2s::Package nested("ngc://models/acme/weather@1.0/data/c", options());
  EXPECT_EQ(entries(nested.list()), (Entries{{"d.txt", 3}}));
}

TEST_F(NgcTest, ListOfTeamAndBareModelsUsesTheGuestPaths) {
  EXPECT_EQ(entries(e2s::Package(kSeed, options()).list()),
            (Entries{{"fcn.zip", 300000}, {"metadata.json", std::string(kFcnMetadata).size()}}));
  EXPECT_EQ(ngc_.count("GET", "/v2/models/nvidia/modulus/modulus_fcn/versions/v0.2/files"), 1u);
  EXPECT_EQ(entries(e2s::Package("ngc://models/bare@1", options()).list()),
            (Entries{{"bare.txt", 5}}));
  EXPECT_EQ(ngc_.count("GET", "/v2/models/bare/versions/1/files"), 1u);
}

TEST_F(NgcTest, ListOfAPrivateModelSendsTheBearerWithEveryPage) {
  {
    e2s::Package package(kSecret, options());
    const e2s::Error e = error_of([&] { package.list(); });
    EXPECT_EQ(e.code(), e2s::Errc::unauthorized) << e.what();
    EXPECT_TRUE(contains(e.what(), "NGC_CLI_API_KEY")) << e.what();
  }
  ngc_.reset();
  ScopedEnv key("NGC_CLI_API_KEY", kKey);
  e2s::Package package(kSecret, options());
  EXPECT_EQ(entries(package.list()),
            (Entries{{"more/1.txt", 3}, {"more/2.txt", 3}, {"secret.txt", 7},
                     {"weights.bin", 200000}}));
  const auto api = requests("api");
  ASSERT_EQ(api.size(), 2u);
  EXPECT_EQ(api[0].at("path"), "/v2/org/acme/models/secret/versions/2.0/files?page-size=1000");
  for (const auto& request : api) {
    EXPECT_EQ(request.at("headers").value("authorization", "").rfind("Bearer ngc-token-", 0), 0u)
        << request.dump();
  }
  EXPECT_EQ(requests("auth").size(), 1u);
}

TEST_F(NgcTest, ListOfAMissingVersionIsNotFound) {
  e2s::Package package("ngc://models/acme/weather@9.9", options());
  const e2s::Error e = error_of([&] { package.list(); });
  EXPECT_EQ(e.code(), e2s::Errc::not_found) << e.what();
  EXPECT_TRUE(contains(e.what(), "9.9")) << e.what();
}

}  // namespace
