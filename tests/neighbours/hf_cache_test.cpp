// hf:// roots and huggingface_hub's own cache (protocols.md §1.6, §7.1),
// written here exactly in its layout: a file found there is hard-linked into
// e2s's cache (one inode, zero bytes more on disk) after its bytes are checked
// against its blob name, with the requests the fake Hub saw counted; in share
// mode, what e2s downloads is placed there for huggingface_hub to find.
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "e2s/error.hpp"
#include "e2s/log.hpp"
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
using e2s::test::error_of;
using e2s::test::make_bytes;
using e2s::test::TempDir;
using e2s::test::TestServer;

std::string sha1_hex(const std::string& data) {
  e2s::detail::Digest digest(e2s::detail::DigestAlgorithm::sha1);
  digest.update(data.data(), data.size());
  return digest.hex_final();
}

// How the Hub (and the fake) names a file: the sha256 of an LFS file (at
// least 1024 bytes in the fake), else its git blob sha1.
std::string etag_of(const std::string& bytes) {
  if (bytes.size() >= 1024) return e2s::detail::sha256_hex(bytes);
  return sha1_hex("blob " + std::to_string(bytes.size()) + std::string(1, '\0') + bytes);
}

struct stat stat_of(const fs::path& path) {
  struct stat status {};
  EXPECT_EQ(::stat(path.c_str(), &status), 0) << path;
  return status;
}

class HfCacheTest : public ::testing::Test {
 protected:
  HfCacheTest() : env_(e2s::test::safety::scrubbed) {
    repos_.write_file("models/acme/weather/main/weights.bin", weights_);
    repos_.write_file("models/acme/weather/main/config.json", config_);
    repos_.write_file("models/acme/weather/main/sub/w2.bin", nested_);
    hub_ = std::make_unique<TestServer>("hf_server.py", std::vector<std::string>{"--root", repos_.path().string()});
    env_.set("HF_ENDPOINT", hub_->url());
    env_.set("HF_HUB_CACHE", hf_.path().string());
  }

  // The commit of the fake's "main" folder.
  static std::string commit() { return sha1_hex("models/acme/weather/main"); }
  fs::path repo() const { return hf_.path() / "models--acme--weather"; }
  fs::path blob(const std::string& bytes) const { return repo() / "blobs" / etag_of(bytes); }

  // What `hf download` leaves: the blob, and the snapshot's relative symlink.
  void hf_download(const std::string& path, const std::string& bytes) const {
    hf_.write_file(blob(bytes).lexically_relative(hf_.path()), bytes);
    const fs::path link = repo() / "snapshots" / commit() / path;
    fs::create_directories(link.parent_path());
    std::string up;
    for (char c : path) up += c == '/' ? "../" : "";
    fs::create_symlink(up + "../../blobs/" + etag_of(bytes), link);
  }
  void write_ref(const std::string& revision, const std::string& commit) const {
    hf_.write_file((repo() / "refs" / revision).lexically_relative(hf_.path()), commit);
  }

  e2s::PackageOptions options(const std::string& sub = "store") const {
    return e2s::test::quick_retry_options(cache_.path() / sub);
  }
  std::string pinned() const { return "hf://acme/weather@" + commit(); }
  std::size_t requests() const { return e2s::test::recorded_requests(*hub_).size(); }
  std::size_t gets() const {
    std::size_t n = 0;
    for (const auto& request : e2s::test::recorded_requests(*hub_)) n += request.value("method", "") == "GET";
    return n;
  }

  e2s::test::EnvGuard env_;
  TempDir repos_, hf_, cache_;
  const std::string weights_ = make_bytes(300 * 1024, 7);
  const std::string config_ = R"({"layers": 4})";
  const std::string nested_ = make_bytes(5000, 8);
  std::unique_ptr<TestServer> hub_;
};

// ---- reading ----------------------------------------------------------------------

TEST_F(HfCacheTest, APinnedCommitResolvesFromItsSnapshotWithZeroRequestsAndZeroCopies) {
  hf_download("weights.bin", weights_);
  hf_download("config.json", config_);
  e2s::Package package(pinned(), options());
  for (const auto& [file, bytes] : {std::pair{"weights.bin", weights_}, std::pair{"config.json", config_}}) {
    const fs::path path = package.resolve(file);
    EXPECT_TRUE(TempDir::read_file(path) == bytes) << file;
    EXPECT_EQ(stat_of(path).st_ino, stat_of(blob(bytes)).st_ino) << file << ": a hard link of the blob";
    EXPECT_EQ(stat_of(path).st_nlink, 2u) << file << ": the blob and e2s's name, no third";
    EXPECT_TRUE(path.string().starts_with(cache_.path().string())) << path;
  }
  EXPECT_EQ(requests(), 0u);
  EXPECT_EQ(e2s::test::cached_meta(cache_.path() / "store", "weights.bin").at("linked").at("path"),
            blob(weights_).string());
  // A new Package: an e2s cache hit, still no request.
  EXPECT_TRUE(TempDir::read_file(e2s::Package(pinned(), options()).resolve("weights.bin")) == weights_);
  EXPECT_EQ(requests(), 0u);
}

