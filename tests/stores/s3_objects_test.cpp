// The S3 writes a site mirror makes (src/stores/s3_objects.hpp), and the
// client's request bodies under them, against the real moto S3 server
// (tests/servers/moto_s3.py): PUT with metadata and Content-MD5, multipart
// uploads and their abort, conditional creates, paged listings, bounded
// reads, and errors that name the object without a credential.
//
// Two moto instances are shared by every test of this binary and started on
// first use: "secure" (--auth: SigV4 and IAM enforced, so every signature,
// streamed bodies' included, is checked) and "strict" (no auth, parts of at
// least 8 MiB, so that a multipart upload of 5 MiB parts fails at its
// Complete, and a public bucket for anonymous reads).
//
// What moto 5.2.1 does, as the tests below pin down:
//   - If-None-Match: * on PUT and on CompleteMultipartUpload: 412
//     PreconditionFailed when the key exists, as AWS.
//   - Content-MD5: not checked (a wrong one is stored).
//   - x-amz-checksum-sha256: ignored alone; with x-amz-sdk-checksum-algorithm
//     stored and returned unchecked (a wrong one too).
// Servers without conditional writes (501 NotImplemented, or the header
// ignored) are moto with moto_s3.py's "if_none_match" bucket setting.
#include "stores/s3_objects.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "e2s/error.hpp"
#include "e2s/log.hpp"
#include "support/env_guard.hpp"
#include "support/fixtures.hpp"
#include "support/moto_server.hpp"
#include "support/temp_dir.hpp"
#include "util/hash.hpp"

namespace {

namespace fs = std::filesystem;
namespace http = e2s::detail::http;
using e2s::detail::S3Bucket;
using e2s::detail::S3Objects;
using e2s::test::contains;
using e2s::test::error_of;
using e2s::test::make_bytes;
using e2s::test::md5_hex;
using e2s::test::MotoServer;
using e2s::test::EnvGuard;
using e2s::test::TempDir;
using nlohmann::json;
using Put = S3Objects::Put;

constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;
constexpr const char* kBucket = "mirror";
constexpr const char* kPublicBucket = "public-mirror";
// Buckets of a server without conditional writes (moto_s3.py's "if_none_match").
constexpr const char* kRefusingBucket = "refuses-conditions";
constexpr const char* kIgnoringBucket = "ignores-conditions";

// ---- the shared moto instances ----------------------------------------------

class MotoEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    secure_.reset();
    strict_.reset();
  }

  // SigV4 and IAM enforced: writer may do anything, reader only read and
  // list, session "writer-session" anything.
  const MotoServer& secure() {
    if (!secure_) {
      const json read_only = {
          {"Version", "2012-10-17"},
          {"Statement",
           {{{"Effect", "Allow"}, {"Action", {"s3:GetObject", "s3:ListBucket"}}, {"Resource", "*"}}}}};
      const json setup = {{"buckets", {{{"name", kBucket}}}},
                          {"users", {{{"name", "writer"}}, {{"name", "reader"}, {"policy", read_only}}}},
                          {"sessions", {{{"name", "writer-session"}}}}};
      secure_ = std::make_unique<MotoServer>(setup, true);
    }
    return *secure_;
  }

  // No auth (signatures unchecked); parts of at least 8 MiB; a public
  // bucket; buckets that answer If-None-Match with 501, or ignore it.
  const MotoServer& strict() {
    if (!strict_) {
      const json setup = {{"buckets",
                           {{{"name", kBucket}},
                            {{"name", kPublicBucket}, {"public", true}},
                            {{"name", kRefusingBucket}, {"if_none_match", "refuse"}},
                            {{"name", kIgnoringBucket}, {"if_none_match", "ignore"}}}},
                          {"users", {{{"name", "writer"}}}}};
      strict_ = std::make_unique<MotoServer>(
          setup, false, std::vector<std::string>{"--min-part-size", std::to_string(8 * kMiB)});
    }
    return *strict_;
  }

 private:
  std::unique_ptr<MotoServer> secure_;
  std::unique_ptr<MotoServer> strict_;
};

MotoEnvironment* const moto_environment =
    static_cast<MotoEnvironment*>(::testing::AddGlobalTestEnvironment(new MotoEnvironment));

// ---- fixture --------------------------------------------------------------------

bool aws_variable(const std::string& name) { return name.rfind("AWS_", 0) == 0; }

