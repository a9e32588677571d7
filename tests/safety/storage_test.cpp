// The cache's disk going wrong: full, limited, or read-only for this user.
// Errors are clear, name the folder, remove temp files, and leave what was
// already cached untouched.
#include <sys/mount.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "e2s/error.hpp"
#include "e2s/package.hpp"
#include "support/cli_runner.hpp"
#include "support/fixtures.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"

namespace {

namespace fs = std::filesystem;
using e2s::test::CliOptions;
using e2s::test::CliProcess;
using e2s::test::CliRun;
using e2s::test::TempDir;
using e2s::test::TestServer;

constexpr std::size_t kMiB = 1u << 20;


class StorageTest : public ::testing::Test {
 protected:
  StorageTest() {
    small_ = "small file, cached first\n";
    big_ = e2s::test::make_bytes(12 * kMiB, 11);
    medium_ = e2s::test::make_bytes(2 * kMiB, 11);
    served_.write_file("model/small.txt", small_);
    served_.write_file("model/big.bin", big_);
    served_.write_file("model/medium.bin", medium_);
  }

  std::string root() const { return server_.url("/model"); }

  CliRun e2s(std::vector<std::string> args, std::vector<std::string> wrapper = {}) const {
    CliOptions options;
    options.env["EARTH2STUDIO_MODEL_CACHE"] = cache_root_.string();
    options.scrub = [](const std::string& name) { return name.find("proxy") != std::string::npos ||
                                                          name.find("PROXY") != std::string::npos; };
    options.wrapper = std::move(wrapper);
    return CliProcess(args, options).wait();
  }

  // Every file under the cache root but the bookkeeping of locks.
  std::vector<fs::path> files() const {
    std::vector<fs::path> found;
    for (const auto& entry : fs::recursive_directory_iterator(cache_root_)) {
      if (entry.is_regular_file()) found.push_back(entry.path());
    }
    return found;
  }

  // Caches small.txt and returns its path.
  fs::path cache_small() {
    const CliRun run = e2s({"-q", "resolve", root(), "small.txt"});
    EXPECT_EQ(run.status, 0) << run.err;
    return run.out.substr(0, run.out.find('\n'));
  }

  void expect_disk_error(const CliRun& run, const fs::path& small_path,
                         const std::vector<fs::path>& before) {
    EXPECT_EQ(run.status, 1) << run.err;  // io
    EXPECT_NE(run.err.find("while downloading " + root()), std::string::npos) << run.err;
    EXPECT_NE(run.err.find("free disk space"), std::string::npos) << run.err;
    EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << "one line: " << run.err;
    EXPECT_EQ(files(), before) << "temp files removed, nothing new";
    EXPECT_EQ(TempDir::read_file(small_path), small_) << "the cached file is untouched";
  }