TEST_F(HfCacheTest, ASubFolderRootFindsItsFilesBelowTheSnapshot) {
  hf_download("sub/w2.bin", nested_);
  e2s::Package package(pinned() + "/sub", options());
  const fs::path path = package.resolve("w2.bin");
  EXPECT_TRUE(TempDir::read_file(path) == nested_);
  EXPECT_EQ(stat_of(path).st_ino, stat_of(blob(nested_)).st_ino);
  EXPECT_EQ(requests(), 0u);
}

// Before: exit 7 (offline miss) with the file sitting in the HF cache.
TEST_F(HfCacheTest, OfflineABranchGoesThroughRefs) {
  hf_download("weights.bin", weights_);
  write_ref("main", commit());
  env_.set("HF_HUB_OFFLINE", "1");
  e2s::Package package("hf://acme/weather", options());
  const fs::path path = package.resolve("weights.bin");
  EXPECT_TRUE(TempDir::read_file(path) == weights_);
  EXPECT_EQ(stat_of(path).st_ino, stat_of(blob(weights_)).st_ino);
  EXPECT_EQ(requests(), 0u);
}

TEST_F(HfCacheTest, OfflineWithoutRefsIsAMissNamingBothCaches) {
  hf_download("weights.bin", weights_);
  e2s::PackageOptions o = options();
  o.offline = true;
  const e2s::Error error = error_of([&] { e2s::Package("hf://acme/weather", o).resolve("weights.bin"); });
  EXPECT_EQ(error.code(), e2s::Errc::offline_miss);
  EXPECT_TRUE(contains(error.what(), repo().string())) << error.what();
  EXPECT_EQ(requests(), 0u);
}

TEST_F(HfCacheTest, OnlineABranchCostsOneHeadAndNoDownload) {
  hf_download("weights.bin", weights_);
  e2s::Package package("hf://acme/weather", options());
  const fs::path path = package.resolve("weights.bin");
  EXPECT_EQ(stat_of(path).st_ino, stat_of(blob(weights_)).st_ino);
  EXPECT_EQ(requests(), 1u);
  EXPECT_EQ(hub_->count("HEAD", "/acme/weather/resolve/main/weights.bin"), 1u);
  EXPECT_EQ(gets(), 0u);
  EXPECT_EQ(hub_->body_bytes(), 0u);
}

TEST_F(HfCacheTest, ANoExistMarkerIsNotFoundOffline) {
  hf_.write_file((repo() / ".no_exist" / commit() / "missing.bin").lexically_relative(hf_.path()), "");
  e2s::PackageOptions o = options();
  o.offline = true;
  const e2s::Error error = error_of([&] { e2s::Package(pinned(), o).resolve("missing.bin"); });
  EXPECT_EQ(error.code(), e2s::Errc::not_found) << error.what();
  EXPECT_TRUE(contains(error.what(), ".no_exist")) << error.what();
  EXPECT_EQ(requests(), 0u);
}

TEST_F(HfCacheTest, ACorruptBlobIsAnIntegrityErrorOfflineAndNeverAHit) {
  for (const std::string& file : {std::string("weights.bin"), std::string("config.json")}) {
    SCOPED_TRACE(file);
    const std::string& good = file == "weights.bin" ? weights_ : config_;
    hf_download(file, good);
    std::string bad = good;
    bad[bad.size() / 2] ^= 1;
    hf_.write_file(blob(good).lexically_relative(hf_.path()), bad);  // same size, other bytes
    e2s::PackageOptions o = options();
    o.offline = true;
    const e2s::Error error = error_of([&] { e2s::Package(pinned(), o).resolve(file); });
    EXPECT_EQ(error.code(), e2s::Errc::integrity) << error.what();
    EXPECT_TRUE(contains(error.what(), blob(good).string())) << error.what();
    EXPECT_TRUE(e2s::test::cached_meta(cache_.path() / "store", file).is_null()) << "nothing committed";
    EXPECT_TRUE(e2s::test::cached_files(cache_.path()).empty());
  }
}

