// e2s::extract_archive on archives built by make_archives.py (at build time):
// the good ones (zip stored and deflated, tar plain and gzip, bzip2, xz
// compressed) must come out byte-identical to the tree they were made from,
// links included; every hostile one (zip-slip in each spelling, links out of
// the folder or written through, devices, FIFOs, duplicates, bombs,
// truncated and non-archives) must fail with Error(integrity) naming the
// archive and the entry, leaving nothing at the destination, no temp folder
// beside it, and the canary folder next door untouched.
#include "e2s/assets.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "e2s/error.hpp"
#include "support/fixtures.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using e2s::Errc;
using e2s::ExtractOptions;
using e2s::test::contains;
using e2s::test::error_of;
using e2s::test::TempDir;

constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;

// Short stand-in for a file's bytes, so that a failing comparison prints
// readably: size and FNV-1a hash.
std::string digest(const std::string& bytes) {
  std::uint64_t hash = 14695981039346656037ULL;
  for (char c : bytes) {
    hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  }
  return std::to_string(bytes.size()) + " bytes, fnv " + std::to_string(hash);
}

// What a tree holds, without following symlinks: relative path -> "file:"
// + digest of the bytes, "dir", or "link:" + target.
std::map<std::string, std::string> snapshot(const fs::path& root) {
  std::map<std::string, std::string> out;
  if (!fs::exists(fs::symlink_status(root))) return out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    const std::string relative = it->path().lexically_relative(root).generic_string();
    const fs::file_status status = it->symlink_status();
    if (fs::is_symlink(status)) {
      out[relative] = "link:" + fs::read_symlink(it->path()).string();
    } else if (fs::is_directory(status)) {
      out[relative] = "dir";
    } else if (fs::is_regular_file(status)) {
      out[relative] = "file:" + digest(TempDir::read_file(it->path()));
    } else {
      out[relative] = "other";
    }
  }
  return out;
}

std::set<std::string> names_in(const fs::path& folder) {
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(folder)) {
    names.insert(entry.path().filename().string());
  }
  return names;
}

mode_t mode_of(const fs::path& path) {
  struct stat status {};
  EXPECT_EQ(::lstat(path.c_str(), &status), 0) << path;
  return status.st_mode & 07777;
}

mode_t current_umask() {
  const mode_t mask = ::umask(022);
  ::umask(mask);
  return mask;
}

// The archives make_archives.py wrote at build time (E2S_ARCHIVE_FIXTURES:
// archives/, and canary/, where the hostile ones aim absolute paths), read
// by every test; one empty base folder per test, whose destination is
// base/out (relative climbs aim at base/canary).
class ArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    archives_ = fs::path(E2S_ARCHIVE_FIXTURES) / "archives";
    canary_ = fs::path(E2S_ARCHIVE_FIXTURES) / "canary";
    destination_ = dir_.path() / "out";
    ASSERT_TRUE(fs::is_regular_file(archives_ / "good.zip")) << "build the e2s_archive_fixtures target";
    canary_before_ = snapshot(canary_);
  }

  // Nothing at the destination, no temp folder beside it, nothing climbed
  // out into the base folder, the canary untouched.
  void expect_nothing_written() const {
    EXPECT_FALSE(fs::exists(fs::symlink_status(destination_)));
    EXPECT_EQ(names_in(dir_.path()), (std::set<std::string>{}));
    EXPECT_EQ(snapshot(canary_), canary_before_);
  }

  TempDir dir_;
  fs::path archives_;
  fs::path canary_;
  fs::path destination_;
  std::map<std::string, std::string> canary_before_;
};

// ---------------------------------------------------------------- good archives

class GoodArchiveTest : public ArchiveTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(GoodArchiveTest, ExtractsByteIdenticalTree) {
  const std::string name = GetParam();
  e2s::extract_archive(archives_ / name, destination_);