// Every log line e2s writes while it lives.
class LogCapture {
 public:
  LogCapture() {
    e2s::set_log_handler(
        [this](e2s::LogLevel, std::string_view line) {
          std::lock_guard lock(mutex_);
          text_ += std::string(line) + "\n";
        },
        e2s::LogLevel::debug);
  }
  ~LogCapture() { e2s::set_log_handler({}); }
  std::string text() const {
    std::lock_guard lock(mutex_);
    return text_;
  }

 private:
  mutable std::mutex mutex_;
  std::string text_;
};

class S3ObjectsTest : public ::testing::Test {
 protected:
  explicit S3ObjectsTest(const MotoServer& moto = moto_environment->secure())
      : moto_(moto), env_(aws_variable) {
    // No ~/.aws of the machine's user, no proxy.
    env_.set("HOME", home_.path().string());
    for (const char* name :
         {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"}) {
      env_.unset(name);
    }
  }

  const json& user(const std::string& name) const { return moto_.credentials().at("users").at(name); }

  e2s::S3Options options_for(const json& keys) const {
    e2s::S3Options options;
    options.endpoint_url = moto_.endpoint();
    options.region = "us-east-1";
    if (!keys.is_null()) {
      options.access_key_id = keys.at("access_key_id").get<std::string>();
      options.secret_access_key = keys.at("secret_access_key").get<std::string>();
      if (keys.contains("session_token")) options.session_token = keys.at("session_token").get<std::string>();
    }
    return options;
  }

  // The bucket as `user_name` ("" for anonymous) sees it.
  S3Objects objects(const std::string& user_name = "writer", const std::string& bucket = kBucket) {
    return S3Objects(bucket, options_for(user_name.empty() ? json() : user(user_name)), client_, retrier_);
  }

  S3Bucket bucket(const std::string& user_name = "writer", const std::string& name = kBucket) const {
    return S3Bucket(name, e2s::detail::aws_settings(options_for(user(user_name))));
  }

  // The whole object, through the request the transfer engine would get.
  std::string download(const http::Request& request) {
    std::string body;
    const http::Result result = client_.perform(request, [&](const char* data, std::size_t size) {
      body.append(data, size);
      return true;
    });
    EXPECT_TRUE(http::is_success(result)) << result.response.status << " " << result.detail;
    return body;
  }

  // Multipart uploads of `key` moto still has open (ListMultipartUploads).
  int pending_uploads(const std::string& key, const std::string& bucket_name = kBucket) {
    const S3Bucket b = bucket("writer", bucket_name);
    const std::string listing = download(b.request(b.bucket_path(), "uploads="));
    const std::string needle = "<Key>" + key + "</Key>";
    int count = 0;
    for (auto at = listing.find(needle); at != std::string::npos; at = listing.find(needle, at + 1)) ++count;
    return count;
  }

  // Calls `action` once moto shows an open upload of `key` (from another thread).
  std::thread when_upload_starts(const std::string& key, std::function<void()> action,
                                 const std::string& bucket_name = kBucket) {
    return std::thread([this, key, bucket_name, action = std::move(action)] {
      const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (pending_uploads(key, bucket_name) == 0 && std::chrono::steady_clock::now() < give_up) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      action();
    });
  }

  const MotoServer& moto_;
  EnvGuard env_;
  TempDir home_;
  TempDir files_;
  http::Client client_;
  // Retries 1 ms apart: failures cost no waiting.
  e2s::detail::Retrier retrier_{
      e2s::RetryOptions{3, std::chrono::milliseconds(1), std::chrono::milliseconds(20)}};
};

class S3ObjectsStrictTest : public S3ObjectsTest {
 protected:
  S3ObjectsStrictTest() : S3ObjectsTest(moto_environment->strict()) {}
};

// ---- the client's request bodies -------------------------------------------------

TEST_F(S3ObjectsTest, ClientPutsABodyFromMemorySignedWithItsHash) {
  const S3Bucket b = bucket();
  const std::string bytes = make_bytes(3000, 1);
  http::Request put = b.request(b.object_path("client/memory.bin"), "", e2s::detail::sha256_hex(bytes));
  put.method = "PUT";
  put.body = bytes;
  const http::Result result = client_.perform(put);
  ASSERT_TRUE(http::is_success(result)) << result.response.status << " " << result.response.error_body;
  EXPECT_EQ(download(b.request(b.object_path("client/memory.bin"), "")), bytes);
}

TEST_F(S3ObjectsTest, ClientPutsAFileRangeStreamedUnsigned) {
  const S3Bucket b = bucket();
  const std::string bytes = make_bytes(10000, 2);
  const fs::path file = files_.write_file("range.bin", bytes);
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  http::Request put = b.request(b.object_path("client/range.bin"), "", "UNSIGNED-PAYLOAD");
  put.method = "PUT";
  put.body = http::FileRange{fd, 1000, 5000};
  const http::Result result = client_.perform(put);
  // The same request again: the body is sent from its start each time.
  const http::Result again = client_.perform(put);
  ::close(fd);
  ASSERT_TRUE(http::is_success(result)) << result.response.status << " " << result.response.error_body;
  ASSERT_TRUE(http::is_success(again)) << again.response.status << " " << again.response.error_body;
  EXPECT_TRUE(download(b.request(b.object_path("client/range.bin"), "")) == bytes.substr(1000, 5000));
}

TEST_F(S3ObjectsTest, ClientPostsAndDeletes) {
  const S3Bucket b = bucket();
  http::Request post = b.request(b.object_path("client/posted.bin"), "uploads=");
  post.method = "POST";
  std::string reply;
  const http::Result created = client_.perform(post, [&](const char* data, std::size_t size) {
    reply.append(data, size);
    return true;
  });
  ASSERT_TRUE(http::is_success(created)) << created.response.status << " " << created.response.error_body;
  const auto begin = reply.find("<UploadId>");
  const auto end = reply.find("</UploadId>");
  ASSERT_NE(begin, std::string::npos) << reply;
  const std::string upload_id = reply.substr(begin + 10, end - begin - 10);
  EXPECT_EQ(pending_uploads("client/posted.bin"), 1);

  http::Request remove = b.request(b.object_path("client/posted.bin"), "uploadId=" + upload_id);
  remove.method = "DELETE";
  const http::Result deleted = client_.perform(remove);
  EXPECT_EQ(deleted.response.status, 204) << deleted.response.error_body;
  EXPECT_EQ(pending_uploads("client/posted.bin"), 0);
}

TEST_F(S3ObjectsTest, ClientFailsABodyWhoseFileEndsEarly) {
  const S3Bucket b = bucket();
  const fs::path file = files_.write_file("short.bin", make_bytes(1000, 3));
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  http::Request put = b.request(b.object_path("client/short.bin"), "", "UNSIGNED-PAYLOAD");
  put.method = "PUT";
  put.body = http::FileRange{fd, 500, 1000};  // 500 bytes past the end
  const http::Result result = client_.perform(put);
  ::close(fd);
  EXPECT_EQ(result.transport, http::Transport::aborted);
  EXPECT_TRUE(contains(result.detail, "ended 500 bytes before")) << result.detail;
  EXPECT_FALSE(objects().head("client/short.bin"));
}

TEST_F(S3ObjectsTest, ClientRefusesBodiesItCannotSendRight) {
  const S3Bucket b = bucket();
  http::Request get = b.request(b.object_path("client/x.bin"), "");
  get.body = std::string("x");
  EXPECT_EQ(client_.perform(get).transport, http::Transport::other);
  // Signed without x-amz-content-sha256, libcurl 7.88.1 would sign the hash
  // of an empty body.
  http::Request put = get;
  put.method = "PUT";
  put.headers.clear();
  const http::Result unsigned_payload = client_.perform(put);
  EXPECT_EQ(unsigned_payload.transport, http::Transport::other);
  EXPECT_TRUE(contains(unsigned_payload.detail, "x-amz-content-sha256")) << unsigned_payload.detail;
  EXPECT_FALSE(objects().head("client/x.bin"));
}

// ---- S3Objects ---------------------------------------------------------------------

TEST_F(S3ObjectsTest, PutAndHeadRoundTripWithMetadata) {
  S3Objects mirror = objects();
  const std::string bytes = make_bytes(70000, 4);
  const fs::path file = files_.write_file("weights.bin", bytes);
  const std::map<std::string, std::string> metadata = {
      {"sha256", e2s::detail::sha256_hex(bytes)}, {"source", "hf://org/model@abc/weights.bin"}};
  EXPECT_EQ(mirror.put_file("pkg/weights.bin", file, metadata, false), Put::created);

  const auto info = mirror.head("pkg/weights.bin");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->size, bytes.size());
  EXPECT_EQ(info->etag, md5_hex(bytes));  // one PUT: the MD5
  EXPECT_EQ(info->metadata, metadata);
  EXPECT_TRUE(download(mirror.get_request("pkg/weights.bin")) == bytes);

