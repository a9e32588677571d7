// Path traversal through the public API: file paths and package roots that
// try to climb out of the package, in every spelling (plain, percent-encoded
// once or more, backslashes, absolute, drive letters, embedded NUL, very
// long), against an http:// root on the loopback server and a local folder.
//
// A rejected path must fail with Error(invalid_uri) before any I/O: no
// request reaches the server (its /_stats stay empty) and nothing appears
// anywhere in the test's folder, least of all in the canary folder that sits
// where a climbing path would land. Paths that only look odd ("./a", "a//b")
// are normalised and stay inside the package.
#include <gtest/gtest.h>

#include <cstddef>
#include <filesystem>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "e2s/error.hpp"
#include "e2s/package.hpp"
#include "support/fixtures.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;
using e2s::test::contains;
using e2s::test::error_of;
using e2s::test::TempDir;
using e2s::test::TestServer;

std::string repeat(std::string_view part, std::size_t times) {
  std::string out;
  out.reserve(part.size() * times);
  for (std::size_t i = 0; i < times; ++i) out += part;
  return out;
}

// File paths that must be refused wherever the package lives. The folders
// are laid out so that each one, if followed, would land in canary/ (from
// the cache storage base/cache/store or the package folder base/local/pkg)
// or on secret.txt next to the package.
std::vector<std::string> hostile_file_paths() {
  return {
      "../x",
      "../secret.txt",
      "a/../../x",
      "a/../../secret.txt",
      "../../canary/pwned",
      "config.json/../../secret.txt",
      "a/./../..",
      "%2e%2e/x",
      "%2E%2E%2Fsecret.txt",
      "..%2fsecret.txt",
      "..%2F..%2Fcanary%2Fpwned",
      "%2e%2e%5csecret.txt",
      "%252e%252e%252fsecret.txt",   // encoded twice
      "%25252e%25252e/secret.txt",   // three times
      "%2e%2e%2f%zz",                // a malformed escape hides nothing
      "/etc/passwd",
      "//etc/passwd",
      "C:\\x",
      "c:/x",
      "./C:/x",
      "a\\..\\x",
      "..\\secret.txt",
      "config.json\0/../../secret.txt"s,
      "\0"s,
      "config.json\0"s,
      "",
      ".",
      "./",
      "//",
      "./././",
      repeat("a/", 3000) + repeat("../", 3001) + "secret.txt",  // climbs after 6000 bytes
      repeat("%2e%2e/", 1000) + "secret.txt",
  };
}

// Every path below `dir`, relative, links not followed.
std::set<std::string> tree(const fs::path& dir) {
  std::set<std::string> paths;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator();
       ++it) {
    paths.insert(it->path().lexically_relative(dir).generic_string());
  }
  return paths;
}

// What resolve(), open() and resolve_all() throw for `file_path`; all three
// must agree on invalid_uri.
void expect_rejected(e2s::Package& package, const std::string& file_path) {
  const std::string shown = "file path \"" + file_path + "\" (" +
                            std::to_string(file_path.size()) + " bytes)";
  const e2s::Error resolved = error_of([&] { package.resolve(file_path); });
  EXPECT_EQ(resolved.code(), e2s::Errc::invalid_uri) << shown << ": " << resolved.what();
  EXPECT_TRUE(contains(resolved.what(), "invalid file path")) << resolved.what();
  const e2s::Error opened = error_of([&] { package.open(file_path); });
  EXPECT_EQ(opened.code(), e2s::Errc::invalid_uri) << shown << ": " << opened.what();
  const e2s::Error all = error_of([&] { package.resolve_all({file_path}); });
  EXPECT_EQ(all.code(), e2s::Errc::invalid_uri) << shown << ": " << all.what();
}

void expect_root_rejected(const std::string& root, const e2s::PackageOptions& options) {
  const e2s::Error error = error_of([&] { e2s::Package package(root, options); });
  EXPECT_EQ(error.code(), e2s::Errc::invalid_uri)
      << "root \"" << root << "\" (" << root.size() << " bytes): " << error.what();
  EXPECT_TRUE(contains(error.what(), "invalid package root")) << error.what();
}

// base/
//   served/pkg/...        what the loopback server serves; served/secret.txt is outside /pkg
//   local/pkg/...         a local package folder;           local/secret.txt is outside it
//   cache/store/          the cache storage of the http package
//   canary/               stays empty
class TraversalTest : public ::testing::Test {
 protected:
  TraversalTest() : server_("http_server.py", {"--root", (base_.path() / "served").string()}) {}

  void SetUp() override {
    for (const char* side : {"served", "local"}) {
      base_.write_file(fs::path(side) / "pkg/config.json", R"({"layers": 4})");
      base_.write_file(fs::path(side) / "pkg/a/b.txt", "inside");
      base_.write_file(fs::path(side) / "secret.txt", "outside");
    }
    fs::create_directories(canary());
    fs::create_directories(base_.path() / "cache");
    before_ = tree(base_.path());
    server_.reset();
  }

