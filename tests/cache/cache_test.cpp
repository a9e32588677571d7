#include "cache/cache.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "e2s/error.hpp"
#include "support/fixtures.hpp"
#include "support/temp_dir.hpp"
#include "util/hash.hpp"

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
  CacheEntry entry;
  entry.key = key;
  entry.file_path = file_path;
  entry.size = bytes.size();
  entry.etag = "etag-1";
  entry.sha256 = sha256_hex(bytes);
  entry.version = "v1";
  entry.fetched_at = when;
  return entry;
}

Cache::Temp write_temp(Cache& cache, const std::string& key, const std::string& bytes) {
  Cache::Temp temp = cache.claim_temp(key);
  std::ofstream(temp.data, std::ios::binary) << bytes;
  return temp;
}

// Commits `bytes` as `file_path` of `key`, as a download does.
fs::path commit(Cache& cache, const std::string& key, const std::string& file_path, const std::string& bytes,
                std::chrono::system_clock::time_point when) {
  const Cache::Temp temp = write_temp(cache, key, bytes);
  CacheEntry entry = entry_for(key, file_path, bytes, when);
  fs::path path = cache.commit(temp, entry);
  cache.drop_temp(temp);
  return path;
}

TEST(Cache, CommitPutsTheFileUnderItsOwnNameAndSubFolders) {
  test::TempDir dir;
  FakeClock time;
  Cache cache(dir.path(), CacheOptions{}, time.clock());
  const std::string key = "http://h/pkg/sub/w.bin";
  auto path = commit(cache, key, "sub/w.bin", "weights", time.now);
  EXPECT_EQ(path, test::data_file(dir.path(), "sub/w.bin"));
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
  auto path = commit(cache, key, "sub/w.bin", "x", time.now);
  EXPECT_EQ(path, dir.path() / ".e2s" / "files" / sha256_hex(key));
  EXPECT_EQ(path.filename().string().size(), 64u);
  ASSERT_TRUE(cache.lookup(key, "sub/w.bin"));
  EXPECT_EQ(cache.lookup(key, "sub/w.bin")->path, path);
}

TEST(Cache, MetadataRecordsTheEntryAndNoMore) {
  test::TempDir dir;
  FakeClock time;
  Cache cache(dir.path(), CacheOptions{}, time.clock());
  const std::string key = "http://h/pkg/a";
  commit(cache, key, "a", "abc", time.now);
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

  auto path = commit(cache, key, "a", "abc", time.now);
  time.now += 99s;
  EXPECT_TRUE(cache.lookup(key, "a"));
  time.now += 2s;
  EXPECT_FALSE(cache.lookup(key, "a")) << "expired";
  time.now -= 2s;

  std::ofstream(path, std::ios::binary | std::ios::trunc) << "ab";
  EXPECT_FALSE(cache.lookup(key, "a")) << "size differs from the metadata";

  std::ofstream(path, std::ios::binary | std::ios::trunc) << "abc";
  EXPECT_FALSE(cache.lookup(key, "a")) << "written again: not the file e2s wrote";
  EXPECT_TRUE(cache.reverify(key, "a")) << "... but the same bytes";
  EXPECT_TRUE(cache.lookup(key, "a")) << "whose identity is now recorded";
  fs::remove_all(dir.path() / ".e2s" / "meta");
  EXPECT_FALSE(cache.lookup(key, "a")) << "data without metadata is not trusted";
}

TEST(Cache, DamagedOrForeignMetadataIsAMiss) {
  test::TempDir dir;
  FakeClock time;
  Cache cache(dir.path(), CacheOptions{}, time.clock());
  const std::string key = "http://h/pkg/a";
  commit(cache, key, "a", "abc", time.now);
  fs::path meta = dir.path() / ".e2s" / "meta" / (sha256_hex(key) + ".json");
  ASSERT_TRUE(fs::exists(meta));
  std::ofstream(meta, std::ios::trunc) << "{ not json";
  EXPECT_FALSE(cache.lookup(key, "a"));
  std::ofstream(meta, std::ios::trunc) << R"({"key": "http://other/a", "file_path": "a", "size": 3, "fetched_at": 1700000000})";
  EXPECT_FALSE(cache.lookup(key, "a"));
}

