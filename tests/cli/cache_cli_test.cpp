// `e2s cache ls | verify | prune | rm`: output, exit statuses and what is
// left on disk, on caches filled by `e2s resolve` from a loopback server.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/cli_runner.hpp"
#include "support/fixtures.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"
#include "util/hash.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using e2s::test::CliOptions;
using e2s::test::CliProcess;
using e2s::test::CliRun;
using e2s::test::contains;
using e2s::test::lines;
using e2s::test::make_bytes;
using e2s::test::TempDir;
using e2s::test::TestServer;

class CacheCliTest : public ::testing::Test {
 protected:
  CacheCliTest() {
    served_.write_file("a/x.txt", "alpha\n");
    served_.write_file("b/w/big.bin", big_);
    served_.write_file("b/c.json", R"({"layers": 4})");
  }

  // The CLI with the cache root in --cache-dir, none of the runner's own
  // caches or proxies, and optionally under a wrapper (setpriv).
  CliRun e2s(std::vector<std::string> args, std::vector<std::string> wrapper = {}) const {
    args.insert(args.begin(), {"--cache-dir", cache_root_.string()});
    CliOptions options;
    options.scrub = [](const std::string& name) {
      return name.rfind("EARTH2STUDIO_", 0) == 0 || e2s::test::lower(name).find("proxy") != std::string::npos;
    };
    options.wrapper = std::move(wrapper);
    return CliProcess(args, options).wait();
  }

  std::string root(const std::string& name) const { return server_.url("/" + name); }

  // a (x.txt) and b (w/big.bin, c.json); returns nothing, checks the runs.
  void fill() const {
    const CliRun a = e2s({"-q", "resolve", root("a"), "x.txt"});
    ASSERT_EQ(a.status, 0) << a.err;
    const CliRun b = e2s({"-q", "resolve", root("b"), "w/big.bin", "c.json"});
    ASSERT_EQ(b.status, 0) << b.err;
  }

  // The default cache folder of a package: packages/<name>-<12 hex>.
  fs::path folder(const std::string& name) const {
    return cache_root_ / "packages" / (name + "-" + e2s::detail::sha256_hex(root(name)).substr(0, 12));
  }

  fs::path meta(const std::string& name, const std::string& file) const {
    return folder(name) / ".e2s" / "meta" / (e2s::detail::sha256_hex(root(name) + "/" + file) + ".json");
  }

  // Makes a cached file look last used `age` ago: its fetch time and its
  // access time.
  void age(const std::string& name, const std::string& file, std::chrono::seconds age) const {
    const auto when = std::chrono::system_clock::now() - age;
    nlohmann::json record = nlohmann::json::parse(TempDir::read_file(meta(name, file)));
    record["fetched_at"] = std::chrono::duration<double>(when.time_since_epoch()).count();
    std::ofstream(meta(name, file), std::ios::trunc) << record.dump(2) << "\n";
    timespec times[2] = {};
    times[0].tv_sec = std::chrono::duration_cast<std::chrono::seconds>(when.time_since_epoch()).count();
    times[1].tv_nsec = UTIME_OMIT;
    ASSERT_EQ(::utimensat(AT_FDCWD, e2s::test::data_file(folder(name), file).c_str(), times, 0), 0);
  }

  // What a failing disk does: a byte changes, the file's identity (inode,
  // size, modification time) does not. (A file another program rewrote is
  // the safety tests' case: it is reported and never removed.)
  void flip_a_byte_of_big() const {
    const fs::path big = e2s::test::data_file(folder("b"), "w/big.bin");
    const auto mtime = fs::last_write_time(big);
    {
      std::fstream flip(big, std::ios::in | std::ios::out | std::ios::binary);
      flip.seekp(4242);
      flip.put(static_cast<char>(big_[4242] ^ 1));
    }
    fs::last_write_time(big, mtime);
  }

  TempDir served_;
  TempDir cache_;
  fs::path cache_root_ = cache_.path() / "root";
  std::string big_ = make_bytes(200000, 5);
  TestServer server_{"http_server.py", {"--root", served_.path().string()}};
};

TEST_F(CacheCliTest, LsOfAnEmptyOrMissingCachePrintsNothing) {
  CliRun run = e2s({"cache", "ls"});
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, "");
  run = e2s({"cache", "ls", "--json"});
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(nlohmann::json::parse(run.out), nlohmann::json::array());
  EXPECT_FALSE(fs::exists(cache_root_)) << "listing creates nothing";
}