  auto extracted = snapshot(destination_);
  const auto input = snapshot(archives_ / "input");
  const bool is_tar = name.find(".tar") != std::string::npos;
  if (is_tar) {
    // The links only the tars hold.
    EXPECT_EQ(extracted["links"], "dir");
    EXPECT_EQ(extracted["links/deep"], "link:../nested/a/b/deep.bin");
    EXPECT_EQ(extracted["nested/a/b/up"], "link:../../../top.txt");
    EXPECT_EQ(extracted["here"], "link:.");
    EXPECT_EQ(extracted["hard.txt"], input.at("nested/other.txt"));
    for (const char* added : {"links", "links/deep", "nested/a/b/up", "here", "hard.txt"}) {
      extracted.erase(added);
    }
    // The links work, and stay inside.
    EXPECT_EQ(TempDir::read_file(destination_ / "links/deep"),
              TempDir::read_file(archives_ / "input/nested/a/b/deep.bin"));
    EXPECT_EQ(TempDir::read_file(destination_ / "nested/a/b/up"), "hello from the top\n");
    EXPECT_TRUE(fs::equivalent(destination_ / "hard.txt", destination_ / "nested/other.txt"));
  }
  EXPECT_EQ(extracted, input);
  EXPECT_TRUE(fs::is_directory(destination_ / "empty"));
  EXPECT_TRUE(fs::is_empty(destination_ / "empty"));

  // Owner's exec bit kept; no other bit taken from the archive.
  const mode_t umask = current_umask();
  EXPECT_EQ(mode_of(destination_ / "top.txt"), 0644 & ~umask);
  EXPECT_EQ(mode_of(destination_ / "nested/a/zeros.bin"), 0644 & ~umask);
  EXPECT_EQ(mode_of(destination_ / "nested"), 0755 & ~umask);
  if (name != "good.zip") {  // the zip's entries carry no exec bit
    EXPECT_EQ(mode_of(destination_ / "run.sh"), 0755 & ~umask);
  }

  // Only the destination was added: no temp folder left.
  EXPECT_EQ(names_in(dir_.path()), (std::set<std::string>{"out"}));
  EXPECT_EQ(snapshot(canary_), canary_before_);
}

INSTANTIATE_TEST_SUITE_P(Formats, GoodArchiveTest,
                         ::testing::Values("good.zip", "good.tar", "good.tar.gz", "good.tar.bz2",
                                           "good.tar.xz"),
                         [](const auto& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (c == '.') c = '_';
                           }
                           return name;
                         });

TEST_F(ArchiveTest, NormalisesDotAndDoubleSlashEntries) {
  e2s::extract_archive(archives_ / "good_dot.tar", destination_);
  EXPECT_EQ(snapshot(destination_),
            (std::map<std::string, std::string>{
                {"a", "dir"}, {"a/b", "dir"}, {"a/b/c.txt", "file:" + digest("c\n")}}));
}

TEST_F(ArchiveTest, CreatesTheDestinationsMissingParents) {
  const fs::path deep = dir_.path() / "x" / "y" / "out";
  e2s::extract_archive(archives_ / "good.tar", deep);
  EXPECT_EQ(TempDir::read_file(deep / "top.txt"), "hello from the top\n");
  EXPECT_EQ(names_in(dir_.path() / "x" / "y"), (std::set<std::string>{"out"}));
}

TEST_F(ArchiveTest, LimitsRaisedLetALargeArchiveThrough) {
  ExtractOptions options;
  options.max_ratio = 2000;
  e2s::extract_archive(archives_ / "bomb_zeros.tar.gz", destination_, options);
  EXPECT_EQ(fs::file_size(destination_ / "zeros.bin"), 70 * kMiB);
}

// Two extractions racing for one destination (two processes filling one
// cache): whichever renames first wins, the other returns normally (or, when
// it started after the winner finished, is refused because the destination
// exists); one complete tree, no temp folder.
TEST_F(ArchiveTest, ConcurrentExtractionsLeaveOneCompleteTree) {
  ExtractOptions options;
  options.max_ratio = 2000;
  std::atomic<int> refused{0};
  const auto extract = [&] {
    try {
      e2s::extract_archive(archives_ / "bomb_zeros.tar.gz", destination_, options);
    } catch (const e2s::Error& error) {
      EXPECT_EQ(error.code(), Errc::io) << error.what();
      EXPECT_TRUE(contains(error.what(), "it already exists")) << error.what();
      ++refused;
    }
  };
  std::thread first(extract);
  std::thread second(extract);
  first.join();
  second.join();
  EXPECT_LE(refused.load(), 1);
  EXPECT_EQ(fs::file_size(destination_ / "zeros.bin"), 70 * kMiB);
  EXPECT_EQ(TempDir::read_file(destination_ / "ok.txt"), "fine\n");
  EXPECT_EQ(names_in(dir_.path()), (std::set<std::string>{"out"}));
}