// Header values may hold any byte (obs-text); the record keeps them exactly.
TEST(Cache, HeaderValuesWithAnyByteSurviveTheRecord) {
  test::TempDir dir;
  FakeClock time;
  Cache cache(dir.path(), CacheOptions{}, time.clock());
  const std::string key = "http://h/pkg/a";
  const Cache::Temp temp = write_temp(cache, key, "abc");
  CacheEntry entry = entry_for(key, "a", "abc", time.now);
  entry.etag = std::string("v1-\xff\"%41\\\n\0x", 12);
  entry.version = "\xc0\x80" "commit";
  cache.commit(temp, entry);
  const auto read = cache.read_entry(key);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->etag, entry.etag);
  EXPECT_EQ(read->version, entry.version);
  ASSERT_TRUE(read->data.has_value());
  EXPECT_EQ(*read->data, *entry.data);
}

// Records of e2s versions before identities were kept are read, and their
// file becomes a hit again once its bytes are checked.
TEST(Cache, ARecordWithoutIdentityIsTrustedOnlyAfterItsBytesAreChecked) {
  test::TempDir dir;
  FakeClock time;
  Cache cache(dir.path(), CacheOptions{}, time.clock());
  const std::string key = "http://h/pkg/a";
  dir.write_file("a", "abc");
  const double fetched = std::chrono::duration<double>(time.now.time_since_epoch()).count();
  dir.write_file(fs::path(".e2s") / "meta" / (sha256_hex(key) + ".json"),
                 R"({"format": 1, "key": "http://h/pkg/a", "file_path": "a", "size": 3, "etag": "e",
                     "sha256": ")" + sha256_hex("abc") + R"(", "version": "", "fetched_at": )" +
                     std::to_string(fetched) + "}");
  EXPECT_FALSE(cache.lookup(key, "a"));
  EXPECT_TRUE(cache.reverify(key, "a"));
  EXPECT_TRUE(cache.lookup(key, "a"));
  dir.write_file("a", "xyz");  // another program, same size
  EXPECT_FALSE(cache.lookup(key, "a"));
  EXPECT_FALSE(cache.reverify(key, "a"));
}

TEST(Cache, RecommitReplacesFileAndMetadata) {
  test::TempDir dir;
  FakeClock time;
  Cache cache(dir.path(), CacheOptions{}, time.clock());
  const std::string key = "http://h/pkg/a";
  commit(cache, key, "a", "old", time.now);
  auto path = commit(cache, key, "a", "newer", time.now);
  EXPECT_EQ(test::TempDir::read_file(path), "newer");
  EXPECT_EQ(cache.read_entry(key)->sha256, sha256_hex("newer"));
}

TEST(Cache, PlantedSymlinkAtTheFinalPathIsNotTrusted) {
  test::TempDir dir;
  test::TempDir elsewhere;
  FakeClock time;
  Cache cache(dir.path(), CacheOptions{}, time.clock());
  const std::string key = "http://h/pkg/a";
  auto path = commit(cache, key, "a", "abc", time.now);
  elsewhere.write_file("evil", "xyz");
  fs::remove(path);
  fs::create_symlink(elsewhere.path() / "evil", path);
  EXPECT_FALSE(cache.lookup(key, "a"));
}

// Files live below .e2s/files: a file path that starts with .e2s is just
// another path there, never the cache's bookkeeping.
TEST(Cache, AFilePathStartingWithTheReservedNameStaysAmongTheFiles) {
  test::TempDir dir;
  FakeClock time;
  Cache cache(dir.path(), CacheOptions{}, time.clock());
  const std::string key = "http://h/pkg/.e2s/meta/x.json";
  const fs::path path = commit(cache, key, ".e2s/meta/x.json", "data", time.now);
  EXPECT_EQ(path, test::data_file(dir.path(), ".e2s/meta/x.json"));
  EXPECT_FALSE(fs::exists(dir.path() / ".e2s" / "meta" / "x.json"));
  ASSERT_TRUE(cache.lookup(key, ".e2s/meta/x.json"));
}

