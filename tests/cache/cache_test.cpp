#include "cache/cache.hpp"

#include <gtest/gtest.h>

#include <fstream>

#include "e2s/error.hpp"
#include "support/temp_dir.hpp"
#include "transfer/hash.hpp"

namespace e2s::detail {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct FakeClock {
  std::chrono::system_clock::time_point now = std::chrono::system_clock::from_time_t(1700000000);
  Clock clock() {
    return [this] { return now; };
  }
};

CacheEntry entry_for(const std::string& key, const std::string& file_path, const std::string& bytes,
                     std::chrono::system_clock::time_point when) {
  return CacheEntry{key, file_path, bytes.size(), "etag-1", sha256_hex(bytes), "v1", when};
}

fs::path write_temp(Cache& cache, const std::string& key, const std::string& bytes) {
  fs::path temp = cache.temp_path(key);
  std::ofstream(temp, std::ios::binary) << bytes;
  return temp;
}

TEST(Cache, CommitPutsTheFileUnderItsOwnNameAndSubFolders) {
  test::TempDir dir;
  FakeClock time;
  Cache cache(dir.path(), CacheOptions{}, time.clock());
  const std::string key = "http://h/pkg/sub/w.bin";
  auto path = cache.commit(write_temp(cache, key, "weights"), entry_for(key, "sub/w.bin", "weights", time.now));
  EXPECT_EQ(path, dir.path() / "sub" / "w.bin");
  EXPECT_EQ(test::TempDir::read_file(path), "weights");
  ASSERT_TRUE(cache.lookup(key, "sub/w.bin"));
  EXPECT_EQ(cache.lookup(key, "sub/w.bin")->path, path);
  // Nothing is left in the temp folder after a commit.
  EXPECT_TRUE(fs::is_empty(dir.path() / ".e2s" / "tmp"));
}

TEST(Cache, HashedNamesWhenSameNamesIsOff) {
  test::TempDir dir;
  FakeClock time;
  CacheOptions options;
  options.same_names = false;
  Cache cache(dir.path(), options, time.clock());
  const std::string key = "http://h/pkg/sub/w.bin";
  auto path = cache.commit(write_temp(cache, key, "x"), entry_for(key, "sub/w.bin", "x", time.now));
  EXPECT_EQ(path, dir.path() / sha256_hex(key));
  EXPECT_EQ(path.filename().string().size(), 64u);
  ASSERT_TRUE(cache.lookup(key, "sub/w.bin"));
  EXPECT_EQ(cache.lookup(key, "sub/w.bin")->path, path);
}

TEST(Cache, MetadataRecordsTheEntryAndNoMore) {
  test::TempDir dir;
  FakeClock time;
  Cache cache(dir.path(), CacheOptions{}, time.clock());
  const std::string key = "http://h/pkg/a";
  cache.commit(write_temp(cache, key, "abc"), entry_for(key, "a", "abc", time.now));
  auto entry = cache.read_entry(key);
  ASSERT_TRUE(entry.has_value());
  EXPECT_EQ(entry->key, key);
  EXPECT_EQ(entry->file_path, "a");
  EXPECT_EQ(entry->size, 3u);
  EXPECT_EQ(entry->etag, "etag-1");
  EXPECT_EQ(entry->sha256, sha256_hex("abc"));
  EXPECT_EQ(entry->version, "v1");
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::seconds>(entry->fetched_at - time.now).count(), 0);
}

