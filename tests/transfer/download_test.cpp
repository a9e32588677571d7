#include "transfer/download.hpp"

#include <sys/resource.h>
#include <sys/stat.h>

#include <csignal>

#include <gtest/gtest.h>

#include "support/fixtures.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"
#include "util/hash.hpp"

namespace e2s::detail {
namespace {

namespace fs = std::filesystem;
using test::error_of;
using test::TempDir;
using test::TestServer;

class DownloadTest : public ::testing::Test {
 protected:
  DownloadTest() : bytes_(2 << 20, 'x'), server_("http_server.py", {"--root", served_.path().string()}) {
    for (std::size_t i = 0; i < bytes_.size(); ++i) bytes_[i] = static_cast<char>((i * 131) ^ (i >> 9));
    served_.write_file("f.bin", bytes_);
    retry_options_.initial_backoff = std::chrono::milliseconds(1);
    retry_options_.max_backoff = std::chrono::milliseconds(10);
  }

  RemoteFile remote() const {
    RemoteFile file;
    file.uri = server_.url("/f.bin");
    file.request.url = server_.url("/f.bin");
    return file;
  }

  Downloaded fetch(const RemoteFile& file) {
    Retrier retrier(retry_options_);
    TransferContext context{&client_, &retrier, {}, {}};
    return download_file(file, out_.path() / "f.part", context);
  }

