// s3:// packages against the real moto S3 server (tests/servers/moto_s3.py):
// anonymous reads of a public bucket, SigV4 with keys from the environment, a
// credentials file or a session, S3 error codes, ListObjectsV2 paging, awkward
// key names, multipart and lying ETags. Request-level details (headers, the
// region in the signature scope, key encoding on the wire, retries, error XML
// the store must decode) are checked against http_server.py posing as an
// S3-compatible endpoint, since moto keeps no request log.
//
// Two moto instances are shared by every test of this binary and started on
// first use: "open" (no auth enforced, like a public bucket reached
// anonymously) and "secure" (--auth: SigV4 and IAM policies enforced).
#include <openssl/evp.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "e2s/error.hpp"
#include "e2s/package.hpp"
#include "support/fixtures.hpp"
#include "support/moto_server.hpp"
#include "support/env_guard.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"

namespace {

namespace fs = std::filesystem;
using e2s::test::contains;
using e2s::test::error_of;
using e2s::test::make_bytes;
using e2s::test::md5_hex;
using e2s::test::MotoServer;
using e2s::test::EnvGuard;
using e2s::test::TempDir;
using e2s::test::TestServer;
using nlohmann::json;

constexpr const char* kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr const char* kConfig = "{\"model\": \"s3\"}\n";
constexpr const char* kSecret = "secret bytes\n";
constexpr const char* kLiarBytes = "the real bytes\n";
// Stored as the ETag of pkg/liar.bin: 32 hex, so an MD5 claim, of other bytes.
constexpr const char* kLyingEtag = "0123456789abcdef0123456789abcdef";
constexpr int kOpenManyKeys = 1205;    // more than one ListObjectsV2 page of 1000
constexpr int kSecureManyKeys = 1005;

// Key names under pkg/odd/ that need percent-encoding (or not) on the wire.
const std::vector<std::string> kAwkwardNames = {
    "with space.txt",        "plus+sign.txt", "100%.txt",
    "\xc3\xbcnic\xc3\xb6" "de-\xe6\x97\xa5\xe6\x9c\xac.txt",  // "ünicöde-日本.txt"
    "a=b&c=d.txt",           "tilde~(paren) 'q'.txt",
    "dir with space/in+dir.txt"};

const std::string& weights() {
  static const std::string bytes = make_bytes(300000, 1);
  return bytes;
}

const std::string& multipart_bytes() {
  static const std::string bytes = make_bytes(200000, 2);
  return bytes;
}

const std::string& secure_weights() {
  static const std::string bytes = make_bytes(300000, 3);
  return bytes;
}

// S3's key encoding: every byte but A-Z a-z 0-9 - _ . ~ and '/' as %XX.
std::string s3_encode(const std::string& key) {
  static const char* digits = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : key) {
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

// ---- the shared moto instances ----------------------------------------------

class MotoEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    open_.reset();
    secure_.reset();
  }

  // No auth enforced: public-models (public policy), private-models (no
  // policy: unsigned reads of its objects are refused), tiny-bucket.
  const MotoServer& open() {
    if (!open_) {
      json objects = json::array({
          {{"key", "pkg/config.json"}, {"text", kConfig}},
          {{"key", "pkg/weights.bin"}, {"file", data_file("weights.bin", weights())}},
          {{"key", "pkg/sub/deep/x.txt"}, {"text", "deep\n"}},
          {{"key", "pkg/multi.bin"},
           {"file", data_file("multi.bin", multipart_bytes())},
           {"multipart_part_size", 70000}},
          {{"key", "pkg/liar.bin"}, {"text", kLiarBytes}, {"etag", kLyingEtag}},
          {{"key", "many-not/x.txt"}, {"text", "not under many/\n"}},
          {{"key", "manyz.txt"}, {"text", "not under many/ either\n"}},
      });
      for (const auto& name : kAwkwardNames) {
        objects.push_back({{"key", "pkg/odd/" + name}, {"text", name}});
      }
      json setup = {
          {"buckets",
           {{{"name", "public-models"},
             {"public", true},
             {"objects", objects},
             {"generate", {{{"prefix", "many/"}, {"count", kOpenManyKeys}}}}},
            {{"name", "private-models"},
             {"objects", {{{"key", "pkg/secret.bin"}, {"text", kSecret}}}}},
            {{"name", "tiny-bucket"},
             {"public", true},
             {"objects",
              {{{"key", "a.txt"}, {"text", "a"}}, {{"key", "b/c.txt"}, {"text", "bc"}}}}}}}};
      open_ = start(setup, false);
    }
    return *open_;
  }