  EXPECT_EQ(mirror.put_text("pkg/record.json", "{\"a\": 1}\n", {{"kind", "record"}}, false), Put::created);
  EXPECT_EQ(mirror.get_text("pkg/record.json", 100), "{\"a\": 1}\n");
  EXPECT_EQ(mirror.head("pkg/record.json")->metadata,
            (std::map<std::string, std::string>{{"kind", "record"}}));
  EXPECT_FALSE(mirror.head("pkg/missing.bin"));
}

TEST_F(S3ObjectsTest, AnEmptyFileIsOnePut) {
  S3Objects mirror = objects();
  const fs::path file = files_.write_file("empty.bin", "");
  EXPECT_EQ(mirror.put_file("pkg/empty.bin", file, {}, false, 0), Put::created);
  const auto info = mirror.head("pkg/empty.bin");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->size, 0u);
  EXPECT_EQ(info->etag, md5_hex(""));
}

TEST_F(S3ObjectsTest, GetTextIsBounded) {
  S3Objects mirror = objects();
  const std::string text(100, 'x');
  mirror.put_text("bounded.txt", text, {}, false);
  EXPECT_EQ(mirror.get_text("bounded.txt", 100), text);
  const auto e = error_of([&] { mirror.get_text("bounded.txt", 99); });
  EXPECT_EQ(e.code(), e2s::Errc::other) << e.what();
  EXPECT_TRUE(contains(e.what(), "s3://mirror/bounded.txt")) << e.what();
  EXPECT_FALSE(mirror.get_text("no-such.txt", 100));
}