  TempDir served_;
  TempDir out_;
  std::string bytes_;
  TestServer server_;
  http::Client client_;
  RetryOptions retry_options_;
};

TEST_F(DownloadTest, HashesWhileReceiving) {
  Downloaded result = fetch(remote());
  EXPECT_EQ(result.size, bytes_.size());
  EXPECT_EQ(result.sha256, sha256_hex(bytes_));
  EXPECT_FALSE(result.etag.empty());
  EXPECT_EQ(TempDir::read_file(out_.path() / "f.part"), bytes_);
}

TEST_F(DownloadTest, HashStaysRightAcrossAResume) {
  server_.fault({{"path", "/f.bin"}, {"kind", "cut"}, {"after", 700000}});
  Downloaded result = fetch(remote());
  EXPECT_EQ(result.sha256, sha256_hex(bytes_));
  EXPECT_EQ(server_.count("GET", "/f.bin"), 2u);
}

TEST_F(DownloadTest, AnnouncedHashMismatchIsAnIntegrityError) {
  RemoteFile file = remote();
  file.sha256 = sha256_hex("something else");
  try {
    fetch(file);
    FAIL() << "expected integrity error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::integrity);
    EXPECT_NE(std::string(e.what()).find(file.sha256), std::string::npos);
  }
}

TEST_F(DownloadTest, CorruptBytesAreCaughtWhenTheHashIsKnown) {
  server_.fault({{"path", "/f.bin"}, {"kind", "corrupt"}});
  RemoteFile file = remote();
  file.sha256 = sha256_hex(bytes_);
  try {
    fetch(file);
    FAIL() << "expected integrity error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::integrity);
  }
}

TEST_F(DownloadTest, AnnouncedMd5AndCrc32cAreChecked) {
  RemoteFile file = remote();
  Digest md5(DigestAlgorithm::md5);
  md5.update(bytes_.data(), bytes_.size());
  file.md5 = md5.hex_final();
  Crc32c crc;
  crc.update(bytes_.data(), bytes_.size());
  file.crc32c = crc.value();
  EXPECT_EQ(fetch(file).sha256, sha256_hex(bytes_));

  RemoteFile wrong_md5 = remote();
  wrong_md5.md5 = "00000000000000000000000000000000";
  try {
    fetch(wrong_md5);
    ADD_FAILURE() << "expected integrity error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::integrity);
    EXPECT_NE(std::string(e.what()).find("md5"), std::string::npos);
  }
  RemoteFile wrong_crc = remote();
  wrong_crc.crc32c = crc.value() ^ 1u;
  try {
    fetch(wrong_crc);
    ADD_FAILURE() << "expected integrity error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::integrity);
    EXPECT_NE(std::string(e.what()).find("crc32c"), std::string::npos);
  }
}

TEST_F(DownloadTest, SizeDifferentFromTheStoresClaimIsAnIntegrityError) {
  RemoteFile file = remote();
  file.size = bytes_.size() + 1;
  try {
    fetch(file);
    FAIL() << "expected integrity error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::integrity);
  }
}

TEST_F(DownloadTest, WrongRangeOnResumeStartsOverInsteadOfStitching) {
  server_.fault({{"path", "/f.bin"}, {"kind", "cut"}, {"after", 500000}});
  server_.fault({{"path", "/f.bin"}, {"kind", "wrong_range"}});
  Downloaded result = fetch(remote());
  EXPECT_EQ(result.sha256, sha256_hex(bytes_));
  EXPECT_EQ(TempDir::read_file(out_.path() / "f.part"), bytes_);
}

TEST_F(DownloadTest, FileChangedOnTheServerBeforeAResumeIsNotStitched) {
  server_.fault({{"path", "/f.bin"}, {"kind", "cut"}, {"after", 600000}});
  Retrier retrier(retry_options_);
  bool changed = false;
  TransferContext context{&client_, &retrier, {}, {}};
  // Once the first bytes are on disk the server starts naming another version.
  context.progress = [&](std::uint64_t done, std::optional<std::uint64_t>) {
    if (!changed && done > 0) {
      changed = true;
      server_.add_headers("/f.bin", {{"ETag", "\"another-version\""}});
    }
  };
  Downloaded result = download_file(remote(), out_.path() / "f.part", context);
  EXPECT_EQ(result.sha256, sha256_hex(bytes_));
  EXPECT_EQ(result.etag, "another-version");
  // Cut, a resume refused for its new ETag, then the whole file again.
  EXPECT_EQ(server_.count("GET", "/f.bin"), 3u);
  const nlohmann::json stats = server_.stats();
  EXPECT_FALSE(stats["requests"].back()["range"].is_string()) << stats.dump();
}

// Bytes on disk from an earlier attempt (a process killed before its commit),
// with the ETag the server gave them.
TransferContext resumed_from(const std::string& on_disk, const std::string& served_etag, http::Client& client,
                             Retrier& retrier, const TempDir& folder) {
  folder.write_file("f.part", on_disk);
  TransferContext context{&client, &retrier, {}, {}};
  context.resume = Partial{on_disk.size(), "", served_etag, {{0, on_disk.size()}}};
  return context;
}

TEST_F(DownloadTest, AResumeOfTheWholeFileIsCheckedNotRefusedWith416) {
  Retrier retrier(retry_options_);
  const std::string etag = test::md5_hex(bytes_);
  TransferContext context = resumed_from(bytes_, etag, client_, retrier, out_);
  const Downloaded result = download_file(remote(), out_.path() / "f.part", context);
  EXPECT_EQ(result.sha256, sha256_hex(bytes_));
  EXPECT_EQ(TempDir::read_file(out_.path() / "f.part"), bytes_);
}

TEST_F(DownloadTest, AResumePastTheEndOfASmallerNewVersionStartsOver) {
  Retrier retrier(retry_options_);
  const std::string old_version(bytes_.size() + 4096, 'o');
  TransferContext context =
      resumed_from(old_version, test::md5_hex(old_version), client_, retrier, out_);
  const Downloaded result = download_file(remote(), out_.path() / "f.part", context);
  EXPECT_EQ(result.sha256, sha256_hex(bytes_));
  EXPECT_EQ(TempDir::read_file(out_.path() / "f.part"), bytes_);
}

TEST_F(DownloadTest, AParallelResumePastTheEndOfASmallerNewVersionStartsOver) {
  const std::string now_served = test::make_bytes(9 << 20, 5);
  served_.write_file("big.bin", now_served);
  const std::string old_version = test::make_bytes(10 << 20, 6);
  out_.write_file("big.part", old_version);
  Retrier retrier(retry_options_);
  TransferContext context{&client_, &retrier, {}, {}};
  context.max_connections = 4;
  // The old version's first MiB and its last half MiB, past the new end.
  context.resume = Partial{old_version.size(), "", test::md5_hex(old_version),
                           {{0, 1 << 20}, {(10 << 20) - (1 << 19), 10 << 20}}};
  RemoteFile file;
  file.uri = file.request.url = server_.url("/big.bin");
  const Downloaded result = download_file(file, out_.path() / "big.part", context);
  EXPECT_EQ(result.sha256, sha256_hex(now_served));
  EXPECT_EQ(TempDir::read_file(out_.path() / "big.part"), now_served);
}

TEST_F(DownloadTest, DiskFullIsAnIoErrorAndNotRetried) {
  Retrier retrier(retry_options_);
  TransferContext context{&client_, &retrier, {}, {}};
  // A file-size limit below the file's size: writes fail with EFBIG, as a
  // full disk fails them with ENOSPC.
  struct rlimit old_limit {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit limit = old_limit;
  limit.rlim_cur = bytes_.size() / 2;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limit), 0);
  try {
    download_file(remote(), out_.path() / "f.part", context);
    ADD_FAILURE() << "expected io error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::io);
    EXPECT_NE(std::string(e.what()).find("free disk space"), std::string::npos) << e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &old_limit);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_EQ(server_.count("GET", "/f.bin"), 1u);
}

TEST_F(DownloadTest, ATempPathThatIsNoRegularFileIsRefusedBeforeAnyRequest) {
  Retrier retrier(retry_options_);
  TransferContext context{&client_, &retrier, {}, {}};
  const fs::path fifo = out_.path() / "f.part";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  const Error e = error_of([&] { download_file(remote(), fifo, context); });
  EXPECT_EQ(e.code(), Errc::io);
  EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos) << e.what();
  EXPECT_EQ(server_.count("GET", "/f.bin"), 0u);
}

TEST(UnquoteEtag, StripsWeakPrefixAndQuotes) {
  EXPECT_EQ(unquote_etag("\"abc\""), "abc");
  EXPECT_EQ(unquote_etag("W/\"abc\""), "abc");
  EXPECT_EQ(unquote_etag("abc"), "abc");
  EXPECT_EQ(unquote_etag(""), "");
}

}  // namespace
}  // namespace e2s::detail