TEST_F(HfCacheTest, ACorruptBlobOnlineIsSkippedAndTheFileDownloaded) {
  hf_download("weights.bin", weights_);
  std::string bad = weights_;
  bad[100] ^= 1;
  hf_.write_file(blob(weights_).lexically_relative(hf_.path()), bad);
  const fs::path path = e2s::Package(pinned(), options()).resolve("weights.bin");
  EXPECT_TRUE(TempDir::read_file(path) == weights_);
  EXPECT_NE(stat_of(path).st_ino, stat_of(blob(weights_)).st_ino);
  EXPECT_GE(gets(), 1u) << "downloaded from the Hub";
  EXPECT_EQ(TempDir::read_file(blob(weights_)), bad) << "the HF cache is not e2s's to repair";
}

// Where symlinks are missing, huggingface_hub keeps a real file in the
// snapshot. Offline it names no hash: taken on huggingface_hub's word (-v
// says so); online the Hub's ETag checks it.
TEST_F(HfCacheTest, ASymlinkLessCopyLayoutIsUsed) {
  const fs::path copy = repo() / "snapshots" / commit() / "weights.bin";
  hf_.write_file(copy.lexically_relative(hf_.path()), weights_);
  write_ref("main", commit());
  {
    e2s::PackageOptions o = options("offline");
    o.offline = true;
    const fs::path path = e2s::Package("hf://acme/weather", o).resolve("weights.bin");
    EXPECT_EQ(stat_of(path).st_ino, stat_of(copy).st_ino);
  }
  {
    const fs::path path = e2s::Package("hf://acme/weather", options("online")).resolve("weights.bin");
    EXPECT_EQ(stat_of(path).st_ino, stat_of(copy).st_ino);
    EXPECT_EQ(gets(), 0u);
  }
  std::string bad = weights_;
  bad[7] ^= 1;
  fs::remove(copy);
  hf_.write_file(copy.lexically_relative(hf_.path()), bad);
  const fs::path path = e2s::Package("hf://acme/weather", options("checked")).resolve("weights.bin");
  EXPECT_TRUE(TempDir::read_file(path) == weights_) << "the Hub's ETag refused the copy";
}

TEST_F(HfCacheTest, ASnapshotLinkLeadingOutsideItsBlobsIsNotAFile) {
  const fs::path link = repo() / "snapshots" / commit() / "weights.bin";
  fs::create_directories(link.parent_path());
  hf_.write_file("elsewhere/" + etag_of(weights_), weights_);
  fs::create_symlink("../../../elsewhere/" + etag_of(weights_), link);
  e2s::PackageOptions o = options();
  o.offline = true;
  EXPECT_EQ(error_of([&] { e2s::Package(pinned(), o).resolve("weights.bin"); }).code(), e2s::Errc::offline_miss);
  fs::remove(link);
  fs::create_symlink(hf_.path() / "elsewhere" / etag_of(weights_), link);  // absolute
  EXPECT_EQ(error_of([&] { e2s::Package(pinned(), o).resolve("weights.bin"); }).code(), e2s::Errc::offline_miss);
}

TEST_F(HfCacheTest, TurnedOffTheHfCacheIsNotRead) {
  hf_download("weights.bin", weights_);
  env_.set("E2S_HF_CACHE", "off");
  e2s::PackageOptions o = options();
  o.offline = true;
  EXPECT_EQ(error_of([&] { e2s::Package(pinned(), o).resolve("weights.bin"); }).code(), e2s::Errc::offline_miss);
  // ... and the option in code wins over the environment.
  o.hf.cache_mode = e2s::HfCacheMode::read;
  EXPECT_TRUE(TempDir::read_file(e2s::Package(pinned(), o).resolve("weights.bin")) == weights_);
  env_.set("E2S_HF_CACHE", "sometimes");
  EXPECT_EQ(error_of([&] { e2s::Package(pinned(), options("x")); }).code(), e2s::Errc::other);
}

