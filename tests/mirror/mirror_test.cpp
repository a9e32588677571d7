// The site mirror tier (README, "Running on a cluster"), with folder and
// http(s) mirrors against the loopback fakes as upstreams: hit, miss and
// push, a tampered mirror copy, a moved version, offline nodes, and fan-in
// through the mirror's lease. Each "node" is a Package with its own cache.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "e2s/error.hpp"
#include "e2s/package.hpp"
#include "safety/safety_env.hpp"
#include "support/env_guard.hpp"
#include "support/fixtures.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"
#include "util/hash.hpp"

namespace {

namespace fs = std::filesystem;
using e2s::test::contains;
using e2s::test::error_of;
using e2s::test::make_bytes;
using e2s::test::TempDir;
using e2s::test::TestServer;

std::uint64_t inode_of(const fs::path& path) {
  struct stat status {};
  EXPECT_EQ(::stat(path.c_str(), &status), 0) << path;
  return status.st_ino;
}

// Where each resolved file came from, as a Package reports it.
struct Origins {
  std::mutex mutex;
  std::map<std::string, e2s::Origin> of;
  e2s::ResolvedCallback callback() {
    return [this](const e2s::Resolved& resolved) {
      std::lock_guard lock(mutex);
      of[resolved.file] = resolved.origin;
    };
  }
};

class MirrorTest : public ::testing::Test {
 protected:
  MirrorTest() : env_(e2s::test::safety::scrubbed) {
    served_.write_file("model/weights.bin", weights_);
    served_.write_file("model/config.json", config_);
    upstream_ = std::make_unique<TestServer>("http_server.py", std::vector<std::string>{"--root", served_.path().string()});
    env_.set("E2S_HF_CACHE", "off");
  }

  std::string root() const { return upstream_->url("/model"); }
  // The mirror key of an http root's file: http/<host:port>/<path>.
  std::string key(const std::string& file) const {
    const std::string url = upstream_->url("/model/" + file);
    return "http/" + url.substr(url.find("://") + 3);
  }

  // A node: its own cache, the mirror, pushing or not.
  e2s::PackageOptions node(const std::string& name, bool push = false, Origins* origins = nullptr) const {
    e2s::PackageOptions o = e2s::test::quick_retry_options(caches_.path() / name);
    o.mirror.urls = std::vector<std::string>{mirror_.path().string()};
    o.mirror.push = push;
    if (origins) o.on_resolved = origins->callback();
    return o;
  }
  std::size_t upstream_gets() const {
    std::size_t n = 0;
    for (const auto& request : e2s::test::recorded_requests(*upstream_)) n += request.value("method", "") == "GET";
    return n;
  }