// The one name e2s owns in a cache folder is .e2s: Earth2Studio's fsspec
// cache, sharing the folder, writes its files flat at the top.
TEST(Cache, NothingButTheReservedFolderIsWrittenAtTheTop) {
  test::TempDir dir;
  FakeClock time;
  for (const bool same_names : {true, false}) {
    CacheOptions options;
    options.same_names = same_names;
    Cache cache(dir.path(), options, time.clock());
    commit(cache, "http://h/pkg/w.bin", "w.bin", "flat", time.now);
    commit(cache, "http://h/pkg/sub/x.bin", "sub/x.bin", "nested", time.now);
  }
  std::vector<std::string> top;
  for (const auto& entry : fs::directory_iterator(dir.path())) top.push_back(entry.path().filename().string());
  EXPECT_EQ(top, std::vector<std::string>{".e2s"});
}

// Records of format 2 kept the file at the top of the folder: still a hit
// there; the next commit of the same key puts the file in .e2s/files and
// removes the old copy, which was e2s's own.
TEST(Cache, ARecordOfTheLegacyLayoutIsAHitAndMovesOnItsNextCommit) {
  test::TempDir dir;
  FakeClock time;
  Cache cache(dir.path(), CacheOptions{}, time.clock());
  const std::string key = "http://h/pkg/sub/w.bin";
  const fs::path path = commit(cache, key, "sub/w.bin", "old", time.now);
  // Turn it into what an older e2s left: the file at the top, format 2.
  fs::create_directories(dir.path() / "sub");
  fs::rename(path, dir.path() / "sub" / "w.bin");
  const fs::path meta = dir.path() / ".e2s" / "meta" / (sha256_hex(key) + ".json");
  nlohmann::json record = nlohmann::json::parse(test::TempDir::read_file(meta));
  record["format"] = 2;
  std::ofstream(meta, std::ios::trunc) << record.dump();

  auto hit = cache.lookup(key, "sub/w.bin");
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->path, dir.path() / "sub" / "w.bin");
  EXPECT_TRUE(hit->entry.legacy_layout);

  const fs::path moved = commit(cache, key, "sub/w.bin", "new", time.now);
  EXPECT_EQ(moved, test::data_file(dir.path(), "sub/w.bin"));
  EXPECT_FALSE(fs::exists(dir.path() / "sub" / "w.bin")) << "e2s's old copy goes";
  hit = cache.lookup(key, "sub/w.bin");
  ASSERT_TRUE(hit);
  EXPECT_EQ(test::TempDir::read_file(hit->path), "new");
  EXPECT_EQ(nlohmann::json::parse(test::TempDir::read_file(meta)).value("format", 0), Cache::kMetadataFormat);
}

// ... and an old-layout path another program changed stays where it is.
TEST(Cache, AChangedFileOfTheLegacyLayoutIsLeftInPlace) {
  test::TempDir dir;
  FakeClock time;
  Cache cache(dir.path(), CacheOptions{}, time.clock());
  const std::string key = "http://h/pkg/w.bin";
  const fs::path path = commit(cache, key, "w.bin", "old", time.now);
  fs::rename(path, dir.path() / "w.bin");
  const fs::path meta = dir.path() / ".e2s" / "meta" / (sha256_hex(key) + ".json");
  nlohmann::json record = nlohmann::json::parse(test::TempDir::read_file(meta));
  record["format"] = 2;
  std::ofstream(meta, std::ios::trunc) << record.dump();
  dir.write_file("w.bin", "another program's");
  commit(cache, key, "w.bin", "new", time.now);
  EXPECT_EQ(test::TempDir::read_file(dir.path() / "w.bin"), "another program's");
}

TEST(Cache, TempFoldersAreUniqueAndInsideTheCache) {
  test::TempDir dir;
  Cache cache(dir.path(), CacheOptions{});
  auto a = cache.claim_temp("k");
  auto b = cache.claim_temp("k");
  EXPECT_NE(a.folder, b.folder);  // a live download's folder is never taken over
  EXPECT_FALSE(b.partial);
  EXPECT_EQ(a.folder.parent_path(), dir.path() / ".e2s" / "tmp");
  EXPECT_EQ(a.data.parent_path(), a.folder);
}