TEST_F(HfCacheTest, TheHubCacheFolderIsFoundAsHuggingfaceHubFindsIt) {
  hf_download("weights.bin", weights_);
  e2s::PackageOptions o = options();
  o.offline = true;
  env_.unset("HF_HUB_CACHE");
  TempDir home;
  fs::create_directories(home.path() / "hf");
  fs::rename(hf_.path() / "models--acme--weather", home.path() / "hf" / "models--acme--weather");
  // Not found where nothing points.
  env_.set("HOME", home.path().string());
  EXPECT_EQ(error_of([&] { e2s::Package(pinned(), o).resolve("weights.bin"); }).code(), e2s::Errc::offline_miss);
  // HUGGINGFACE_HUB_CACHE (legacy), then HF_HOME/hub, then XDG_CACHE_HOME/huggingface/hub.
  env_.set("HUGGINGFACE_HUB_CACHE", (home.path() / "hf").string());
  EXPECT_TRUE(TempDir::read_file(e2s::Package(pinned(), options("a")).resolve("weights.bin")) == weights_);
  env_.unset("HUGGINGFACE_HUB_CACHE");
  fs::create_directories(home.path() / "hfhome");
  fs::rename(home.path() / "hf", home.path() / "hfhome" / "hub");
  env_.set("HF_HOME", (home.path() / "hfhome").string());
  EXPECT_TRUE(TempDir::read_file(e2s::Package(pinned(), options("b")).resolve("weights.bin")) == weights_);
  env_.unset("HF_HOME");
  fs::create_directories(home.path() / "xdg" / "huggingface");
  fs::rename(home.path() / "hfhome" / "hub", home.path() / "xdg" / "huggingface" / "hub");
  env_.set("XDG_CACHE_HOME", (home.path() / "xdg").string());
  EXPECT_TRUE(TempDir::read_file(e2s::Package(pinned(), options("c")).resolve("weights.bin")) == weights_);
  env_.unset("XDG_CACHE_HOME");
  fs::create_directories(home.path() / ".cache" / "huggingface");
  fs::rename(home.path() / "xdg" / "huggingface" / "hub", home.path() / ".cache" / "huggingface" / "hub");
  EXPECT_TRUE(TempDir::read_file(e2s::Package(pinned(), options("d")).resolve("weights.bin")) == weights_);
  EXPECT_EQ(requests(), 0u);
}

// Across filesystems there is no hard link: a copy, which -v reports.
TEST_F(HfCacheTest, AnotherFilesystemGetsACopyAndSaysSo) {
  const fs::path shm = "/dev/shm";
  if (!fs::is_directory(shm) || stat_of(shm).st_dev == stat_of(cache_.path()).st_dev) {
    GTEST_SKIP() << "no second filesystem here";
  }
  TempDir other(shm);
  env_.set("HF_HUB_CACHE", other.path().string());
  other.write_file("models--acme--weather/blobs/" + etag_of(weights_), weights_);
  fs::create_directories(other.path() / "models--acme--weather" / "snapshots" / commit());
  fs::create_symlink("../../blobs/" + etag_of(weights_),
                     other.path() / "models--acme--weather" / "snapshots" / commit() / "weights.bin");
  e2s::test::CliOptions cli;
  cli.env["HF_HUB_CACHE"] = other.path().string();
  cli.env["HF_ENDPOINT"] = hub_->url();
  cli.env["EARTH2STUDIO_MODEL_CACHE"] = cache_.path().string();
  const e2s::test::CliRun run = e2s::test::CliProcess({"-v", "resolve", pinned(), "weights.bin"}, cli).wait();
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_TRUE(contains(run.err, "copying")) << run.err;
  EXPECT_EQ(requests(), 0u);
}

// ---- sharing -----------------------------------------------------------------------

// A second program that reads only huggingface_hub's layout (as
// hf_hub_download(local_files_only=True) does): refs, snapshot, blob.
std::string read_as_huggingface_hub(const fs::path& hub_cache, const std::string& path) {
  e2s::test::CliOptions python;
  python.program = "/usr/bin/python3";
  const e2s::test::CliRun run =
      e2s::test::CliProcess({E2S_TEST_NEIGHBOURS_DIR "/hf_cache_reader.py", hub_cache.string(), "models",
                             "acme/weather", "main", path},
                            python)
          .wait();
  EXPECT_EQ(run.status, 0) << run.err;
  return run.out;
}

TEST_F(HfCacheTest, ShareModePlacesDownloadsWhereHuggingfaceHubFindsThem) {
  env_.set("E2S_HF_CACHE", "share");
  e2s::Package package("hf://acme/weather", options());
  for (const auto& [file, bytes] : {std::pair{"weights.bin", weights_}, std::pair{"config.json", config_},
                                     std::pair{"sub/w2.bin", nested_}}) {
    SCOPED_TRACE(file);
    const fs::path path = package.resolve(file);
    EXPECT_EQ(stat_of(path).st_ino, stat_of(blob(bytes)).st_ino) << "shared by hard link";
    EXPECT_EQ(read_as_huggingface_hub(hf_.path(), file), e2s::detail::sha256_hex(bytes) + "\n");
  }
  EXPECT_EQ(TempDir::read_file(repo() / "refs" / "main"), commit());
  for (const auto& entry : fs::recursive_directory_iterator(hf_.path())) {
    EXPECT_FALSE(contains(entry.path().string(), ".incomplete")) << entry.path();
  }
  // And back: another e2s cache, offline, finds them through the HF cache.
  e2s::PackageOptions o = options("second");
  o.offline = true;
  EXPECT_TRUE(TempDir::read_file(e2s::Package("hf://acme/weather", o).resolve("sub/w2.bin")) == nested_);
}

