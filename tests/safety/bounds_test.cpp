// Nothing from outside makes e2s wait, allocate or retry without a bound:
// - a server announcing a huge size is refused before anything is planned;
// - a FIFO planted in the cache's bookkeeping is reported, never waited on;
// - --timeout bounds the time a file goes without progress, whatever the
//   server does (trickles, falls silent, asks to retry in 30 years, never
//   answers), and progress is never mistaken for failure.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <map>
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
using namespace std::chrono_literals;

using Clock = std::chrono::steady_clock;

class BoundsTest : public ::testing::Test {
 protected:
  BoundsTest() {
    served_.write_file("model/weights.bin", make_bytes(600 * 1024, 31));
    server_ = std::make_unique<TestServer>("http_server.py", std::vector<std::string>{"--root", served_.path().string()});
  }

  std::string root() const { return server_->url("/model"); }

  CliOptions cli(const std::map<std::string, std::string>& env = {}) const {
    CliOptions options;
    options.env = env;
    options.env["EARTH2STUDIO_MODEL_CACHE"] = cache_.path().string();
    options.scrub = e2s::test::safety::scrubbed;
    // A bug here must not take the machine with it. (AddressSanitizer
    // reserves terabytes of address space: no such limit under it.)
#if !defined(__SANITIZE_ADDRESS__)
    options.wrapper = {"prlimit", "--as=4000000000", "--"};
#endif
    return options;
  }

  // Runs the CLI; a run still going after `limit` is killed and fails the test.
  CliRun run(const std::vector<std::string>& args, std::chrono::milliseconds limit,
             const std::map<std::string, std::string>& env = {}) {
    std::optional<CliRun> result = CliProcess(args, cli(env)).wait_for(limit);
    if (!result) {
      ADD_FAILURE() << "still running after " << limit.count() << " ms";
      return {};
    }
    return *result;
  }

  void inject(json fault) {
    fault["path"] = "/model/weights.bin";
    server_->fault(fault);
  }

  TempDir served_;
  TempDir cache_;
  std::unique_ptr<TestServer> server_;
};

// ---- sizes ----------------------------------------------------------------------------

TEST_F(BoundsTest, AHugeAnnouncedSizeIsRefusedBeforeAnythingIsPlanned) {
  inject({{"kind", "announce"}, {"content_length", "9223372036854775807"}, {"times", -1}});
  const CliRun result = run({"resolve", root(), "weights.bin"}, 20s);
  EXPECT_EQ(result.status, 1) << result.err;
  EXPECT_TRUE(contains(result.err, "9223372036854775807 bytes")) << result.err;
  EXPECT_TRUE(contains(result.err, "free disk space")) << result.err;
  EXPECT_TRUE(contains(result.err, cache_.path().string())) << "names the folder: " << result.err;
  EXPECT_TRUE(e2s::test::cached_files(cache_.path()).empty());
}

TEST_F(BoundsTest, AHugeLinkedSizeOnTheHubIsRefusedBeforeAnythingIsPlanned) {
  TempDir repos;
  repos.write_file("models/acme/big/main/weights.bin", make_bytes(4096, 32));
  TestServer hub("hf_server.py", {"--root", repos.path().string()});
  hub.add_headers("/acme/big/resolve/main/weights.bin", {{"X-Linked-Size", "4611686018427387904"}});
  const CliRun result = run({"resolve", "hf://acme/big", "weights.bin"}, 20s, {{"HF_ENDPOINT", hub.url()}});
  EXPECT_EQ(result.status, 1) << result.err;
  EXPECT_TRUE(contains(result.err, "4611686018427387904 bytes")) << result.err;
  std::size_t cdn_gets = 0;
  const json stats = hub.stats();  // not a temporary: the loop keeps references into it
  for (const auto& request : stats.at("requests")) cdn_gets += request.at("host") == "cdn";
  EXPECT_EQ(cdn_gets, 0u) << "nothing is fetched";
}

// ---- planted FIFOs ----------------------------------------------------------------------

class FifoTest : public BoundsTest {
 protected:
  fs::path storage() const {
    e2s::test::ScopedEnv env("EARTH2STUDIO_MODEL_CACHE", cache_.path().string());
    return e2s::Package(root()).cache();
  }
  std::string key_hash() const { return e2s::detail::sha256_hex(root() + "/weights.bin"); }
  void plant(const fs::path& path) {
    fs::create_directories(path.parent_path());
    ASSERT_EQ(::mkfifo(path.c_str(), 0644), 0) << path;
  }
};

TEST_F(FifoTest, AFifoAsMetadataIsReportedNotWaitedOn) {
  plant(storage() / ".e2s" / "meta" / (key_hash() + ".json"));
  const CliRun ls = run({"cache", "ls"}, 20s);
  EXPECT_TRUE(contains(ls.out + ls.err, "not a regular file")) << ls.out << ls.err;
  const CliRun verify = run({"cache", "verify"}, 20s);
  EXPECT_NE(verify.status, 0);
  EXPECT_TRUE(contains(verify.out + verify.err, "not a regular file")) << verify.out << verify.err;
  // Resolving treats it as no metadata: the file is fetched, and its
  // metadata takes the FIFO's place.
  const CliRun resolve = run({"-q", "resolve", root(), "weights.bin"}, 20s);
  EXPECT_EQ(resolve.status, 0) << resolve.err;
  EXPECT_TRUE(fs::is_regular_file(storage() / ".e2s" / "meta" / (key_hash() + ".json")));
}

