// The cache inventory behind `e2s cache`: scanning caches that the real
// Package filled from a loopback server, verifying them against their
// metadata, planning prunes and removing, never through a symlink.
#include "cache/inventory.hpp"
#include "util/text.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "e2s/error.hpp"
#include "e2s/package.hpp"
#include "support/fixtures.hpp"
#include "support/env_guard.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"
#include "util/hash.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using e2s::detail::DataState;
using e2s::detail::Inventory;
using e2s::detail::StoredFile;
using e2s::test::make_bytes;
using e2s::test::TempDir;
using e2s::test::TestServer;
using Verdict = e2s::detail::Verification::Verdict;

// A plain ustar archive of `files` (path -> bytes), for resolve_extracted.
std::string make_tar(const std::map<std::string, std::string>& files) {
  std::string tar;
  for (const auto& [name, data] : files) {
    char header[512] = {};
    std::snprintf(header, 100, "%s", name.c_str());
    std::snprintf(header + 100, 8, "%07o", 0644u);
    std::snprintf(header + 108, 8, "%07o", 0u);
    std::snprintf(header + 116, 8, "%07o", 0u);
    std::snprintf(header + 124, 12, "%011lo", static_cast<unsigned long>(data.size()));
    std::snprintf(header + 136, 12, "%011o", 0u);
    header[156] = '0';
    std::memcpy(header + 257, "ustar", 6);
    std::memcpy(header + 263, "00", 2);
    std::memset(header + 148, ' ', 8);
    unsigned sum = 0;
    for (char c : header) sum += static_cast<unsigned char>(c);
    std::snprintf(header + 148, 7, "%06o", sum);
    tar.append(header, sizeof(header));
    tar += data;
    tar.append((512 - data.size() % 512) % 512, '\0');
  }
  tar.append(1024, '\0');
  return tar;
}

// Sets a file's access time (not following a symlink), leaving its
// modification time.
void set_atime(const fs::path& path, std::chrono::system_clock::time_point when) {
  const auto since = when.time_since_epoch();
  timespec times[2] = {};
  times[0].tv_sec = std::chrono::duration_cast<std::chrono::seconds>(since).count();
  times[1].tv_nsec = UTIME_OMIT;
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0) << path;
}

double unix_seconds(std::chrono::system_clock::time_point when) {
  return std::chrono::duration<double>(when.time_since_epoch()).count();
}

class InventoryTest : public ::testing::Test {
 protected:
  InventoryTest() {
    served_.write_file("a/x.txt", "alpha\n");
    served_.write_file("b/w/big.bin", big_);
    served_.write_file("b/c.json", R"({"layers": 4})");
    served_.write_file("c/model.bin", make_bytes(5000, 3));
    served_.write_file("d/bundle.tar", make_tar({{"one.txt", "first"}, {"sub/two.bin", make_bytes(3000, 4)}}));
  }

  e2s::PackageOptions options(fs::path storage = {}, bool same_names = true) const {
    e2s::PackageOptions o;
    o.cache_options.cache_storage = std::move(storage);
    o.cache_options.same_names = same_names;
    o.retry.initial_backoff = 1ms;
    o.retry.max_backoff = 20ms;
    return o;
  }

  std::string root(const std::string& name) const { return server_.url("/" + name); }

  // a (x.txt) and b (w/big.bin, c.json) in the default layout, c
  // (model.bin) under hashed names in a folder of its own.
  void fill() {
    e2s::Package(root("a"), options()).resolve("x.txt");
    e2s::Package(root("b"), options()).resolve_all({"w/big.bin", "c.json"});
    e2s::Package(root("c"), options(cache_root_ / "forecaster", /*same_names=*/false)).resolve("model.bin");
  }

  Inventory scan() const { return e2s::detail::scan_inventory(cache_root_); }

  static const StoredFile& file_of(const Inventory& inventory, const std::string& key) {
    for (const auto& package : inventory.packages) {
      for (const auto& file : package.files) {
        if (file.entry.key == key) return file;
      }
    }
    throw std::runtime_error("no cached file " + key);
  }