  // SigV4 and IAM enforced: private-models readable by user alice and session
  // reader; user mallory may do nothing on S3.
  const MotoServer& secure() {
    if (!secure_) {
      json objects = json::array({
          {{"key", "pkg/secret.bin"}, {"text", kSecret}},
          {{"key", "pkg/weights.bin"}, {"file", data_file("secure.bin", secure_weights())}},
      });
      for (const auto& name : kAwkwardNames) {
        objects.push_back({{"key", "pkg/odd/" + name}, {"text", name}});
      }
      const json deny_s3 = {
          {"Version", "2012-10-17"},
          {"Statement",
           {{{"Effect", "Allow"}, {"Action", "sts:GetCallerIdentity"}, {"Resource", "*"}}}}};
      json setup = {
          {"buckets",
           {{{"name", "private-models"},
             {"objects", objects},
             {"generate", {{{"prefix", "many/"}, {"count", kSecureManyKeys}}}}}}},
          {"users", {{{"name", "alice"}}, {{"name", "mallory"}, {"policy", deny_s3}}}},
          {"sessions", {{{"name", "reader"}}}}};
      secure_ = start(setup, true);
    }
    return *secure_;
  }

 private:
  std::string data_file(const std::string& name, const std::string& bytes) {
    return data_.write_file(name, bytes).string();
  }

  static std::unique_ptr<MotoServer> start(const json& setup, bool enforce_auth) {
    // Small parts, so that multipart uploads of test-sized objects have several.
    return std::make_unique<MotoServer>(setup, enforce_auth,
                                        std::vector<std::string>{"--min-part-size", "65536"});
  }

  TempDir data_;
  std::unique_ptr<MotoServer> open_;
  std::unique_ptr<MotoServer> secure_;
};

MotoEnvironment* const moto_environment = static_cast<MotoEnvironment*>(
    ::testing::AddGlobalTestEnvironment(new MotoEnvironment));

// ---- environment ----------------------------------------------------------------

// The runner's own AWS settings (keys, profiles, regions, endpoints, files)
// must not reach a test.
bool aws_variable(const std::string& name) { return name.rfind("AWS_", 0) == 0; }

class S3TestBase : public ::testing::Test, protected e2s::test::CacheFolder {
 protected:
  // `moto` is started (on first use) before the environment changes.
  explicit S3TestBase(const MotoServer* moto = nullptr) : moto_(moto), env_(aws_variable) {
    if (moto_ != nullptr) env_.set("AWS_ENDPOINT_URL", moto_->endpoint());
    // No ~/.aws of the machine's user: HOME is an empty folder.
    env_.set("HOME", home_.path().string());
    for (const char* name : {"EARTH2STUDIO_OFFLINE", "http_proxy", "HTTP_PROXY", "https_proxy",
                             "HTTPS_PROXY", "ALL_PROXY", "all_proxy"}) {
      env_.unset(name);
    }
  }

  // Every byte the cache wrote (data and metadata), for "no secret leaked" checks.
  std::string everything_cached() const {
    std::string all;
    if (!fs::exists(cache_.path())) return all;
    for (const auto& entry : fs::recursive_directory_iterator(cache_.path())) {
      if (entry.is_regular_file()) all += TempDir::read_file(entry.path());
    }
    return all;
  }


  static std::vector<std::string> paths(const std::vector<e2s::FileEntry>& entries) {
    std::vector<std::string> out;
    for (const auto& entry : entries) out.push_back(entry.path);
    return out;
  }

  void use_keys(const json& keys) {
    env_.set("AWS_ACCESS_KEY_ID", keys.at("access_key_id").get<std::string>());
    env_.set("AWS_SECRET_ACCESS_KEY", keys.at("secret_access_key").get<std::string>());
    if (keys.contains("session_token")) {
      env_.set("AWS_SESSION_TOKEN", keys.at("session_token").get<std::string>());
    }
  }

  const MotoServer* moto_;
  EnvGuard env_;
  TempDir home_;
};

// ---- anonymous reads (moto without auth) --------------------------------------

class S3OpenTest : public S3TestBase {
 protected:
  S3OpenTest() : S3TestBase(&moto_environment->open()) {}
};

TEST_F(S3OpenTest, PublicBucketIsReadAnonymously) {
  e2s::Package package("s3://public-models/pkg", options());
  const fs::path config = package.resolve("config.json");
  EXPECT_EQ(TempDir::read_file(config), kConfig);
  EXPECT_EQ(config.filename(), "config.json");
  const fs::path weights_path = package.resolve("weights.bin");
  EXPECT_EQ(TempDir::read_file(weights_path), weights());
  // Single-part uploads: the ETag is the MD5 of the bytes, and it is recorded.
  EXPECT_EQ(meta("weights.bin").value("etag", ""), md5_hex(weights()));
  EXPECT_EQ(meta("config.json").value("etag", ""), md5_hex(kConfig));
  EXPECT_EQ(meta("weights.bin").value("size", 0u), weights().size());
  auto stream = package.open("config.json");
  std::string read((std::istreambuf_iterator<char>(*stream)), std::istreambuf_iterator<char>());
  EXPECT_EQ(read, kConfig);
}