// A zip whose sizes lie, within the limits: libarchive notices at the end of
// the entry, and its two-line message comes out as one line.
TEST_F(ArchiveTest, RefusesAZipWhoseSizesLie) {
  const fs::path archive = archives_ / "bomb_lying.zip";
  ExtractOptions options;
  options.max_ratio = 2000;
  const e2s::Error error = error_of([&] { e2s::extract_archive(archive, destination_, options); });
  EXPECT_EQ(error.code(), Errc::integrity);
  EXPECT_TRUE(contains(error.what(), "entry \"zeros.bin\"")) << error.what();
  EXPECT_TRUE(contains(error.what(), "truncated or corrupt")) << error.what();
  EXPECT_EQ(std::string(error.what()).find('\n'), std::string::npos) << error.what();
  expect_nothing_written();
}

// ---------------------------------------------------------------- refusals before reading

TEST_F(ArchiveTest, RefusesAnExistingDestination) {
  for (const char* kind : {"folder", "file", "symlink"}) {
    SCOPED_TRACE(kind);
    const fs::path existing = dir_.path() / (std::string("existing-") + kind);
    if (std::string(kind) == "folder") fs::create_directory(existing);
    if (std::string(kind) == "file") dir_.write_file(existing.filename(), "mine\n");
    if (std::string(kind) == "symlink") fs::create_directory_symlink(canary_, existing);
    const auto before = snapshot(dir_.path());
    const e2s::Error error =
        error_of([&] { e2s::extract_archive(archives_ / "good.tar", existing); });
    EXPECT_EQ(error.code(), Errc::io);
    EXPECT_TRUE(contains(error.what(), existing.string() + ": it already exists")) << error.what();
    EXPECT_EQ(snapshot(dir_.path()), before);
  }
}

TEST_F(ArchiveTest, RefusesAMissingArchive) {
  const e2s::Error error =
      error_of([&] { e2s::extract_archive(archives_ / "nothere.zip", destination_); });
  EXPECT_EQ(error.code(), Errc::io);
  EXPECT_TRUE(contains(error.what(), "nothere.zip")) << error.what();
  expect_nothing_written();
}

// ---------------------------------------------------------------- hostile archives

struct HostileCase {
  std::string archive;
  std::vector<std::string> message_parts;  // besides the archive's path
  ExtractOptions options = {};
  std::string label = {};  // the test's name when not the archive's
};

void PrintTo(const HostileCase& hostile, std::ostream* out) { *out << hostile.archive; }

std::string case_name(const ::testing::TestParamInfo<HostileCase>& info) {
  std::string name = info.param.label.empty() ? info.param.archive : info.param.label;
  for (char& c : name) {
    if (c == '.') c = '_';
  }
  return name;
}

ExtractOptions with_max_bytes(std::uint64_t max_bytes) {
  ExtractOptions options;
  options.max_bytes = max_bytes;
  return options;
}

ExtractOptions with_max_ratio(double max_ratio) {
  ExtractOptions options;
  options.max_ratio = max_ratio;
  return options;
}

ExtractOptions with_max_entries(std::uint64_t max_entries) {
  ExtractOptions options;
  options.max_entries = max_entries;
  return options;
}