  // Makes `key` look last used `age` ago: its fetch time and its data's
  // access time.
  void age(const std::string& key, std::chrono::seconds age) const {
    const StoredFile file = file_of(scan(), key);
    const auto when = std::chrono::system_clock::now() - age;
    nlohmann::json meta = nlohmann::json::parse(TempDir::read_file(file.meta));
    meta["fetched_at"] = unix_seconds(when);
    std::ofstream(file.meta, std::ios::trunc) << meta.dump(2) << "\n";
    set_atime(file.data, when);
  }

  TempDir served_;
  TempDir cache_;
  fs::path cache_root_ = cache_.path() / "root";
  e2s::test::ScopedEnv model_cache_{"EARTH2STUDIO_MODEL_CACHE", cache_root_.string()};
  std::string big_ = make_bytes(300000, 7);
  TestServer server_{"http_server.py", {"--root", served_.path().string()}};
};

TEST_F(InventoryTest, AMissingOrEmptyCacheIsAnEmptyInventory) {
  EXPECT_TRUE(scan().packages.empty());
  fs::create_directories(cache_root_ / "packages");
  const Inventory inventory = scan();
  EXPECT_TRUE(inventory.packages.empty());
  EXPECT_TRUE(inventory.damaged.empty());
}

TEST_F(InventoryTest, ListsEachPackageWithItsFilesSizesAndFolders) {
  fill();
  const Inventory inventory = scan();
  ASSERT_EQ(inventory.packages.size(), 3u);
  EXPECT_TRUE(inventory.damaged.empty());
  EXPECT_EQ(inventory.cache_root, cache_root_);

  const auto& a = inventory.packages[0];
  EXPECT_EQ(a.root, root("a"));
  EXPECT_EQ(a.folder, e2s::Package(root("a"), options()).cache());
  EXPECT_EQ(a.folder.parent_path(), cache_root_ / "packages");
  ASSERT_EQ(a.files.size(), 1u);
  EXPECT_EQ(a.files[0].entry.file_path, "x.txt");
  EXPECT_EQ(a.files[0].data, e2s::test::data_file(a.folder, "x.txt"));
  EXPECT_EQ(a.files[0].state, DataState::present);
  EXPECT_EQ(a.files[0].entry.sha256, e2s::detail::sha256_hex("alpha\n"));
  EXPECT_EQ(a.bytes(), 6u);

  const auto& b = inventory.packages[1];
  EXPECT_EQ(b.root, root("b"));
  ASSERT_EQ(b.files.size(), 2u);
  EXPECT_EQ(b.files[0].entry.file_path, "c.json");  // sorted by path
  EXPECT_EQ(b.files[1].data, e2s::test::data_file(b.folder, "w/big.bin"));
  EXPECT_EQ(b.present_files(), 2u);
  EXPECT_EQ(b.bytes(), big_.size() + 13);
  EXPECT_GE(b.last_used(), b.files[0].entry.fetched_at);

  const auto& c = inventory.packages[2];  // same_names=false: found under the hash of its key
  EXPECT_EQ(c.folder, cache_root_ / "forecaster");
  ASSERT_EQ(c.files.size(), 1u);
  EXPECT_EQ(c.files[0].data, c.folder / ".e2s" / "files" / e2s::detail::sha256_hex(root("c") + "/model.bin"));
  EXPECT_EQ(c.files[0].state, DataState::present);
  EXPECT_EQ(c.bytes(), 5000u);
}