  TempDir served_;
  TempDir cache_;
  fs::path cache_root_ = cache_.path() / "root";
  std::string small_, big_, medium_;
  TestServer server_{"http_server.py", {"--root", served_.path().string()}};
};

TEST_F(StorageTest, AFileSizeLimitFailsCleanlyInParallelAndSingleStream) {
  const fs::path small_path = cache_small();
  const std::vector<fs::path> before = files();
  // RLIMIT_FSIZE of 1 MiB: the parallel path's preallocation fails at once;
  // the single stream fails on the write that crosses it.
  const std::vector<std::string> limit = {"prlimit", "--fsize=1048576", "--"};
  expect_disk_error(e2s({"-q", "resolve", root(), "big.bin"}, limit), small_path, before);
  expect_disk_error(e2s({"-q", "--connections", "1", "resolve", root(), "medium.bin"}, limit), small_path,
                    before);
}

TEST_F(StorageTest, AFullFilesystemFailsCleanly) {
  // A real ENOSPC: a 4 MiB tmpfs in a private mount namespace, where this
  // test may mount one (root, or a user namespace). Elsewhere the size limit
  // test above covers the same code path.
  const fs::path mount_point = cache_root_;
  fs::create_directories(mount_point);
  const CliRun probe = e2s({}, {"unshare", "-m", "--", "sh", "-c", "mount -t tmpfs -o size=4m tmpfs \"$1\"",
                                "sh", mount_point.string()});
  if (::geteuid() != 0 || probe.status != 0) GTEST_SKIP() << "cannot mount a tmpfs here";
  // One shell in one mount namespace: cache small.txt, then fail on big.bin.
  const std::string script =
      "mount -t tmpfs -o size=4m tmpfs \"$1\" && \"$2\" -q resolve \"$3\" small.txt >/dev/null && "
      "\"$2\" -q resolve \"$3\" big.bin; status=$?; find \"$1\" -type f | sort; cat \"$1\"/packages/*/.e2s/files/small.txt; "
      "exit $status";
  CliOptions options;
  options.env["EARTH2STUDIO_MODEL_CACHE"] = mount_point.string();
  options.wrapper = {"unshare", "-m", "--", "sh", "-c", script, "sh", mount_point.string()};
  // The wrapper gets cli_path() as $2 and the root as $3.
  const CliRun run = CliProcess({root()}, options).wait();
  EXPECT_EQ(run.status, 1) << run.err;
  // Refused before a byte is written (the size is known from the reply's
  // headers); a write that fails mid-way is the file-size limit test's.
  EXPECT_NE(run.err.find("12582912 bytes"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("free disk space"), std::string::npos) << run.err;
  // Only small.txt and its metadata remain: the temp folder was removed.
  EXPECT_EQ(run.out.find("big.bin"), std::string::npos) << run.out;
  EXPECT_EQ(run.out.find("/.e2s/tmp/"), std::string::npos) << run.out;
  EXPECT_NE(run.out.find(small_), std::string::npos) << run.out;
}

TEST_F(StorageTest, ADiskThatFillsUpBeforeTheRecordLeavesNoFileWithoutIt) {
  // A 1 MiB tmpfs (256 pages): the lock file takes one, the download 255,
  // and the record finds no room. Data must not be in place without it.
  const fs::path mount_point = cache_root_;
  fs::create_directories(mount_point);
  const CliRun probe = e2s({}, {"unshare", "-m", "--", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs \"$1\"",
                                "sh", mount_point.string()});
  if (::geteuid() != 0 || probe.status != 0) GTEST_SKIP() << "cannot mount a tmpfs here";
  served_.write_file("model/fits.bin", e2s::test::make_bytes(255 * 4096, 11));
  const std::string script =
      "mount -t tmpfs -o size=1m tmpfs \"$1\" && \"$2\" -q resolve \"$3\" fits.bin; status=$?; "
      "find \"$1\" -type f | sort; exit $status";
  CliOptions options;
  options.env["EARTH2STUDIO_MODEL_CACHE"] = mount_point.string();
  options.wrapper = {"unshare", "-m", "--", "sh", "-c", script, "sh", mount_point.string()};
  const CliRun run = CliProcess({root()}, options).wait();
  EXPECT_EQ(run.status, 1) << run.err;
  EXPECT_NE(run.err.find("free disk space"), std::string::npos) << run.err;
  EXPECT_EQ(run.out.find("/fits.bin"), std::string::npos) << "a file without its record: " << run.out;
  EXPECT_EQ(run.out.find("/.e2s/tmp/"), std::string::npos) << "temp files removed: " << run.out;
}

TEST_F(StorageTest, AReadOnlyCacheServesHitsAndNamesTheFolderOnAMiss) {
  const fs::path small_path = cache_small();
  const fs::path package_folder = e2s::test::storage_of(small_path, "small.txt");
  std::vector<std::string> as_other_user;
  if (::geteuid() == 0) {
    // Root writes anywhere: the cache is read as an unprivileged user, as a
    // site cache populated by an administrator is.
    as_other_user = {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"};
    for (fs::path p = cache_.path(); ; p = p.parent_path()) {
      fs::permissions(p, fs::perms::others_read | fs::perms::others_exec, fs::perm_options::add);
      if (p == p.root_path()) break;
    }
    for (const auto& entry : fs::recursive_directory_iterator(cache_.path())) {
      fs::permissions(entry.path(), fs::perms::others_read | (entry.is_directory() ? fs::perms::others_exec
                                                                                   : fs::perms::none),
                      fs::perm_options::add);
    }
  } else {
    for (const auto& entry : fs::recursive_directory_iterator(cache_.path())) {
      if (entry.is_directory()) {
        fs::permissions(entry.path(), fs::perms::owner_write | fs::perms::group_write | fs::perms::others_write,
                        fs::perm_options::remove);
      }
    }
  }
  server_.reset();
  const CliRun hit = e2s({"-q", "resolve", root(), "small.txt"}, as_other_user);
  EXPECT_EQ(hit.status, 0) << hit.err;
  EXPECT_EQ(hit.out, small_path.string() + "\n");
  EXPECT_EQ(server_.body_bytes(), 0u);

  const CliRun miss = e2s({"-q", "resolve", root(), "medium.bin"}, as_other_user);
  EXPECT_EQ(miss.status, 1) << miss.err;
  EXPECT_NE(miss.err.find(package_folder.string()), std::string::npos) << miss.err;
  EXPECT_NE(miss.err.find("--cache-dir"), std::string::npos) << miss.err;
  EXPECT_EQ(std::count(miss.err.begin(), miss.err.end(), '\n'), 1) << "one line: " << miss.err;
  EXPECT_FALSE(fs::exists(e2s::test::data_file(package_folder, "medium.bin")));
}

}  // namespace
