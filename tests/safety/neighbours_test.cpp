// The cache shares its folders with other programs (Earth2Studio's fsspec
// cache writing into the same default_cache("name"), a user, a partial copy)
// and takes headers and names from servers:
// - a file changed behind the cache's back is never a hit, is re-verified
//   or fetched again, and is never overwritten, pruned or removed;
// - header values and names that are no UTF-8 never break a record, and data
//   and metadata are committed so that neither exists without the other.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "e2s/error.hpp"
#include "e2s/package.hpp"
#include "safety/safety_env.hpp"
#include "support/cli_runner.hpp"
#include "support/fixtures.hpp"
#include "support/env_guard.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"
#include "util/hash.hpp"

namespace {

namespace fs = std::filesystem;
using e2s::test::CliOptions;
using e2s::test::CliProcess;
using e2s::test::CliRun;
using e2s::test::contains;
using e2s::test::make_bytes;
using e2s::test::TempDir;
using e2s::test::TestServer;
using nlohmann::json;

class NeighboursTest : public ::testing::Test {
 protected:
  NeighboursTest() {
    served_.write_file("model/weights.bin", bytes_);
    server_ = std::make_unique<TestServer>("http_server.py", std::vector<std::string>{"--root", served_.path().string()});
  }

  std::string root() const { return server_->url("/model"); }

  CliRun e2s(std::vector<std::string> args) const {
    CliOptions options;
    options.env["EARTH2STUDIO_MODEL_CACHE"] = cache_.path().string();
    options.scrub = e2s::test::safety::scrubbed;
    return CliProcess(args, options).wait();
  }

  fs::path storage() const {
    e2s::test::ScopedEnv env("EARTH2STUDIO_MODEL_CACHE", cache_.path().string());
    return e2s::Package(root()).cache();
  }
  fs::path cached() const { return e2s::test::data_file(storage(), "weights.bin"); }

  // Another program writes `bytes` at the final path, as fsspec does: a new
  // file renamed over the old one.
  void write_behind_the_cache(const std::string& bytes) const {
    const fs::path staging = cached().parent_path() / ".other-program.tmp";
    cache_.write_file(staging.lexically_relative(cache_.path()), bytes);
    fs::rename(staging, cached());
  }

  std::size_t gets() const { return server_->count("GET", "/model/weights.bin"); }