TEST_F(InventoryTest, VerifyCatchesAFlippedByteAndRemovalMakesItAMissFetchedAgain) {
  fill();
  const fs::path big = file_of(scan(), root("b") + "/w/big.bin").data;
  {
    // What a failing disk does: a byte changes, the file's identity (inode,
    // size, modification time) does not.
    const auto mtime = fs::last_write_time(big);
    std::fstream flip(big, std::ios::in | std::ios::out | std::ios::binary);
    flip.seekp(123456);
    flip.put(static_cast<char>(big_[123456] ^ 0x20));
    flip.close();
    fs::last_write_time(big, mtime);
  }
  const Inventory inventory = scan();
  const StoredFile& file = file_of(inventory, root("b") + "/w/big.bin");
  EXPECT_EQ(file.state, DataState::present) << "same size: only the hash tells";
  std::uint64_t seen = 0;
  const auto result = e2s::detail::verify_file(inventory.cache_root, file, [&](std::uint64_t n) { seen = n; });
  EXPECT_EQ(result.verdict, Verdict::corrupt);
  EXPECT_NE(result.detail.find(file.entry.sha256), std::string::npos) << result.detail;
  EXPECT_EQ(seen, big_.size());
  EXPECT_EQ(e2s::detail::verify_file(inventory.cache_root, file_of(inventory, root("b") + "/c.json")).verdict,
            Verdict::ok);

  EXPECT_EQ(e2s::detail::remove_file(inventory.cache_root, file), e2s::detail::Removal::removed);
  EXPECT_FALSE(fs::exists(file.meta));
  EXPECT_FALSE(fs::exists(big));
  EXPECT_TRUE(fs::exists(file_of(inventory, root("b") + "/c.json").data)) << "the rest stays";

  server_.reset();
  EXPECT_EQ(TempDir::read_file(e2s::Package(root("b"), options()).resolve("w/big.bin")), big_);
  EXPECT_EQ(server_.count("GET", "/b/w/big.bin"), 1u) << "a miss, fetched again";
}

TEST_F(InventoryTest, VerifyTellsATruncatedFileFromAMissingOne) {
  fill();
  fs::resize_file(file_of(scan(), root("b") + "/w/big.bin").data, 1000);
  fs::remove(file_of(scan(), root("a") + "/x.txt").data);
  const Inventory inventory = scan();
  const StoredFile& truncated = file_of(inventory, root("b") + "/w/big.bin");
  EXPECT_EQ(truncated.state, DataState::changed) << "e2s never commits a short file: another program's";
  EXPECT_EQ(truncated.bytes, 1000u);
  EXPECT_EQ(e2s::detail::verify_file(inventory.cache_root, truncated).verdict, Verdict::changed);
  const StoredFile& missing = file_of(inventory, root("a") + "/x.txt");
  EXPECT_EQ(missing.state, DataState::missing);
  EXPECT_EQ(e2s::detail::verify_file(inventory.cache_root, missing).verdict, Verdict::missing);
  EXPECT_EQ(inventory.packages[0].bytes(), 0u) << "a missing file counts nothing";
}

TEST_F(InventoryTest, DamagedMetadataIsReportedAndTheRestListed) {
  fill();
  const fs::path meta = e2s::Package(root("a"), options()).cache() / ".e2s" / "meta";
  auto write = [&meta](const std::string& key_or_name, const nlohmann::json& content, bool by_key) {
    const std::string name = by_key ? e2s::detail::sha256_hex(key_or_name) + ".json" : key_or_name;
    std::ofstream(meta / name) << (content.is_string() ? content.get<std::string>() : content.dump());
  };
  write("garbage.json", "{not json", false);
  write(std::string(64, '0') + ".json", {{"key", "http://h/p/x"}, {"file_path", "x"}, {"size", 1}, {"fetched_at", 1}},
        false);
  write("http://h/p/../../etc/passwd",
        {{"key", "http://h/p/../../etc/passwd"}, {"file_path", "../../etc/passwd"}, {"size", 1}, {"fetched_at", 1}},
        true);
  write("http://h/p/y", {{"key", "http://h/p/y"}, {"file_path", "z"}, {"size", 1}, {"fetched_at", 1}}, true);
  write("http://h/p/q", {{"key", "http://h/p/q"}, {"file_path", "q"}, {"size", "big"}, {"fetched_at", 1}}, true);

  const Inventory inventory = scan();
  ASSERT_EQ(inventory.damaged.size(), 5u);
  std::string reasons;
  for (const auto& damaged : inventory.damaged) reasons += damaged.reason + "\n";
  EXPECT_NE(reasons.find("not a JSON object"), std::string::npos) << reasons;
  EXPECT_NE(reasons.find("not the SHA-256 of its key"), std::string::npos) << reasons;
  EXPECT_NE(reasons.find("not a path inside a package"), std::string::npos) << reasons;
  EXPECT_NE(reasons.find("does not end with its file path"), std::string::npos) << reasons;
  EXPECT_NE(reasons.find("missing or of the wrong type"), std::string::npos) << reasons;
  EXPECT_EQ(inventory.packages.size(), 3u) << "the good entries are all there";
  EXPECT_EQ(file_of(inventory, root("a") + "/x.txt").state, DataState::present);

  e2s::detail::remove_damaged(inventory.cache_root, inventory.damaged.front());
  EXPECT_FALSE(fs::exists(inventory.damaged.front().meta));
  EXPECT_EQ(scan().damaged.size(), 4u);
}

