// Resumed and retried downloads never stitch bytes of two versions together
// and never trust bytes a journal describes but the disk does not hold:
// - a journal only ever describes bytes that are on disk, whatever mix of
//   single-stream and parallel runs is killed on the way;
// - a reply without an ETag is never appended to bytes that came with one (or
//   the other way round), in a single stream or in parallel parts.
#include <signal.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
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
using e2s::test::make_bytes;
using e2s::test::TempDir;
using e2s::test::TestServer;
using e2s::test::EnvGuard;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr std::uint64_t kMiB = 1u << 20;

// The bytes of every journal under `cache` must be the served file's
// (`versions` maps an ETag to the bytes served under it): a journal that
// claims bytes the disk does not hold is how zeros get committed.
void expect_journals_describe_the_disk(const fs::path& cache, const std::map<std::string, std::string>& versions) {
  if (!fs::exists(cache)) return;
  for (const auto& item : fs::recursive_directory_iterator(cache)) {
    if (item.path().filename() != "journal.json") continue;
    const json journal = json::parse(TempDir::read_file(item.path()));
    const std::string data_text = TempDir::read_file(item.path().parent_path() / "data");
    const auto version = versions.find(journal.at("served_etag").get<std::string>());
    ASSERT_NE(version, versions.end()) << "a journal of an unknown version: " << journal.dump();
    for (const auto& range : journal.at("written")) {
      const auto begin = range.at(0).get<std::uint64_t>(), end = range.at(1).get<std::uint64_t>();
      ASSERT_LE(end, data_text.size()) << "the journal claims bytes beyond the data's end: " << journal.dump();
      EXPECT_TRUE(data_text.compare(begin, end - begin, version->second, begin, end - begin) == 0)
          << "the journal claims bytes [" << begin << ", " << end << ") that are not the file's";
    }
  }
}

class ResumeTest : public ::testing::Test {
 protected:
  void serve(std::size_t size, std::uint64_t bytes_per_second) {
    bytes_ = make_bytes(size, 21);
    other_ = make_bytes(size, 22);
    served_.write_file("model/weights.bin", bytes_);
    served_.write_file("model/other.bin", other_);
    std::vector<std::string> args{"--root", served_.path().string()};
    if (bytes_per_second > 0) args.insert(args.end(), {"--rate", std::to_string(bytes_per_second)});
    server_ = std::make_unique<TestServer>("http_server.py", args);
    versions_ = {{e2s::test::md5_hex(bytes_), bytes_}, {e2s::test::md5_hex(other_), other_}};
  }

  std::string root() const { return server_->url("/model"); }

  CliOptions cli() const {
    CliOptions options;
    options.env["EARTH2STUDIO_MODEL_CACHE"] = cache_.path().string();
    options.scrub = e2s::test::safety::scrubbed;
    return options;
  }

  // The package's cache folder, as the CLI computes it.
  fs::path storage() const {
    e2s::test::ScopedEnv env("EARTH2STUDIO_MODEL_CACHE", cache_.path().string());
    return e2s::Package(root()).cache();
  }

  // Starts `args`, kills it once the server has sent `after` bytes.
  void run_and_kill(const std::vector<std::string>& args, std::uint64_t after) {
    const std::uint64_t before = server_->body_bytes();
    CliProcess process(args, cli());
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (server_->body_bytes() < before + after && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(2ms);
    }
    process.signal(SIGKILL);
    const CliRun run = process.wait();
    ASSERT_EQ(run.signal, SIGKILL) << "the run ended before it was killed: " << run.err;
  }

  std::vector<std::string> resolve(int connections) const {
    std::vector<std::string> args{"-q"};
    if (connections > 0) args.insert(args.end(), {"--connections", std::to_string(connections)});
    args.insert(args.end(), {"resolve", root(), "weights.bin"});
    return args;
  }

  TempDir served_;
  TempDir cache_;
  std::string bytes_;
  std::string other_;
  std::map<std::string, std::string> versions_;
  std::unique_ptr<TestServer> server_;
};