TEST_F(CacheCliTest, LsPrintsOneLinePerPackageAndJsonWithTheFiles) {
  fill();
  CliRun run = e2s({"cache", "ls"});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.err, "");
  const auto text = lines(run.out);
  ASSERT_EQ(text.size(), 2u) << run.out;
  EXPECT_EQ(text[0].rfind(root("a") + "\t1 file\t6 B\t", 0), 0u) << text[0];
  EXPECT_TRUE(text[0].ends_with("Z\t" + folder("a").string())) << text[0];
  EXPECT_EQ(text[1].rfind(root("b") + "\t2 files\t195.3 KiB\t", 0), 0u) << text[1];
  EXPECT_TRUE(text[1].ends_with("\t" + folder("b").string())) << text[1];

  run = e2s({"cache", "ls", "--json"});
  ASSERT_EQ(run.status, 0) << run.err;
  const nlohmann::json packages = nlohmann::json::parse(run.out);
  ASSERT_EQ(packages.size(), 2u);
  const nlohmann::json& b = packages[1];
  EXPECT_EQ(b["root"], root("b"));
  EXPECT_EQ(b["folder"], folder("b").string());
  EXPECT_EQ(b["files"], 2);
  EXPECT_EQ(b["bytes"], big_.size() + 13);
  EXPECT_EQ(b["last_used"].get<std::string>().size(), 20u);  // 2024-05-01T12:00:00Z
  ASSERT_EQ(b["entries"].size(), 2u);
  const nlohmann::json& big = b["entries"][1];
  EXPECT_EQ(big["file"], "w/big.bin");
  EXPECT_EQ(big["bytes"], big_.size());
  EXPECT_EQ(big["sha256"], e2s::detail::sha256_hex(big_));
  EXPECT_FALSE(big["etag"].get<std::string>().empty());
  EXPECT_TRUE(big["version"].is_string());
  EXPECT_TRUE(big["fetched_at"].get<std::string>().ends_with("Z"));
  EXPECT_TRUE(big["last_used"].get<std::string>().ends_with("Z"));

  // The environment names the cache as well as --cache-dir.
  CliOptions options;
  options.env["EARTH2STUDIO_MODEL_CACHE"] = cache_root_.string();
  options.env["EARTH2STUDIO_CACHE"] = "/nonexistent";
  const CliRun by_env = CliProcess({"cache", "ls"}, options).wait();
  EXPECT_EQ(by_env.status, 0) << by_env.err;
  EXPECT_EQ(by_env.out, e2s({"cache", "ls"}).out);
}

TEST_F(CacheCliTest, VerifyCatchesAFlippedByteAndRemoveMakesResolveFetchItAgain) {
  fill();
  CliRun run = e2s({"cache", "verify"});
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, "verified 3 files (195.3 KiB): all intact\n");

  flip_a_byte_of_big();
  run = e2s({"cache", "verify"});
  EXPECT_EQ(run.status, 6) << run.err;
  ASSERT_EQ(lines(run.out).size(), 2u) << run.out;
  EXPECT_EQ(run.out.rfind("corrupt: " + root("b") + "/w/big.bin (", 0), 0u) << run.out;
  EXPECT_TRUE(contains(run.out, "1 problem, 0 removed")) << run.out;
  EXPECT_EQ(run.err.rfind("e2s: error: 1 cached file does not match", 0), 0u) << run.err;
  EXPECT_TRUE(contains(run.err, "--remove")) << run.err;

  // Only ROOT's files: a's are intact.
  EXPECT_EQ(e2s({"cache", "verify", root("a")}).status, 0);

  run = e2s({"cache", "verify", root("b"), "--remove"});
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_TRUE(contains(run.out, "; removed\n")) << run.out;
  EXPECT_FALSE(fs::exists(e2s::test::data_file(folder("b"), "w/big.bin")));
  EXPECT_FALSE(fs::exists(meta("b", "w/big.bin")));
  EXPECT_TRUE(fs::exists(e2s::test::data_file(folder("b"), "c.json")));
  EXPECT_EQ(e2s({"cache", "verify"}).status, 0);

  server_.reset();
  run = e2s({"-q", "resolve", root("b"), "w/big.bin"});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(TempDir::read_file(e2s::test::data_file(folder("b"), "w/big.bin")), big_);
  EXPECT_EQ(server_.count("GET", "/b/w/big.bin"), 1u);
}

