// Replays every input under fuzz/corpus/ and fuzz/regressions/ through the
// rules the libFuzzer targets check (fuzz/parser_checks.hpp), built with g++
// in the normal suite: seeds and past findings stay checked on machines
// without clang, and a fix that is undone fails here first.
#include <gtest/gtest.h>

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "parser_checks.hpp"

namespace {

namespace fs = std::filesystem;

const fs::path kFuzzDir = E2S_FUZZ_DIR;

std::string read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Runs every file under `dir`/<target>/ through that target's check; returns
// how many inputs there were.
std::size_t replay(const fs::path& dir) {
  std::size_t inputs = 0;
  if (!fs::exists(dir)) return inputs;
  for (const auto& target_dir : fs::directory_iterator(dir)) {
    if (!target_dir.is_directory()) continue;
    const std::string target = target_dir.path().filename().string();
    const e2s::fuzz::Check check = e2s::fuzz::find_check(target);
    if (check == nullptr) {
      ADD_FAILURE() << target_dir.path() << " names no fuzz target of parser_checks.hpp";
      continue;
    }
    for (const auto& file : fs::recursive_directory_iterator(target_dir.path())) {
      if (!file.is_regular_file()) continue;
      ++inputs;
      EXPECT_EQ(check(read_bytes(file.path())), "") << target << " input " << file.path();
    }
  }
  return inputs;
}

TEST(FuzzReplay, EveryTargetHasASeedCorpus) {
  for (const e2s::fuzz::Target& target : e2s::fuzz::kTargets) {
    const fs::path dir = kFuzzDir / "corpus" / std::string(target.name);
    EXPECT_TRUE(fs::is_directory(dir)) << dir;
    EXPECT_FALSE(fs::is_empty(dir)) << dir;
  }
}

TEST(FuzzReplay, SeedCorpusKeepsTheRules) { EXPECT_GT(replay(kFuzzDir / "corpus"), 20u); }

TEST(FuzzReplay, RegressionsKeepTheRules) { replay(kFuzzDir / "regressions"); }

// The rules themselves must see through the encodings a server undoes, or
// the fuzzer could not flag a parser that misses them.
TEST(FuzzReplay, RulesSeeEncodedDotSegments) {
  using e2s::fuzz::rules::climbs;
  EXPECT_TRUE(climbs(".."));
  EXPECT_TRUE(climbs("%2e%2E"));
  EXPECT_TRUE(climbs("..%2fx"));
  EXPECT_TRUE(climbs("a%5c..%5cb"));
  EXPECT_TRUE(climbs("%252e%252e"));
  EXPECT_TRUE(climbs("%2e%2e%2f%zz"));
  EXPECT_FALSE(climbs("..."));
  EXPECT_FALSE(climbs("a.b"));
  EXPECT_FALSE(climbs("100%"));
}

TEST(FuzzReplay, ChecksReportAcceptedClimbsAndForeignExceptions) {
  EXPECT_EQ(e2s::fuzz::check_file_path("a/b"), "");
  EXPECT_EQ(e2s::fuzz::check_file_path("../x"), "");  // rejected with invalid_uri: fine
  EXPECT_NE(e2s::fuzz::rules::location_problem([] {
              e2s::detail::Location location;
              location.scheme = e2s::detail::Scheme::s3;
              location.bucket = {"bucket", "a/%2e%2e/b"};
              return location;
            }()),
            "");
  EXPECT_NE(e2s::fuzz::rules::guarded([]() -> std::string { throw std::logic_error("x"); }), "");
  EXPECT_NE(e2s::fuzz::rules::guarded([]() -> std::string {
              throw e2s::Error(e2s::Errc::io, "not an invalid_uri");
            }),
            "");
  EXPECT_NE(e2s::fuzz::rules::guarded([]() -> std::string {
              throw e2s::Error(e2s::Errc::invalid_uri, "two\nlines");
            }),
            "");
}

}  // namespace