TEST_F(InventoryTest, SymlinksAreNeverFollowed) {
  fill();
  // A data file replaced by a symlink to a file of the same size elsewhere:
  // not the cache's file, and removing the entry leaves the target alone.
  const fs::path outside = cache_.path() / "outside.txt";
  std::ofstream(outside) << "ALPHA\n";
  const fs::path x = file_of(scan(), root("a") + "/x.txt").data;
  fs::remove(x);
  fs::create_symlink(outside, x);
  // Another cache reached through a symlinked folder is not this cache.
  TempDir other;
  fs::create_directories(other.path() / ".e2s" / "meta");
  fs::copy(file_of(scan(), root("b") + "/c.json").meta, other.path() / ".e2s" / "meta");
  fs::create_directory_symlink(other.path(), cache_root_ / "linked");

  const Inventory inventory = scan();
  EXPECT_EQ(inventory.packages.size(), 3u);
  for (const auto& package : inventory.packages) EXPECT_NE(package.folder, cache_root_ / "linked");
  const StoredFile& file = file_of(inventory, root("a") + "/x.txt");
  EXPECT_EQ(file.state, DataState::missing);
  EXPECT_EQ(e2s::detail::verify_file(inventory.cache_root, file).verdict, Verdict::missing);
  e2s::detail::remove_file(inventory.cache_root, file);
  EXPECT_EQ(TempDir::read_file(outside), "ALPHA\n");

  // A package folder whose .e2s is a symlink is not read either.
  const fs::path c = cache_root_ / "forecaster";
  fs::rename(c / ".e2s", cache_.path() / "moved-e2s");
  fs::create_directory_symlink(cache_.path() / "moved-e2s", c / ".e2s");
  EXPECT_EQ(scan().packages.size(), 1u) << "only b is left";
}

TEST_F(InventoryTest, PruneOlderThanGoesByTheLaterOfFetchTimeAndAccessTime) {
  fill();
  age(root("a") + "/x.txt", 72h);
  age(root("b") + "/w/big.bin", 10 * 24h);
  age(root("b") + "/c.json", 10 * 24h);
  // Fetched long ago but read an hour ago: in use.
  const StoredFile c = file_of(scan(), root("c") + "/model.bin");
  {
    nlohmann::json meta = nlohmann::json::parse(TempDir::read_file(c.meta));
    meta["fetched_at"] = unix_seconds(std::chrono::system_clock::now() - 30 * 24h);
    std::ofstream(c.meta, std::ios::trunc) << meta.dump();
    set_atime(c.data, std::chrono::system_clock::now() - 1h);
  }
  const Inventory inventory = scan();
  e2s::detail::PruneOptions options;
  options.older_than = std::chrono::duration_cast<std::chrono::seconds>(48h);
  std::vector<std::string> keys;
  for (const auto& item : e2s::detail::plan_prune(inventory, options)) keys.push_back(item.file->entry.key);
  // Least recently used first; ties by metadata path.
  ASSERT_EQ(keys.size(), 3u);
  EXPECT_EQ(keys[2], root("a") + "/x.txt");
  EXPECT_EQ(std::count(keys.begin(), keys.end(), root("c") + "/model.bin"), 0);
}

TEST_F(InventoryTest, PruneMaxSizeRemovesTheLeastRecentlyUsedUntilItFits) {
  fill();
  age(root("b") + "/w/big.bin", 3h);
  age(root("a") + "/x.txt", 2h);
  age(root("c") + "/model.bin", 1h);
  age(root("b") + "/c.json", 1h);
  const Inventory inventory = scan();
  e2s::detail::PruneOptions options;
  options.max_bytes = 6000;
  auto plan = e2s::detail::plan_prune(inventory, options);
  ASSERT_EQ(plan.size(), 1u) << "big.bin alone brings the total under 6000";
  EXPECT_EQ(plan[0].file->entry.key, root("b") + "/w/big.bin");
  EXPECT_EQ(plan[0].bytes, big_.size());

  options.max_bytes = 5013;  // model.bin and c.json, the newest
  plan = e2s::detail::plan_prune(inventory, options);
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[1].file->entry.key, root("a") + "/x.txt");

  options.max_bytes = 0;
  options.older_than = std::chrono::duration_cast<std::chrono::seconds>(24h);
  EXPECT_EQ(e2s::detail::plan_prune(inventory, options).size(), 4u);
  options.max_bytes.reset();
  EXPECT_TRUE(e2s::detail::plan_prune(inventory, options).empty()) << "nothing is a day old";
}