TEST_F(FifoTest, AFifoAsAJournalIsReportedNotWaitedOn) {
  const fs::path temp = storage() / ".e2s" / "tmp" / (key_hash() + "-released.1.2.3");
  fs::create_directories(temp);
  cache_.write_file((temp / "data").lexically_relative(cache_.path()), "partial");
  plant(temp / "journal.json");
  const CliRun resolve = run({"-q", "resolve", root(), "weights.bin"}, 20s);
  EXPECT_EQ(resolve.status, 0) << resolve.err;
}

TEST_F(FifoTest, AFifoAsTheLockFileIsNoWait) {
  plant(storage() / ".e2s" / "locks" / (key_hash() + ".lock"));
  const CliRun resolve = run({"-q", "resolve", root(), "weights.bin"}, 20s);
  EXPECT_EQ(resolve.status, 0) << resolve.err;
}

TEST_F(FifoTest, AFifoAsCachedDataIsReportedNotWaitedOn) {
  ASSERT_EQ(run({"-q", "resolve", root(), "weights.bin"}, 20s).status, 0);
  fs::remove(e2s::test::data_file(storage(), "weights.bin"));
  plant(e2s::test::data_file(storage(), "weights.bin"));
  const CliRun verify = run({"cache", "verify"}, 20s);
  EXPECT_NE(verify.status, 0) << verify.out << verify.err;
}

// ---- time -----------------------------------------------------------------------------

// What --timeout 1.5 comes to against servers that never give up the line.
class TimeoutTest : public BoundsTest {
 protected:
  // Resolves with --timeout 1.5; must fail with exit 5 in about that time.
  CliRun expect_bounded(const std::string& resolve_root = "") {
    const auto start = Clock::now();
    const CliRun result =
        run({"--timeout", "1.5", "resolve", resolve_root.empty() ? root() : resolve_root, "weights.bin"}, 30s);
    const auto took = Clock::now() - start;
    EXPECT_EQ(result.status, 5) << result.err;
    // The window (1.5 s), the stall check's own granularity (about a second)
    // and a margin for a loaded machine.
    EXPECT_LT(took, 4500ms) << "--timeout 1.5 took " << std::chrono::duration<double>(took).count() << " s";
    e2s::test::expect_one_error_line(result);
    return result;
  }
};

TEST_F(TimeoutTest, AServerThatTricklesAByteASecondIsGivenUpOn) {
  inject({{"kind", "trickle"}, {"bytes_per_sec", 1}, {"times", -1}});
  const CliRun result = expect_bounded();
  EXPECT_TRUE(contains(result.err, "timed out")) << result.err;
}

TEST_F(TimeoutTest, HeadersThenSilenceIsGivenUpOn) {
  inject({{"kind", "stall"}, {"after", 0}, {"seconds", 60}, {"times", -1}});
  expect_bounded();
}

TEST_F(TimeoutTest, ARetryAfterBeyondTheTimeoutIsNotWaited) {
  inject({{"kind", "status"}, {"status", 429}, {"retry_after", "999999999"}, {"times", -1}});
  const CliRun result = expect_bounded();
  EXPECT_TRUE(contains(result.err, "Retry-After")) << result.err;
  EXPECT_EQ(server_->count("GET", "/model/weights.bin"), 1u) << "no retry before the server's time";
}

TEST_F(TimeoutTest, AServerThatNeverAnswersIsGivenUpOn) {
  // Listening, never accepting: connects complete in the kernel's backlog,
  // and no byte ever comes.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t length = sizeof(address);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  expect_bounded("http://127.0.0.1:" + std::to_string(ntohs(address.sin_port)) + "/model");
  ::close(fd);
}

// A connection reset every 300 KiB is a slow path, not a failure: every
// attempt progresses, so the stream goes on to the end.
TEST(Progress, AStreamCutEveryFewHundredKiBCompletes) {
  e2s::test::EnvGuard env(e2s::test::safety::scrubbed);
  TempDir served, cache;
  const std::string bytes = make_bytes(7u << 20, 33);
  served.write_file("model/weights.bin", bytes);
  TestServer server("http_server.py", {"--root", served.path().string()});
  server.fault({{"path", "/model/weights.bin"}, {"kind", "cut"}, {"after", 300 * 1024}, {"times", -1}});
  e2s::PackageOptions options;
  options.cache_options.cache_storage = cache.path();
  options.max_connections = 1;
  options.retry.initial_backoff = 1ms;
  const fs::path path = e2s::Package(server.url("/model"), options).resolve("weights.bin");
  EXPECT_TRUE(TempDir::read_file(path) == bytes);
  EXPECT_GE(server.count("GET", "/model/weights.bin"), 24u);
}

}  // namespace
