// The parallel ranged download against the loopback server.
#include <sys/resource.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>

#include "support/fixtures.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"
#include "transfer/download.hpp"
#include "util/hash.hpp"

namespace e2s::detail {
namespace {

using e2s::test::make_bytes;

using test::TempDir;
using test::TestServer;


class ParallelTest : public ::testing::Test {
 protected:
  ParallelTest() : bytes_(make_bytes(24 << 20, 3)), server_("http_server.py", {"--root", served_.path().string()}) {
    served_.write_file("f.bin", bytes_);
    retry_.initial_backoff = std::chrono::milliseconds(1);
    retry_.max_backoff = std::chrono::milliseconds(10);
  }

  RemoteFile remote() const {
    RemoteFile file;
    file.uri = server_.url("/f.bin");
    file.request.url = server_.url("/f.bin");
    file.size = bytes_.size();
    return file;
  }

  Downloaded fetch(const RemoteFile& file, int connections = 4) {
    Retrier retrier(retry_);
    TransferContext context{&client_, &retrier, {}, {}};
    context.max_connections = connections;
    return download_file(file, out_.path() / "f.part", context);
  }

  // The Range headers of the GETs the server saw.
  std::vector<std::string> ranges() const {
    const nlohmann::json stats = server_.stats();
    std::vector<std::string> seen;
    for (const auto& request : stats["requests"]) {
      if (request["method"] == "GET") seen.push_back(request["range"].is_string() ? request["range"].get<std::string>() : "");
    }
    return seen;
  }

  TempDir served_;
  TempDir out_;
  std::string bytes_;
  TestServer server_;
  http::Client client_;
  RetryOptions retry_;
};

TEST_F(ParallelTest, LargeFileGoesAsParallelRangesWithTheRightDigest) {
  Downloaded result = fetch(remote());
  EXPECT_EQ(result.size, bytes_.size());
  EXPECT_EQ(result.sha256, sha256_hex(bytes_));
  EXPECT_EQ(TempDir::read_file(out_.path() / "f.part"), bytes_);
  const auto seen = ranges();
  EXPECT_GE(seen.size(), 4u);
  for (const auto& range : seen) EXPECT_EQ(range.rfind("bytes=", 0), 0u) << range;
  // Closed ranges that tile the file: from 0, each where another ends.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> spans;
  for (const auto& range : seen) {
    const auto dash = range.find('-');
    ASSERT_NE(dash + 1, range.size()) << "open-ended: " << range;
    spans.emplace_back(std::stoull(range.substr(6, dash - 6)), std::stoull(range.substr(dash + 1)) + 1);
  }
  std::sort(spans.begin(), spans.end());
  std::uint64_t covered = 0;
  for (const auto& [begin, end] : spans) {
    EXPECT_EQ(begin, covered) << "a gap or an overlap";
    covered = end;
  }
  EXPECT_EQ(covered, bytes_.size());
  EXPECT_EQ(server_.body_bytes(), bytes_.size()) << "each byte sent once";
}

TEST_F(ParallelTest, Md5IsCheckedAcrossParts) {
  RemoteFile file = remote();
  Digest md5(DigestAlgorithm::md5);
  md5.update(bytes_.data(), bytes_.size());
  file.md5 = md5.hex_final();
  EXPECT_EQ(fetch(file).sha256, sha256_hex(bytes_));
  file.md5 = "0123456789abcdef0123456789abcdef";
  try {
    fetch(file);
    FAIL() << "expected integrity error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::integrity);
  }
}

TEST_F(ParallelTest, SmallFilesAndOneConnectionUseOneStream) {
  fetch(remote(), /*connections=*/1);
  EXPECT_EQ(ranges(), std::vector<std::string>{""});
  server_.reset();
  served_.write_file("small.bin", std::string(1 << 20, 's'));
  RemoteFile small = remote();
  small.request.url = small.uri = server_.url("/small.bin");
  small.size = 1 << 20;
  fetch(small, 8);
  EXPECT_EQ(ranges(), std::vector<std::string>{""});
}

TEST_F(ParallelTest, ServerIgnoringRangeFallsBackToOneStream) {
  server_.fault({{"path", "/f.bin"}, {"kind", "ignore_range"}, {"times", -1}});
  Downloaded result = fetch(remote());
  EXPECT_EQ(result.sha256, sha256_hex(bytes_));
  const auto seen = ranges();
  ASSERT_EQ(seen.size(), 2u) << "one refused probe, then one plain stream";
  EXPECT_FALSE(seen[0].empty());
  EXPECT_TRUE(seen[1].empty());
}

TEST_F(ParallelTest, FailedPartIsRetriedAlone) {
  // Two GETs fail (whichever parts they belong to); only those are repeated.
  server_.fault({{"path", "/f.bin"}, {"kind", "status"}, {"status", 503}, {"times", 2}, {"methods", {"GET"}}});
  Downloaded result = fetch(remote());
  EXPECT_EQ(result.sha256, sha256_hex(bytes_));
  const auto seen = ranges();
  std::set<std::string> distinct(seen.begin(), seen.end());
  EXPECT_EQ(seen.size(), distinct.size() + 2) << "exactly the two failed ranges were asked twice";
}

TEST_F(ParallelTest, PartCutMidwayResumesAtItsOffset) {
  server_.fault({{"path", "/f.bin"}, {"kind", "cut"}, {"after", 300000}, {"methods", {"GET"}}});
  Downloaded result = fetch(remote());
  EXPECT_EQ(result.sha256, sha256_hex(bytes_));
  // The cut part (the first request, from byte 0) went on from where it
  // stopped rather than starting over.
  const auto seen = ranges();
  const bool resumed = std::any_of(seen.begin(), seen.end(), [](const std::string& range) {
    return range.rfind("bytes=300000-", 0) == 0;
  });
  EXPECT_TRUE(resumed);
  EXPECT_EQ(std::count(seen.begin(), seen.end(), seen.front()), 1) << "the first range was not asked again";
}

TEST_F(ParallelTest, ShortPartialReplyIsContinued) {
  // The first range comes back short: 206 with fewer bytes than asked.
  server_.fault({{"path", "/f.bin"}, {"kind", "short"}, {"after", 1000}, {"methods", {"GET"}}});
  EXPECT_EQ(fetch(remote()).sha256, sha256_hex(bytes_));
}

TEST_F(ParallelTest, WrongRangeIsRefusedAndRetried) {
  server_.fault({{"path", "/f.bin"}, {"kind", "wrong_range"}, {"methods", {"GET"}}, {"times", 2}});
  EXPECT_EQ(fetch(remote()).sha256, sha256_hex(bytes_));
}

TEST_F(ParallelTest, PersistentFailureStopsEveryPartAndReportsIt) {
  server_.fault({{"path", "/f.bin"}, {"kind", "status"}, {"status", 404}, {"times", -1}, {"methods", {"GET"}}});
  try {
    fetch(remote());
    FAIL() << "expected not_found";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::not_found);
  }
}

TEST_F(ParallelTest, SlowPartIsSplitSoTheTailDoesNotWait) {
  // The first request (part 0, 3 MiB) trickles at 100 KB/s: alone it would
  // take 30 s. Idle workers take over the rest of it once it lags.
  server_.fault({{"path", "/f.bin"}, {"kind", "trickle"}, {"bytes_per_sec", 100000}, {"methods", {"GET"}}});
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(fetch(remote()).sha256, sha256_hex(bytes_));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(8));
  // The first piece (3 MiB: 24 MiB over twice 4 connections) was split.
  bool split = false;
  for (const auto& range : ranges()) {
    const std::uint64_t begin = std::stoull(range.substr(6));
    if (begin > 0 && begin < (3u << 20)) split = true;
  }
  EXPECT_TRUE(split) << "some range must start inside the slow first piece";
}