TEST_F(S3OpenTest, BucketRootAndDeeperPrefixes) {
  e2s::Package bucket("s3://tiny-bucket", options("a"));
  EXPECT_EQ(TempDir::read_file(bucket.resolve("b/c.txt")), "bc");
  e2s::Package deep("s3://public-models/pkg/sub", options("b"));
  const fs::path x = deep.resolve("deep/x.txt");
  EXPECT_EQ(TempDir::read_file(x), "deep\n");
  EXPECT_EQ(x.parent_path().filename(), "deep");
}

TEST_F(S3OpenTest, EndpointUrlS3WinsOverEndpointUrl) {
  // The secure instance refuses unsigned requests, so reading works only
  // through the open one.
  env_.set("AWS_ENDPOINT_URL", moto_environment->secure().endpoint());
  {
    e2s::Package package("s3://public-models/pkg", options("a"));
    const auto e = error_of([&] { package.resolve("config.json"); });
    EXPECT_EQ(e.code(), e2s::Errc::unauthorized) << e.what();
  }
  env_.set("AWS_ENDPOINT_URL_S3", moto_->endpoint());
  e2s::Package package("s3://public-models/pkg", options("b"));
  EXPECT_EQ(TempDir::read_file(package.resolve("config.json")), kConfig);
}

TEST_F(S3OpenTest, BucketWithoutPublicPolicyRefusesAnonymousReads) {
  e2s::Package package("s3://private-models/pkg", options());
  const auto e = error_of([&] { package.resolve("secret.bin"); });
  EXPECT_EQ(e.code(), e2s::Errc::unauthorized) << e.what();
  EXPECT_EQ(e.http_status(), 403);
  EXPECT_TRUE(contains(e.what(), "AWS_ACCESS_KEY_ID")) << e.what();
  EXPECT_TRUE(contains(e.what(), "s3://private-models/pkg")) << e.what();
  EXPECT_TRUE(cached_files().empty());
}

TEST_F(S3OpenTest, NoSuchKeyIsNotFoundAndNamesTheFile) {
  e2s::Package package("s3://public-models/pkg", options());
  const auto e = error_of([&] { package.resolve("missing.bin"); });
  EXPECT_EQ(e.code(), e2s::Errc::not_found) << e.what();
  EXPECT_EQ(e.http_status(), 404);
  EXPECT_TRUE(contains(e.what(), "missing.bin")) << e.what();
  EXPECT_TRUE(cached_files().empty());
}

TEST_F(S3OpenTest, NoSuchBucketIsNotFoundAndNamesTheBucket) {
  e2s::Package package("s3://no-such-bucket/pkg", options());
  const auto e = error_of([&] { package.resolve("config.json"); });
  EXPECT_EQ(e.code(), e2s::Errc::not_found) << e.what();
  EXPECT_TRUE(contains(e.what(), "no-such-bucket")) << e.what();
  const auto listing = error_of([&] { package.list(); });
  EXPECT_EQ(listing.code(), e2s::Errc::not_found) << listing.what();
}

TEST_F(S3OpenTest, ListingFollowsContinuationTokensAndStaysInsideThePrefix) {
  e2s::Package package("s3://public-models/many", options());
  const auto entries = package.list();
  ASSERT_EQ(entries.size(), static_cast<std::size_t>(kOpenManyKeys));
  for (int i = 0; i < kOpenManyKeys; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "%05d.txt", i);
    ASSERT_EQ(entries[static_cast<std::size_t>(i)].path, name) << i;
    // Each generated object holds its own key: "many/NNNNN.txt".
    EXPECT_EQ(entries[static_cast<std::size_t>(i)].size, std::optional<std::uint64_t>(14)) << i;
  }
}

TEST_F(S3OpenTest, ListingIsRelativeSortedAndHasSizes) {
  e2s::Package package("s3://public-models/pkg", options());
  const auto entries = package.list();
  std::vector<std::string> expected = {"config.json", "liar.bin", "multi.bin", "sub/deep/x.txt",
                                       "weights.bin"};
  for (const auto& name : kAwkwardNames) expected.push_back("odd/" + name);
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(paths(entries), expected);
  std::map<std::string, std::optional<std::uint64_t>> sizes;
  for (const auto& entry : entries) sizes[entry.path] = entry.size;
  EXPECT_EQ(sizes["weights.bin"], std::optional<std::uint64_t>(weights().size()));
  EXPECT_EQ(sizes["multi.bin"], std::optional<std::uint64_t>(multipart_bytes().size()));
  EXPECT_EQ(sizes["config.json"], std::optional<std::uint64_t>(std::string(kConfig).size()));
}

TEST_F(S3OpenTest, ListingOfAWholeBucket) {
  e2s::Package package("s3://tiny-bucket", options());
  const auto entries = package.list();
  ASSERT_EQ(paths(entries), (std::vector<std::string>{"a.txt", "b/c.txt"}));
  EXPECT_EQ(entries[0].size, std::optional<std::uint64_t>(1));
  EXPECT_EQ(entries[1].size, std::optional<std::uint64_t>(2));
}