  e2s::PackageOptions options() const {
    e2s::PackageOptions o;
    o.cache_options.cache_storage = storage();
    o.retry.max_attempts = 1;
    return o;
  }

  fs::path storage() const { return base_.path() / "cache" / "store"; }
  fs::path canary() const { return base_.path() / "canary"; }
  fs::path local_pkg() const { return base_.path() / "local" / "pkg"; }
  std::string http_root() const { return server_.url("/pkg"); }

  nlohmann::json requests() const { return server_.stats()["requests"]; }

  // Nothing changed in the test's folder except, at most, inside the cache
  // storage; the canary folder is empty.
  void expect_nothing_outside_the_cache() const {
    EXPECT_TRUE(fs::is_empty(canary()));
    const std::string inside = fs::path("cache/store").generic_string() + "/";
    for (const std::string& path : tree(base_.path())) {
      if (before_.count(path) != 0 || path == "cache/store" || path.starts_with(inside)) continue;
      ADD_FAILURE() << "created outside the cache: " << path;
    }
  }

  TempDir base_;
  TestServer server_;
  std::set<std::string> before_;
};

// ----------------------------------------------------------------- http root

TEST_F(TraversalTest, HttpRootRefusesEveryClimbingFilePathWithoutARequest) {
  e2s::Package package(http_root(), options());
  for (const std::string& path : hostile_file_paths()) expect_rejected(package, path);
  EXPECT_EQ(requests().size(), 0u) << requests().dump();
  expect_nothing_outside_the_cache();
  EXPECT_FALSE(fs::exists(e2s::test::data_file(storage(), "secret.txt")));
}

TEST_F(TraversalTest, HttpRootNormalisesHarmlessSpellingsInsideThePackage) {
  e2s::Package package(http_root(), options());
  for (const std::string path : {"./a/b.txt", "a//b.txt", "a/./b.txt/", "./a/.//b.txt//"}) {
    const fs::path resolved = package.resolve(path);
    EXPECT_EQ(resolved, e2s::test::data_file(storage(), "a/b.txt")) << path;
    EXPECT_EQ(TempDir::read_file(resolved), "inside");
  }
  // The same file each time, fetched once, and only ever below /pkg/.
  EXPECT_EQ(server_.count("GET", "/pkg/a/b.txt"), 1u);
  for (const auto& request : requests()) {
    EXPECT_TRUE(request["path"].get<std::string>().starts_with("/pkg/")) << request.dump();
  }
  expect_nothing_outside_the_cache();
}

TEST_F(TraversalTest, HttpRootRejectsOnlyTheClimbingPathsOfABatch) {
  e2s::Package package(http_root(), options());
  const e2s::Error error =
      error_of([&] { package.resolve_all({"config.json", "../secret.txt", "a/b.txt"}); });
  EXPECT_EQ(error.code(), e2s::Errc::invalid_uri) << error.what();
  EXPECT_EQ(server_.count("GET", "/secret.txt"), 0u);
  for (const auto& request : requests()) {
    EXPECT_TRUE(request["path"].get<std::string>().starts_with("/pkg/")) << request.dump();
  }
  expect_nothing_outside_the_cache();
}

TEST_F(TraversalTest, HttpRootLongPathsThatStayInsideFailCleanly) {
  // Names longer than any file name may be on disk (255 bytes) are refused
  // before any request: a 1000-byte name, 300 encoded dots in one name.
  e2s::Package package(http_root(), options());
  for (const std::string& path : {repeat("n", 1000), repeat("%2e", 300)}) {
    const e2s::Error error = error_of([&] { package.resolve(path); });
    EXPECT_EQ(error.code(), e2s::Errc::invalid_uri) << error.what();
  }
  EXPECT_EQ(requests().size(), 0u) << requests().dump();
  // Long but not climbing, so valid: 6000 bytes of short names. The server
  // has no such file, and that is all the caller hears.
  {
    const e2s::Error error = error_of([&] { package.resolve(repeat("a/", 3000) + "x"); });
    EXPECT_EQ(error.code(), e2s::Errc::not_found) << error.what();
  }
  for (const auto& request : requests()) {
    EXPECT_TRUE(request["path"].get<std::string>().starts_with("/pkg/")) << request.dump();
  }
  expect_nothing_outside_the_cache();
}