TEST_F(ParallelTest, ProgressIsMonotonicPerCallAndEndsAtTheSize) {
  std::mutex mutex;
  std::uint64_t last = 0;
  Retrier retrier(retry_);
  TransferContext context{&client_, &retrier, {}, {}};
  context.max_connections = 4;
  context.progress = [&](std::uint64_t done, std::optional<std::uint64_t> total) {
    std::lock_guard lock(mutex);
    EXPECT_EQ(total, bytes_.size());
    EXPECT_LE(done, bytes_.size());
    last = done;
  };
  download_file(remote(), out_.path() / "f.part", context);
  EXPECT_EQ(last, bytes_.size());
}

TEST_F(ParallelTest, ConnectionSlotsBoundTheRequestsInFlight) {
  std::counting_semaphore<16> slots(2);
  Retrier retrier(retry_);
  TransferContext context{&client_, &retrier, {}, {}};
  context.max_connections = 8;
  context.connection_slots = &slots;
  EXPECT_EQ(download_file(remote(), out_.path() / "f.part", context).sha256, sha256_hex(bytes_));
  // All slots are back.
  EXPECT_TRUE(slots.try_acquire());
  EXPECT_TRUE(slots.try_acquire());
  EXPECT_FALSE(slots.try_acquire());
}

long peak_rss_kib() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

TEST(ParallelMemory, A256MiBDownloadStaysWithinASmallBuffer) {
  TempDir served, out;
  {
    // Written in blocks so that the test itself does not hold the file.
    std::ofstream file(served.path() / "large.bin", std::ios::binary);
    std::string block = make_bytes(1 << 20, 9);
    for (int i = 0; i < 256; ++i) file.write(block.data(), static_cast<std::streamsize>(block.size()));
  }
  TestServer server("http_server.py", {"--root", served.path().string()});
  http::Client client;
  Retrier retrier(RetryOptions{});
  TransferContext context{&client, &retrier, {}, {}};
  context.max_connections = 8;
  RemoteFile file;
  file.uri = file.request.url = server.url("/large.bin");
  file.size = 256u << 20;
  const long before = peak_rss_kib();
  Downloaded result = download_file(file, out.path() / "large.part", context);
  EXPECT_EQ(result.size, 256u << 20);
  // Connections x curl's buffer plus a hashing block: far below the file.
  EXPECT_LT(peak_rss_kib() - before, 48 * 1024) << "peak RSS grew by " << (peak_rss_kib() - before) << " KiB";
}

}  // namespace
}  // namespace e2s::detail