TEST_F(S3ObjectsTest, MultipartUploadOfFiveMiBParts) {
  S3Objects mirror = objects();
  const std::string bytes = make_bytes(12 * kMiB + 12345, 5);
  const fs::path file = files_.write_file("big.bin", bytes);
  EXPECT_EQ(mirror.put_file("pkg/big.bin", file, {{"sha256", "abc"}}, false, 5 * kMiB, 5 * kMiB),
            Put::created);

  const auto info = mirror.head("pkg/big.bin");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->size, bytes.size());
  EXPECT_EQ(info->metadata, (std::map<std::string, std::string>{{"sha256", "abc"}}));
  // md5 of the parts' binary md5s, then "-<parts>".
  std::string part_digests;
  for (std::size_t offset = 0; offset < bytes.size(); offset += 5 * kMiB) {
    const std::string hex = md5_hex(bytes.substr(offset, 5 * kMiB));
    for (std::size_t i = 0; i < hex.size(); i += 2)
      part_digests.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  EXPECT_EQ(info->etag, md5_hex(part_digests) + "-3");
  EXPECT_TRUE(download(mirror.get_request("pkg/big.bin")) == bytes);
  EXPECT_EQ(pending_uploads("pkg/big.bin"), 0);
}

TEST_F(S3ObjectsTest, AFileThatShrinksMidUploadIsAbortedWithoutATrace) {
  S3Objects mirror = objects();
  const fs::path file = files_.write_file("shrinking.bin", make_bytes(25 * kMiB, 6));
  std::thread shrink = when_upload_starts("pkg/shrinking.bin", [&] { fs::resize_file(file, kMiB); });
  const auto e = error_of([&] { mirror.put_file("pkg/shrinking.bin", file, {}, false, 5 * kMiB, 5 * kMiB); });
  shrink.join();
  EXPECT_EQ(e.code(), e2s::Errc::io) << e.what();
  EXPECT_TRUE(contains(e.what(), "shrinking.bin")) << e.what();
  EXPECT_TRUE(contains(e.what(), "s3://mirror/pkg/shrinking.bin")) << e.what();
  EXPECT_FALSE(mirror.head("pkg/shrinking.bin"));
  EXPECT_EQ(pending_uploads("pkg/shrinking.bin"), 0);
}