// The sequence that once committed zero-filled holes: a parallel download
// killed with many ranges journaled; a single stream that resumes from the
// prefix and is killed before its next checkpoint; a parallel run that finds
// the journal longer than the data, preallocates, and is killed; then a run
// to the end. Each kill lands well before the first checkpoint (1 s).
TEST_F(ResumeTest, AJournalNeverOutlivesTheBytesItDescribes) {
  serve(16 * kMiB, 4 * kMiB);
  // What a killed parallel download leaves: the whole file preallocated,
  // three ranges written and journaled.
  const std::string key = root() + "/weights.bin";
  const fs::path temp = storage() / ".e2s" / "tmp" / (e2s::detail::sha256_hex(key) + "-released.1.2.3");
  std::string data(bytes_.size(), '\0');
  const std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges{{0, kMiB}, {4 * kMiB, 5 * kMiB},
                                                                    {8 * kMiB, 9 * kMiB}};
  json written = json::array();
  for (const auto& [begin, end] : ranges) {
    data.replace(begin, end - begin, bytes_, begin, end - begin);
    written.push_back({begin, end});
  }
  fs::create_directories(temp);
  cache_.write_file(temp.lexically_relative(cache_.path()) / "data", data);
  const json journal = {{"format", 2},   {"key", key},
                        {"size", bytes_.size()}, {"etag", ""},
                        {"served_etag", e2s::test::md5_hex(bytes_)}, {"written", written}};
  cache_.write_file(temp.lexically_relative(cache_.path()) / "journal.json", journal.dump());
  expect_journals_describe_the_disk(cache_.path(), versions_);

  run_and_kill(resolve(1), 256 * 1024);
  expect_journals_describe_the_disk(cache_.path(), versions_);
  run_and_kill(resolve(0), 512 * 1024);
  expect_journals_describe_the_disk(cache_.path(), versions_);

  const CliRun done = CliProcess(resolve(0), cli()).wait();
  ASSERT_EQ(done.status, 0) << done.err;
  const fs::path path = done.out.substr(0, done.out.find('\n'));
  EXPECT_TRUE(TempDir::read_file(path) == bytes_) << "the committed file is not the served one";
  EXPECT_EQ(e2s::test::cached_meta(storage(), "weights.bin").value("sha256", ""),
            e2s::detail::sha256_hex(bytes_));
  const CliRun verify = CliProcess({"cache", "verify"}, cli()).wait();
  EXPECT_EQ(verify.status, 0) << verify.out << verify.err;
}

// A journal the next run cannot use is removed before its folder is reused:
// the fresh download preallocates the data file, and a journal still lying
// there would then seem to describe it.
TEST_F(ResumeTest, AnUnusableJournalIsDroppedBeforeTheFolderIsReused) {
  serve(16 * kMiB, 4 * kMiB);
  const std::string key = root() + "/weights.bin";
  const fs::path temp = storage() / ".e2s" / "tmp" / (e2s::detail::sha256_hex(key) + "-released.1.2.3");
  // The journal claims 9 MiB; the data holds 2 (a stream truncated it).
  cache_.write_file(temp.lexically_relative(cache_.path()) / "data", bytes_.substr(0, 2 * kMiB));
  const json journal = {{"format", 2},   {"key", key},
                        {"size", bytes_.size()}, {"etag", ""},
                        {"served_etag", e2s::test::md5_hex(bytes_)}, {"written", {{0, kMiB}, {8 * kMiB, 9 * kMiB}}}};
  cache_.write_file(temp.lexically_relative(cache_.path()) / "journal.json", journal.dump());

  run_and_kill(resolve(0), 512 * 1024);
  expect_journals_describe_the_disk(cache_.path(), versions_);
  const CliRun done = CliProcess(resolve(0), cli()).wait();
  ASSERT_EQ(done.status, 0) << done.err;
  EXPECT_TRUE(TempDir::read_file(done.out.substr(0, done.out.find('\n'))) == bytes_);
}

// ---- in-process retries: no validator, no stitching ------------------------------------

class StitchTest : public ResumeTest, public ::testing::WithParamInterface<int> {
 protected:
  int connections() const { return GetParam(); }

  e2s::PackageOptions options() const {
    e2s::PackageOptions o = e2s::test::quick_retry_options(cache_.path() / "lib");
    o.retry.max_backoff = 5ms;
    o.max_connections = connections();
    return o;
  }

