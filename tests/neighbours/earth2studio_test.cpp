// Earth2Studio's cache folders, written by the real fsspec (Debian's
// python3-fsspec, WholeFileCacheFileSystem over an http root on loopback, as
// Earth2Studio's Package does): a file whose origin is proven (the index names
// the same URL; the size and, where the store gives one, the hash match) is
// hard-linked instead of downloaded, and nothing of Earth2Studio's is ever
// written, renamed over or removed.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "e2s/error.hpp"
#include "e2s/package.hpp"
#include "safety/safety_env.hpp"
#include "support/cli_runner.hpp"
#include "support/env_guard.hpp"
#include "support/fixtures.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"
#include "util/hash.hpp"

namespace {

namespace fs = std::filesystem;
using e2s::test::contains;
using e2s::test::make_bytes;
using e2s::test::TempDir;
using e2s::test::TestServer;

struct stat stat_of(const fs::path& path) {
  struct stat status {};
  EXPECT_EQ(::stat(path.c_str(), &status), 0) << path;
  return status;
}

class Earth2StudioCacheTest : public ::testing::Test {
 protected:
  Earth2StudioCacheTest() : env_(e2s::test::safety::scrubbed) {
    served_.write_file("models/fcn/fcn.mdlus", weights_);
    served_.write_file("models/fcn/config.json", config_);
    server_ = std::make_unique<TestServer>("http_server.py", std::vector<std::string>{"--root", served_.path().string()});
    env_.set("EARTH2STUDIO_MODEL_CACHE", cache_root().string());
    env_.set("E2S_HF_CACHE", "off");
  }

  fs::path cache_root() const { return cache_.path() / "earth2studio"; }
  fs::path model_folder() const { return cache_root() / "fcn"; }  // default_cache("fcn")
  std::string root() const { return server_->url("/models/fcn"); }

  // Earth2Studio's Package(root, cache_options={"cache_storage":
  // default_cache("fcn"), "same_names": True}) resolving `files`.
  void earth2studio_fetches(const std::vector<std::string>& files) const {
    std::vector<std::string> args = {E2S_TEST_NEIGHBOURS_DIR "/earth2studio_fetch.py", model_folder().string()};
    for (const std::string& file : files) args.push_back(root() + "/" + file);
    e2s::test::CliOptions python;
    python.program = "/usr/bin/python3";
    const e2s::test::CliRun run = e2s::test::CliProcess(args, python).wait();
    ASSERT_EQ(run.status, 0) << run.err;
    ASSERT_TRUE(fs::is_regular_file(model_folder() / "cache")) << "fsspec wrote its index";
    server_->reset();
  }

  e2s::PackageOptions shared_folder() const {
    e2s::PackageOptions o = e2s::test::quick_retry_options(model_folder());
    o.cache_root = cache_root();
    return o;
  }
  std::size_t gets() const { return server_->count("GET", "/models/fcn/fcn.mdlus"); }