TEST_F(InventoryTest, ExtractedFoldersCountWithTheirArchiveAndGoWithIt) {
  e2s::Package d(root("d"), options());
  const fs::path extracted = d.resolve_extracted("bundle.tar");
  EXPECT_EQ(TempDir::read_file(extracted / "one.txt"), "first");
  fill();

  Inventory inventory = scan();
  const StoredFile& archive = file_of(inventory, root("d") + "/bundle.tar");
  ASSERT_EQ(archive.extracted.size(), 1u);
  EXPECT_EQ(archive.extracted[0].path, extracted);
  EXPECT_EQ(archive.extracted[0].archive_name, "bundle.tar");
  EXPECT_EQ(archive.extracted[0].bytes, 5u + 3000u);
  const auto& package = inventory.packages[3];
  EXPECT_EQ(package.root, root("d"));
  EXPECT_EQ(package.bytes(), archive.bytes + 3005u);

  // An extraction of an older version of the archive, and an extraction in
  // progress: the first goes with the archive, the second is left alone.
  const fs::path stale = extracted.parent_path() / ("bundle.tar-" + std::string(16, 'a'));
  const fs::path part = extracted.parent_path() / "bundle.tar-0123456789abcdef.part-99.0.1";
  fs::create_directories(stale);
  fs::create_directories(part);
  inventory = scan();
  EXPECT_EQ(file_of(inventory, root("d") + "/bundle.tar").extracted.size(), 2u);

  // The archive is older than the others, but its folder was used since.
  age(root("d") + "/bundle.tar", 5h);
  for (const char* key : {"a/x.txt", "b/w/big.bin", "b/c.json", "c/model.bin"}) {
    age(server_.url("/") + key, 2h);
  }
  inventory = scan();
  e2s::detail::PruneOptions prune;
  prune.max_bytes = 1;
  const auto plan = e2s::detail::plan_prune(inventory, prune);
  ASSERT_EQ(plan.size(), 5u);
  EXPECT_EQ(plan.back().file->entry.key, root("d") + "/bundle.tar");
  EXPECT_EQ(plan.back().bytes, file_of(inventory, root("d") + "/bundle.tar").bytes + 3005u);

  EXPECT_EQ(e2s::detail::remove_file(inventory.cache_root, file_of(inventory, root("d") + "/bundle.tar")), e2s::detail::Removal::removed);
  EXPECT_FALSE(fs::exists(extracted));
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_FALSE(fs::exists(fs::path(extracted.string() + ".lock")));
  EXPECT_TRUE(fs::exists(part));
  fs::remove(part);
  EXPECT_TRUE(fs::is_empty(extracted.parent_path())) << "nothing renamed away is left behind";

  // Resolved again: fetched and extracted afresh.
  EXPECT_EQ(TempDir::read_file(e2s::Package(root("d"), options()).resolve_extracted("bundle.tar") / "one.txt"),
            "first");
}