TEST_F(CacheCliTest, VerifyWorksOnAReadOnlyCacheAndRemovingThereNamesTheFolder) {
  fill();
  flip_a_byte_of_big();
  std::vector<std::string> as_other_user;
  if (::geteuid() == 0) {
    // Root writes anywhere: the cache is read by an unprivileged user, as a
    // site cache populated by an administrator is.
    as_other_user = {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"};
    for (fs::path p = cache_.path();; p = p.parent_path()) {
      fs::permissions(p, fs::perms::others_read | fs::perms::others_exec, fs::perm_options::add);
      if (p == p.root_path()) break;
    }
    for (const auto& entry : fs::recursive_directory_iterator(cache_.path())) {
      fs::permissions(entry.path(),
                      fs::perms::others_read | (entry.is_directory() ? fs::perms::others_exec : fs::perms::none),
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

  CliRun run = e2s({"cache", "ls"}, as_other_user);
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(lines(run.out).size(), 2u) << run.out;
  EXPECT_EQ(e2s({"cache", "verify", root("a")}, as_other_user).status, 0);
  run = e2s({"cache", "verify"}, as_other_user);
  EXPECT_EQ(run.status, 6) << run.err;
  EXPECT_TRUE(contains(run.out, "corrupt: " + root("b") + "/w/big.bin")) << run.out;

  for (const std::vector<std::string>& removal :
       {std::vector<std::string>{"cache", "verify", "--remove"}, {"cache", "rm", root("b")},
        {"cache", "prune", "--max-size", "0"}}) {
    run = e2s(removal, as_other_user);
    EXPECT_EQ(run.status, 1) << removal[1] << ": " << run.err;
    EXPECT_EQ(run.err.rfind("e2s: error: cannot remove ", 0), 0u) << run.err;
    EXPECT_TRUE(contains(run.err, "the cache folder " + folder("b").string()) ||
                contains(run.err, "the cache folder " + folder("a").string()))
        << run.err;
    EXPECT_TRUE(contains(run.err, "read-only")) << run.err;
    EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << "one line: " << run.err;
  }
  EXPECT_TRUE(fs::exists(e2s::test::data_file(folder("b"), "w/big.bin")));
  EXPECT_TRUE(fs::exists(meta("b", "w/big.bin")));
  EXPECT_TRUE(fs::exists(e2s::test::data_file(folder("a"), "x.txt")));
}

TEST_F(CacheCliTest, PruneMaxSizeKeepsTheNewestAndDryRunRemovesNothing) {
  fill();
  age("b", "w/big.bin", 3h);
  age("a", "x.txt", 2h);
  age("b", "c.json", 1h);

  CliRun run = e2s({"cache", "prune", "--max-size", "1K", "--dry-run"});
  ASSERT_EQ(run.status, 0) << run.err;
  auto text = lines(run.out);
  ASSERT_EQ(text.size(), 2u) << run.out;
  EXPECT_EQ(text[0].rfind("would remove " + root("b") + "/w/big.bin (195.3 KiB, last used ", 0), 0u) << text[0];
  EXPECT_EQ(text[1], "would remove 1 file, freeing 195.3 KiB; the cache holds 19 B after");
  EXPECT_TRUE(fs::exists(e2s::test::data_file(folder("b"), "w/big.bin"))) << "dry run";
  EXPECT_TRUE(fs::exists(meta("b", "w/big.bin")));

  run = e2s({"cache", "prune", "--max-size", "15"});
  ASSERT_EQ(run.status, 0) << run.err;
  text = lines(run.out);
  ASSERT_EQ(text.size(), 4u) << run.out;
  EXPECT_EQ(text[0].rfind("removed " + root("b") + "/w/big.bin", 0), 0u) << run.out;
  EXPECT_EQ(text[1].rfind("removed " + root("a") + "/x.txt", 0), 0u) << run.out;
  EXPECT_EQ(text[2], "removed folder " + folder("a").string()) << "a's folder held nothing else";
  EXPECT_EQ(text[3], "removed 2 files, freed 195.3 KiB; the cache holds 13 B");
  EXPECT_FALSE(fs::exists(e2s::test::data_file(folder("b"), "w/big.bin")));
  EXPECT_FALSE(fs::exists(folder("a")));
  EXPECT_TRUE(fs::exists(e2s::test::data_file(folder("b"), "c.json"))) << "the newest stays";

  const auto ls = lines(e2s({"cache", "ls"}).out);
  ASSERT_EQ(ls.size(), 1u);
  EXPECT_EQ(ls[0].rfind(root("b") + "\t1 file\t13 B\t", 0), 0u) << ls[0];
}

TEST_F(CacheCliTest, PruneOlderThanGoesByLastUse) {
  fill();
  age("b", "w/big.bin", 10 * 24h);
  age("a", "x.txt", 3 * 24h);
  age("b", "c.json", 1h);
  CliRun run = e2s({"cache", "prune", "--older-than", "2d", "--dry-run"});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(lines(run.out).size(), 3u) << run.out;
  EXPECT_TRUE(fs::exists(e2s::test::data_file(folder("a"), "x.txt")));

  // Both limits: what is old, then what does not fit (nothing more here).
  run = e2s({"cache", "prune", "--older-than", "2d", "--max-size", "1G"});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_TRUE(contains(run.out, "removed 2 files")) << run.out;
  EXPECT_FALSE(fs::exists(e2s::test::data_file(folder("b"), "w/big.bin")));
  EXPECT_FALSE(fs::exists(e2s::test::data_file(folder("a"), "x.txt")));
  EXPECT_TRUE(fs::exists(e2s::test::data_file(folder("b"), "c.json")));

  run = e2s({"cache", "prune", "--older-than", "45m"});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_TRUE(contains(run.out, "removed 1 file, freed 13 B; the cache holds 0 B")) << run.out;
  EXPECT_FALSE(fs::exists(folder("b"))) << "an emptied package folder goes";
}

TEST_F(CacheCliTest, PruneWithoutALimitOrWithABadOneIsAUsageError) {
  fill();
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"cache", "prune"}, {"cache", "prune", "--dry-run"},
        {"cache", "prune", "--max-size", "10X"}, {"cache", "prune", "--older-than", "3 days"}}) {
    const CliRun run = e2s(args);
    EXPECT_EQ(run.status, 2) << run.err;
    e2s::test::expect_one_error_line(run);
  }
  EXPECT_TRUE(fs::exists(e2s::test::data_file(folder("b"), "w/big.bin")));
}

TEST_F(CacheCliTest, RmRemovesOneRootAndLeavesTheOther) {
  fill();
  CliRun run = e2s({"cache", "rm", root("b") + "/"});  // a trailing '/' names the same root
  ASSERT_EQ(run.status, 0) << run.err;
  const auto text = lines(run.out);
  ASSERT_EQ(text.size(), 4u) << run.out;
  EXPECT_EQ(text[0], "removed " + root("b") + "/c.json (" + (e2s::test::data_file(folder("b"), "c.json")).string() + ", 13 B)");
  EXPECT_EQ(text[1].rfind("removed " + root("b") + "/w/big.bin (", 0), 0u);
  EXPECT_EQ(text[2], "removed folder " + folder("b").string());
  EXPECT_EQ(text[3], "removed 2 files of " + root("b") + ", freed 195.3 KiB");
  EXPECT_FALSE(fs::exists(folder("b")));
  EXPECT_TRUE(fs::exists(e2s::test::data_file(folder("a"), "x.txt")));
  EXPECT_EQ(lines(e2s({"cache", "ls"}).out).size(), 1u);

  run = e2s({"cache", "rm", root("b")});
  EXPECT_EQ(run.status, 3) << run.err;
  e2s::test::expect_one_error_line(run);
  EXPECT_TRUE(contains(run.err, "nothing is cached for " + root("b") + " in " + cache_root_.string())) << run.err;
  EXPECT_EQ(e2s({"cache", "rm", "hf://"}).status, 2) << "an invalid root";
}

TEST_F(CacheCliTest, DamagedMetadataIsReportedNotFatal) {
  fill();
  std::ofstream(folder("a") / ".e2s" / "meta" / (std::string(64, 'f') + ".json")) << "{\"key\": 1";
  CliRun run = e2s({"cache", "ls"});
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(lines(run.out).size(), 2u) << run.out;
  EXPECT_TRUE(contains(run.err, "e2s: warning: skipping damaged metadata " + folder("a").string())) << run.err;
  EXPECT_EQ(e2s({"-q", "cache", "ls"}).err, "") << "-q: errors only";

  run = e2s({"cache", "verify"});
  EXPECT_EQ(run.status, 6) << run.err;
  EXPECT_TRUE(contains(run.out, "damaged metadata: " + folder("a").string())) << run.out;
  EXPECT_TRUE(contains(run.out, "verified 3 files (195.3 KiB): 1 problem, 0 removed")) << run.out;

  EXPECT_EQ(e2s({"cache", "prune", "--max-size", "10G"}).status, 0);
  run = e2s({"cache", "verify", "--remove"});
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(e2s({"cache", "verify"}).status, 0) << "the damaged record is gone";
  EXPECT_TRUE(fs::exists(e2s::test::data_file(folder("a"), "x.txt")));
}

}  // namespace