TEST_F(HfCacheTest, ShareModeWaitsForHuggingfaceHubsLockOfTheBlob) {
  env_.set("E2S_HF_CACHE", "share");
  const fs::path locks = hf_.path() / ".locks" / "models--acme--weather";
  fs::create_directories(locks);
  const int fd = ::open((locks / (etag_of(weights_) + ".lock")).c_str(), O_RDWR | O_CREAT, 0664);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  const auto start = std::chrono::steady_clock::now();
  std::thread holder([fd] {
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    ::flock(fd, LOCK_UN);
    ::close(fd);
  });
  const fs::path path = e2s::Package("hf://acme/weather", options()).resolve("weights.bin");
  holder.join();
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(800)) << "waited for the lock";
  EXPECT_EQ(stat_of(path).st_ino, stat_of(blob(weights_)).st_ino);
}

TEST_F(HfCacheTest, ShareModeNeverReplacesABlobThatIsThere) {
  env_.set("E2S_HF_CACHE", "share");
  // A blob huggingface_hub wrote, and no snapshot: the Hub's answer names it.
  hf_.write_file(blob(weights_).lexically_relative(hf_.path()), weights_);
  const auto before = stat_of(blob(weights_)).st_ino;
  const fs::path path = e2s::Package("hf://acme/weather", options()).resolve("weights.bin");
  EXPECT_EQ(stat_of(blob(weights_)).st_ino, before);
  EXPECT_EQ(stat_of(path).st_ino, before) << "adopted, not downloaded";
  EXPECT_EQ(gets(), 0u);
}

}  // namespace

namespace {

// `e2s cache` marks what it shares, and deletes the HF cache's blob only
// when told to.
TEST_F(HfCacheTest, CacheLsMarksSharedFilesAndRmLeavesTheBlobUnlessTold) {
  e2s::test::CliOptions cli;
  cli.env = {{"HF_HUB_CACHE", hf_.path().string()}, {"HF_ENDPOINT", hub_->url()},
             {"EARTH2STUDIO_MODEL_CACHE", cache_.path().string()}, {"E2S_HF_CACHE", "share"}};
  auto e2s = [&](std::vector<std::string> args) { return e2s::test::CliProcess(args, cli).wait(); };
  ASSERT_EQ(e2s({"-q", "resolve", "hf://acme/weather", "weights.bin"}).status, 0);
  const e2s::test::CliRun ls = e2s({"cache", "ls"});
  ASSERT_EQ(ls.status, 0) << ls.err;
  EXPECT_TRUE(contains(ls.out, "1 file, 1 shared with the hf cache\t")) << ls.out;
  const auto listing = nlohmann::json::parse(e2s({"cache", "ls", "--json"}).out);
  EXPECT_EQ(listing.at(0).at("entries").at(0).at("linked").at("path"), blob(weights_).string());

  const e2s::test::CliRun rm = e2s({"cache", "rm", "hf://acme/weather"});
  ASSERT_EQ(rm.status, 0) << rm.err;
  EXPECT_TRUE(contains(rm.out, "its bytes stay in the hf cache")) << rm.out;
  EXPECT_TRUE(TempDir::read_file(blob(weights_)) == weights_) << "huggingface_hub's file stays";
  EXPECT_EQ(read_as_huggingface_hub(hf_.path(), "weights.bin"), e2s::detail::sha256_hex(weights_) + "\n");

  ASSERT_EQ(e2s({"-q", "resolve", "hf://acme/weather", "weights.bin"}).status, 0);
  const e2s::test::CliRun all = e2s({"cache", "rm", "--include-hf-cache", "hf://acme/weather"});
  ASSERT_EQ(all.status, 0) << all.err;
  EXPECT_FALSE(fs::exists(blob(weights_)));
  EXPECT_FALSE(fs::exists(fs::symlink_status(repo() / "snapshots" / commit() / "weights.bin")))
      << "no snapshot link left dangling";
}

}  // namespace