std::vector<HostileCase> hostile_cases() {
  return {
      {"slip_dotdot.tar", {"entry \"../evil\"", "'..' segment"}},
      {"slip_dotdot.zip", {"entry \"../evil\"", "'..' segment"}},
      {"slip_nested.tar", {"entry \"a/../../evil\"", "'..' segment"}},
      {"slip_absolute.tar", {"/canary/evil\"", "is an absolute path"}},
      {"slip_backslash.tar", {"entry \"..\\\\evil\"", "contains a backslash"}},
      // libarchive reads a zip's backslashes as '/'.
      {"slip_backslash.zip", {"entry \"../evil\"", "'..' segment"}},
      {"slip_drive.tar", {"entry \"C:/evil\"", "Windows drive"}},
      {"symlink_absolute.tar", {"entry \"link\"", "symlink to \"/etc\"", "is absolute"}},
      {"symlink_canary.tar", {"entry \"link\"", "/canary\"", "is absolute"}},
      {"symlink_outside.tar",
       {"entry \"a/link\"", "\"../../outside\"", "leaves the archive's folder"}},
      {"symlink_climb_after_name.tar", {"entry \"t\"", "'..' segment after a name"}},
      {"symlink_through.tar", {"entry \"link/evil\"", "goes through the symlink \"link\""}},
      {"hardlink_etc.tar", {"entry \"h\"", "hard link to \"/etc/passwd\"", "absolute path"}},
      {"hardlink_up.tar", {"entry \"h\"", "hard link to \"../x\"", "'..' segment"}},
      {"hardlink_missing.tar", {"entry \"h\"", "not a file extracted before it"}},
      {"device.tar", {"entry \"null\"", "is a device"}},
      {"fifo.tar", {"entry \"pipe\"", "is a FIFO"}},
      {"duplicate.tar", {"entry \"same.txt\"", "appears twice"}},
      {"duplicate.zip", {"entry \"ok.txt\"", "appears twice"}},
      {"duplicate_link.tar", {"entry \"same.txt\"", "appears twice"}},
      {"file_then_folder.tar", {"entry \"x/y\"", "an earlier entry made it a file"}},
      // Declared sizes are checked before writing, written bytes as they go.
      {"bomb_zeros.tar.gz",
       {"entry \"zeros.bin\"", "would expand the archive past max_bytes (10485760 bytes)",
        "decompression bomb"},
       with_max_bytes(10 * kMiB),
       "bomb_bytes"},
      {"bomb_lying.zip",
       {"entry \"zeros.bin\"", "expands the archive past max_bytes (10485760 bytes)",
        "decompression bomb"},
       with_max_bytes(10 * kMiB)},
      {"bomb_lying.zip",
       {"entry \"zeros.bin\"", "expands the archive past max_ratio (100 times",
        "decompression bomb"},
       with_max_ratio(100),
       "bomb_lying_ratio"},
      {"bomb_zeros.tar.gz",
       {"entry \"zeros.bin\"", "would expand the archive past max_ratio (100 times",
        "decompression bomb"},
       with_max_ratio(100),
       "bomb_ratio"},
      {"bomb_entries.zip",
       {"more than max_entries (10) entries", "decompression bomb"},
       with_max_entries(10)},
      {"truncated_good_tar", {"truncated or corrupt"}},
      {"truncated_good_tar_gz", {"truncated or corrupt"}},
      {"truncated_good_zip", {"corrupt"}},
      {"not_an_archive.txt", {"not a zip or tar archive"}},
      {"empty_file", {"the file is empty"}},
  };
}

class HostileArchiveTest : public ArchiveTest, public ::testing::WithParamInterface<HostileCase> {};

TEST_P(HostileArchiveTest, IsRefusedLeavingNothing) {
  const HostileCase& hostile = GetParam();
  const fs::path archive = archives_ / hostile.archive;
  const e2s::Error error =
      error_of([&] { e2s::extract_archive(archive, destination_, hostile.options); });
  EXPECT_EQ(error.code(), Errc::integrity) << error.what();
  EXPECT_TRUE(contains(error.what(), "cannot extract archive " + archive.string() + ": "))
      << error.what();
  for (const std::string& part : hostile.message_parts) {
    EXPECT_TRUE(contains(error.what(), part)) << "missing \"" << part << "\" in: " << error.what();
  }
  EXPECT_EQ(std::string(error.what()).find('\n'), std::string::npos) << error.what();
  EXPECT_EQ(error.uri(), archive.string());
  expect_nothing_written();
}

INSTANTIATE_TEST_SUITE_P(Archives, HostileArchiveTest, ::testing::ValuesIn(hostile_cases()),
                         case_name);

}  // namespace