TEST_F(InventoryTest, APackageFolderGoesOnlyWhenNothingButBookkeepingIsLeft) {
  fill();
  Inventory inventory = scan();
  const auto& b = inventory.packages[1];
  EXPECT_FALSE(e2s::detail::remove_folder_if_unused(inventory.cache_root, b.folder)) << "files are there";
  for (const auto& file : b.files) ASSERT_EQ(e2s::detail::remove_file(inventory.cache_root, file), e2s::detail::Removal::removed);
  ASSERT_TRUE(fs::is_directory(e2s::test::data_file(b.folder, "w")));
  // A download in progress keeps the folder.
  fs::create_directories(b.folder / ".e2s" / "tmp" / "abc-owner");
  EXPECT_FALSE(e2s::detail::remove_folder_if_unused(inventory.cache_root, b.folder));
  fs::remove(b.folder / ".e2s" / "tmp" / "abc-owner");
  EXPECT_TRUE(e2s::detail::remove_folder_if_unused(inventory.cache_root, b.folder));
  EXPECT_FALSE(fs::exists(b.folder));
  EXPECT_TRUE(fs::exists(inventory.packages[0].files[0].data)) << "other packages stay";

  // The cache root is never removed, even when it is a package's folder.
  TempDir other;
  e2s::Package(root("a"), options(other.path())).resolve("x.txt");
  Inventory own = e2s::detail::scan_inventory(other.path());
  ASSERT_EQ(own.packages.size(), 1u);
  EXPECT_EQ(own.packages[0].folder, other.path());
  ASSERT_EQ(e2s::detail::remove_file(own.cache_root, own.packages[0].files[0]), e2s::detail::Removal::removed);
  EXPECT_FALSE(e2s::detail::remove_folder_if_unused(own.cache_root, own.cache_root));
  EXPECT_TRUE(fs::is_directory(other.path()));
}

TEST_F(InventoryTest, RemovalKeepsAFileFetchedAgainSinceTheScan) {
  fill();
  const Inventory inventory = scan();
  const StoredFile& x = file_of(inventory, root("a") + "/x.txt");
  age(root("a") + "/x.txt", 1h);  // the metadata now records another fetch
  EXPECT_EQ(e2s::detail::remove_file(inventory.cache_root, x), e2s::detail::Removal::fetched_again);
  EXPECT_TRUE(fs::exists(x.meta));
  EXPECT_TRUE(fs::exists(x.data));
  EXPECT_EQ(e2s::detail::remove_file(inventory.cache_root, x, {.keep_if_fetched_again = false}),
            e2s::detail::Removal::removed);
  EXPECT_FALSE(fs::exists(x.data));
}

TEST(InventoryUnits, DurationsSizesAndHumanUnits) {
  using e2s::detail::parse_byte_size;
  using e2s::detail::parse_duration;
  EXPECT_EQ(parse_duration("45s"), std::chrono::seconds(45));
  EXPECT_EQ(parse_duration("90m"), std::chrono::seconds(5400));
  EXPECT_EQ(parse_duration("12h"), std::chrono::seconds(43200));
  EXPECT_EQ(parse_duration("30d"), std::chrono::seconds(30 * 86400));
  EXPECT_EQ(parse_duration("2w"), std::chrono::seconds(14 * 86400));
  EXPECT_EQ(parse_duration("1.5h"), std::chrono::seconds(5400));
  EXPECT_EQ(parse_duration("600"), std::chrono::seconds(600));
  for (const char* bad : {"", "d", "-1d", "3x", "1 d", "1e3s", "inf"}) EXPECT_FALSE(parse_duration(bad)) << bad;

  EXPECT_EQ(parse_byte_size("1048576"), 1048576u);
  EXPECT_EQ(parse_byte_size("500M"), 500ull << 20);
  EXPECT_EQ(parse_byte_size("10G"), 10ull << 30);
  EXPECT_EQ(parse_byte_size("10g"), 10ull << 30);
  EXPECT_EQ(parse_byte_size("1.5GiB"), 3ull << 29);
  EXPECT_EQ(parse_byte_size("2KB"), 2000u);
  EXPECT_EQ(parse_byte_size("2TB"), 2000000000000ull);
  EXPECT_EQ(parse_byte_size("512B"), 512u);
  for (const char* bad : {"", "G", "-1G", "10X", "10GiBs", "99999999999T"}) EXPECT_FALSE(parse_byte_size(bad)) << bad;

  EXPECT_EQ(e2s::detail::human_bytes(512), "512 B");
  EXPECT_EQ(e2s::detail::human_bytes(1536), "1.5 KiB");
  EXPECT_EQ(e2s::detail::human_bytes(3u << 20), "3.0 MiB");
  EXPECT_EQ(e2s::detail::iso8601_utc(std::chrono::system_clock::from_time_t(86400 + 3661)), "1970-01-02T01:01:01Z");
}

}  // namespace