TEST_F(S3OpenTest, AwkwardKeyNamesResolveAnonymously) {
  e2s::Package package("s3://public-models/pkg", options());
  for (const auto& name : kAwkwardNames) {
    SCOPED_TRACE(name);
    const fs::path path = package.resolve("odd/" + name);
    EXPECT_EQ(TempDir::read_file(path), name);
    EXPECT_EQ(path.filename(), fs::path(name).filename());
  }
}

TEST_F(S3OpenTest, AwkwardKeyNamesListAnonymously) {
  e2s::Package package("s3://public-models/pkg/odd", options());
  std::vector<std::string> expected = kAwkwardNames;
  std::sort(expected.begin(), expected.end());
  const auto entries = package.list();
  EXPECT_EQ(paths(entries), expected);
  for (const auto& entry : entries) {
    // Each holds its own name.
    EXPECT_EQ(entry.size, std::optional<std::uint64_t>(entry.path.size())) << entry.path;
  }
}

TEST_F(S3OpenTest, MultipartObjectResolvesWithASizeCheck) {
  const std::string etag =
      moto_->credentials().at("objects").at("public-models/pkg/multi.bin").at("etag");
  ASSERT_TRUE(etag.size() > 4 && etag.substr(etag.size() - 3) == "-3\"") << etag;
  e2s::Package package("s3://public-models/pkg", options());
  EXPECT_EQ(TempDir::read_file(package.resolve("multi.bin")), multipart_bytes());
  EXPECT_EQ(meta("multi.bin").value("etag", ""), etag.substr(1, etag.size() - 2));
}

TEST_F(S3OpenTest, Md5EtagThatDoesNotMatchTheBytesIsAnIntegrityError) {
  e2s::Package package("s3://public-models/pkg", options());
  const auto e = error_of([&] { package.resolve("liar.bin"); });
  EXPECT_EQ(e.code(), e2s::Errc::integrity) << e.what();
  EXPECT_TRUE(contains(e.what(), "liar.bin")) << e.what();
  EXPECT_TRUE(cached_files().empty());
  EXPECT_TRUE(meta("liar.bin").is_null());
}

// ---- signed reads (moto with auth enforced) -------------------------------------

class S3SecureTest : public S3TestBase {
 protected:
  S3SecureTest() : S3TestBase(&moto_environment->secure()) {}

  const json& user(const std::string& name) const {
    return moto_->credentials().at("users").at(name);
  }
  const json& session(const std::string& name) const {
    return moto_->credentials().at("sessions").at(name);
  }

  // Resolves pkg/secret.bin of private-models; "" when it worked, else the error.
  std::string try_secret(const std::string& sub) {
    try {
      e2s::Package package("s3://private-models/pkg", options(sub));
      const fs::path path = package.resolve("secret.bin");
      EXPECT_EQ(TempDir::read_file(path), kSecret);
      return "";
    } catch (const e2s::Error& e) {
      return std::string(to_string(e.code())) + ": " + e.what();
    }
  }
};

TEST_F(S3SecureTest, PrivateBucketRefusesAnonymousReads) {
  e2s::Package package("s3://private-models/pkg", options());
  const auto e = error_of([&] { package.resolve("secret.bin"); });
  EXPECT_EQ(e.code(), e2s::Errc::unauthorized) << e.what();
  EXPECT_TRUE(contains(e.what(), "AWS_ACCESS_KEY_ID")) << e.what();
  const auto listing = error_of([&] { package.list(); });
  EXPECT_EQ(listing.code(), e2s::Errc::unauthorized) << listing.what();
  EXPECT_TRUE(cached_files().empty());
}

TEST_F(S3SecureTest, KeysFromTheEnvironmentSign) {
  use_keys(user("alice"));
  e2s::Package package("s3://private-models/pkg", options());
  EXPECT_EQ(TempDir::read_file(package.resolve("secret.bin")), kSecret);
  EXPECT_EQ(TempDir::read_file(package.resolve("weights.bin")), secure_weights());
  EXPECT_EQ(meta("weights.bin").value("etag", ""), md5_hex(secure_weights()));
  const std::string secret = user("alice").at("secret_access_key");
  EXPECT_FALSE(contains(everything_cached(), secret));
}

TEST_F(S3SecureTest, ProfileFromASharedCredentialsFile) {
  const std::string key = user("alice").at("access_key_id");
  const std::string secret = user("alice").at("secret_access_key");
  const std::string file = home_
                               .write_file("elsewhere/credentials",
                                           "[default]\naws_access_key_id = AKIAWRONGWRONGWRONG1\n"
                                           "aws_secret_access_key = wrong\n\n[e2s]\n"
                                           "aws_access_key_id = " + key +
                                               "\naws_secret_access_key = " + secret + "\n")
                               .string();
  env_.set("AWS_SHARED_CREDENTIALS_FILE", file);
  // The default profile has wrong keys: refused.
  EXPECT_TRUE(contains(try_secret("a"), "unauthorized"));
  env_.set("AWS_PROFILE", "e2s");
  EXPECT_EQ(try_secret("b"), "");
}

