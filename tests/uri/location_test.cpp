#include "uri/location.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <ostream>
#include <string>
#include <string_view>

#include "e2s/error.hpp"

namespace e2s::detail {
namespace {

using namespace std::string_view_literals;
namespace fs = std::filesystem;

constexpr std::string_view kHfForm =
    "expected hf://[models/|datasets/|spaces/]NAMESPACE/NAME[@REVISION][/SUBFOLDER]";
constexpr std::string_view kLeaveRoot =
    "file paths are relative to the package root and may not leave it";
constexpr std::string_view kSha = "0123456789abcdef0123456789abcdef01234567";

// The Error parse_root throws for `root`; fails the test when it accepts the
// root or throws anything else.
Error root_error(std::string_view root) {
  try {
    const Location location = parse_root(root);
    ADD_FAILURE() << "parse_root accepted \"" << root << "\" as scheme "
                  << to_string(location.scheme);
  } catch (const Error& error) {
    return error;
  }
  return Error(Errc::other, "parse_root did not throw");
}

Error file_path_error(std::string_view path, std::string_view root) {
  try {
    const std::string normal = validate_file_path(path, root);
    ADD_FAILURE() << "validate_file_path accepted \"" << path << "\" as \"" << normal << "\"";
  } catch (const Error& error) {
    return error;
  }
  return Error(Errc::other, "validate_file_path did not throw");
}

bool contains(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

// ---------------------------------------------------------------- local

TEST(ParseRoot, AbsoluteLocalPath) {
  const Location location = parse_root("/tmp/models/fcn");
  EXPECT_EQ(location.scheme, Scheme::local);
  EXPECT_EQ(location.root, "/tmp/models/fcn");
  EXPECT_EQ(location.local_dir.string(), "/tmp/models/fcn");
}

TEST(ParseRoot, LocalTrailingSlashesRemoved) {
  const Location location = parse_root("/tmp/models///");
  EXPECT_EQ(location.root, "/tmp/models");
  EXPECT_EQ(location.local_dir.string(), "/tmp/models");
}

TEST(ParseRoot, FilesystemRootKeepsItsSlash) {
  EXPECT_EQ(parse_root("/").root, "/");
  EXPECT_EQ(parse_root("/").local_dir.string(), "/");
  EXPECT_EQ(parse_root("///").root, "/");
  EXPECT_EQ(parse_root("///").local_dir.string(), "/");
}

TEST(ParseRoot, RelativeLocalPathMadeAbsolute) {
  const fs::path cwd = fs::current_path();
  EXPECT_EQ(parse_root("models/fcn").local_dir.string(), (cwd / "models/fcn").string());
  EXPECT_EQ(parse_root("models/fcn/").local_dir.string(), (cwd / "models/fcn").string());
  EXPECT_EQ(parse_root("models/fcn").root, "models/fcn");
  EXPECT_EQ(parse_root("./a/../b").local_dir.string(), (cwd / "b").string());
  EXPECT_EQ(parse_root(".").local_dir.string(), cwd.string());
  EXPECT_TRUE(parse_root("x").local_dir.is_absolute());
}

TEST(ParseRoot, LocalPathLexicallyNormalised) {
  EXPECT_EQ(parse_root("/a/./b/../c").local_dir.string(), "/a/c");
  EXPECT_EQ(parse_root("/a//b/.").local_dir.string(), "/a/b");
  EXPECT_EQ(parse_root("/a/b/..").local_dir.string(), "/a");
  EXPECT_EQ(parse_root("//x").local_dir.string(), "/x");
  EXPECT_EQ(parse_root("////a//").local_dir.string(), "/a");
  EXPECT_EQ(parse_root("/..").local_dir.string(), "/");
}

TEST(ParseRoot, LocalPathNeedNotExist) {
  const std::string missing = "/e2s-location-test/does/not/exist";
  ASSERT_FALSE(fs::exists(missing));
  EXPECT_EQ(parse_root(missing).local_dir.string(), missing);
  EXPECT_FALSE(fs::exists(missing));
}

TEST(ParseRoot, PathWithSchemeLikeComponentIsLocal) {
  const Location location = parse_root("/data/http://mirror");
  EXPECT_EQ(location.scheme, Scheme::local);
  EXPECT_EQ(location.local_dir.string(), "/data/http:/mirror");
}

TEST(ParseRoot, EarthStudioNgcCaseWithoutSchemeIsARelativeLocalPath) {
  // Earth2Studio rejects "models/a/b/c@1.0/file" as an NGC URI; without "://"
  // it is simply a relative folder here.
  const Location location = parse_root("models/a/b/c@1.0/file");
  EXPECT_EQ(location.scheme, Scheme::local);
  EXPECT_EQ(location.local_dir.string(),
            (fs::current_path() / "models/a/b/c@1.0/file").string());
}

TEST(ParseRoot, KnownSchemeWithoutSlashesRejected) {
  for (std::string_view root : {"hf:ns/name"sv, "https:/example.com/x"sv, "s3:bucket"sv,
                                "GS:bucket/x"sv, "file:/tmp/x"sv}) {
    const Error error = root_error(root);
    EXPECT_EQ(error.code(), Errc::invalid_uri) << root;
    EXPECT_TRUE(contains(error.what(), "\"" + std::string(root) + "\"")) << error.what();
    EXPECT_TRUE(contains(error.what(), "://")) << error.what();
  }
  EXPECT_EQ(parse_root("./hf:ns/name").scheme, Scheme::local);
}

TEST(ParseRoot, FileUri) {
  Location location = parse_root("file:///tmp/models/");
  EXPECT_EQ(location.scheme, Scheme::local);
  EXPECT_EQ(location.root, "file:///tmp/models");
  EXPECT_EQ(location.local_dir.string(), "/tmp/models");

  location = parse_root("file://localhost/tmp/x");
  EXPECT_EQ(location.scheme, Scheme::local);
  EXPECT_EQ(location.local_dir.string(), "/tmp/x");

  location = parse_root("FILE://LocalHost/tmp/a/../x/");
  EXPECT_EQ(location.scheme, Scheme::local);
  EXPECT_EQ(location.root, "FILE://LocalHost/tmp/a/../x");
  EXPECT_EQ(location.local_dir.string(), "/tmp/x");

  EXPECT_EQ(parse_root("file:///tmp/my%20models").local_dir.string(), "/tmp/my models");
}

TEST(ParseRoot, FileUriOfFilesystemRoot) {
  Location location = parse_root("file:///");
  EXPECT_EQ(location.root, "file:///");
  EXPECT_EQ(location.local_dir.string(), "/");
  location = parse_root("file://localhost/");
  EXPECT_EQ(location.root, "file://localhost/");
  EXPECT_EQ(location.local_dir.string(), "/");
}

TEST(ParseRoot, EmptyRootRejected) {
  const Error error = root_error("");
  EXPECT_EQ(error.code(), Errc::invalid_uri);
  EXPECT_TRUE(contains(error.what(), "empty")) << error.what();
}

TEST(ParseRoot, ControlCharactersRejectedOnOneLine) {
  for (std::string_view root :
       {"/tmp/a\0b"sv, "/tmp/a\nb"sv, "/tmp/a\rb"sv, "/tmp/a\tb"sv, "/tmp/\x7f"sv,
        "hf://ns/name\n"sv, "https://host/a\r\nX-Evil: 1"sv, "s3://bucket/\x01"sv}) {
    const Error error = root_error(root);
    EXPECT_EQ(error.code(), Errc::invalid_uri);
    const std::string_view message = error.what();
    EXPECT_FALSE(contains(message, "\n")) << message;
    EXPECT_FALSE(contains(message, "\r")) << message;
    EXPECT_FALSE(contains(message, std::string_view("\0", 1))) << message;
    EXPECT_TRUE(contains(message, "\\x")) << message;
  }
}

TEST(ParseRoot, UnknownSchemeListsSupportedSchemes) {
  for (std::string_view root : {"ftp://host/x"sv, "foo://bar"sv, "s4://bucket"sv, "az://c/x"sv}) {
    const Error error = root_error(root);
    EXPECT_EQ(error.code(), Errc::invalid_uri) << root;
    const std::string_view message = error.what();
    EXPECT_TRUE(contains(message, "\"" + std::string(root) + "\"")) << message;
    for (std::string_view scheme : {"hf://", "ngc://models/", "s3://", "gs://", "https://"}) {
      EXPECT_TRUE(contains(message, scheme)) << message;
    }
  }
}

TEST(ParseRoot, MalformedSchemeRejected) {
  for (std::string_view root : {"://x"sv, "1http://x"sv, "a b://c"sv, "ht_tp://x"sv}) {
    EXPECT_EQ(root_error(root).code(), Errc::invalid_uri) << root;
  }
}

TEST(ParseRoot, UnknownSchemeCredentialsNotEchoed) {
  const Error error = root_error("ftp://user:hunter2@host/x");
  EXPECT_EQ(error.code(), Errc::invalid_uri);
  EXPECT_FALSE(contains(error.what(), "hunter2")) << error.what();
  EXPECT_FALSE(contains(error.uri(), "hunter2")) << error.uri();
}

TEST(ParseRoot, SchemeIsCaseInsensitive) {
  EXPECT_EQ(parse_root("HTTPS://Example.com/A").scheme, Scheme::http);
  EXPECT_EQ(parse_root("HTTPS://Example.com/A").base_url, "https://Example.com/A");
  EXPECT_EQ(parse_root("Hf://ns/name").scheme, Scheme::hf);
  EXPECT_EQ(parse_root("NGC://models/org/name@1").scheme, Scheme::ngc);
  EXPECT_EQ(parse_root("S3://bucket").scheme, Scheme::s3);
  EXPECT_EQ(parse_root("gS://bucket").scheme, Scheme::gs);
  EXPECT_EQ(parse_root("HTTP://h").root, "HTTP://h");
}

TEST(ParseRoot, SchemeNames) {
  EXPECT_EQ(to_string(Scheme::local), "local");
  EXPECT_EQ(to_string(Scheme::http), "http");
  EXPECT_EQ(to_string(Scheme::hf), "hf");
  EXPECT_EQ(to_string(Scheme::ngc), "ngc");
  EXPECT_EQ(to_string(Scheme::s3), "s3");
  EXPECT_EQ(to_string(Scheme::gs), "gs");
}

// Roots that must fail, each with a fragment the message must contain.
struct BadRoot {
  std::string_view root;
  std::string_view says;
  friend std::ostream& operator<<(std::ostream& out, const BadRoot& bad) {
    return out << '"' << bad.root << '"';
  }
};

class ParseRootRejects : public testing::TestWithParam<BadRoot> {};

TEST_P(ParseRootRejects, WithInvalidUriNamingTheRoot) {
  const BadRoot& bad = GetParam();
  const Error error = root_error(bad.root);
  EXPECT_EQ(error.code(), Errc::invalid_uri);
  const std::string_view message = error.what();
  EXPECT_TRUE(contains(message, "\"" + std::string(bad.root) + "\"")) << message;
  EXPECT_TRUE(contains(message, bad.says)) << message;
  EXPECT_FALSE(contains(message, "\n")) << message;
  EXPECT_EQ(error.uri(), bad.root);
}

// ---------------------------------------------------------------- file://

INSTANTIATE_TEST_SUITE_P(
    File, ParseRootRejects,
    testing::Values(BadRoot{"file://", "file:///ABS/PATH"},
                    BadRoot{"file://relative/path", "relative folder"},
                    BadRoot{"file://./models", "file:///ABS/PATH"},
                    BadRoot{"file://otherhost/tmp/x", "localhost"},
                    BadRoot{"file://localhost", "absolute path"},
                    BadRoot{"file:///tmp/a?b", "query"},
                    BadRoot{"file:///tmp/a#b", "fragment"},
                    BadRoot{"file:///tmp/a%G1", "percent-escape"},
                    BadRoot{"file:///tmp/a%00b", "control character"}));

// ---------------------------------------------------------------- http(s)

struct HttpCase {
  std::string_view root;
  std::string_view expected_root;
  std::string_view base_url;
  friend std::ostream& operator<<(std::ostream& out, const HttpCase& c) {
    return out << '"' << c.root << '"';
  }
};

class ParseRootHttp : public testing::TestWithParam<HttpCase> {};

TEST_P(ParseRootHttp, BaseUrl) {
  const HttpCase& c = GetParam();
  const Location location = parse_root(c.root);
  EXPECT_EQ(location.scheme, Scheme::http);
  EXPECT_EQ(location.root, c.expected_root);
  EXPECT_EQ(location.base_url, c.base_url);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ParseRootHttp,
    testing::Values(
        HttpCase{"https://get.ecmwf.int/repository/earthkit/regrid/db/1/mir_16_linear",
                 "https://get.ecmwf.int/repository/earthkit/regrid/db/1/mir_16_linear",
                 "https://get.ecmwf.int/repository/earthkit/regrid/db/1/mir_16_linear"},
        HttpCase{"http://localhost:8080/pkg/", "http://localhost:8080/pkg",
                 "http://localhost:8080/pkg"},
        HttpCase{"https://example.com", "https://example.com", "https://example.com"},
        HttpCase{"https://example.com/", "https://example.com", "https://example.com"},
        HttpCase{"https://example.com///", "https://example.com", "https://example.com"},
        HttpCase{"http://[::1]:9000/a", "http://[::1]:9000/a", "http://[::1]:9000/a"},
        HttpCase{"http://[::1]", "http://[::1]", "http://[::1]"},
        HttpCase{"http://[::ffff:127.0.0.1]/x", "http://[::ffff:127.0.0.1]/x",
                 "http://[::ffff:127.0.0.1]/x"},
        HttpCase{"http://127.0.0.1:1/x", "http://127.0.0.1:1/x", "http://127.0.0.1:1/x"},
        HttpCase{"http://h:65535", "http://h:65535", "http://h:65535"},
        HttpCase{"https://host:0443/x", "https://host:0443/x", "https://host:443/x"},
        HttpCase{"HtTpS://Mixed.Case.COM/Path", "HtTpS://Mixed.Case.COM/Path",
                 "https://Mixed.Case.COM/Path"},
        HttpCase{"https://host/a@b/c:d/e%20f", "https://host/a@b/c:d/e%20f",
                 "https://host/a@b/c:d/e%20f"},
        HttpCase{"https://host/a//b", "https://host/a//b", "https://host/a//b"},
        HttpCase{"https://host/v1.0/.../x", "https://host/v1.0/.../x",
                 "https://host/v1.0/.../x"}));

INSTANTIATE_TEST_SUITE_P(
    Http, ParseRootRejects,
    testing::Values(
        BadRoot{"https://", "missing host"}, BadRoot{"https:///path", "missing host"},
        BadRoot{"http://:8080/x", "missing host"}, BadRoot{"https://host:/x", "port"},
        BadRoot{"https://host:0", "port"}, BadRoot{"https://host:65536", "port"},
        BadRoot{"https://host:99999999999999999999999", "port"},
        BadRoot{"https://host:8a", "port"}, BadRoot{"https://host:-1", "port"},
        BadRoot{"https://ho st/x", "host"}, BadRoot{"https://ho%41st/x", "host"},
        BadRoot{"http://[::1/x", "IPv6"}, BadRoot{"http://[zz::1]/x", "IPv6"},
        BadRoot{"http://[]/x", "IPv6"}, BadRoot{"http://[::1]x/", "IPv6"},
        BadRoot{"https://host/a b", "percent-encoded"},
        BadRoot{"https://host/\xc3\xa9", "percent-encoded"},
        BadRoot{"https://host/a%4", "percent-escape"},
        BadRoot{"https://host/a%zz/b", "percent-escape"},
        BadRoot{"https://host/a/../b", "'..'"}, BadRoot{"https://host/./a", "'.'"},
        BadRoot{"https://host/a/%2e%2e/b", "'..'"}, BadRoot{"https://host/a/%2E", "'.'"},
        BadRoot{"https://host/a/..", "'..'"}, BadRoot{"https://host/x#frag", "fragment"},
        BadRoot{"https://host/x/#", "fragment"}));

TEST(ParseRoot, HttpPathCharactersEscapedInMessage) {
  Error error = root_error("https://host/a\\b");
  EXPECT_EQ(error.code(), Errc::invalid_uri);
  EXPECT_TRUE(contains(error.what(), "\"https://host/a\\\\b\"")) << error.what();
  EXPECT_TRUE(contains(error.what(), "percent-encoded")) << error.what();
  EXPECT_EQ(error.uri(), "https://host/a\\b");
  error = root_error("https://host/a\"b");
  EXPECT_EQ(error.code(), Errc::invalid_uri);
  EXPECT_TRUE(contains(error.what(), "\"https://host/a\\\"b\"")) << error.what();
}

TEST(ParseRoot, HttpQueryRejectedWithoutEchoingIt) {
  for (std::string_view root : {"https://host/x?token=s3cr3t"sv, "https://host?sig=s3cr3t"sv,
                                "https://host/x/?a=s3cr3t#f"sv}) {
    const Error error = root_error(root);
    EXPECT_EQ(error.code(), Errc::invalid_uri);
    EXPECT_TRUE(contains(error.what(), "query")) << error.what();
    EXPECT_TRUE(contains(error.what(), "https://host")) << error.what();
    EXPECT_FALSE(contains(error.what(), "s3cr3t")) << error.what();
    EXPECT_FALSE(contains(error.uri(), "s3cr3t")) << error.uri();
  }
}

TEST(ParseRoot, HttpCredentialsRejectedWithoutEchoingThem) {
  for (std::string_view root : {"https://alice:hunter2@example.com/models"sv,
                                "http://hunter2@example.com"sv,
                                "https://alice:hunter2@[::1]:8080/x"sv}) {
    const Error error = root_error(root);
    EXPECT_EQ(error.code(), Errc::invalid_uri);
    const std::string_view message = error.what();
    EXPECT_TRUE(contains(message, "credentials")) << message;
    EXPECT_TRUE(contains(message, "logs")) << message;
    EXPECT_TRUE(contains(message, "token")) << message;
    EXPECT_TRUE(contains(message, "example.com") || contains(message, "[::1]")) << message;
    EXPECT_FALSE(contains(message, "hunter2")) << message;
    EXPECT_FALSE(contains(error.uri(), "hunter2")) << error.uri();
  }
}

// ---------------------------------------------------------------- hf://

struct HfCase {
  std::string_view root;
  std::string_view repo_type;
  std::string_view repo_id;
  std::string_view revision;
  std::string_view subfolder;
  friend std::ostream& operator<<(std::ostream& out, const HfCase& c) {
    return out << '"' << c.root << '"';
  }
};

class ParseRootHf : public testing::TestWithParam<HfCase> {};

TEST_P(ParseRootHf, Fields) {
  const HfCase& c = GetParam();
  const Location location = parse_root(c.root);
  EXPECT_EQ(location.scheme, Scheme::hf);
  EXPECT_EQ(location.hf.repo_type, c.repo_type);
  EXPECT_EQ(location.hf.repo_id, c.repo_id);
  EXPECT_EQ(location.hf.revision, c.revision);
  EXPECT_EQ(location.hf.subfolder, c.subfolder);
}

const std::string kShaRoot = "hf://nvidia/fourcastnet3@" + std::string(kSha);
const std::string kLongName(96, 'a');
const std::string kLongNameRoot = "hf://ns/" + kLongName;
const std::string kLongRepoId = "ns/" + kLongName;

INSTANTIATE_TEST_SUITE_P(
    Table, ParseRootHf,
    testing::Values(
        HfCase{kShaRoot, "model", "nvidia/fourcastnet3", kSha, ""},
        HfCase{"hf://microsoft/aurora@refs%2Fpr%2F1", "model", "microsoft/aurora", "refs/pr/1",
               ""},
        HfCase{"hf://microsoft/aurora@refs/pr/1/sub", "model", "microsoft/aurora", "refs/pr/1",
               "sub"},
        HfCase{"hf://microsoft/aurora@refs/pr/12", "model", "microsoft/aurora", "refs/pr/12", ""},
        HfCase{"hf://microsoft/aurora@refs/pr/3/", "model", "microsoft/aurora", "refs/pr/3", ""},
        HfCase{"hf://datasets/ns/name@refs/convert/parquet/default/train", "dataset", "ns/name",
               "refs/convert/parquet", "default/train"},
        HfCase{"hf://NickGeneva/earth_ai/pangu", "model", "NickGeneva/earth_ai", "main", "pangu"},
        HfCase{"hf://datasets/ns/name@v1/dir", "dataset", "ns/name", "v1", "dir"},
        HfCase{"hf://spaces/ns/name", "space", "ns/name", "main", ""},
        HfCase{"hf://ns/name", "model", "ns/name", "main", ""},
        HfCase{"hf://ns/name/", "model", "ns/name", "main", ""},
        HfCase{"hf://ns/name@v1.0/a/b/", "model", "ns/name", "v1.0", "a/b"},
        HfCase{"hf://ns/name@feature%2Fx/a", "model", "ns/name", "feature/x", "a"},
        HfCase{"hf://ns/name@%76%31", "model", "ns/name", "v1", ""},
        // '@' only introduces a revision right after NAMESPACE/NAME (as in
        // HfFileSystem); later it is part of the folder name.
        HfCase{"hf://ns/name/sub@x", "model", "ns/name", "main", "sub@x"},
        // Unencoded refs other than refs/pr and refs/convert end at the first '/'.
        HfCase{"hf://ns/name@refs/heads/main", "model", "ns/name", "refs", "heads/main"},
        HfCase{"hf://ns/name@refs/prx/1", "model", "ns/name", "refs", "prx/1"},
        HfCase{"hf://Org-1/Model.v2_x", "model", "Org-1/Model.v2_x", "main", ""},
        HfCase{"hf://0ns/9name", "model", "0ns/9name", "main", ""},
        // As huggingface_hub 1.x writes and parses them.
        HfCase{"hf://models/NS/NAME", "model", "NS/NAME", "main", ""},
        HfCase{"hf://models/ns/name@v1/sub", "model", "ns/name", "v1", "sub"},
        HfCase{"hf://ns/name@refs/convert/parquet-v2", "model", "ns/name", "refs/convert/parquet-v2", ""},
        HfCase{"hf://datasets/ns/name@refs/convert/duckdb.v1/x", "dataset", "ns/name", "refs/convert/duckdb.v1",
               "x"},
        HfCase{"hf://_ns/name_", "model", "_ns/name_", "main", ""},
        // "dataset/NAME": a user called "dataset", not a typo.
        HfCase{"hf://dataset/name", "model", "dataset/name", "main", ""},
        HfCase{kLongNameRoot, "model", kLongRepoId, "main", ""}));

TEST(ParseRoot, HfRootDropsTrailingSlash) {
  EXPECT_EQ(parse_root("hf://ns/name/sub/").root, "hf://ns/name/sub");
  EXPECT_EQ(parse_root("hf://ns/name@v1//").root, "hf://ns/name@v1");
}

TEST(ParseRoot, HfSingleSegmentMessageShowsAcceptedForms) {
  const Error error = root_error("hf://gpt2");
  EXPECT_EQ(error.code(), Errc::invalid_uri);
  const std::string_view message = error.what();
  EXPECT_TRUE(contains(message, "invalid package root \"hf://gpt2\"")) << message;
  EXPECT_TRUE(contains(message, kHfForm)) << message;
  EXPECT_EQ(error.uri(), "hf://gpt2");
}

const std::string kTooLongName = "hf://ns/" + std::string(97, 'a');

INSTANTIATE_TEST_SUITE_P(
    Hf, ParseRootRejects,
    testing::Values(
        BadRoot{"hf://gpt2", "single-segment"}, BadRoot{"hf://", "single-segment"},
        BadRoot{"hf://ns/", "single-segment"}, BadRoot{"hf://gpt2@main", "single-segment"},
        BadRoot{"hf://datasets/ns", "single-segment"},
        BadRoot{"hf://spaces/ns", "single-segment"}, BadRoot{"hf://datasets", "single-segment"},
        BadRoot{"hf://ns@main/name", "namespace"}, BadRoot{"hf:///name", "namespace"},
        BadRoot{"hf://ns//name", "repository name"}, BadRoot{"hf://-ns/name", "namespace"},
        BadRoot{"hf://ns/.name", "repository name"},
        BadRoot{"hf://ns/na me", "repository name"},
        BadRoot{"hf://ns/na!me", "repository name"}, BadRoot{"hf://ns/a--b", "'--'"},
        BadRoot{"hf://ns/a..b", "'..'"}, BadRoot{"hf://n%41s/name", "namespace"},
        BadRoot{kTooLongName, "1-96"}, BadRoot{"hf://ns/name@", "empty revision"},
        BadRoot{"hf://ns/name@/sub", "empty revision"},
        BadRoot{"hf://ns/name@refs/pr/", "pull-request number"},
        BadRoot{"hf://ns/name@refs/pr", "pull-request number"},
        BadRoot{"hf://ns/name@refs/pr//x", "pull-request number"},
        BadRoot{"hf://ns/name@refs/pr/x", "pull-request number"},
        BadRoot{"hf://ns/name@refs/pr/1x", "pull-request number"},
        BadRoot{"hf://ns/name@refs/convert/", "refs/convert/"},
        BadRoot{"hf://ns/name@refs/convert", "refs/convert/"},
        BadRoot{"hf://ns/name@refs/convert/a+b", "refs/convert/"},
        BadRoot{"hf://models/gpt2", "single-segment"},
        BadRoot{"hf://dataset/foo/bar", "type prefix must be plural"},
        BadRoot{"hf://model/ns/name", "type prefix must be plural"},
        BadRoot{"hf://space/ns/name@v1", "type prefix must be plural"},
        BadRoot{"hf://ns/name.", "repository name"}, BadRoot{"hf://ns/name-", "repository name"},
        BadRoot{"hf://ns./name", "namespace"},
        BadRoot{"hf://ns/name.git", ".git"}, BadRoot{"hf://ns/name.git@v1", ".git"},
        BadRoot{"hf://ns/name@bad%G1", "percent-escape"},
        BadRoot{"hf://ns/name@bad%4", "percent-escape"},
        BadRoot{"hf://ns/name@%2e%2e", "'..'"}, BadRoot{"hf://ns/name@%2E", "'.'"},
        BadRoot{"hf://ns/name@a%2F..%2Fb", "'..'"},
        BadRoot{"hf://ns/name@a%2F%2Fb", "empty"},
        BadRoot{"hf://ns/name@a%2F%5C..%5Cb", "'..'"}, BadRoot{"hf://ns/name@%252e%252e", "'..'"},
        BadRoot{"hf://ns/name@%00", "control character"},
        BadRoot{"hf://ns/name/../x", "'..'"}, BadRoot{"hf://ns/name/./x", "'.'"},
        BadRoot{"hf://ns/name/a/..", "'..'"}, BadRoot{"hf://ns/name/a//b", "empty segment"},
        BadRoot{"hf://ns/name//a", "empty segment"},
        BadRoot{"hf://ns/name/%2e%2e/x", "'..'"},
        BadRoot{"hf://ns/name@v1/%2E%2e", "'..'"},
        BadRoot{"hf://ns/name@v1/%252e%252e/x", "'..'"}));

// ---------------------------------------------------------------- ngc://

struct NgcCase {
  std::string_view root;
  std::string_view org;
  std::string_view team;
  std::string_view name;
  std::string_view version;
  std::string_view subfolder;
  friend std::ostream& operator<<(std::ostream& out, const NgcCase& c) {
    return out << '"' << c.root << '"';
  }
};

class ParseRootNgc : public testing::TestWithParam<NgcCase> {};

TEST_P(ParseRootNgc, Fields) {
  const NgcCase& c = GetParam();
  const Location location = parse_root(c.root);
  EXPECT_EQ(location.scheme, Scheme::ngc);
  EXPECT_EQ(location.ngc.org, c.org);
  EXPECT_EQ(location.ngc.team, c.team);
  EXPECT_EQ(location.ngc.name, c.name);
  EXPECT_EQ(location.ngc.version, c.version);
  EXPECT_EQ(location.ngc.subfolder, c.subfolder);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ParseRootNgc,
    testing::Values(
        NgcCase{"ngc://models/nvidia/modulus/sfno_73ch_small@0.1.0", "nvidia", "modulus",
                "sfno_73ch_small", "0.1.0", ""},
        NgcCase{"ngc://models/nvidia/modulus/modulus_fcn@v0.2", "nvidia", "modulus",
                "modulus_fcn", "v0.2", ""},
        // Earth2Studio's test_ngc_filesystem cases.
        NgcCase{"ngc://models/org/model_name@1.0", "org", "", "model_name", "1.0", ""},
        NgcCase{"ngc://models/org/team/model_name@1.0/", "org", "team", "model_name", "1.0", ""},
        NgcCase{"ngc://models/model_name@1.0/file", "", "", "model_name", "1.0", "file"},
        NgcCase{"ngc://models/no-org/no-team/name@1.0", "", "", "name", "1.0", ""},
        NgcCase{"ngc://models/no-org/name@1.0", "", "", "name", "1.0", ""},
        NgcCase{"ngc://models/org/no-team/name@1", "org", "", "name", "1", ""},
        NgcCase{"ngc://models/nvidia/earth2/test@v0.1/a/b/", "nvidia", "earth2", "test", "v0.1",
                "a/b"},
        NgcCase{"ngc://models/org/name@1.0//", "org", "", "name", "1.0", ""},
        NgcCase{"ngc://models/org/name@1.0-rc_1/x", "org", "", "name", "1.0-rc_1", "x"},
        NgcCase{"ngc://models/org/name@.1", "org", "", "name", ".1", ""},
        NgcCase{"ngc://models/org/name@1/dir@2", "org", "", "name", "1", "dir@2"}));

TEST(ParseRoot, NgcRootDropsTrailingSlash) {
  EXPECT_EQ(parse_root("ngc://models/org/team/model_name@1.0/").root,
            "ngc://models/org/team/model_name@1.0");
}

INSTANTIATE_TEST_SUITE_P(
    Ngc, ParseRootRejects,
    testing::Values(
        BadRoot{"ngc://models/a/b/c/d@1.0/file", "at most ORG/TEAM/NAME"},
        BadRoot{"ngc://models/a/b/c/d", "missing @VERSION"},
        BadRoot{"ngc://models/org/name", "missing @VERSION"},
        BadRoot{"ngc://models/org/team/name/", "missing @VERSION"},
        BadRoot{"ngc://models/org/name@", "version"},
        BadRoot{"ngc://models/org/name@/x", "version"},
        BadRoot{"ngc://models/org/name@-1", "version"},
        BadRoot{"ngc://models/org/name@1+2", "version"},
        BadRoot{"ngc://models/org/name@..", "version"},
        BadRoot{"ngc://models/org/name@1%2E0", "version"},
        BadRoot{"ngc://models/@1", "org, team or model name"},
        BadRoot{"ngc://models/org//name@1", "org, team or model name"},
        BadRoot{"ngc://models/or.g/name@1", "org, team or model name"},
        BadRoot{"ngc://models/or g/name@1", "org, team or model name"},
        BadRoot{"ngc://models/no-org/team/name@1", "team needs an org"},
        BadRoot{"ngc://models", "missing the model"},
        BadRoot{"ngc://models/", "missing the model"},
        BadRoot{"ngc://resources/org/name@1", "only NGC models"},
        BadRoot{"ngc://org/name@1", "only NGC models"},
        BadRoot{"ngc://Models/org/name@1", "only NGC models"},
        BadRoot{"ngc://models/org/name@1/../x", "'..'"},
        BadRoot{"ngc://models/org/name@1/a//b", "empty segment"},
        BadRoot{"ngc://models/org/name@1/%2e%2e", "'..'"}));

// ---------------------------------------------------------------- s3:// gs://

struct BucketCase {
  std::string_view root;
  Scheme scheme;
  std::string_view bucket;
  std::string_view prefix;
  std::string_view expected_root;
  friend std::ostream& operator<<(std::ostream& out, const BucketCase& c) {
    return out << '"' << c.root << '"';
  }
};

class ParseRootBucket : public testing::TestWithParam<BucketCase> {};

TEST_P(ParseRootBucket, Fields) {
  const BucketCase& c = GetParam();
  const Location location = parse_root(c.root);
  EXPECT_EQ(location.scheme, c.scheme);
  EXPECT_EQ(location.bucket.bucket, c.bucket);
  EXPECT_EQ(location.bucket.prefix, c.prefix);
  EXPECT_EQ(location.root, c.expected_root);
}

const std::string kS3MaxBucket(63, 'b');
const std::string kS3Max = "s3://" + kS3MaxBucket;
const std::string kGsDottedBucket = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                                    std::string(63, 'c') + "." +
                                    std::string(30, 'd');  // 222 characters
const std::string kGsDotted = "gs://" + kGsDottedBucket;

INSTANTIATE_TEST_SUITE_P(
    Table, ParseRootBucket,
    testing::Values(
        BucketCase{"s3://noaa-swpc-pds", Scheme::s3, "noaa-swpc-pds", "", "s3://noaa-swpc-pds"},
        BucketCase{"gs://dm_graphcast/gencast", Scheme::gs, "dm_graphcast", "gencast",
                   "gs://dm_graphcast/gencast"},
        BucketCase{"s3://my.bucket-1/a/b/", Scheme::s3, "my.bucket-1", "a/b",
                   "s3://my.bucket-1/a/b"},
        BucketCase{"s3://abc/", Scheme::s3, "abc", "", "s3://abc"},
        BucketCase{"gs://a.b.c/x y/z%20", Scheme::gs, "a.b.c", "x y/z%20", "gs://a.b.c/x y/z%20"},
        BucketCase{"gs://9-_a/x", Scheme::gs, "9-_a", "x", "gs://9-_a/x"},
        // fsspec's alias: the same location, so the same cache.
        BucketCase{"gcs://dm_graphcast/gencast/", Scheme::gs, "dm_graphcast", "gencast",
                   "gs://dm_graphcast/gencast"},
        BucketCase{"GCS://abc", Scheme::gs, "abc", "", "gs://abc"},
        BucketCase{kS3Max, Scheme::s3, kS3MaxBucket, "", kS3Max},
        BucketCase{kGsDotted, Scheme::gs, kGsDottedBucket, "", kGsDotted}));

const std::string kS3TooLong = "s3://" + std::string(64, 'b');
const std::string kGsTooLong = "gs://" + std::string(64, 'b');
const std::string kGsLongLabel = "gs://a." + std::string(64, 'b');
const std::string kGsDottedTooLong = kGsDotted + "d";

INSTANTIATE_TEST_SUITE_P(
    Bucket, ParseRootRejects,
    testing::Values(
        BadRoot{"s3://", "missing bucket"}, BadRoot{"s3:///x", "missing bucket"},
        BadRoot{"gs://", "missing bucket"}, BadRoot{"s3://ab", "3-63"},
        BadRoot{kS3TooLong, "3-63"}, BadRoot{"s3://Upper", "lowercase"},
        BadRoot{"s3://under_score", "lowercase"}, BadRoot{"s3://-abc", "start and end"},
        BadRoot{"s3://abc-", "start and end"}, BadRoot{"s3://a..b", "'..'"},
        BadRoot{"s3://192.168.1.1", "IP address"}, BadRoot{"s3://my bucket", "lowercase"},
        BadRoot{"gs://Upper", "lowercase"}, BadRoot{"gs://_abc", "start and end"},
        BadRoot{"gs://ab", "3-63"}, BadRoot{kGsTooLong, "3-63"},
        BadRoot{kGsLongLabel, "longer than 63"}, BadRoot{kGsDottedTooLong, "222"},
        BadRoot{"s3://bucket/a/../b", "'..'"}, BadRoot{"s3://bucket//a", "empty segment"},
        BadRoot{"s3://bucket/./a", "'.'"}, BadRoot{"s3://bucket/a//b", "empty segment"},
        BadRoot{"gs://bucket/%2E%2E/x", "'..'"}, BadRoot{"gs://bucket/a/..", "'..'"}));

// ---------------------------------------------------------------- file paths

struct PathCase {
  std::string_view path;
  std::string_view normal;
  friend std::ostream& operator<<(std::ostream& out, const PathCase& c) {
    return out << '"' << c.path << '"';
  }
};

class ValidateFilePathAccepts : public testing::TestWithParam<PathCase> {};

TEST_P(ValidateFilePathAccepts, Normalised) {
  EXPECT_EQ(validate_file_path(GetParam().path, "hf://ns/name"), GetParam().normal);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ValidateFilePathAccepts,
    testing::Values(PathCase{"a", "a"}, PathCase{"a/b/c", "a/b/c"}, PathCase{"a//b", "a/b"},
                    PathCase{"./a/./b/", "a/b"}, PathCase{"a/b/", "a/b"},
                    PathCase{"a///b//c//", "a/b/c"},
                    PathCase{"sfno_73ch_small/metadata.json", "sfno_73ch_small/metadata.json"},
                    PathCase{"a/.../b", "a/.../b"}, PathCase{"..a/b..", "..a/b.."},
                    PathCase{".hidden", ".hidden"}, PathCase{"a/%41", "a/%41"},
                    PathCase{"50%/x%", "50%/x%"}, PathCase{"a/C:", "a/C:"},
                    PathCase{"1:x", "1:x"}, PathCase{"caf\xc3\xa9.bin", "caf\xc3\xa9.bin"},
                    PathCase{"a b/c+d", "a b/c+d"}));

struct BadPath {
  std::string_view path;
  std::string_view says;
  friend std::ostream& operator<<(std::ostream& out, const BadPath& bad) {
    return out << '"' << bad.path << '"';
  }
};

class ValidateFilePathRejects : public testing::TestWithParam<BadPath> {};

TEST_P(ValidateFilePathRejects, WithInvalidUri) {
  constexpr std::string_view kRoot = "ngc://models/org/name@1.0";
  const Error error = file_path_error(GetParam().path, kRoot);
  EXPECT_EQ(error.code(), Errc::invalid_uri);
  const std::string_view message = error.what();
  EXPECT_TRUE(contains(message, kLeaveRoot)) << message;
  EXPECT_TRUE(contains(message, "\"" + std::string(kRoot) + "\"")) << message;
  EXPECT_TRUE(contains(message, GetParam().says)) << message;
  EXPECT_FALSE(contains(message, "\n")) << message;
  EXPECT_EQ(error.uri(), kRoot);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ValidateFilePathRejects,
    testing::Values(
        BadPath{"", "empty"}, BadPath{".", "empty"}, BadPath{"./", "empty"},
        BadPath{"//", "absolute"}, BadPath{"././/.", "empty"}, BadPath{"/", "absolute"},
        BadPath{"/etc/passwd", "absolute"}, BadPath{"..", "'..'"}, BadPath{"../x", "'..'"},
        BadPath{"a/../b", "'..'"}, BadPath{"a/..", "'..'"}, BadPath{"a/b/../../..", "'..'"},
        BadPath{"%2e%2e/x", "percent-encoded"}, BadPath{"%2E%2e/x", "percent-encoded"},
        BadPath{"a/%2e%2E", "percent-encoded"}, BadPath{"a/.%2e/b", "percent-encoded"},
        BadPath{"%2e/x", "percent-encoded"}, BadPath{"%252e%252e/x", "percent-encoded"},
        BadPath{"..%2fx", "percent-encoded"}, BadPath{"a/%2e%2e%2fb", "percent-encoded"},
        BadPath{"x%2f..%2f..%2fetc", "percent-encoded"},
        BadPath{"%2e%2e%5cx", "percent-encoded"}, BadPath{"a\\b", "backslash"},
        BadPath{"..\\x", "backslash"}, BadPath{"a\0b"sv, "NUL"},
        BadPath{"a\nb", "control character"}, BadPath{"a\rb", "control character"},
        BadPath{"a\x01" "b", "control character"}, BadPath{"a\x7f", "control character"},
        BadPath{"C:/x", "Windows drive"}, BadPath{"c:x", "Windows drive"},
        BadPath{"C:", "Windows drive"}, BadPath{"./C:/x", "Windows drive"},
        BadPath{"%2e%2e%2f%zz", "percent-encoded"},
        BadPath{"%252e%252e%252fx%x", "percent-encoded"}));

TEST(ValidateFilePath, MessageNamesPathAndRoot) {
  const Error error = file_path_error("../secrets.txt", "hf://ns/name@v1");
  EXPECT_EQ(error.code(), Errc::invalid_uri);
  EXPECT_EQ(std::string_view(error.what()),
            "invalid file path \"../secrets.txt\" in package root \"hf://ns/name@v1\": the path "
            "has a '..' segment; file paths are relative to the package root and may not leave "
            "it");
}

// A file path names a file on disk and a field of the cache's JSON records.
TEST(ValidateFilePath, NamesMustBeUtf8AndFitAFilesystem) {
  EXPECT_TRUE(contains(file_path_error("w\xff.bin", "hf://ns/name").what(), "not valid UTF-8"));
  EXPECT_TRUE(contains(file_path_error("a/\xc0\xaf", "hf://ns/name").what(), "not valid UTF-8"))
      << "an overlong '/' is no UTF-8";
  EXPECT_TRUE(contains(file_path_error("a/" + std::string(256, 'n'), "hf://ns/name").what(), "256 bytes"));
  EXPECT_EQ(validate_file_path("a/" + std::string(255, 'n'), "hf://ns/name"), "a/" + std::string(255, 'n'));
  EXPECT_EQ(validate_file_path("caf\xc3\xa9/\xe2\x82\xac.bin", "hf://ns/name"), "caf\xc3\xa9/\xe2\x82\xac.bin");
}

TEST(ParseRoot, RemoteRootsMustBeUtf8LocalFoldersNeedNot) {
  EXPECT_TRUE(contains(root_error("https://example.org/m\xff").what(), "not valid UTF-8"));
  EXPECT_TRUE(contains(root_error("hf://ns/n\xe9").what(), "UTF-8"));
  EXPECT_NO_THROW(parse_root("/data/mod\xe8les"));
}

TEST(ValidateFilePath, ControlCharactersEscapedInMessage) {
  const Error error = file_path_error("a\nb", "/tmp/pkg");
  EXPECT_TRUE(contains(error.what(), "\"a\\x0Ab\"")) << error.what();
}

// ---------------------------------------------------------------- percent coding

TEST(PercentEncoding, UnreservedKept) {
  const std::string unreserved =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
  EXPECT_EQ(percent_encode(unreserved, false), unreserved);
  EXPECT_EQ(percent_encode(unreserved, true), unreserved);
  EXPECT_EQ(percent_encode("", false), "");
}

TEST(PercentEncoding, SlashKeptOnlyWhenAsked) {
  EXPECT_EQ(percent_encode("refs/pr/1", false), "refs%2Fpr%2F1");
  EXPECT_EQ(percent_encode("refs/pr/1", true), "refs/pr/1");
}

TEST(PercentEncoding, OtherBytesUppercaseHex) {
  EXPECT_EQ(percent_encode("a b", true), "a%20b");
  EXPECT_EQ(percent_encode("%", true), "%25");
  EXPECT_EQ(percent_encode("+&=?#:@!", true), "%2B%26%3D%3F%23%3A%40%21");
  EXPECT_EQ(percent_encode("caf\xc3\xa9", true), "caf%C3%A9");
  EXPECT_EQ(percent_encode("\xff\x7f", true), "%FF%7F");
  EXPECT_EQ(percent_encode("\\", true), "%5C");
  EXPECT_EQ(percent_encode("a\0b"sv, true), "a%00b");
}

TEST(PercentEncoding, Decodes) {
  EXPECT_EQ(percent_decode("refs%2Fpr%2F1"), "refs/pr/1");
  EXPECT_EQ(percent_decode("refs%2fpr%2f1"), "refs/pr/1");
  EXPECT_EQ(percent_decode("caf%C3%A9"), "caf\xc3\xa9");
  EXPECT_EQ(percent_decode("a+b"), "a+b");
  EXPECT_EQ(percent_decode("%2525"), "%25");
  EXPECT_EQ(percent_decode("%00"), std::string("\0", 1));
  EXPECT_EQ(percent_decode("plain"), "plain");
  EXPECT_EQ(percent_decode(""), "");
}

TEST(PercentEncoding, RoundTripsEveryByte) {
  std::string all;
  for (int byte = 0; byte < 256; ++byte) all += static_cast<char>(byte);
  EXPECT_EQ(percent_decode(percent_encode(all, false)), all);
  EXPECT_EQ(percent_decode(percent_encode(all, true)), all);
}

TEST(PercentEncoding, MalformedEscapesRejected) {
  for (std::string_view text :
       {"%"sv, "%G1"sv, "%4"sv, "abc%"sv, "%%41"sv, "%4G"sv, "a%2"sv, "%-1"sv}) {
    try {
      const std::string decoded = percent_decode(text);
      ADD_FAILURE() << "percent_decode accepted \"" << text << "\" as \"" << decoded << "\"";
    } catch (const Error& error) {
      EXPECT_EQ(error.code(), Errc::invalid_uri) << text;
      EXPECT_TRUE(contains(error.what(), "\"" + std::string(text) + "\"")) << error.what();
    }
  }
}

}  // namespace
}  // namespace e2s::detail
