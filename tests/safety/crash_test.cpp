// Processes that are killed, stopped or many at once, sharing one cache: the
// final path only ever holds a complete, verified file; a killed download
// resumes from what it durably wrote; N processes download a file about once.
#include <signal.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "support/cli_runner.hpp"
#include "support/fixtures.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"
#include "util/hash.hpp"

namespace {

namespace fs = std::filesystem;
using e2s::test::CliOptions;
using e2s::test::CliProcess;
using e2s::test::CliRun;
using e2s::test::TempDir;
using e2s::test::TestServer;
using namespace std::chrono_literals;

constexpr std::uint64_t kMiB = 1u << 20;


// A served folder with one file, "model/weights.bin", and a cache folder.
class CrashTest : public ::testing::Test {
 protected:
  void serve(std::size_t size, std::uint64_t bytes_per_second) {
    bytes_ = e2s::test::make_bytes(size, 7);
    served_.write_file("model/weights.bin", bytes_);
    server_ = std::make_unique<TestServer>(
        "http_server.py",
        std::vector<std::string>{"--root", served_.path().string(), "--rate", std::to_string(bytes_per_second)});
  }

  std::string root() const { return server_->url("/model"); }

  CliOptions cli(std::map<std::string, std::string> env = {}) const {
    CliOptions options;
    options.env = std::move(env);
    options.env["EARTH2STUDIO_MODEL_CACHE"] = cache_.path().string();
    // Checkpoints every 0.1 s rather than every second: the same journal,
    // ten times the kills per second of test.
    options.env.emplace("E2S_CHECKPOINT_SECONDS", "0.1");
    options.scrub = [](const std::string& name) { return name.find("proxy") != std::string::npos ||
                                                          name.find("PROXY") != std::string::npos; };
    return options;
  }

  std::vector<std::string> resolve_args(int connections) const {
    return {"-q", "--connections", std::to_string(connections), "resolve", root(), "weights.bin"};
  }

  // Files under the cache that are neither bookkeeping nor temp: what a
  // user (or a later run) would trust.
  std::vector<fs::path> final_files() const { return e2s::test::cached_files(cache_.path()); }

  // Bytes the journals under the cache claim are on disk (0 without one).
  std::uint64_t journaled_bytes() const {
    std::uint64_t total = 0;
    for (const auto& entry : fs::recursive_directory_iterator(cache_.path())) {
      if (entry.path().filename() != "journal.json") continue;
      auto journal = nlohmann::json::parse(TempDir::read_file(entry.path()));
      for (const auto& range : journal.at("written")) {
        total += range.at(1).get<std::uint64_t>() - range.at(0).get<std::uint64_t>();
      }
    }
    return total;
  }

  // Waits until the server has stopped sending (a killed client's
  // connection drains for a moment), then forgets its statistics.
  void settle_and_reset() const {
    for (std::uint64_t last = ~0ull; server_->body_bytes() != last;) {
      last = server_->body_bytes();
      std::this_thread::sleep_for(50ms);
    }
    server_->reset();
  }

  void wait_for_bytes(std::uint64_t at_least) const {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (server_->body_bytes() < at_least && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(5ms);
    }
  }