TEST_F(S3SecureTest, KeysAndEndpointGivenInCodeWinOverTheEnvironment) {
  env_.set("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1");
  env_.set("AWS_SECRET_ACCESS_KEY", "wrong");
  env_.set("AWS_ENDPOINT_URL", "http://127.0.0.1:9");  // nothing listens there
  e2s::PackageOptions o = options();
  o.s3.endpoint_url = moto_->endpoint();
  o.s3.access_key_id = user("alice").at("access_key_id").get<std::string>();
  o.s3.secret_access_key = user("alice").at("secret_access_key").get<std::string>();
  e2s::Package package("s3://private-models/pkg", o);
  EXPECT_EQ(TempDir::read_file(package.resolve("secret.bin")), kSecret);
}

TEST_F(S3SecureTest, AProfileGivenInCodeIsReadInsteadOfTheEnvironmentsKeys) {
  const std::string file = home_
                               .write_file("tenant/credentials",
                                           "[tenant]\naws_access_key_id = " +
                                               user("alice").at("access_key_id").get<std::string>() +
                                               "\naws_secret_access_key = " +
                                               user("alice").at("secret_access_key").get<std::string>() + "\n")
                               .string();
  env_.set("AWS_SHARED_CREDENTIALS_FILE", file);
  env_.set("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG1");
  env_.set("AWS_SECRET_ACCESS_KEY", "wrong");
  e2s::PackageOptions o = options();
  o.s3.profile = "tenant";
  e2s::Package package("s3://private-models/pkg", o);
  EXPECT_EQ(TempDir::read_file(package.resolve("secret.bin")), kSecret);
}

TEST_F(S3SecureTest, DefaultCredentialsFileUnderHome) {
  home_.write_file(".aws/credentials",
                   "# written by the test\n[default]\naws_access_key_id = " +
                       user("alice").at("access_key_id").get<std::string>() +
                       "\naws_secret_access_key = " +
                       user("alice").at("secret_access_key").get<std::string>() + "\n");
  EXPECT_EQ(try_secret("a"), "");
}

TEST_F(S3SecureTest, EnvironmentKeysBeatTheCredentialsFile) {
  home_.write_file(".aws/credentials",
                   "[default]\naws_access_key_id = AKIAWRONGWRONGWRONG1\n"
                   "aws_secret_access_key = wrong\n");
  use_keys(user("alice"));
  EXPECT_EQ(try_secret("a"), "");
}

TEST_F(S3SecureTest, SessionCredentialsSendTheirToken) {
  use_keys(session("reader"));
  EXPECT_EQ(try_secret("a"), "");
  // The legacy name of the variable works as well.
  env_.unset("AWS_SESSION_TOKEN");
  env_.set("AWS_SECURITY_TOKEN", session("reader").at("session_token").get<std::string>());
  EXPECT_EQ(try_secret("b"), "");
}

TEST_F(S3SecureTest, SessionCredentialsFromAProfile) {
  home_.write_file(".aws/credentials",
                   "[default]\naws_access_key_id = " +
                       session("reader").at("access_key_id").get<std::string>() +
                       "\naws_secret_access_key = " +
                       session("reader").at("secret_access_key").get<std::string>() +
                       "\naws_session_token = " +
                       session("reader").at("session_token").get<std::string>() + "\n");
  EXPECT_EQ(try_secret("a"), "");
}

TEST_F(S3SecureTest, SessionKeysWithoutTheirTokenAreUnauthorized) {
  use_keys(session("reader"));
  env_.unset("AWS_SESSION_TOKEN");
  // moto: 403 InvalidAccessKeyId (a temporary key id is unknown without its token).
  EXPECT_TRUE(contains(try_secret("a"), "unauthorized: ")) << try_secret("b");
}

TEST_F(S3SecureTest, WrongSessionTokenIsUnauthorized) {
  use_keys(session("reader"));
  env_.set("AWS_SESSION_TOKEN", "not-the-token");
  // moto (as AWS): 400 <Code>InvalidToken</Code>.
  const std::string outcome = try_secret("a");
  EXPECT_EQ(outcome.substr(0, outcome.find(':')), "unauthorized") << outcome;
}

TEST_F(S3SecureTest, WrongSecretIsUnauthorizedWithAHintAndNeverShowsTheSecret) {
  const std::string wrong = "wrongSecret+/Kz9wrongSecret+/Kz9wrongSec";
  env_.set("AWS_ACCESS_KEY_ID", user("alice").at("access_key_id").get<std::string>());
  env_.set("AWS_SECRET_ACCESS_KEY", wrong);
  e2s::Package package("s3://private-models/pkg", options());
  const auto e = error_of([&] { package.resolve("secret.bin"); });
  EXPECT_EQ(e.code(), e2s::Errc::unauthorized) << e.what();
  EXPECT_EQ(e.http_status(), 403);
  const std::string message = e.what();
  EXPECT_TRUE(contains(message, "AWS_SECRET_ACCESS_KEY") || contains(message, "AWS_PROFILE"))
      << message;
  EXPECT_TRUE(contains(message, "s3://private-models/pkg")) << message;
  EXPECT_FALSE(contains(message, wrong)) << message;
  EXPECT_FALSE(contains(message, "wrongSecret")) << message;
  EXPECT_FALSE(contains(e.uri(), "wrongSecret")) << e.uri();
  EXPECT_TRUE(cached_files().empty());
  EXPECT_FALSE(contains(everything_cached(), "wrongSecret"));
  const auto listing = error_of([&] { package.list(); });
  EXPECT_EQ(listing.code(), e2s::Errc::unauthorized) << listing.what();
  EXPECT_FALSE(contains(listing.what(), "wrongSecret")) << listing.what();
}