  TempDir served_;
  TempDir cache_;
  const std::string bytes_ = make_bytes(300 * 1024, 41);
  const std::string other_ = make_bytes(300 * 1024, 42);  // same size, other bytes
  std::unique_ptr<TestServer> server_;
};

// ---- files changed behind the cache's back -------------------------------------------

TEST_F(NeighboursTest, AFileRewrittenByAnotherProgramIsNeitherAHitNorOverwritten) {
  ASSERT_EQ(e2s({"-q", "resolve", root(), "weights.bin"}).status, 0);
  write_behind_the_cache(other_);
  server_->reset();
  const CliRun run = e2s({"-q", "resolve", root(), "weights.bin"});
  EXPECT_NE(run.status, 0) << "served another program's bytes as a verified hit: " << run.out;
  e2s::test::expect_one_error_line(run);
  EXPECT_TRUE(contains(run.err, cached().string())) << run.err;
  EXPECT_TRUE(contains(run.err, "does not overwrite")) << run.err;
  EXPECT_TRUE(TempDir::read_file(cached()) == other_) << "the other program's file is untouched";
  EXPECT_GE(gets(), 1u) << "the cached copy was not trusted";

  // Once the user moves it away, the kept download is committed with a
  // one-byte check that the server still has that version.
  fs::remove(cached());
  server_->reset();
  const CliRun again = e2s({"-q", "resolve", root(), "weights.bin"});
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_TRUE(TempDir::read_file(cached()) == bytes_);
  EXPECT_LE(server_->body_bytes(), 1u) << "the kept download is resumed, not fetched again";
}

TEST_F(NeighboursTest, TheSameBytesWrittenAgainAreReverifiedOnceNotFetched) {
  ASSERT_EQ(e2s({"-q", "resolve", root(), "weights.bin"}).status, 0);
  write_behind_the_cache(bytes_);  // a copy: same bytes, another inode and time
  server_->reset();
  const CliRun run = e2s({"-v", "resolve", root(), "weights.bin"});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(gets(), 0u);
  EXPECT_TRUE(contains(run.err, "changed since e2s wrote it")) << "-v says so: " << run.err;
  EXPECT_TRUE(contains(run.err, "intact")) << run.err;
  const CliRun next = e2s({"-v", "resolve", root(), "weights.bin"});
  ASSERT_EQ(next.status, 0) << next.err;
  EXPECT_FALSE(contains(next.err, "changed since")) << "its identity was recorded: " << next.err;
  EXPECT_EQ(gets(), 0u);
}

TEST_F(NeighboursTest, APackageThatResolvedAFileNoticesItChangeInMemory) {
  e2s::test::EnvGuard env(e2s::test::safety::scrubbed);
  e2s::test::ScopedEnv cache("EARTH2STUDIO_MODEL_CACHE", cache_.path().string());
  e2s::Package package(root());
  const fs::path path = package.resolve("weights.bin");
  write_behind_the_cache(other_);
  const e2s::Error error = e2s::test::error_of([&] { package.resolve("weights.bin"); });
  EXPECT_EQ(error.code(), e2s::Errc::io) << error.what();
  EXPECT_TRUE(TempDir::read_file(path) == other_);
}

TEST_F(NeighboursTest, VerifyPruneAndRemoveReportAChangedFileAndLeaveItInPlace) {
  ASSERT_EQ(e2s({"-q", "resolve", root(), "weights.bin"}).status, 0);
  write_behind_the_cache(other_);

  const CliRun verify = e2s({"cache", "verify", "--remove"});
  EXPECT_EQ(verify.status, 6) << verify.out << verify.err;
  EXPECT_TRUE(contains(verify.out, "changed: ")) << verify.out;
  EXPECT_TRUE(contains(verify.out, "left in place")) << verify.out;
  EXPECT_TRUE(contains(verify.err, "changed by another program")) << verify.err;
  EXPECT_TRUE(TempDir::read_file(cached()) == other_);

  const CliRun prune = e2s({"cache", "prune", "--max-size", "0"});
  EXPECT_EQ(prune.status, 0) << prune.err;
  EXPECT_TRUE(contains(prune.out, "left in place")) << prune.out;
  EXPECT_TRUE(TempDir::read_file(cached()) == other_);

  const CliRun rm = e2s({"cache", "rm", root()});
  EXPECT_EQ(rm.status, 0) << rm.err;
  EXPECT_TRUE(contains(rm.out, "in place")) << rm.out;
  EXPECT_TRUE(TempDir::read_file(cached()) == other_);
  EXPECT_TRUE(e2s::test::cached_meta(storage(), "weights.bin").is_null()) << "e2s no longer vouches for it";
}

// Earth2Studio fetched the file into the shared folder first: e2s finds the
// very bytes it downloads there and adopts that file, replacing nothing.
TEST_F(NeighboursTest, AnotherProgramsCopyOfTheSameBytesIsAdoptedAsItIs) {
  cache_.write_file(cached().lexically_relative(cache_.path()), bytes_);
  struct stat before {};
  ASSERT_EQ(::stat(cached().c_str(), &before), 0);
  const CliRun run = e2s({"-q", "resolve", root(), "weights.bin"});
  ASSERT_EQ(run.status, 0) << run.err;
  struct stat after {};
  ASSERT_EQ(::stat(cached().c_str(), &after), 0);
  EXPECT_EQ(after.st_ino, before.st_ino) << "adopted, not replaced";
  const json meta = e2s::test::cached_meta(storage(), "weights.bin");
  EXPECT_EQ(meta.at("data").at("inode").get<std::uint64_t>(), static_cast<std::uint64_t>(before.st_ino));
  server_->reset();
  ASSERT_EQ(e2s({"-q", "resolve", root(), "weights.bin"}).status, 0);
  EXPECT_EQ(gets(), 0u) << "a hit from then on";
}

// ---- header values, names, and what a failed record leaves ---------------------------------

TEST_F(NeighboursTest, AnETagThatIsNoUtf8IsRecordedLosslessly) {
  // Latin-1 in the header: byte 0xFF on the wire (legal obs-text).
  server_->add_headers("/model/weights.bin", {{"ETag", "\"v1-\u00ff\""}});
  const CliRun run = e2s({"-q", "resolve", root(), "weights.bin"});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_TRUE(TempDir::read_file(cached()) == bytes_);
  EXPECT_EQ(e2s::test::cached_meta(storage(), "weights.bin").value("etag", ""), "v1-%FF");
  const CliRun ls = e2s({"cache", "ls", "--json"});
  EXPECT_EQ(ls.status, 0) << ls.err;
  const CliRun verify = e2s({"cache", "verify"});
  EXPECT_EQ(verify.status, 0) << verify.out << verify.err;
}

TEST_F(NeighboursTest, AResumeComparesTheETagAsTheServerSentIt) {
  // A stream cut mid-way: its journal keeps the raw ETag, and the next run
  // resumes only because the server sends that very value again.
  served_.write_file("model/weights.bin", make_bytes(12u << 20, 43));
  server_->add_headers("/model/weights.bin", {{"ETag", "\"v1-\u00ff\""}});
  server_->fault({{"path", "/model/weights.bin"}, {"kind", "cut"}, {"after", 3u << 20}});
  server_->fault({{"path", "/model/weights.bin"}, {"kind", "status"}, {"status", 503}, {"times", -1}});
  const CliRun first = e2s({"-q", "--timeout", "2", "--connections", "1", "resolve", root(), "weights.bin"});
  EXPECT_EQ(first.status, 5) << first.err;
  server_->reset();
  server_->add_headers("/model/weights.bin", {{"ETag", "\"v1-\u00ff\""}});
  const CliRun again = e2s({"-q", "--connections", "1", "resolve", root(), "weights.bin"});
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_LT(server_->body_bytes(), 12u << 20) << "resumed";
}

TEST(HubNeighbours, ACommitThatIsNoUtf8IsRecordedLosslessly) {
  e2s::test::EnvGuard env(e2s::test::safety::scrubbed);
  TempDir repos, cache;
  repos.write_file("models/acme/w/main/config.json", "{}\n");
  TestServer hub("hf_server.py", {"--root", repos.path().string()});
  hub.add_headers("/acme/w/resolve/main/config.json", {{"X-Repo-Commit", "abc\u00ff"}});
  env.set("HF_ENDPOINT", hub.url());
  e2s::PackageOptions options;
  options.cache_options.cache_storage = cache.path();
  e2s::Package package("hf://acme/w", options);
  EXPECT_EQ(TempDir::read_file(package.resolve("config.json")), "{}\n");
  EXPECT_EQ(e2s::test::cached_meta(cache.path(), "config.json").value("version", ""), "abc%FF");
}

TEST_F(NeighboursTest, UnusableFileNamesAreRefusedBeforeAnyRequest) {
  for (const std::string& name : {std::string("w\xff.bin"), std::string("sub/") + std::string(256, 'n')}) {
    const CliRun run = e2s({"resolve", root(), name});
    EXPECT_EQ(run.status, 2) << run.err;
    e2s::test::expect_one_error_line(run);
  }
  EXPECT_TRUE(server_->stats().at("requests").empty());
}

// A record that cannot be written leaves no file at the final path: data is
// put in place only once its metadata is durable.
TEST_F(NeighboursTest, AFailedRecordLeavesNoFileWithoutMetadata) {
  // A folder where the record goes: the rename of the record fails.
  const fs::path meta = storage() / ".e2s" / "meta" / (e2s::detail::sha256_hex(root() + "/weights.bin") + ".json");
  fs::create_directories(meta / "in-the-way");
  const CliRun run = e2s({"-q", "resolve", root(), "weights.bin"});
  EXPECT_EQ(run.status, 1) << run.err;
  e2s::test::expect_one_error_line(run);
  EXPECT_FALSE(fs::exists(cached())) << "data without metadata: invisible to cache ls, prune and rm";
}

}  // namespace
