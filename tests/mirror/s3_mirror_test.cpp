// An s3:// site mirror on the real moto_server, with the fake Hub as the
// upstream: push and hit, a tampered object, offline nodes reading refs,
// credentials kept out of object metadata, and fan-in through the mirror's
// lease when several nodes miss one file at once. One process, one moto.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "e2s/error.hpp"
#include "e2s/package.hpp"
#include "http/client.hpp"
#include "http/retry.hpp"
#include "safety/safety_env.hpp"
#include "stores/s3_objects.hpp"
#include "support/env_guard.hpp"
#include "support/fixtures.hpp"
#include "support/moto_server.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"
#include "util/hash.hpp"

namespace {

namespace fs = std::filesystem;
using e2s::test::make_bytes;
using e2s::test::MotoServer;
using e2s::test::TempDir;
using e2s::test::TestServer;

constexpr const char* kBucket = "site-mirror";

class MotoEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { moto_.reset(); }
  const MotoServer& moto() {
    if (!moto_) moto_ = std::make_unique<MotoServer>(nlohmann::json{{"buckets", {{{"name", kBucket}}}}});
    return *moto_;
  }

 private:
  std::unique_ptr<MotoServer> moto_;
};
MotoEnvironment* const moto_environment =
    static_cast<MotoEnvironment*>(::testing::AddGlobalTestEnvironment(new MotoEnvironment));

std::string sha1_hex(const std::string& text) {
  e2s::detail::Digest digest(e2s::detail::DigestAlgorithm::sha1);
  digest.update(text.data(), text.size());
  return digest.hex_final();
}

class S3MirrorTest : public ::testing::Test {
 protected:
  S3MirrorTest() : env_(e2s::test::safety::scrubbed) {
    env_.set("HOME", home_.path().string());  // no ~/.aws of the machine's user
    env_.set("E2S_HF_CACHE", "off");
    repos_.write_file("models/acme/w/main/weights.bin", weights_);
    repos_.write_file("models/acme/w/main/config.json", config_);
    hub_ = std::make_unique<TestServer>("hf_server.py", std::vector<std::string>{"--root", repos_.path().string()});
    env_.set("HF_ENDPOINT", hub_->url());
    // A fresh prefix per test: moto lives for the whole process.
    prefix_ = "t" + std::to_string(++counter_);
  }

  std::string mirror_url() const { return std::string("s3://") + kBucket + "/" + prefix_; }
  static std::string commit() { return sha1_hex("models/acme/w/main"); }

  e2s::PackageOptions node(const std::string& name, bool push = false) const {
    e2s::PackageOptions o = e2s::test::quick_retry_options(caches_.path() / name);
    o.mirror.urls = std::vector<std::string>{mirror_url()};
    o.mirror.push = push;
    o.s3.endpoint_url = moto_environment->moto().endpoint();
    o.s3.region = "us-east-1";
    o.s3.access_key_id = "AKIAMIRRORTEST0000";
    o.s3.secret_access_key = "mirror-secret-never-stored";
    return o;
  }

  // The bucket, as a test looks at it.
  e2s::detail::S3Objects objects() {
    e2s::S3Options options = node("x").s3;
    return e2s::detail::S3Objects(kBucket, options, client_, retrier_);
  }
  std::string key(const std::string& file) const { return prefix_ + "/hf/models/acme/w/" + commit() + "/" + file; }

  // Bytes the Hub and its CDN sent for `file`.
  std::uint64_t upstream_bytes() const { return hub_->body_bytes(); }

  e2s::test::EnvGuard env_;
  TempDir home_, repos_, caches_;
  const std::string weights_ = make_bytes(4 << 20, 31);
  const std::string config_ = R"({"channels": 4})";
  std::unique_ptr<TestServer> hub_;
  std::string prefix_;
  static inline int counter_ = 0;
  e2s::detail::http::Client client_{e2s::detail::http::ClientOptions{}};
  e2s::detail::Retrier retrier_{e2s::RetryOptions{}, e2s::detail::RetryBudget{std::chrono::milliseconds(30000), 0}};
};

TEST_F(S3MirrorTest, APushedFileIsReadFromTheMirrorWithItsRecord) {
  ASSERT_TRUE(TempDir::read_file(e2s::Package("hf://acme/w", node("a", true)).resolve("weights.bin")) == weights_);
  const auto info = objects().head(key("weights.bin"));
  ASSERT_TRUE(info);
  EXPECT_EQ(info->metadata.at("sha256"), e2s::detail::sha256_hex(weights_));
  EXPECT_EQ(info->metadata.at("size"), std::to_string(weights_.size()));
  EXPECT_EQ(info->metadata.at("upstream-version"), commit());
  for (const auto& [name, value] : info->metadata) {
    EXPECT_EQ(value.find("AKIAMIRRORTEST"), std::string::npos) << name;
    EXPECT_EQ(value.find("mirror-secret"), std::string::npos) << name;
  }

  hub_->reset();
  e2s::PackageOptions b = node("b");
  e2s::Origin origin = e2s::Origin::cache;
  b.on_resolved = [&](const e2s::Resolved& resolved) { origin = resolved.origin; };
  EXPECT_TRUE(TempDir::read_file(e2s::Package("hf://acme/w", b).resolve("weights.bin")) == weights_);
  EXPECT_EQ(origin, e2s::Origin::mirror);
  EXPECT_EQ(upstream_bytes(), 0u) << "one HEAD for the commit, no bytes";
}