  e2s::test::EnvGuard env_;
  TempDir served_, mirror_, caches_;
  const std::string weights_ = make_bytes(3 << 20, 21);
  const std::string config_ = R"({"layers": 2})";
  std::unique_ptr<TestServer> upstream_;
};

TEST_F(MirrorTest, APushingNodeFillsTheMirrorAndTheNextNodeReadsIt) {
  Origins first;
  e2s::Package a(root(), node("a", /*push=*/true, &first));
  EXPECT_TRUE(TempDir::read_file(a.resolve("weights.bin")) == weights_);
  EXPECT_EQ(first.of["weights.bin"], e2s::Origin::upstream);
  ASSERT_TRUE(fs::is_regular_file(mirror_.path() / key("weights.bin")));
  const auto record = nlohmann::json::parse(TempDir::read_file(mirror_.path() / ".e2s-records" / (key("weights.bin") + ".json")));
  EXPECT_EQ(record.at("sha256"), e2s::detail::sha256_hex(weights_));
  EXPECT_EQ(record.at("size"), weights_.size());

  upstream_->reset();
  Origins second;
  e2s::Package b(root(), node("b", false, &second));
  const fs::path path = b.resolve("weights.bin");
  EXPECT_TRUE(TempDir::read_file(path) == weights_);
  EXPECT_EQ(second.of["weights.bin"], e2s::Origin::mirror);
  EXPECT_EQ(upstream_gets(), 0u) << "only a HEAD for the upstream's ETag";
  EXPECT_EQ(upstream_->body_bytes(), 0u);
  EXPECT_EQ(inode_of(path), inode_of(mirror_.path() / key("weights.bin"))) << "a folder mirror is hard-linked";
}

TEST_F(MirrorTest, ATamperedMirrorCopyIsSkippedAndNothingBadIsCommitted) {
  ASSERT_TRUE(TempDir::read_file(e2s::Package(root(), node("a", true)).resolve("weights.bin")) == weights_);
  std::string bad = weights_;
  bad[1000] ^= 1;
  const fs::path copy = mirror_.path() / key("weights.bin");
  fs::remove(copy);
  mirror_.write_file(copy.lexically_relative(mirror_.path()), bad);  // same size, other bytes

  upstream_->reset();
  Origins origins;
  const fs::path path = e2s::Package(root(), node("b", false, &origins)).resolve("weights.bin");
  EXPECT_TRUE(TempDir::read_file(path) == weights_);
  EXPECT_EQ(origins.of["weights.bin"], e2s::Origin::upstream);
  EXPECT_GE(upstream_gets(), 1u);
  EXPECT_NE(inode_of(path), inode_of(copy));
}

TEST_F(MirrorTest, AFileThatChangedUpstreamIsNotServedFromTheMirror) {
  ASSERT_TRUE(TempDir::read_file(e2s::Package(root(), node("a", true)).resolve("config.json")) == config_);
  const std::string newer = R"({"layers": 3})";
  served_.write_file("model/config.json", newer);  // a new ETag upstream
  Origins origins;
  const fs::path path = e2s::Package(root(), node("b", false, &origins)).resolve("config.json");
  EXPECT_EQ(TempDir::read_file(path), newer);
  EXPECT_EQ(origins.of["config.json"], e2s::Origin::upstream);
}

TEST_F(MirrorTest, AnOfflineNodeReadsOnlyTheMirror) {
  ASSERT_EQ(TempDir::read_file(e2s::Package(root(), node("a", true)).resolve("config.json")), config_);
  upstream_->reset();
  e2s::PackageOptions offline = node("b");
  offline.offline = true;
  e2s::Package b(root(), offline);
  EXPECT_EQ(TempDir::read_file(b.resolve("config.json")), config_);
  const e2s::Error miss = error_of([&] { b.resolve("weights.bin"); });
  EXPECT_EQ(miss.code(), e2s::Errc::offline_miss);
  EXPECT_TRUE(contains(miss.what(), "site mirror " + mirror_.path().string())) << miss.what();
  EXPECT_TRUE(contains(miss.what(), "e2s mirror push " + root() + " weights.bin")) << miss.what();
  EXPECT_TRUE(e2s::test::recorded_requests(*upstream_).empty()) << "zero upstream requests";
}

// A read-only mirror: the folder layout served over http.
TEST_F(MirrorTest, AnHttpMirrorServesTheFolderLayout) {
  ASSERT_TRUE(TempDir::read_file(e2s::Package(root(), node("a", true)).resolve("weights.bin")) == weights_);
  TestServer web("http_server.py", {"--root", mirror_.path().string()});
  upstream_->reset();
  e2s::PackageOptions o = node("b");
  o.mirror.urls = std::vector<std::string>{web.url()};
  Origins origins;
  o.on_resolved = origins.callback();
  EXPECT_TRUE(TempDir::read_file(e2s::Package(root(), o).resolve("weights.bin")) == weights_);
  EXPECT_EQ(origins.of["weights.bin"], e2s::Origin::mirror);
  EXPECT_EQ(upstream_->body_bytes(), 0u);
  EXPECT_GE(web.body_bytes(), weights_.size());
}

// Fan-in: while another node holds the mirror's lease on a file, a pushing
// node waits for that node's copy instead of going upstream too.
TEST_F(MirrorTest, ANodeWaitsForTheLeaseHoldersCopy) {
  const std::string lease_key = key("weights.bin");
  const double in_a_minute =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count() + 60;
  mirror_.write_file(fs::path(".e2s-leases") / lease_key, nlohmann::json{{"expires", in_a_minute}}.dump());
  std::thread holder([&] {
    // The holder's download ends: it pushes its copy (data, then record) and
    // releases its lease. The http fake's ETag is the MD5 of the file.
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    e2s::detail::Digest md5(e2s::detail::DigestAlgorithm::md5);
    md5.update(weights_.data(), weights_.size());
    mirror_.write_file(lease_key, weights_);
    mirror_.write_file(fs::path(".e2s-records") / (lease_key + ".json"),
                       nlohmann::json{{"size", weights_.size()},
                                      {"sha256", e2s::detail::sha256_hex(weights_)},
                                      {"upstream_etag", md5.hex_final()},
                                      {"upstream_version", ""}}
                           .dump());
    fs::remove(mirror_.path() / ".e2s-leases" / lease_key);
  });
  Origins origins;
  const auto start = std::chrono::steady_clock::now();
  const fs::path path = e2s::Package(root(), node("waiter", true, &origins)).resolve("weights.bin");
  holder.join();
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(700));
  EXPECT_TRUE(TempDir::read_file(path) == weights_);
  EXPECT_EQ(origins.of["weights.bin"], e2s::Origin::mirror) << "waited for the copy";
  EXPECT_EQ(upstream_gets(), 0u);
}