  // Resolves weights.bin: a new version is no reason to fail, and the bytes
  // must be those of one version the server sent.
  void expect_one_version() {
    e2s::Package package(root(), options());
    fs::path path;
    try {
      path = package.resolve("weights.bin");
    } catch (const e2s::Error& error) {
      FAIL() << "a new version is no reason to fail: " << error.what();
    }
    const std::string got = TempDir::read_file(path);
    EXPECT_TRUE(got == bytes_ || got == other_) << "bytes of two versions were stitched together";
    EXPECT_EQ(e2s::test::cached_meta(cache_.path() / "lib", "weights.bin").value("sha256", ""),
              e2s::detail::sha256_hex(got));
  }

  void inject(json fault) {
    fault["path"] = "/model/weights.bin";
    server_->fault(fault);
  }

  std::size_t size() const { return connections() == 1 ? 600 * 1024 : 9 * kMiB; }

  EnvGuard env_{e2s::test::safety::scrubbed};
};

// The first reply comes with an ETag and is cut; every later one is of
// another version and has none.
TEST_P(StitchTest, AReplyWithoutAnETagIsNotAppendedToBytesThatHadOne) {
  serve(size(), 0);
  if (connections() == 1) {
    inject({{"kind", "cut"}, {"after", 200000}});
  } else {
    // The first GET (which finds the size) and the first part, with an ETag.
    inject({{"kind", "serve"}, {"times", 2}});
  }
  inject({{"kind", "serve"}, {"source", "model/other.bin"}, {"headers", {{"ETag", nullptr}}}, {"times", -1}});
  expect_one_version();
}

// The first reply has no ETag and is cut; the later ones have one (another
// version's).
TEST_P(StitchTest, BytesWithoutAnETagAreNotContinuedByAReplyWithOne) {
  serve(size(), 0);
  if (connections() == 1) {
    inject({{"kind", "cut"}, {"after", 200000}, {"source", "model/other.bin"}, {"headers", {{"ETag", nullptr}}}});
  } else {
    inject({{"kind", "serve"}, {"source", "model/other.bin"}, {"headers", {{"ETag", nullptr}}}, {"times", 2}});
  }
  expect_one_version();
}

INSTANTIATE_TEST_SUITE_P(Modes, StitchTest, ::testing::Values(1, 4), [](const auto& info) {
  return info.param == 1 ? std::string("SingleStream") : std::string("ParallelParts");
});

}  // namespace

// ---- the soak: random kills, versions and validators ---------------------------------