TEST_F(S3ObjectsTest, ConditionalCreateFindsTheObjectThere) {
  S3Objects mirror = objects();
  EXPECT_EQ(mirror.put_text("cond/a.txt", "first", {}, true), Put::created);
  EXPECT_EQ(mirror.put_text("cond/a.txt", "second", {}, true), Put::already_there);
  EXPECT_EQ(mirror.get_text("cond/a.txt", 100), "first");

  const fs::path file = files_.write_file("cond.bin", make_bytes(11 * kMiB, 7));
  EXPECT_EQ(mirror.put_file("cond/b.bin", file, {}, true, 5 * kMiB, 5 * kMiB), Put::created);
  EXPECT_EQ(mirror.put_file("cond/b.bin", file, {}, true, 5 * kMiB, 5 * kMiB), Put::already_there);
  EXPECT_EQ(pending_uploads("cond/b.bin"), 0);
  // Without the condition the object is replaced.
  EXPECT_EQ(mirror.put_text("cond/a.txt", "third", {}, false), Put::created);
  EXPECT_EQ(mirror.get_text("cond/a.txt", 100), "third");
}

TEST_F(S3ObjectsTest, AWriterRacingAMultipartUploadIsCaughtAtTheComplete) {
  // The HEAD before the upload finds nothing; another writer then creates
  // the key; moto refuses the Complete with 412 and the upload is aborted.
  S3Objects mirror = objects();
  S3Objects other = objects();
  const fs::path file = files_.write_file("raced.bin", make_bytes(25 * kMiB, 8));
  std::thread racer =
      when_upload_starts("cond/raced.bin", [&] { other.put_text("cond/raced.bin", "theirs", {}, false); });
  const Put outcome = mirror.put_file("cond/raced.bin", file, {}, true, 5 * kMiB, 5 * kMiB);
  racer.join();
  EXPECT_EQ(outcome, Put::already_there);
  EXPECT_EQ(mirror.get_text("cond/raced.bin", 100), "theirs");
  EXPECT_EQ(pending_uploads("cond/raced.bin"), 0);
}

TEST_F(S3ObjectsTest, MotoRefusesIfNoneMatchOnAnExistingKeyWith412) {
  const S3Bucket b = bucket();
  auto put = [&](const std::string& key) {
    http::Request request = b.request(b.object_path(key), "", e2s::detail::sha256_hex("x"));
    request.method = "PUT";
    request.headers.push_back("If-None-Match: *");
    request.body = std::string("x");
    return client_.perform(request);
  };
  EXPECT_EQ(put("moto/inm.txt").response.status, 200);
  const http::Result again = put("moto/inm.txt");
  EXPECT_EQ(again.response.status, 412);
  EXPECT_TRUE(contains(again.response.error_body, "<Code>PreconditionFailed</Code>"))
      << again.response.error_body;
}

TEST_F(S3ObjectsTest, MotoChecksNeitherContentMd5NorSha256Checksums) {
  const S3Bucket b = bucket();
  const std::string wrong_sha256 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
  auto put = [&](const std::string& key, const std::vector<std::string>& headers) {
    http::Request request = b.request(b.object_path(key), "", e2s::detail::sha256_hex("x"));
    request.method = "PUT";
    request.headers.insert(request.headers.end(), headers.begin(), headers.end());
    request.body = std::string("x");
    return client_.perform(request).response.status;
  };
  auto checksum_of = [&](const std::string& key) {
    http::Request head = b.request(b.object_path(key), "");
    head.method = "HEAD";
    head.headers.push_back("x-amz-checksum-mode: ENABLED");
    return client_.perform(head).response.header("x-amz-checksum-sha256");
  };
  EXPECT_EQ(put("moto/md5.txt", {"Content-MD5: AAAAAAAAAAAAAAAAAAAAAA=="}), 200);  // AWS: 400 BadDigest
  EXPECT_EQ(put("moto/sha-alone.txt", {"x-amz-checksum-sha256: " + wrong_sha256}), 200);
  EXPECT_EQ(checksum_of("moto/sha-alone.txt"), "");
  EXPECT_EQ(put("moto/sha-sdk.txt",
                {"x-amz-checksum-sha256: " + wrong_sha256, "x-amz-sdk-checksum-algorithm: SHA256"}),
            200);
  EXPECT_EQ(checksum_of("moto/sha-sdk.txt"), wrong_sha256);
}