TEST_F(TraversalTest, HttpRootsThatClimbAreRefusedBeforeAnyRequest) {
  const std::vector<std::string> roots = {
      server_.url("/pkg/.."),
      server_.url("/pkg/../canary"),
      server_.url("/pkg/./"),
      server_.url("/%2e%2e/pkg"),
      server_.url("/pkg/%2E%2E%2Fcanary"),
      server_.url("/pkg/..%2f"),
      server_.url("/pkg%2f%2e%2e"),
      server_.url("/pkg/%252e%252e"),
      server_.url("/pkg/%2e%2e%2f%zz"),
      server_.url("/pkg\\..\\canary"),
      server_.url("/pkg?x=/../canary"),
      server_.url("/pkg#/../canary"),
      server_.url("/pkg") + "\0/../canary"s,
      server_.url("/pkg\r\n/../canary"),
      server_.url("/" + repeat("a/", 3000) + repeat("../", 3001) + "canary"),
      "http://user:pw@127.0.0.1:" + std::to_string(server_.port()) + "/pkg",
  };
  for (const std::string& root : roots) expect_root_rejected(root, options());
  EXPECT_EQ(requests().size(), 0u) << requests().dump();
  expect_nothing_outside_the_cache();
}

// ---------------------------------------------------------------- local root

TEST_F(TraversalTest, LocalRootRefusesEveryClimbingFilePath) {
  e2s::Package package(local_pkg().string(), options());
  for (const std::string& path : hostile_file_paths()) expect_rejected(package, path);
  expect_nothing_outside_the_cache();
  EXPECT_EQ(TempDir::read_file(base_.path() / "local" / "secret.txt"), "outside");
}

TEST_F(TraversalTest, LocalRootNormalisesHarmlessSpellingsInsideThePackage) {
  e2s::Package package(local_pkg().string(), options());
  for (const std::string path : {"./a/b.txt", "a//b.txt", "a/./b.txt/"}) {
    const fs::path resolved = package.resolve(path);
    EXPECT_EQ(resolved, local_pkg() / "a" / "b.txt") << path;
    EXPECT_EQ(TempDir::read_file(resolved), "inside");
  }
  expect_nothing_outside_the_cache();
}

TEST_F(TraversalTest, LocalRootSpellingsNameTheNormalisedFolder) {
  // A local root is the caller's own path, so ".." in it is a legitimate
  // way to name a folder: it is resolved once, lexically, and file paths
  // are then confined to the folder it names.
  const std::string pkg = local_pkg().string();
  for (const std::string& root : {pkg + "/../pkg", pkg + "/./", pkg + "//", "file://" + pkg,
                                 "file://localhost" + pkg + "/", "file://" + pkg + "/a/%2e%2e"}) {
    e2s::Package package(root, options());
    EXPECT_EQ(package.resolve("a/b.txt"), local_pkg() / "a" / "b.txt") << root;
    EXPECT_EQ(error_of([&] { package.resolve("../secret.txt"); }).code(), e2s::Errc::invalid_uri)
        << root;
  }
  expect_nothing_outside_the_cache();
}

TEST_F(TraversalTest, LocalRootsWithHostileBytesAreRefused) {
  const std::string pkg = local_pkg().string();
  const std::vector<std::string> roots = {
      pkg + "\0/../../canary"s,
      pkg + "\n",
      "file://" + pkg + "%00/../../canary",
      "file://" + pkg + "/%zz",
      "file://" + pkg + "?/../../canary",
      "file://evil.example" + pkg,
      "file:" + pkg,
  };
  for (const std::string& root : roots) expect_root_rejected(root, options());
  expect_nothing_outside_the_cache();
}

// Symlinks inside a local package folder are followed, like every other
// program reading that folder would: a local package is the caller's own
// folder, not input from a server, and Earth2Studio opens
// os.path.join(root, file_path) through the OS, which follows links. Such
// folders are common: a Hugging Face snapshot folder is made of links into
// ../../blobs/, outside it. What e2s guards against is a *file path* that
// climbs; the returned path is the link's own path inside the package.
TEST_F(TraversalTest, LocalRootFollowsSymlinksTheFolderOwnerMade) {
  base_.write_file("blobs/weights.bin", "blob bytes");
  fs::create_symlink("../../blobs/weights.bin", local_pkg() / "weights.bin");
  fs::create_directory_symlink("../../blobs", local_pkg() / "shared");
  fs::create_symlink("../../blobs/missing.bin", local_pkg() / "dangling.bin");

  e2s::Package package(local_pkg().string(), options());
  EXPECT_EQ(package.resolve("weights.bin"), local_pkg() / "weights.bin");
  EXPECT_EQ(TempDir::read_file(package.resolve("weights.bin")), "blob bytes");
  EXPECT_EQ(package.resolve("shared/weights.bin"), local_pkg() / "shared" / "weights.bin");
  EXPECT_EQ(error_of([&] { package.resolve("dangling.bin"); }).code(), e2s::Errc::not_found);
  // A link does not make climbing file paths acceptable.
  EXPECT_EQ(error_of([&] { package.resolve("shared/../../secret.txt"); }).code(),
            e2s::Errc::invalid_uri);
  EXPECT_TRUE(fs::is_empty(canary()));
}

}  // namespace