// ... and a holder that died (its lease expired) delays, never blocks.
TEST_F(MirrorTest, AnExpiredLeaseIsTakenOver) {
  const double soon = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count() + 0.6;
  mirror_.write_file(fs::path(".e2s-leases") / key("weights.bin"), nlohmann::json{{"expires", soon}}.dump());
  Origins origins;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(TempDir::read_file(e2s::Package(root(), node("a", true, &origins)).resolve("weights.bin")) == weights_);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(400));
  EXPECT_EQ(origins.of["weights.bin"], e2s::Origin::upstream);
  EXPECT_TRUE(fs::is_regular_file(mirror_.path() / key("weights.bin"))) << "and pushed";
  EXPECT_FALSE(fs::exists(mirror_.path() / ".e2s-leases" / key("weights.bin"))) << "its lease released";
}

// hf:// roots pinned to a commit name their version in the key: a mirror
// hit costs no upstream request at all; a branch finds its commit in the
// mirror's refs when offline.
TEST(HubMirror, APinnedCommitIsServedWithZeroUpstreamRequestsAndABranchOfflineThroughRefs) {
  e2s::test::EnvGuard env(e2s::test::safety::scrubbed);
  env.set("E2S_HF_CACHE", "off");
  TempDir repos, mirror, caches;
  const std::string weights = make_bytes(200 * 1024, 5);
  repos.write_file("models/acme/w/main/weights.bin", weights);
  TestServer hub("hf_server.py", {"--root", repos.path().string()});
  env.set("HF_ENDPOINT", hub.url());
  auto node = [&](const std::string& name, bool push) {
    e2s::PackageOptions o = e2s::test::quick_retry_options(caches.path() / name);
    o.mirror.urls = std::vector<std::string>{mirror.path().string()};
    o.mirror.push = push;
    return o;
  };
  ASSERT_TRUE(TempDir::read_file(e2s::Package("hf://acme/w", node("a", true)).resolve("weights.bin")) == weights);
  e2s::detail::Digest sha1(e2s::detail::DigestAlgorithm::sha1);
  sha1.update("models/acme/w/main", 18);
  const std::string commit = sha1.hex_final();
  EXPECT_TRUE(fs::is_regular_file(mirror.path() / "hf/models/acme/w" / commit / "weights.bin"));
  EXPECT_EQ(TempDir::read_file(mirror.path() / "hf/models/acme/w/refs/main"), commit);

  hub.reset();
  EXPECT_TRUE(TempDir::read_file(e2s::Package("hf://acme/w@" + commit, node("b", false)).resolve("weights.bin")) ==
              weights);
  e2s::PackageOptions offline = node("c", false);
  offline.offline = true;
  EXPECT_TRUE(TempDir::read_file(e2s::Package("hf://acme/w", offline).resolve("weights.bin")) == weights);
  EXPECT_TRUE(e2s::test::recorded_requests(hub).empty());
}

TEST(MirrorConfig, AMirrorThatIsNoneOfTheFormsIsRefused) {
  e2s::test::EnvGuard env(e2s::test::safety::scrubbed);
  TempDir caches;
  e2s::PackageOptions o = e2s::test::quick_retry_options(caches.path());
  o.mirror.urls = std::vector<std::string>{"relative/folder"};
  o.offline = true;
  const e2s::Error error = error_of([&] { e2s::Package("https://example.org/m", o).resolve("x.bin"); });
  EXPECT_EQ(error.code(), e2s::Errc::invalid_uri);
  EXPECT_TRUE(contains(error.what(), "E2S_MIRROR")) << error.what();
}

}  // namespace