TEST_F(S3ObjectsTest, ListFollowsContinuationTokens) {
  S3Objects mirror = objects();
  std::vector<std::string> expected;
  for (int i = 0; i < 7; ++i) {
    const std::string key = "listed/" + std::to_string(i) + " x+y.txt";  // encoded on the wire
    mirror.put_text(key, "k", {}, false);
    expected.push_back(key);
  }
  mirror.put_text("listed-not/x.txt", "k", {}, false);
  // moto honours max-keys: pages of 3 keys take three requests.
  const S3Bucket b = bucket();
  const std::string first_page =
      download(b.request(b.bucket_path(), e2s::detail::s3_list_query("listed/", "", 3)));
  EXPECT_TRUE(contains(first_page, "<IsTruncated>true</IsTruncated>")) << first_page;
  EXPECT_EQ(mirror.list("listed/", 3), expected);
  EXPECT_EQ(mirror.list("listed/"), expected);
  EXPECT_TRUE(mirror.list("nothing-here/").empty());
}

TEST_F(S3ObjectsTest, RemoveDeletesAndAMissingKeyIsFine) {
  S3Objects mirror = objects();
  mirror.put_text("gone.txt", "bye", {}, false);
  mirror.remove("gone.txt");
  EXPECT_FALSE(mirror.head("gone.txt"));
  mirror.remove("gone.txt");
}

TEST_F(S3ObjectsTest, SessionCredentialsWrite) {
  const json& keys = moto_.credentials().at("sessions").at("writer-session");
  S3Objects mirror(kBucket, options_for(keys), client_, retrier_);
  EXPECT_EQ(mirror.put_text("session.txt", "s", {}, false), Put::created);
  EXPECT_EQ(mirror.get_text("session.txt", 10), "s");
}

TEST_F(S3ObjectsTest, InvalidMetadataIsRefusedBeforeAnythingIsSent) {
  S3Objects mirror = objects();
  const std::map<std::string, std::string> refused = {
      {"Upper", "v"}, {"with space", "v"}, {"ok", "line\r\nInjected: 1"}, {"ok2", " padded"}, {"", "v"}};
  for (const auto& [name, value] : refused) {
    const auto e = error_of([&] { mirror.put_text("meta/bad.txt", "x", {{name, value}}, false); });
    EXPECT_EQ(e.code(), e2s::Errc::other) << e.what();
    EXPECT_FALSE(contains(e.what(), "Injected")) << e.what();
  }
  EXPECT_FALSE(mirror.head("meta/bad.txt"));
}

TEST_F(S3ObjectsTest, ErrorsNameTheObjectAndNeverACredential) {
  LogCapture log;
  const std::string secret = user("reader").at("secret_access_key").get<std::string>();
  const std::string writer_secret = user("writer").at("secret_access_key").get<std::string>();
  S3Objects reader = objects("reader");
  const auto denied = error_of([&] { reader.put_text("denied.txt", "x", {}, false); });
  EXPECT_EQ(denied.code(), e2s::Errc::unauthorized) << denied.what();
  EXPECT_TRUE(contains(denied.what(), "s3://mirror/denied.txt")) << denied.what();
  EXPECT_TRUE(contains(denied.what(), "mirror")) << denied.what();
  EXPECT_TRUE(contains(denied.what(), "AccessDenied")) << denied.what();

  const fs::path file = files_.write_file("denied.bin", make_bytes(6 * kMiB, 9));
  const auto denied_parts = error_of([&] { reader.put_file("denied.bin", file, {}, false, 5 * kMiB); });
  EXPECT_EQ(denied_parts.code(), e2s::Errc::unauthorized) << denied_parts.what();

  e2s::S3Options wrong = options_for(user("writer"));
  wrong.secret_access_key = "wrongSecret+/Kz9wrongSecret+/Kz9wrongSec";
  S3Objects forger(kBucket, wrong, client_, retrier_);
  const auto forged = error_of([&] { forger.put_text("forged.txt", "x", {}, false); });
  EXPECT_EQ(forged.code(), e2s::Errc::unauthorized) << forged.what();
  EXPECT_TRUE(contains(forged.what(), "SignatureDoesNotMatch")) << forged.what();

  // What a successful write stores is what was asked for, nothing more.
  S3Objects mirror = objects();
  mirror.put_text("clean.txt", "x", {{"a", "b"}}, false);
  EXPECT_EQ(mirror.head("clean.txt")->metadata, (std::map<std::string, std::string>{{"a", "b"}}));

  for (const std::string& text : {std::string(denied.what()), std::string(denied_parts.what()),
                                  std::string(forged.what()), log.text()}) {
    EXPECT_FALSE(contains(text, secret)) << text;
    EXPECT_FALSE(contains(text, writer_secret)) << text;
    EXPECT_FALSE(contains(text, "wrongSecret")) << text;
  }
}