TEST(Cache, MissWhenAbsentExpiredTruncatedOrWithoutMetadata) {
  test::TempDir dir;
  FakeClock time;
  CacheOptions options;
  options.expiry_time = 100s;
  Cache cache(dir.path(), options, time.clock());
  const std::string key = "http://h/pkg/a";
  EXPECT_FALSE(cache.lookup(key, "a"));

  auto path = cache.commit(write_temp(cache, key, "abc"), entry_for(key, "a", "abc", time.now));
  time.now += 99s;
  EXPECT_TRUE(cache.lookup(key, "a"));
  time.now += 2s;
  EXPECT_FALSE(cache.lookup(key, "a")) << "expired";
  time.now -= 2s;

  std::ofstream(path, std::ios::binary | std::ios::trunc) << "ab";
  EXPECT_FALSE(cache.lookup(key, "a")) << "size differs from the metadata";

  std::ofstream(path, std::ios::binary | std::ios::trunc) << "abc";
  EXPECT_TRUE(cache.lookup(key, "a"));
  fs::remove_all(dir.path() / ".e2s" / "meta");
  EXPECT_FALSE(cache.lookup(key, "a")) << "data without metadata is not trusted";
}

TEST(Cache, DamagedOrForeignMetadataIsAMiss) {
  test::TempDir dir;
  FakeClock time;
  Cache cache(dir.path(), CacheOptions{}, time.clock());
  const std::string key = "http://h/pkg/a";
  cache.commit(write_temp(cache, key, "abc"), entry_for(key, "a", "abc", time.now));
  fs::path meta = dir.path() / ".e2s" / "meta" / (sha256_hex(key) + ".json");
  ASSERT_TRUE(fs::exists(meta));
  std::ofstream(meta, std::ios::trunc) << "{ not json";
  EXPECT_FALSE(cache.lookup(key, "a"));
  std::ofstream(meta, std::ios::trunc) << R"({"key": "http://other/a", "file_path": "a", "size": 3, "fetched_at": 1700000000})";
  EXPECT_FALSE(cache.lookup(key, "a"));
}

TEST(Cache, RecommitReplacesFileAndMetadata) {
  test::TempDir dir;
  FakeClock time;
  Cache cache(dir.path(), CacheOptions{}, time.clock());
  const std::string key = "http://h/pkg/a";
  cache.commit(write_temp(cache, key, "old"), entry_for(key, "a", "old", time.now));
  auto path = cache.commit(write_temp(cache, key, "newer"), entry_for(key, "a", "newer", time.now));
  EXPECT_EQ(test::TempDir::read_file(path), "newer");
  EXPECT_EQ(cache.read_entry(key)->sha256, sha256_hex("newer"));
}

TEST(Cache, PlantedSymlinkAtTheFinalPathIsNotTrusted) {
  test::TempDir dir;
  test::TempDir elsewhere;
  FakeClock time;
  Cache cache(dir.path(), CacheOptions{}, time.clock());
  const std::string key = "http://h/pkg/a";
  auto path = cache.commit(write_temp(cache, key, "abc"), entry_for(key, "a", "abc", time.now));
  elsewhere.write_file("evil", "xyz");
  fs::remove(path);
  fs::create_symlink(elsewhere.path() / "evil", path);
  EXPECT_FALSE(cache.lookup(key, "a"));
}

TEST(Cache, ReservedFolderIsRefusedAsAFilePath) {
  test::TempDir dir;
  Cache cache(dir.path(), CacheOptions{});
  try {
    cache.final_path("k", ".e2s/meta/x.json");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::invalid_uri);
  }
}

TEST(Cache, TempPathsAreUniqueAndInsideTheCache) {
  test::TempDir dir;
  Cache cache(dir.path(), CacheOptions{});
  auto a = cache.temp_path("k");
  auto b = cache.temp_path("k");
  EXPECT_NE(a, b);
  EXPECT_EQ(a.parent_path(), dir.path() / ".e2s" / "tmp");
}

TEST(Cache, UnwritableCacheFolderGivesAnIoErrorNamingIt) {
  // A regular file where a folder must go fails for every user, root included
  // (root ignores permission bits).
  test::TempDir dir;
  dir.write_file("file", "x");
  Cache cache(dir.path() / "file" / "cache", CacheOptions{});
  try {
    cache.temp_path("k");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::io);
    EXPECT_NE(std::string(e.what()).find((dir.path() / "file").string()), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace e2s::detail