TEST_F(S3MirrorTest, ATamperedObjectIsSkippedAndTheUpstreamUsed) {
  ASSERT_TRUE(TempDir::read_file(e2s::Package("hf://acme/w", node("a", true)).resolve("weights.bin")) == weights_);
  // Other bytes under the same record.
  std::string bad = weights_;
  bad[4096] ^= 1;
  TempDir scratch;
  const fs::path file = scratch.write_file("bad.bin", bad);
  const auto info = objects().head(key("weights.bin"));
  ASSERT_TRUE(info);
  objects().put_file(key("weights.bin"), file, info->metadata, /*if_absent=*/false);

  hub_->reset();
  const fs::path path = e2s::Package("hf://acme/w", node("b")).resolve("weights.bin");
  EXPECT_TRUE(TempDir::read_file(path) == weights_);
  EXPECT_GE(upstream_bytes(), weights_.size()) << "fetched upstream instead";
}

TEST_F(S3MirrorTest, AnOfflineNodeFindsABranchThroughTheMirrorsRefs) {
  ASSERT_EQ(TempDir::read_file(e2s::Package("hf://acme/w", node("a", true)).resolve("config.json")), config_);
  EXPECT_EQ(objects().get_text(prefix_ + "/hf/models/acme/w/refs/main", 100), commit());
  hub_->reset();
  e2s::PackageOptions offline = node("b");
  offline.offline = true;
  EXPECT_EQ(TempDir::read_file(e2s::Package("hf://acme/w", offline).resolve("config.json")), config_);
  EXPECT_TRUE(e2s::test::recorded_requests(*hub_).empty()) << "zero upstream requests";
}

// The branch moves to a new commit with new bytes: the mirror's copy of the
// old commit is not the file any more.
TEST_F(S3MirrorTest, ABranchThatMovedIsNotServedTheOldCommit) {
  ASSERT_EQ(TempDir::read_file(e2s::Package("hf://acme/w", node("a", true)).resolve("config.json")), config_);
  const std::string moved = R"({"channels": 5})";
  repos_.write_file("models/acme/w/v2/config.json", moved);
  repos_.write_file("models/acme/w/repo.json", R"({"revisions": {"main": "v2"}})");
  e2s::PackageOptions b = node("b");
  e2s::Origin origin = e2s::Origin::cache;
  b.on_resolved = [&](const e2s::Resolved& resolved) { origin = resolved.origin; };
  EXPECT_EQ(TempDir::read_file(e2s::Package("hf://acme/w", b).resolve("config.json")), moved);
  EXPECT_EQ(origin, e2s::Origin::upstream);
  // The old commit, pinned, is still served from the mirror.
  EXPECT_EQ(TempDir::read_file(e2s::Package("hf://acme/w@" + commit(), node("c")).resolve("config.json")), config_);
}

// Eight nodes miss the same file at once: the lease lets one go upstream
// while the others wait for its copy in the mirror.
TEST_F(S3MirrorTest, NodesMissingAFileAtOnceFetchItUpstreamAboutOnce) {
  std::vector<std::thread> nodes;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    nodes.emplace_back([&, i] {
      const fs::path path = e2s::Package("hf://acme/w", node("n" + std::to_string(i), true)).resolve("weights.bin");
      if (TempDir::read_file(path) == weights_) ++ok;
    });
  }
  for (auto& thread : nodes) thread.join();
  EXPECT_EQ(ok.load(), 8);
  EXPECT_LE(upstream_bytes(), weights_.size() * 2) << "not eight times the file";
}

TEST_F(S3MirrorTest, PushingAFileTwiceLeavesOneObject) {
  e2s::Package a("hf://acme/w", node("a"));
  const auto first = a.push_to_mirror({"config.json"});
  EXPECT_EQ(first.uploaded, 1u);
  const auto again = e2s::Package("hf://acme/w", node("b")).push_to_mirror({"config.json"});
  EXPECT_EQ(again.uploaded, 0u);
  EXPECT_EQ(again.present, 1u);
  const auto listed = a.mirror_list();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].path, "config.json");
  EXPECT_EQ(listed[0].size, config_.size());
}

}  // namespace