TEST_F(S3ObjectsTest, AnonymousWritesToAnAuthenticatedBucketAreUnauthorized) {
  S3Objects anonymous = objects("");
  const auto e = error_of([&] { anonymous.put_text("anon.txt", "x", {}, false); });
  EXPECT_EQ(e.code(), e2s::Errc::unauthorized) << e.what();
  EXPECT_TRUE(contains(e.what(), "AWS_ACCESS_KEY_ID")) << e.what();
}

TEST_F(S3ObjectsStrictTest, ARefusedCompleteIsAbortedWithoutATrace) {
  // Parts of 5 MiB where this moto wants 8: the Complete fails (EntityTooSmall).
  S3Objects mirror = objects();
  const fs::path file = files_.write_file("small-parts.bin", make_bytes(12 * kMiB, 10));
  const auto e = error_of([&] { mirror.put_file("small-parts.bin", file, {}, false, 5 * kMiB, 5 * kMiB); });
  EXPECT_EQ(e.code(), e2s::Errc::other) << e.what();
  EXPECT_TRUE(contains(e.what(), "EntityTooSmall")) << e.what();
  EXPECT_TRUE(contains(e.what(), "s3://mirror/small-parts.bin")) << e.what();
  EXPECT_FALSE(mirror.head("small-parts.bin"));
  EXPECT_EQ(pending_uploads("small-parts.bin"), 0);
}

TEST_F(S3ObjectsStrictTest, APublicObjectIsReadAnonymously) {
  objects("writer", kPublicBucket).put_text("open.txt", "public bytes", {{"k", "v"}}, false);
  S3Objects anonymous = objects("", kPublicBucket);
  const http::Request request = anonymous.get_request("open.txt");
  EXPECT_FALSE(request.aws_sigv4);
  EXPECT_EQ(download(request), "public bytes");
  EXPECT_EQ(anonymous.get_text("open.txt", 100), "public bytes");
  const auto info = anonymous.head("open.txt");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->metadata, (std::map<std::string, std::string>{{"k", "v"}}));
}

}  // namespace

TEST_F(S3ObjectsStrictTest, AServerThatRefusesIfNoneMatchGetsThePlainWriteAfterTheHead) {
  LogCapture log;
  S3Objects mirror = objects("writer", kRefusingBucket);
  EXPECT_EQ(mirror.put_text("a.txt", "first", {}, true), Put::created);
  EXPECT_TRUE(contains(log.text(), "refused If-None-Match")) << log.text();
  EXPECT_EQ(mirror.put_text("a.txt", "second", {}, true), Put::already_there);
  EXPECT_EQ(mirror.get_text("a.txt", 100), "first");

  // A refused Complete is sent again without the header.
  S3Objects fresh = objects("writer", kRefusingBucket);
  const std::string bytes = make_bytes(17 * kMiB, 11);
  const fs::path file = files_.write_file("refused.bin", bytes);
  EXPECT_EQ(fresh.put_file("b.bin", file, {}, true, 8 * kMiB, 8 * kMiB), Put::created);
  EXPECT_TRUE(download(fresh.get_request("b.bin")) == bytes);
  EXPECT_EQ(pending_uploads("b.bin", kRefusingBucket), 0);
}

TEST_F(S3ObjectsStrictTest, AServerThatIgnoresIfNoneMatchReliesOnTheHead) {
  S3Objects mirror = objects("writer", kIgnoringBucket);
  EXPECT_EQ(mirror.put_text("a.txt", "first", {}, true), Put::created);
  EXPECT_EQ(mirror.put_text("a.txt", "second", {}, true), Put::already_there);
  EXPECT_EQ(mirror.get_text("a.txt", 100), "first");

  // ... which a writer racing the upload passes: there the last write wins.
  S3Objects other = objects("writer", kIgnoringBucket);
  const std::string bytes = make_bytes(25 * kMiB, 12);
  const fs::path file = files_.write_file("ignored.bin", bytes);
  std::thread racer = when_upload_starts(
      "raced.bin", [&] { other.put_text("raced.bin", "theirs", {}, false); }, kIgnoringBucket);
  const Put outcome = mirror.put_file("raced.bin", file, {}, true, 8 * kMiB, 8 * kMiB);
  racer.join();
  EXPECT_EQ(outcome, Put::created);
  EXPECT_EQ(mirror.head("raced.bin")->size, bytes.size());
}