TEST_F(S3SecureTest, UnknownAccessKeyIsUnauthorizedWithAHint) {
  env_.set("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNUNKNOWN00");
  env_.set("AWS_SECRET_ACCESS_KEY", "whatever");
  e2s::Package package("s3://private-models/pkg", options());
  const auto e = error_of([&] { package.resolve("secret.bin"); });
  EXPECT_EQ(e.code(), e2s::Errc::unauthorized) << e.what();
  EXPECT_TRUE(contains(e.what(), "AWS_ACCESS_KEY_ID") || contains(e.what(), "AWS_PROFILE"))
      << e.what();
}

TEST_F(S3SecureTest, AccessDeniedByPolicyIsUnauthorized) {
  use_keys(user("mallory"));
  e2s::Package package("s3://private-models/pkg", options());
  const auto e = error_of([&] { package.resolve("secret.bin"); });
  EXPECT_EQ(e.code(), e2s::Errc::unauthorized) << e.what();
  const auto listing = error_of([&] { package.list(); });
  EXPECT_EQ(listing.code(), e2s::Errc::unauthorized) << listing.what();
}

TEST_F(S3SecureTest, SignedNoSuchKeyAndNoSuchBucketAreNotFound) {
  use_keys(user("alice"));
  e2s::Package package("s3://private-models/pkg", options("a"));
  const auto e = error_of([&] { package.resolve("missing.bin"); });
  EXPECT_EQ(e.code(), e2s::Errc::not_found) << e.what();
  EXPECT_TRUE(contains(e.what(), "missing.bin")) << e.what();
  e2s::Package nowhere("s3://no-such-bucket/pkg", options("b"));
  const auto bucket = error_of([&] { nowhere.resolve("secret.bin"); });
  EXPECT_EQ(bucket.code(), e2s::Errc::not_found) << bucket.what();
  EXPECT_TRUE(contains(bucket.what(), "no-such-bucket")) << bucket.what();
}

TEST_F(S3SecureTest, SignedListingFollowsContinuationTokens) {
  use_keys(user("alice"));
  e2s::Package package("s3://private-models/many", options());
  const auto entries = package.list();
  ASSERT_EQ(entries.size(), static_cast<std::size_t>(kSecureManyKeys));
  EXPECT_TRUE(std::is_sorted(entries.begin(), entries.end(),
                             [](const auto& a, const auto& b) { return a.path < b.path; }));
  EXPECT_EQ(entries.front().path, "00000.txt");
  EXPECT_EQ(entries.back().path, "01004.txt");
}

TEST_F(S3SecureTest, AwkwardKeyNamesResolveAndListSigned) {
  use_keys(user("alice"));
  e2s::Package package("s3://private-models/pkg/odd", options());
  for (const auto& name : kAwkwardNames) {
    SCOPED_TRACE(name);
    try {
      EXPECT_EQ(TempDir::read_file(package.resolve(name)), name);
    } catch (const e2s::Error& e) {
      ADD_FAILURE() << e.what();
    }
  }
  std::vector<std::string> expected = kAwkwardNames;
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(paths(package.list()), expected);
}

// ---- on the wire (http_server.py as an S3-compatible endpoint) ------------------

class S3WireTest : public S3TestBase {
 protected:
  S3WireTest() : server_("http_server.py", {"--root", root_.path().string()}) {
    root_.write_file("wire-bucket/pkg/config.json", kConfig);
    root_.write_file("wire-bucket/pkg/weights.bin", weights());
    for (const auto& name : kAwkwardNames) root_.write_file("wire-bucket/pkg/odd/" + name, name);
    env_.set("AWS_ENDPOINT_URL", server_.url());
  }

  // Requests the server recorded for one object path (query ignored).
  std::vector<json> requests_for(const std::string& path) const {
    std::vector<json> out;
    const json stats = server_.stats();  // not a temporary: the loop keeps references into it
    for (const auto& request : stats.at("requests")) {
      const std::string target = request.at("path");
      if (target.substr(0, target.find('?')) == path) out.push_back(request);
    }
    return out;
  }

  std::vector<json> all_requests() const {
    return e2s::test::recorded_requests(server_);
  }