TEST(Cache, UnwritableCacheFolderGivesAnIoErrorNamingIt) {
  // A regular file where a folder must go fails for every user, root included
  // (root ignores permission bits).
  test::TempDir dir;
  dir.write_file("file", "x");
  Cache cache(dir.path() / "file" / "cache", CacheOptions{});
  try {
    cache.claim_temp("k");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::io);
    EXPECT_NE(std::string(e.what()).find((dir.path() / "file").string()), std::string::npos) << e.what();
  }
}

TEST(Cache, ASymlinkedSubFolderIsNeverWrittenThrough) {
  test::TempDir dir;
  test::TempDir outside;
  FakeClock time;
  Cache cache(dir.path() / "cache", CacheOptions{}, time.clock());
  fs::create_directories(test::data_file(dir.path() / "cache", ""));
  fs::create_directory_symlink(outside.path(), test::data_file(dir.path() / "cache", "sub"));
  const std::string key = "http://h/pkg/sub/w.bin";
  Cache::Temp temp = cache.claim_temp(key);
  std::ofstream(temp.data, std::ios::binary) << "x";
  try {
    CacheEntry entry = entry_for(key, "sub/w.bin", "x", time.now);
    cache.commit(temp, entry);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::io);
    EXPECT_NE(std::string(e.what()).find("symlink"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(test::data_file(dir.path() / "cache", "sub").string()), std::string::npos);
  }
  EXPECT_TRUE(fs::is_empty(outside.path()));
}

TEST(Cache, ASymlinkedFolderOnTheWayIsAMissNotARead) {
  test::TempDir dir;
  test::TempDir outside;
  FakeClock time;
  Cache cache(dir.path(), CacheOptions{}, time.clock());
  const std::string key = "http://h/pkg/sub/w.bin";
  commit(cache, key, "sub/w.bin", "abc", time.now);
  ASSERT_TRUE(cache.lookup(key, "sub/w.bin"));
  // Swap the folder for a symlink to a look-alike outside the cache.
  outside.write_file("w.bin", "xyz");
  fs::remove_all(test::data_file(dir.path(), "sub"));
  fs::create_directory_symlink(outside.path(), test::data_file(dir.path(), "sub"));
  EXPECT_FALSE(cache.lookup(key, "sub/w.bin"));
}

TEST(Cache, ASymlinkedBookkeepingFolderIsRefused) {
  test::TempDir dir;
  test::TempDir outside;
  fs::create_directory_symlink(outside.path(), dir.path() / ".e2s");
  Cache cache(dir.path(), CacheOptions{});
  EXPECT_THROW(cache.claim_temp("k"), Error);
  EXPECT_THROW(cache.lock("k", LockOptions{}), Error);
  EXPECT_TRUE(fs::is_empty(outside.path()));
}

Partial partial_of(std::uint64_t size, std::vector<ByteRange> written) {
  return Partial{size, "etag-1", "served-1", std::move(written)};
}

TEST(Cache, AReleasedTempIsTakenOverWithItsJournal) {
  test::TempDir dir;
  Cache cache(dir.path(), CacheOptions{});
  Cache::Temp first = cache.claim_temp("k");
  std::ofstream(first.data, std::ios::binary) << std::string(100, 'a');
  cache.save_journal(first, "k", partial_of(1000, {{0, 40}, {60, 100}}));
  cache.release_temp(first);
  Cache::Temp second = cache.claim_temp("k");
  ASSERT_TRUE(second.partial);
  EXPECT_EQ(second.partial->written, (std::vector<ByteRange>{{0, 40}, {60, 100}}));
  EXPECT_EQ(second.partial->served_etag, "served-1");
  EXPECT_EQ(test::TempDir::read_file(second.data), std::string(100, 'a'));
  // Another file's claim never takes it.
  cache.release_temp(second);
  EXPECT_FALSE(cache.claim_temp("other").partial);
}