// Many rounds of `e2s resolve` killed at random moments, mixing one stream
// and the default connections, against a server whose file changes version
// (and size) between rounds and that sometimes sends no ETag. After every
// round: each journal describes only bytes on disk, a file at its final path
// is byte for byte one version the server served and agrees with its record,
// and a run that exits 0 hands out such a file. At the end a clean run gets
// the current version and `cache verify` finds everything intact.
// E2S_SOAK_SEED repeats a run; E2S_SOAK_SECONDS sets its length (default 20).
TEST(ResumeSoak, RandomKillsVersionsAndValidatorsNeverCommitAWrongByte) {
  const char* seed_text = std::getenv("E2S_SOAK_SEED");
  const std::uint64_t seed = seed_text ? std::stoull(seed_text) : std::random_device{}();
  const char* seconds_text = std::getenv("E2S_SOAK_SECONDS");
  const auto budget = std::chrono::seconds(seconds_text ? std::stoi(seconds_text) : 20);
  SCOPED_TRACE("seed " + std::to_string(seed) + " (repeat with E2S_SOAK_SEED=" + std::to_string(seed) + ")");
  std::mt19937_64 rng(seed);
  auto chance = [&rng](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };

  TempDir served, cache;
  // 4 MiB/s per reply: one stream takes about 2.5 s, the default
  // connections about 0.3 s, so kills land everywhere in both, around
  // checkpoints taken every 0.1 s.
  TestServer server("http_server.py", {"--root", served.path().string(), "--rate", std::to_string(4 * kMiB)});
  const std::string root = server.url("/model");
  std::map<std::string, std::string> versions;  // ETag (MD5) -> bytes, every version served
  std::set<std::string> version_hashes;           // their SHA-256
  std::string current;
  auto publish = [&](std::size_t size) {
    current = make_bytes(size, static_cast<unsigned>(rng()));
    // Renamed into place: the server never serves a torn mix of two versions.
    served.write_file("model/.next", current);
    fs::rename(served.path() / "model" / ".next", served.path() / "model" / "weights.bin");
    versions[e2s::test::md5_hex(current)] = current;
    version_hashes.insert(e2s::detail::sha256_hex(current));
  };
  publish(10 * kMiB);

  CliOptions options;
  options.env["EARTH2STUDIO_MODEL_CACHE"] = cache.path().string();
  options.env["E2S_CHECKPOINT_SECONDS"] = "0.1";
  options.scrub = e2s::test::safety::scrubbed;
  fs::path storage;
  {
    e2s::test::ScopedEnv env("EARTH2STUDIO_MODEL_CACHE", cache.path().string());
    storage = e2s::Package(root).cache();
  }
  const fs::path final_path = e2s::test::data_file(storage, "weights.bin");

  // What a user (or the next run) could trust after a round.
  auto check_disk = [&](const std::string& when) {
    SCOPED_TRACE(when);
    expect_journals_describe_the_disk(cache.path(), versions);
    struct stat status {};
    if (::lstat(final_path.c_str(), &status) != 0) return;
    const std::string sha256 = e2s::detail::sha256_hex(TempDir::read_file(final_path));
    EXPECT_TRUE(version_hashes.count(sha256)) << "the final path holds bytes no server version had";
    const json meta = e2s::test::cached_meta(storage, "weights.bin");
    if (meta.is_null() || !meta.contains("data")) return;
    if (meta.at("data").at("inode").get<std::uint64_t>() == static_cast<std::uint64_t>(status.st_ino)) {
      EXPECT_EQ(meta.value("sha256", ""), sha256) << "the record describes other bytes than its file";
    }
  };

  int rounds = 0, kills = 0, completed = 0;
  bool validators = true;
  bool cached = false;  // the last round committed the current version
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < budget) {
    ++rounds;
    // A new version when the last one is cached (every round downloads),
    // and now and then in the middle of a download's rounds.
    if (cached || chance(0.2)) {
      static constexpr std::size_t kSizes[] = {10 * kMiB, 10 * kMiB + 12345, 9 * kMiB, 3 * kMiB};
      publish(kSizes[rng() % 4]);
    }
    if (chance(0.25)) {
      validators = !validators;
      server.reset();
      if (!validators) server.add_headers("/model/weights.bin", {{"ETag", nullptr}});
    }
    // --refresh: a cached older version is checked against the server.
    std::vector<std::string> args{"-q", "--refresh"};
    const bool one_stream = chance(0.5);
    if (one_stream) args.insert(args.end(), {"--connections", "1"});
    args.insert(args.end(), {"resolve", root, "weights.bin"});
    const std::string round = "round " + std::to_string(rounds) + (one_stream ? ", one stream" : ", default") +
                              (validators ? "" : ", no ETag");
    CliProcess process(args, options);
    // Kills before, around and after checkpoints; some rounds run to the
    // end, so that commits happen too.
    const int delay_ms = chance(0.2) ? 60000 : static_cast<int>(rng() % (one_stream ? 1500 : 500));
    const std::optional<CliRun> ended = process.wait_for(std::chrono::milliseconds(delay_ms));
    cached = false;
    if (!ended) {
      ++kills;
    } else {
      cached = true;
      ++completed;
      EXPECT_EQ(ended->status, 0) << round << ": " << ended->err;
      if (ended->status == 0) {
        const std::string got = TempDir::read_file(ended->out.substr(0, ended->out.find('\n')));
        EXPECT_TRUE(version_hashes.count(e2s::detail::sha256_hex(got))) << round << ": handed out a wrong file";
      }
    }
    check_disk(round);
    if (::testing::Test::HasFailure()) break;
  }
  std::printf("soak: seed %llu, %d rounds, %d killed, %d completed\n", static_cast<unsigned long long>(seed),
              rounds, kills, completed);

  server.reset();  // validators back
  const CliRun last = CliProcess({"-q", "--refresh", "resolve", root, "weights.bin"}, options).wait();
  ASSERT_EQ(last.status, 0) << last.err;
  EXPECT_TRUE(TempDir::read_file(final_path) == current) << "the clean run gets the current version";
  check_disk("after the clean run");
  const CliRun verify = CliProcess({"cache", "verify"}, options).wait();
  EXPECT_EQ(verify.status, 0) << verify.out << verify.err;
  EXPECT_GE(kills, 3) << "the soak killed too few downloads to mean anything";
}