  // The region of the Credential scope of the first signed request.
  std::string signed_region() const {
    for (const auto& request : all_requests()) {
      const std::string auth = request.at("headers").value("authorization", "");
      const auto at = auth.find("Credential=");
      if (at == std::string::npos) continue;
      // Credential=AKID/YYYYMMDD/REGION/s3/aws4_request
      std::vector<std::string> parts;
      std::string scope = auth.substr(at + 11, auth.find(',', at) - at - 11);
      std::size_t start = 0;
      for (std::size_t slash; (slash = scope.find('/', start)) != std::string::npos;) {
        parts.push_back(scope.substr(start, slash - start));
        start = slash + 1;
      }
      parts.push_back(scope.substr(start));
      return parts.size() == 5 ? parts[2] : "malformed scope " + scope;
    }
    return "no signed request";
  }

  std::string resolve_config(const std::string& sub) {
    e2s::Package package("s3://wire-bucket/pkg", options(sub));
    return TempDir::read_file(package.resolve("config.json"));
  }

  static std::string error_xml(const std::string& code) {
    return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>" + code +
           "</Code><Message>injected</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>";
  }

  TempDir root_;
  TestServer server_;
};

TEST_F(S3WireTest, AnonymousRequestsArePathStyleAndCarryNoAuthorization) {
  EXPECT_EQ(resolve_config("a"), kConfig);
  const auto requests = all_requests();
  ASSERT_FALSE(requests.empty());
  for (const auto& request : requests) {
    EXPECT_EQ(request.at("path"), "/wire-bucket/pkg/config.json") << request.dump();
    const auto& headers = request.at("headers");
    EXPECT_FALSE(headers.contains("authorization")) << request.dump();
    EXPECT_FALSE(headers.contains("x-amz-security-token")) << request.dump();
  }
}

TEST_F(S3WireTest, ConfigFileWithoutCredentialsStaysAnonymous) {
  // A region, a profile and an endpoint-less config, but no keys anywhere.
  home_.write_file(".aws/config", "[default]\nregion = eu-west-1\n");
  home_.write_file(".aws/credentials", "[other]\naws_access_key_id = AKIAOTHER\n"
                                       "aws_secret_access_key = other\n");
  EXPECT_EQ(resolve_config("a"), kConfig);
  const auto requests = all_requests();
  ASSERT_FALSE(requests.empty());
  for (const auto& request : requests) {
    EXPECT_FALSE(request.at("headers").contains("authorization")) << request.dump();
  }
}

TEST_F(S3WireTest, SignedRequestsCarryTheScopeThePayloadHashAndNeverTheSecret) {
  const std::string secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  env_.set("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE");
  env_.set("AWS_SECRET_ACCESS_KEY", secret);
  EXPECT_EQ(resolve_config("a"), kConfig);
  const auto requests = all_requests();
  ASSERT_FALSE(requests.empty());
  char today[16];
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  std::strftime(today, sizeof today, "%Y%m%d", &utc);
  for (const auto& request : requests) {
    const auto& headers = request.at("headers");
    const std::string auth = headers.value("authorization", "");
    EXPECT_EQ(auth.rfind("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/", 0), 0u) << auth;
    EXPECT_TRUE(contains(auth, std::string("/") + today + "/us-east-1/s3/aws4_request")) << auth;
    EXPECT_TRUE(contains(auth, "SignedHeaders=")) << auth;
    EXPECT_TRUE(contains(auth, "x-amz-content-sha256")) << auth;
    EXPECT_TRUE(contains(auth, "x-amz-date")) << auth;
    EXPECT_TRUE(contains(auth, "Signature=")) << auth;
    EXPECT_EQ(headers.value("x-amz-content-sha256", ""), kEmptySha256) << request.dump();
    EXPECT_EQ(headers.value("x-amz-date", "").size(), 16u) << request.dump();
    EXPECT_FALSE(headers.contains("x-amz-security-token")) << request.dump();
    EXPECT_FALSE(contains(request.dump(), secret)) << request.dump();
  }
  EXPECT_FALSE(contains(everything_cached(), secret));
}

TEST_F(S3WireTest, SessionTokenIsSentAndSigned) {
  env_.set("AWS_ACCESS_KEY_ID", "ASIADEXAMPLE");
  env_.set("AWS_SECRET_ACCESS_KEY", "secret");
  env_.set("AWS_SESSION_TOKEN", "FQoGZXIvYXdzE+token/with=chars");
  EXPECT_EQ(resolve_config("a"), kConfig);
  const auto requests = all_requests();
  ASSERT_FALSE(requests.empty());
  for (const auto& request : requests) {
    const auto& headers = request.at("headers");
    EXPECT_EQ(headers.value("x-amz-security-token", ""), "FQoGZXIvYXdzE+token/with=chars");
    EXPECT_TRUE(contains(headers.value("authorization", ""), "x-amz-security-token"))
        << request.dump();
  }
}