TEST(Cache, AJournalClaimingMoreThanTheDataHoldsIsIgnored) {
  test::TempDir dir;
  Cache cache(dir.path(), CacheOptions{});
  Cache::Temp first = cache.claim_temp("k");
  std::ofstream(first.data, std::ios::binary) << std::string(10, 'a');
  cache.save_journal(first, "k", partial_of(1000, {{0, 500}}));
  cache.release_temp(first);
  EXPECT_FALSE(cache.claim_temp("k").partial);
}

TEST(Cache, ATempOfADeadProcessIsTakenOverAndOfALiveOneNot) {
  test::TempDir dir;
  Cache cache(dir.path(), CacheOptions{});
  // A child claims and records, then dies without cleaning up.
  const pid_t child = ::fork();
  if (child == 0) {
    Cache::Temp temp = cache.claim_temp("k");
    std::ofstream(temp.data, std::ios::binary) << std::string(50, 'b');
    cache.save_journal(temp, "k", partial_of(100, {{0, 50}}));
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  Cache::Temp live = cache.claim_temp("k");  // this process: alive
  ASSERT_TRUE(live.partial);
  EXPECT_EQ(live.partial->bytes(), 50u);
  // This process's own temp (alive) is not taken by another claim.
  cache.save_journal(live, "k", partial_of(100, {{0, 50}}));
  EXPECT_FALSE(cache.claim_temp("k").partial);
}

TEST(DownloadLock, ASecondHolderWaitsUntilTheFirstReleases) {
  test::TempDir dir;
  Cache cache(dir.path(), CacheOptions{});
  auto first = std::make_unique<DownloadLock>(cache.lock("k", LockOptions{}));
  ASSERT_TRUE(first->held());
  std::atomic<bool> waited{false};
  std::atomic<bool> acquired{false};
  LockOptions options;
  options.on_wait = [&](const std::string& holder, bool) {
    EXPECT_EQ(holder, "another thread of this process");
    waited = true;
  };
  std::thread second([&] {
    DownloadLock lock = cache.lock("k", options);
    EXPECT_TRUE(lock.held());
    acquired = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_TRUE(waited.load());
  EXPECT_FALSE(acquired.load());
  first.reset();
  second.join();
  EXPECT_TRUE(acquired.load());
  // Nothing is left behind once no one holds it.
  EXPECT_TRUE(fs::is_empty(dir.path() / ".e2s" / "locks"));
}

TEST(DownloadLock, AHolderWithoutProgressIsPassedAfterTheStaleTime) {
  test::TempDir dir;
  Cache cache(dir.path(), CacheOptions{});
  DownloadLock stuck = cache.lock("k", LockOptions{});
  LockOptions options;
  options.stale_after = std::chrono::milliseconds(400);
  const auto start = std::chrono::steady_clock::now();
  DownloadLock passed = cache.lock("k", options);
  EXPECT_FALSE(passed.held());
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(400));
}

TEST(DownloadLock, AHeartbeatKeepsWaitersWaiting) {
  test::TempDir dir;
  Cache cache(dir.path(), CacheOptions{});
  auto holder = std::make_unique<DownloadLock>(cache.lock("k", LockOptions{}));
  std::atomic<bool> done{false};
  std::thread beating([&] {
    for (int i = 0; i < 25 && !done; ++i) {
      holder->heartbeat();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    holder.reset();
  });
  LockOptions options;
  options.stale_after = std::chrono::milliseconds(1500);
  DownloadLock lock = cache.lock("k", options);
  EXPECT_TRUE(lock.held()) << "a beating holder is waited for, then released";
  done = true;
  beating.join();
}

TEST(DownloadLock, DisabledLocksAreNeverHeld) {
  test::TempDir dir;
  Cache cache(dir.path(), CacheOptions{});
  DownloadLock first = cache.lock("k", LockOptions{});
  LockOptions off;
  off.enabled = false;
  EXPECT_FALSE(cache.lock("k", off).held());
}

}  // namespace
}  // namespace e2s::detail
