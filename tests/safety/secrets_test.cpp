// No secret leaks: the CLI runs with -v (debug logging) and every token the
// environment can hold (HF_TOKEN, HUGGING_FACE_HUB_TOKEN, NGC_CLI_API_KEY,
// NGC_API_KEY, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)
// set to distinctive random values, for downloads that succeed and that fail
// (404, 401/403, 500) on each store (hf, ngc, s3 via moto, http). Neither its
// stdout and stderr nor any file it wrote under the cache folder (names and
// contents) may hold a secret, and neither may the e2s::Error that the same
// call through the library throws.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "e2s/error.hpp"
#include "e2s/package.hpp"
#include "util/encoding.hpp"
#include "safety/safety_env.hpp"
#include "support/cli_runner.hpp"
#include "support/fixtures.hpp"
#include "support/moto_server.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"

namespace {

namespace fs = std::filesystem;
using e2s::test::CliRun;
using e2s::test::contains;
using e2s::test::MotoServer;
using e2s::test::make_bytes;
using e2s::test::TempDir;
using e2s::test::TestServer;
using e2s::test::EnvGuard;
using e2s::test::safety::scrubbed;
using nlohmann::json;
using Env = std::map<std::string, std::string>;

// The variables whose values are secrets.
const std::vector<std::string> kSecretVariables = {
    "HF_TOKEN",          "HUGGING_FACE_HUB_TOKEN", "NGC_CLI_API_KEY",  "NGC_API_KEY",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",  "AWS_SESSION_TOKEN"};

// A distinctive value nobody else would write: `prefix` and 24 random characters.
std::string random_secret(const std::string& prefix) {
  static std::mt19937_64 engine{std::random_device{}()};
  static const std::string alphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
  std::string out = prefix;
  for (int i = 0; i < 24; ++i) out += alphabet[pick(engine)];
  return out;
}

// One resolve to try through the CLI and the library.
struct Case {
  std::string name;
  std::string root;
  std::string file;
  Env env;         // on top of the store's and the random secrets
  int status = 0;  // the CLI's exit status; 0: the download succeeds
};

class SecretsTest : public ::testing::Test {
 protected:
  SecretsTest() {
    env_.set("HOME", home_.path().string());
    // Every secret variable holds a random value in every run, so a value
    // meant for one store cannot leak through another either.
    secrets_env_ = {{"HF_TOKEN", hf_token_},
                    {"HUGGING_FACE_HUB_TOKEN", hf_legacy_token_},
                    {"HF_HOME", home_.path().string()},
                    {"NGC_CLI_API_KEY", ngc_key_},
                    {"NGC_API_KEY", ngc_legacy_key_},
                    {"AWS_ACCESS_KEY_ID", "AKIA" + random_secret("SECRETID")},
                    {"AWS_SECRET_ACCESS_KEY", random_secret("awsSecret/")},
                    {"AWS_SESSION_TOKEN", random_secret("awsSessionToken")},
                    {"AWS_SHARED_CREDENTIALS_FILE", "/dev/null"},
                    {"AWS_CONFIG_FILE", "/dev/null"}};
  }

  // The forms a secret of variable `name` could leak in: itself, and the
  // HTTP Basic credentials an NGC key is sent as.
  static std::vector<std::string> forms(const std::string& name, const std::string& value) {
    std::vector<std::string> out = {value};
    if (name.rfind("NGC_", 0) == 0) out.push_back(e2s::detail::base64_encode("$oauthtoken:" + value));
    return out;
  }

  static std::vector<std::string> secrets_of(const Env& env) {
    std::vector<std::string> out;
    for (const auto& name : kSecretVariables) {
      const auto it = env.find(name);
      if (it == env.end() || it->second.empty()) continue;
      for (auto& form : forms(name, it->second)) out.push_back(std::move(form));
    }
    return out;
  }

  static void expect_no_secret(const std::string& where, const std::string& text,
                               const std::vector<std::string>& secrets) {
    for (const auto& secret : secrets) {
      EXPECT_FALSE(contains(text, secret)) << where << " holds a secret (" << secret << "):\n" << text;
    }
  }

  // Every name and byte under `folder`, symlink targets included.
  static std::string everything_under(const fs::path& folder) {
    std::string all;
    if (!fs::exists(folder)) return all;
    for (const auto& entry : fs::recursive_directory_iterator(folder)) {
      all += entry.path().string() + "\n";
      if (entry.is_symlink()) all += fs::read_symlink(entry.path()).string() + "\n";
      else if (entry.is_regular_file()) all += TempDir::read_file(entry.path()) + "\n";
    }
    return all;
  }

  // Runs `c` through the CLI (with -v) and the library, in fresh cache
  // folders, with `store_env`; checks the outcome and that no secret shows.
  void run(const Case& c, const Env& store_env) {
    SCOPED_TRACE(c.name);
    Env env = secrets_env_;
    for (const auto& [name, value] : store_env) env[name] = value;
    for (const auto& [name, value] : c.env) env[name] = value;
    const std::vector<std::string> secrets = secrets_of(env);
    ASSERT_FALSE(secrets.empty());
    const fs::path cli_cache = cache_.path() / ("cli-" + std::to_string(runs_));
    const fs::path lib_cache = cache_.path() / ("lib-" + std::to_string(runs_));
    ++runs_;

    const CliRun cli = e2s::test::run_e2s(
        {"-v", "--cache-dir", cli_cache.string(), "resolve", c.root, c.file}, env, scrubbed);
    EXPECT_EQ(cli.status, c.status) << cli.err;
    expect_no_secret("the CLI's stdout", cli.out, secrets);
    expect_no_secret("the CLI's stderr", cli.err, secrets);
    expect_no_secret("the CLI's cache", everything_under(cli_cache), secrets);
    if (c.status == 0) {
      EXPECT_TRUE(contains(cli.err, "e2s: debug: ")) << "debug logging is on: " << cli.err;
      EXPECT_FALSE(everything_under(cli_cache).empty());
    } else {
      EXPECT_TRUE(contains(cli.err, "e2s: error: ")) << cli.err;
    }

    EnvGuard in_process(e2s::test::safety::scrubbed);
    for (const auto& [name, value] : env) in_process.set(name, value);
    e2s::PackageOptions options;
    options.cache_options.cache_storage = lib_cache;
    options.retry.initial_backoff = std::chrono::milliseconds(1);
    options.retry.max_backoff = std::chrono::milliseconds(20);
    try {
      e2s::Package package(c.root, options);
      package.resolve(c.file);
      EXPECT_EQ(c.status, 0) << "the library succeeded where the CLI was to exit " << c.status;
    } catch (const e2s::Error& e) {
      EXPECT_EQ(e2s::exit_status(e.code()), c.status) << e.what();
      expect_no_secret("Error::what()", e.what(), secrets);
      expect_no_secret("Error::uri()", e.uri(), secrets);
    }
    expect_no_secret("the library's cache", everything_under(lib_cache), secrets);
  }

  const std::string hf_token_ = random_secret("hfTOKEN");
  const std::string hf_legacy_token_ = random_secret("hfLEGACY");
  const std::string ngc_key_ = random_secret("ngcKEY");
  const std::string ngc_legacy_key_ = random_secret("ngcLEGACY");
  EnvGuard env_{e2s::test::safety::scrubbed};
  TempDir home_;
  TempDir cache_;
  Env secrets_env_;
  int runs_ = 0;
};

TEST_F(SecretsTest, HuggingFace) {
  TempDir repos;
  repos.write_file("models/acme/private/repo.json", R"({"private": true})");
  repos.write_file("models/acme/private/main/config.json", "{}\n");
  repos.write_file("models/acme/private/main/weights.bin", make_bytes(5000, 1));  // LFS: via the CDN
  repos.write_file("models/acme/gated/repo.json", R"({"gated": "manual", "tokens": []})");
  repos.write_file("models/acme/gated/main/model.bin", "gated\n");
  TestServer hub("hf_server.py", {"--root", repos.path().string(), "--token", hf_token_, "--token",
                                  hf_legacy_token_});
  hub.fault({{"host", "hub"}, {"path", "/acme/flaky/resolve/main/x.bin"}, {"kind", "status"},
             {"status", 500}, {"retry_after", "0"}, {"times", -1}});
  const Env store = {{"HF_ENDPOINT", hub.url()}};
  run({"success", "hf://acme/private", "weights.bin", {}, 0}, store);
  run({"success, small file", "hf://acme/private", "config.json", {}, 0}, store);
  run({"success, legacy variable", "hf://acme/private", "weights.bin", {{"HF_TOKEN", ""}}, 0}, store);
  run({"404", "hf://acme/private", "missing.bin", {}, 3}, store);
  run({"401, unknown token", "hf://acme/gated", "model.bin", {{"HF_TOKEN", random_secret("hfUNKNOWN")}}, 4},
      store);
  run({"403, token without access", "hf://acme/gated", "model.bin", {}, 4}, store);
  run({"500", "hf://acme/flaky", "x.bin", {}, 5}, store);
}

TEST_F(SecretsTest, Ngc) {
  TempDir models;
  const std::string other_key = random_secret("ngcOTHER");
  models.write_file("acme/_/secret/model.json", R"({"private": true})");
  models.write_file("acme/_/secret/1.0/weights.bin", make_bytes(5000, 2));
  models.write_file("acme/_/theirs/model.json", json({{"private", true}, {"keys", {other_key}}}).dump());
  models.write_file("acme/_/theirs/1.0/weights.bin", "theirs\n");
  TestServer ngc("ngc_server.py", {"--root", models.path().string(), "--key", ngc_key_, "--key",
                                   ngc_legacy_key_, "--key", other_key});
  const int auth_port = e2s::test::get_json(ngc.url("/_info")).at("auth_port").get<int>();
  const Env store = {{"NGC_CLI_API_URL", ngc.url("/")},
                     {"NGC_CLI_AUTH_URL", "http://127.0.0.1:" + std::to_string(auth_port) + "/token"}};
  const std::string root = "ngc://models/acme/secret@1.0";
  run({"success", root, "weights.bin", {}, 0}, store);
  run({"success, legacy variable", root, "weights.bin", {{"NGC_CLI_API_KEY", ""}}, 0}, store);
  run({"404", root, "missing.bin", {}, 3}, store);
  run({"401, unknown key", root, "weights.bin", {{"NGC_CLI_API_KEY", random_secret("ngcUNKNOWN")}}, 4},
      store);
  run({"403, key without access", "ngc://models/acme/theirs@1.0", "weights.bin", {}, 4}, store);
  ngc.fault({{"host", "api"}, {"path", "*"}, {"kind", "status"}, {"status", 500},
             {"retry_after", "0"}, {"times", -1}, {"methods", {"GET"}}});
  run({"500", root, "weights.bin", {}, 5}, store);
}

TEST_F(SecretsTest, S3) {
  const json setup = {
      {"buckets",
       {{{"name", "secret-models"},
         {"objects", {{{"key", "pkg/weights.bin"}, {"text", "s3 weights\n"}}}}}}},
      {"sessions", {{{"name", "reader"}}}}};
  MotoServer moto(setup, /*enforce_auth=*/true);
  const json session = moto.credentials().at("sessions").at("reader");
  const Env reader = {{"AWS_ACCESS_KEY_ID", session.at("access_key_id").get<std::string>()},
                      {"AWS_SECRET_ACCESS_KEY", session.at("secret_access_key").get<std::string>()},
                      {"AWS_SESSION_TOKEN", session.at("session_token").get<std::string>()}};
  const Env store = {{"AWS_ENDPOINT_URL", moto.endpoint()}};
  run({"success", "s3://secret-models/pkg", "weights.bin", reader, 0}, store);
  run({"404", "s3://secret-models/pkg", "missing.bin", reader, 3}, store);
  run({"403, unknown key", "s3://secret-models/pkg", "weights.bin", {}, 4}, store);

  // moto injects no faults: http_server.py poses as the endpoint for the 500.
  TempDir served;
  served.write_file("secret-models/pkg/weights.bin", "s3 weights\n");
  TestServer endpoint("http_server.py", {"--root", served.path().string()});
  endpoint.fault({{"path", "/secret-models/pkg/weights.bin"}, {"kind", "status"}, {"status", 500},
                  {"retry_after", "0"}, {"times", -1}});
  run({"500", "s3://secret-models/pkg", "weights.bin", {}, 5}, {{"AWS_ENDPOINT_URL", endpoint.url()}});
}

TEST_F(SecretsTest, PlainHttp) {
  TempDir served;
  served.write_file("pkg/weights.bin", make_bytes(5000, 3));
  TestServer site("http_server.py", {"--root", served.path().string()});
  for (const int status : {401, 403, 500}) {
    site.fault({{"path", "/pkg/" + std::to_string(status) + ".bin"}, {"kind", "status"},
                {"status", status}, {"retry_after", "0"}, {"times", -1}});
  }
  const std::string root = site.url("/pkg");
  run({"success", root, "weights.bin", {}, 0}, {});
  run({"404", root, "missing.bin", {}, 3}, {});
  run({"401", root, "401.bin", {}, 4}, {});
  run({"403", root, "403.bin", {}, 4}, {});
  run({"500", root, "500.bin", {}, 5}, {});
  // Plain HTTP has no credentials: none of the tokens went to the site.
  const std::string requests = site.stats().dump();
  expect_no_secret("the site's requests", requests, secrets_of(secrets_env_));
  EXPECT_FALSE(contains(requests, "\"authorization\"")) << requests;
}

}  // namespace