  TempDir served_;
  TempDir cache_;
  std::string bytes_;
  std::unique_ptr<TestServer> server_;
};

class KillTest : public CrashTest, public ::testing::WithParamInterface<int> {};

// Kills a download at ten points spread over the file; after each kill the
// final path is absent or complete, and the next run downloads exactly the
// bytes the journal did not vouch for, then verifies the whole file.
TEST_P(KillTest, KilledDownloadsNeverLeaveAPartialFileAndResumeFromDisk) {
  const int connections = GetParam();
  // ~0.3 s per download: the kills land before, around and after the first
  // checkpoints (one every 0.1 s here).
  serve(16 * kMiB, connections == 1 ? 50 * kMiB : 50 * kMiB / 4);
  int resumed_runs = 0;
  for (int point = 1; point <= 10; ++point) {
    SCOPED_TRACE("kill point " + std::to_string(point));
    fs::remove_all(cache_.path());
    fs::create_directories(cache_.path());
    server_->reset();
    {
      CliProcess download(resolve_args(connections), cli());
      wait_for_bytes(bytes_.size() * static_cast<std::uint64_t>(point) / 11);
      download.signal(SIGKILL);
      const CliRun killed = download.wait();
      if (killed.signal == 0) {
        // It finished first: then the file must be whole.
        ASSERT_EQ(killed.status, 0) << killed.err;
      }
    }
    for (const fs::path& file : final_files()) {
      EXPECT_EQ(TempDir::read_file(file), bytes_) << "a partial or corrupt file at " << file;
    }
    const std::uint64_t kept = journaled_bytes();
    if (kept > 0) ++resumed_runs;

    settle_and_reset();
    const CliRun again = CliProcess(resolve_args(connections), cli()).wait();
    ASSERT_EQ(again.status, 0) << again.err;
    const fs::path path = again.out.substr(0, again.out.find('\n'));
    EXPECT_EQ(TempDir::read_file(path), bytes_);
    // Exactly what was missing comes again (a resumed stream re-asks its
    // last byte so that the server vouches for the bytes on disk).
    const std::uint64_t fetched = server_->body_bytes();
    if (final_files().size() == 1 && kept == 0 && fetched == 0) continue;  // killed after commit
    EXPECT_GE(fetched, bytes_.size() - kept);
    // In parallel, a part whose tail another connection took over may run a
    // little past its new end before its request stops.
    const std::uint64_t overshoot = connections == 1 ? 1 : kMiB;
    EXPECT_LE(fetched, bytes_.size() - kept + overshoot) << "kept " << kept;
    EXPECT_FALSE(fs::exists(path.parent_path() / ".e2s" / "tmp") &&
                 !fs::is_empty(path.parent_path() / ".e2s" / "tmp"))
        << "the resumed temp folder is cleaned up";
  }
  EXPECT_GE(resumed_runs, 3) << "most later kill points find checkpointed bytes to resume";
}

INSTANTIATE_TEST_SUITE_P(Modes, KillTest, ::testing::Values(1, 4), [](const auto& info) {
  return info.param == 1 ? std::string("SingleStream") : std::string("ParallelParts");
});

TEST_F(CrashTest, APartialOfAChangedFileIsDiscardedNotStitched) {
  serve(16 * kMiB, 10 * kMiB / 4);
  {
    CliProcess download(resolve_args(4), cli());
    wait_for_bytes(12 * kMiB);
    download.signal(SIGKILL);
    download.wait();
  }
  ASSERT_GT(journaled_bytes(), 0u);
  // Same size, other bytes: a new ETag.
  const std::string changed = e2s::test::make_bytes(bytes_.size(), 8);
  served_.write_file("model/weights.bin", changed);
  settle_and_reset();
  const CliRun again = CliProcess(resolve_args(4), cli()).wait();
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_EQ(TempDir::read_file(again.out.substr(0, again.out.find('\n'))), changed);
  EXPECT_GE(server_->body_bytes(), changed.size()) << "everything is fetched again";
}

TEST_F(CrashTest, SixteenProcessesOnOneColdFileDownloadItAboutOnce) {
  serve(12 * kMiB, 8 * kMiB);
  std::vector<std::unique_ptr<CliProcess>> processes;
  for (int i = 0; i < 16; ++i) {
    processes.push_back(std::make_unique<CliProcess>(
        std::vector<std::string>{"--connections", "4", "resolve", root(), "weights.bin"}, cli()));
  }
  int waited = 0;
  std::string path;
  for (auto& process : processes) {
    const CliRun run = process->wait();
    ASSERT_EQ(run.status, 0) << run.err;
    if (path.empty()) path = run.out;
    EXPECT_EQ(run.out, path);
    if (run.err.find("waiting for another process") != std::string::npos) ++waited;
  }
  EXPECT_EQ(TempDir::read_file(path.substr(0, path.find('\n'))), bytes_);
  EXPECT_LE(server_->body_bytes(), bytes_.size() + bytes_.size() / 4) << "about once";
  EXPECT_GE(waited, 1) << "waiting is visible";
  EXPECT_EQ(final_files().size(), 1u);
}

TEST_F(CrashTest, WithoutLocksSixteenProcessesStillGetACompleteFile) {
  // What a filesystem whose locks do nothing comes to: duplicate downloads,
  // never a corrupt file.
  serve(12 * kMiB, 16 * kMiB);
  std::vector<std::unique_ptr<CliProcess>> processes;
  for (int i = 0; i < 16; ++i) {
    processes.push_back(std::make_unique<CliProcess>(
        std::vector<std::string>{"-q", "--connections", "2", "resolve", root(), "weights.bin"},
        cli({{"E2S_LOCKS", "0"}})));
  }
  for (auto& process : processes) {
    const CliRun run = process->wait();
    ASSERT_EQ(run.status, 0) << run.err;
    EXPECT_EQ(TempDir::read_file(run.out.substr(0, run.out.find('\n'))), bytes_);
  }
  EXPECT_LE(server_->body_bytes(), 16 * bytes_.size() * 11 / 10);
  EXPECT_EQ(final_files().size(), 1u);
}

TEST_F(CrashTest, AStuckLockHolderIsPassedAfterTheStaleTime) {
  serve(12 * kMiB, 4 * kMiB);
  CliProcess stuck(resolve_args(1), cli());
  wait_for_bytes(1 * kMiB);
  stuck.signal(SIGSTOP);
  const auto start = std::chrono::steady_clock::now();
  const CliRun other =
      CliProcess({"--connections", "4", "resolve", root(), "weights.bin"}, cli({{"E2S_LOCK_STALE_SECONDS", "0.5"}}))
          .wait();
  const auto waited = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(other.status, 0) << other.err;
  EXPECT_NE(other.err.find("waiting for another process"), std::string::npos) << other.err;
  EXPECT_NE(other.err.find("no progress"), std::string::npos) << other.err;
  EXPECT_GE(waited, 500ms);
  EXPECT_EQ(TempDir::read_file(other.out.substr(0, other.out.find('\n'))), bytes_);
  // The stuck one wakes up and finishes too, on its own temp file.
  stuck.signal(SIGCONT);
  const CliRun woken = stuck.wait();
  EXPECT_EQ(woken.status, 0) << woken.err;
  EXPECT_EQ(TempDir::read_file(other.out.substr(0, other.out.find('\n'))), bytes_);
  EXPECT_EQ(final_files().size(), 1u);
}

TEST_F(CrashTest, ALockOfAKilledHolderIsFreedAtOnce) {
  serve(12 * kMiB, 4 * kMiB);
  CliProcess holder(resolve_args(1), cli());
  wait_for_bytes(1 * kMiB);
  CliProcess waiter({"--connections", "4", "resolve", root(), "weights.bin"}, cli());
  std::this_thread::sleep_for(300ms);
  holder.signal(SIGKILL);
  holder.wait();
  const CliRun run = waiter.wait();
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(TempDir::read_file(run.out.substr(0, run.out.find('\n'))), bytes_);
  EXPECT_EQ(run.err.find("no progress"), std::string::npos) << "no stale wait: " << run.err;
}

}  // namespace