  e2s::test::EnvGuard env_;
  TempDir served_, cache_;
  const std::string weights_ = make_bytes(2 << 20, 11);
  const std::string config_ = R"({"channels": 26})";
  std::unique_ptr<TestServer> server_;
};

TEST_F(Earth2StudioCacheTest, AFileEarth2StudioFetchedIsHardLinkedNotDownloaded) {
  earth2studio_fetches({"fcn.mdlus", "config.json"});
  const fs::path theirs = model_folder() / "fcn.mdlus";
  const auto index_before = TempDir::read_file(model_folder() / "cache");
  const auto their_mtime = fs::last_write_time(theirs);

  e2s::Package package(root(), shared_folder());
  const fs::path ours = package.resolve("fcn.mdlus");
  EXPECT_TRUE(TempDir::read_file(ours) == weights_);
  EXPECT_EQ(stat_of(ours).st_ino, stat_of(theirs).st_ino) << "one inode: no second copy";
  EXPECT_NE(ours, theirs) << "e2s's name is its own, below .e2s";
  EXPECT_EQ(ours, e2s::test::data_file(model_folder(), "fcn.mdlus"));
  EXPECT_EQ(gets(), 0u);
  EXPECT_EQ(server_->body_bytes(), 0u) << "a HEAD for the size, no bytes";
  EXPECT_EQ(e2s::test::cached_meta(model_folder(), "fcn.mdlus").at("linked").at("cache"), "earth2studio");

  // Earth2Studio's files and index are as they were.
  EXPECT_EQ(TempDir::read_file(model_folder() / "cache"), index_before);
  EXPECT_EQ(fs::last_write_time(theirs), their_mtime);
  // ... and Earth2Studio still finds its file, with no request.
  earth2studio_fetches({"fcn.mdlus"});
  EXPECT_EQ(gets(), 0u);
}

// fsspec rewrites an expired file in place (open(fn, "wb")): e2s's hard link
// sees the change. It is then no hit, and e2s's name of it is e2s's to
// replace; Earth2Studio's file stays as Earth2Studio left it.
TEST_F(Earth2StudioCacheTest, AnAdoptedFileEarth2StudioRewritesInPlaceIsFetchedAgain) {
  earth2studio_fetches({"fcn.mdlus"});
  const fs::path theirs = model_folder() / "fcn.mdlus";
  const fs::path ours = e2s::Package(root(), shared_folder()).resolve("fcn.mdlus");
  ASSERT_EQ(stat_of(ours).st_ino, stat_of(theirs).st_ino);
  const std::string rewritten = make_bytes(weights_.size(), 12);
  std::ofstream(theirs, std::ios::binary | std::ios::trunc) << rewritten;  // the same inode
  server_->reset();
  const fs::path again = e2s::Package(root(), shared_folder()).resolve("fcn.mdlus");
  EXPECT_TRUE(TempDir::read_file(again) == weights_) << "the server's bytes, not the rewritten ones";
  EXPECT_GE(gets(), 1u);
  EXPECT_TRUE(TempDir::read_file(theirs) == rewritten) << "Earth2Studio's file is untouched";
}

// e2s's own folder for the root (packages/...) finds Earth2Studio's folder
// beside it under the cache root.
TEST_F(Earth2StudioCacheTest, AnE2sFolderOfItsOwnFindsEarth2StudiosFolderUnderTheCacheRoot) {
  earth2studio_fetches({"fcn.mdlus"});
  e2s::PackageOptions o = e2s::test::quick_retry_options("");
  o.cache_options.cache_storage.clear();
  const fs::path ours = e2s::Package(root(), o).resolve("fcn.mdlus");
  EXPECT_TRUE(ours.string().starts_with((cache_root() / "packages").string())) << ours;
  EXPECT_EQ(stat_of(ours).st_ino, stat_of(model_folder() / "fcn.mdlus").st_ino);
  EXPECT_EQ(gets(), 0u);
}

// fsspec writes straight into the final name: a listed file may be cut short.
TEST_F(Earth2StudioCacheTest, AListedFileOfAnotherSizeIsNotTaken) {
  earth2studio_fetches({"fcn.mdlus"});
  const fs::path theirs = model_folder() / "fcn.mdlus";
  fs::resize_file(theirs, weights_.size() / 2);
  const fs::path ours = e2s::Package(root(), shared_folder()).resolve("fcn.mdlus");
  EXPECT_TRUE(TempDir::read_file(ours) == weights_);
  EXPECT_NE(stat_of(ours).st_ino, stat_of(theirs).st_ino);
  EXPECT_GE(gets(), 1u) << "downloaded";
  EXPECT_EQ(fs::file_size(theirs), weights_.size() / 2) << "Earth2Studio's file is not e2s's to repair";
}

TEST_F(Earth2StudioCacheTest, AFileTheIndexRecordsForAnotherUrlIsNotTaken) {
  earth2studio_fetches({"fcn.mdlus"});
  // The same bytes, the same name, but listed for another server.
  served_.write_file("other/fcn/fcn.mdlus", weights_);
  const std::string other = server_->url("/other/fcn");
  const fs::path ours = e2s::Package(other, shared_folder()).resolve("fcn.mdlus");
  EXPECT_NE(stat_of(ours).st_ino, stat_of(model_folder() / "fcn.mdlus").st_ino);
  EXPECT_GE(server_->count("GET", "/other/fcn/fcn.mdlus"), 1u);
}

// Newer fsspec writes the index as JSON. An hf:// root: the Hub's sha256
// (LFS) proves the bytes, and a file of the right size but other bytes is
// refused.
TEST_F(Earth2StudioCacheTest, AJsonIndexOfAnHfRootIsCheckedAgainstTheHubsHash) {
  TempDir repos;
  repos.write_file("models/acme/fcn/main/fcn.mdlus", weights_);
  TestServer hub("hf_server.py", {"--root", repos.path().string()});
  env_.set("HF_ENDPOINT", hub.url());
  const std::string key = "acme/fcn/fcn.mdlus";  // fsspec's key: the root without hf://
  cache_.write_file((model_folder() / "cache").lexically_relative(cache_.path()),
                    nlohmann::json{{key, {{"original", key}, {"fn", "fcn.mdlus"}, {"blocks", true},
                                          {"time", 1.7e9}, {"uid", "x"}}}}.dump());
  std::string bad = weights_;
  bad[12345] ^= 1;
  cache_.write_file((model_folder() / "fcn.mdlus").lexically_relative(cache_.path()), bad);

  const fs::path refused = e2s::Package("hf://acme/fcn", shared_folder()).resolve("fcn.mdlus");
  EXPECT_TRUE(TempDir::read_file(refused) == weights_) << "the Hub's sha256 refused the other bytes";
  EXPECT_NE(stat_of(refused).st_ino, stat_of(model_folder() / "fcn.mdlus").st_ino);
  EXPECT_TRUE(TempDir::read_file(model_folder() / "fcn.mdlus") == bad) << "left as it was";

  fs::remove_all(model_folder() / ".e2s");
  cache_.write_file((model_folder() / "fcn.mdlus").lexically_relative(cache_.path()), weights_);
  hub.reset();
  const fs::path taken = e2s::Package("hf://acme/fcn", shared_folder()).resolve("fcn.mdlus");
  EXPECT_EQ(stat_of(taken).st_ino, stat_of(model_folder() / "fcn.mdlus").st_ino);
  EXPECT_EQ(hub.body_bytes(), 0u);
}

// A hostile index: a name that is a path, a pickle that would run code.
TEST_F(Earth2StudioCacheTest, AnIndexNamingAPathOrHoldingCodeIsIgnored) {
  const std::string key = root() + "/fcn.mdlus";
  served_.write_file("secret/fcn.mdlus", weights_);
  cache_.write_file((model_folder() / "cache").lexically_relative(cache_.path()),
                    nlohmann::json{{key, {{"original", key}, {"fn", "../../secret/fcn.mdlus"}}}}.dump());
  const fs::path ours = e2s::Package(root(), shared_folder()).resolve("fcn.mdlus");
  EXPECT_GE(gets(), 1u) << "downloaded, not taken from outside the folder";
  EXPECT_EQ(stat_of(ours).st_nlink, 1u);
  // pickle protocol 2: GLOBAL os.system, REDUCE.
  fs::remove_all(model_folder() / ".e2s");
  const std::string evil = std::string("\x80\x02" "cos\nsystem\n" "X\x05\x00\x00\x00" "touch" "\x85R.", 26);
  cache_.write_file((model_folder() / "cache").lexically_relative(cache_.path()), evil);
  server_->reset();
  EXPECT_TRUE(TempDir::read_file(e2s::Package(root(), shared_folder()).resolve("fcn.mdlus")) == weights_);
  EXPECT_GE(gets(), 1u) << "downloaded";
}

}  // namespace