TEST_F(S3WireTest, RegionPrecedence) {
  env_.set("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE");
  env_.set("AWS_SECRET_ACCESS_KEY", "secret");
  // Nothing set: us-east-1.
  resolve_config("a");
  EXPECT_EQ(signed_region(), "us-east-1");
  // The default profile's region in AWS_CONFIG_FILE.
  const std::string config =
      home_
          .write_file("conf/config",
                      "[default]\nregion = eu-west-1\n\n[profile e2s]\nregion = ap-south-2\n")
          .string();
  env_.set("AWS_CONFIG_FILE", config);
  server_.reset();
  resolve_config("b");
  EXPECT_EQ(signed_region(), "eu-west-1");
  // A named profile reads "[profile NAME]".
  env_.set("AWS_PROFILE", "e2s");
  server_.reset();
  resolve_config("c");
  EXPECT_EQ(signed_region(), "ap-south-2");
  // AWS_DEFAULT_REGION beats the file, AWS_REGION beats both.
  env_.set("AWS_DEFAULT_REGION", "sa-east-1");
  server_.reset();
  resolve_config("d");
  EXPECT_EQ(signed_region(), "sa-east-1");
  env_.set("AWS_REGION", "eu-central-2");
  server_.reset();
  resolve_config("e");
  EXPECT_EQ(signed_region(), "eu-central-2");
}

TEST_F(S3WireTest, ConfigFileUnderHomeGivesTheRegion) {
  env_.set("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE");
  env_.set("AWS_SECRET_ACCESS_KEY", "secret");
  home_.write_file(".aws/config", "[default]\nregion = ca-central-1\n");
  resolve_config("a");
  EXPECT_EQ(signed_region(), "ca-central-1");
}

TEST_F(S3WireTest, KeysArePercentEncodedOnceOnTheWire) {
  env_.set("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE");
  env_.set("AWS_SECRET_ACCESS_KEY", "secret");
  e2s::Package package("s3://wire-bucket/pkg", options());
  for (const auto& name : kAwkwardNames) {
    SCOPED_TRACE(name);
    server_.reset();
    EXPECT_EQ(TempDir::read_file(package.resolve("odd/" + name)), name);
    const auto requests = all_requests();
    ASSERT_FALSE(requests.empty());
    for (const auto& request : requests) {
      EXPECT_EQ(request.at("path"), "/wire-bucket/" + s3_encode("pkg/odd/" + name))
          << request.dump();
    }
  }
}

TEST_F(S3WireTest, SlowDownAndServerErrorsAreRetried) {
  server_.fault({{"path", "/wire-bucket/pkg/config.json"},
                 {"kind", "status"},
                 {"status", 500},
                 {"body", error_xml("InternalError")},
                 {"methods", {"HEAD"}}});
  server_.fault({{"path", "/wire-bucket/pkg/config.json"},
                 {"kind", "status"},
                 {"status", 503},
                 {"body", error_xml("SlowDown")},
                 {"times", 2},
                 {"methods", {"GET"}}});
  EXPECT_EQ(resolve_config("a"), kConfig);
  EXPECT_EQ(server_.count("HEAD", "/wire-bucket/pkg/config.json") +
                server_.count("GET", "/wire-bucket/pkg/config.json"),
            5u);
}

TEST_F(S3WireTest, ErrorCodesInTheXmlDecide) {
  const std::vector<std::pair<int, std::string>> unauthorized = {
      {400, "ExpiredToken"}, {403, "SignatureDoesNotMatch"}, {403, "InvalidAccessKeyId"},
      {403, "AccessDenied"}};
  int n = 0;
  for (const auto& [status, code] : unauthorized) {
    SCOPED_TRACE(code);
    server_.reset();
    server_.fault({{"path", "/wire-bucket/pkg/config.json"},
                   {"kind", "status"},
                   {"status", status},
                   {"body", error_xml(code)},
                   {"times", -1}});
    const auto e = error_of([&] { resolve_config("u" + std::to_string(n++)); });
    EXPECT_EQ(e.code(), e2s::Errc::unauthorized) << e.what();
    EXPECT_TRUE(contains(e.what(), "AWS_")) << e.what();
  }
  for (const std::string code : {"NoSuchKey", "NoSuchBucket"}) {
    SCOPED_TRACE(code);
    server_.reset();
    server_.fault({{"path", "/wire-bucket/pkg/config.json"},
                   {"kind", "status"},
                   {"status", 404},
                   {"body", error_xml(code)},
                   {"times", -1}});
    const auto e = error_of([&] { resolve_config("n" + std::to_string(n++)); });
    EXPECT_EQ(e.code(), e2s::Errc::not_found) << e.what();
  }
  EXPECT_TRUE(cached_files().empty());
}

TEST_F(S3WireTest, CorruptBodyFailsTheMd5Check) {
  server_.fault({{"path", "/wire-bucket/pkg/weights.bin"},
                 {"kind", "corrupt"},
                 {"times", -1},
                 {"methods", {"GET"}}});
  e2s::Package package("s3://wire-bucket/pkg", options());
  const auto e = error_of([&] { package.resolve("weights.bin"); });
  EXPECT_EQ(e.code(), e2s::Errc::integrity) << e.what();
  EXPECT_TRUE(cached_files().empty());
}

}  // namespace
