// The `e2s` command's contract: output, exit statuses, error lines.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "support/cli_runner.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"
#include "support/tls.hpp"

namespace {

namespace fs = std::filesystem;
using e2s::test::TempDir;
using e2s::test::TestServer;

using e2s::test::CliRun;
using e2s::test::run_e2s;

// A loopback port that was free a moment ago (bound, then released).
int unused_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

class CliTest : public ::testing::Test {
 protected:
  CliTest() : server_("http_server.py", {"--root", served_.path().string()}) {
    served_.write_file("pkg/a.txt", "alpha\n");
    served_.write_file("pkg/sub/b.bin", std::string(100000, 'b'));
  }
  std::map<std::string, std::string> env() const {
    return {{"EARTH2STUDIO_CACHE", cache_.path().string()}};
  }
  TempDir served_;
  TempDir cache_;
  TestServer server_;
};

TEST_F(CliTest, ResolvePrintsOneAbsolutePathPerFileInOrder) {
  CliRun run = run_e2s({"resolve", server_.url("/pkg"), "sub/b.bin", "a.txt"}, env());
  ASSERT_EQ(run.status, 0) << run.err;
  const auto newline = run.out.find('\n');
  const fs::path first = run.out.substr(0, newline);
  const fs::path second = run.out.substr(newline + 1, run.out.size() - newline - 2);
  EXPECT_TRUE(first.is_absolute());
  EXPECT_EQ(first.filename(), "b.bin");
  EXPECT_EQ(first.parent_path().filename(), "sub");
  EXPECT_EQ(second.filename(), "a.txt");
  EXPECT_EQ(TempDir::read_file(second), "alpha\n");
  EXPECT_EQ(run.out.back(), '\n');
  EXPECT_TRUE(run.err.empty()) << "no progress bar without a terminal: " << run.err;
  EXPECT_EQ(first.string().rfind(cache_.path().string(), 0), 0u);
}

TEST_F(CliTest, SecondResolveMakesNoRequest) {
  ASSERT_EQ(run_e2s({"resolve", server_.url("/pkg"), "a.txt"}, env()).status, 0);
  const auto before = server_.stats()["requests"].size();
  CliRun again = run_e2s({"resolve", server_.url("/pkg"), "a.txt"}, env());
  EXPECT_EQ(again.status, 0);
  EXPECT_EQ(server_.stats()["requests"].size(), before);
}

TEST_F(CliTest, CacheDirOverridesTheEnvironment) {
  TempDir other;
  CliRun run = run_e2s({"--cache-dir", other.path().string(), "resolve", server_.url("/pkg"), "a.txt"}, env());
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out.rfind(other.path().string(), 0), 0u) << run.out;
  // Also accepted after the subcommand.
  CliRun after = run_e2s({"resolve", "--cache-dir", other.path().string(), server_.url("/pkg"), "a.txt"}, env());
  EXPECT_EQ(after.status, 0) << after.err;
  EXPECT_EQ(after.out, run.out);
}

TEST_F(CliTest, CatWritesTheBytes) {
  CliRun run = run_e2s({"cat", server_.url("/pkg"), "a.txt"}, env());
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, "alpha\n");
}

TEST_F(CliTest, NotFoundExitsThreeWithOneErrorLine) {
  CliRun run = run_e2s({"resolve", server_.url("/pkg"), "missing.bin"}, env());
  EXPECT_EQ(run.status, 3);
  EXPECT_EQ(run.err.rfind("e2s: error: ", 0), 0u) << run.err;
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
  EXPECT_NE(run.err.find(server_.url("/pkg/missing.bin")), std::string::npos) << run.err;
  EXPECT_TRUE(run.out.empty());
}

TEST_F(CliTest, ForbiddenExitsFour) {
  server_.fault({{"path", "/pkg/a.txt"}, {"kind", "status"}, {"status", 403}, {"times", 10}});
  EXPECT_EQ(run_e2s({"resolve", server_.url("/pkg"), "a.txt"}, env()).status, 4);
}

TEST_F(CliTest, InvalidRootOrPathExitsTwo) {
  EXPECT_EQ(run_e2s({"resolve", "hf://single", "x"}, env()).status, 2);
  EXPECT_EQ(run_e2s({"resolve", server_.url("/pkg"), "../x"}, env()).status, 2);
  EXPECT_EQ(run_e2s({"resolve", "ftp://host/x", "x"}, env()).status, 2);
}

TEST_F(CliTest, UsageErrorsExitTwo) {
  EXPECT_EQ(run_e2s({}).status, 2);
  EXPECT_EQ(run_e2s({"resolve"}).status, 2);
  EXPECT_EQ(run_e2s({"--no-such-flag", "resolve", "a", "b"}).status, 2);
  CliRun run = run_e2s({"frobnicate"});
  EXPECT_EQ(run.status, 2);
  EXPECT_EQ(run.err.rfind("e2s: error: ", 0), 0u) << run.err;
}


TEST_F(CliTest, UnreachableServerExitsFive) {
  // A port nobody listens on: connection refused on every retry.
  const std::string root = "http://127.0.0.1:" + std::to_string(unused_port()) + "/pkg";
  CliRun run = run_e2s({"--timeout", "1", "resolve", root, "a.txt"}, env());
  EXPECT_EQ(run.status, 5) << run.err;
}

TEST_F(CliTest, LsPrintsSizeTabPathSorted) {
  CliRun run = run_e2s({"ls", (served_.path() / "pkg").string()}, env());
  EXPECT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, "6\ta.txt\n100000\tsub/b.bin\n");
}

TEST_F(CliTest, HelpAndVersion) {
  CliRun help = run_e2s({"--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("resolve"), std::string::npos);
  EXPECT_NE(help.out.find("Exit status"), std::string::npos);
  CliRun version = run_e2s({"--version"});
  EXPECT_EQ(version.status, 0);
  EXPECT_EQ(version.out.rfind("e2s ", 0), 0u) << version.out;
}

// An https:// server with a self-signed certificate, as at a site with its own CA.
class CliTlsTest : public ::testing::Test {
 protected:
  CliTlsTest()
      : cert_(certs_.path()),
        server_("http_server.py", [this] {
          std::vector<std::string> args = {"--root", served_.path().string()};
          for (auto& a : cert_.server_args()) args.push_back(a);
          return args;
        }()) {
    served_.write_file("pkg/a.txt", "alpha\n");
  }
  // Empty values count as unset, so the caller's own CA settings stay out.
  std::map<std::string, std::string> env(const std::string& curl_ca_bundle = "") const {
    return {{"EARTH2STUDIO_CACHE", cache_.path().string()},
            {"CURL_CA_BUNDLE", curl_ca_bundle},
            {"SSL_CERT_FILE", ""}};
  }
  TempDir served_;
  TempDir cache_;
  TempDir certs_;
  e2s::test::SelfSignedCertificate cert_;
  TestServer server_;
};

TEST_F(CliTlsTest, UntrustedCertificateExitsFiveWithOneErrorLine) {
  const std::string root = e2s::test::https_url(server_, "/pkg");
  CliRun run = run_e2s({"resolve", root, "a.txt"}, env());
  EXPECT_EQ(run.status, 5) << run.err;
  EXPECT_EQ(run.err.rfind("e2s: error: ", 0), 0u) << run.err;
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
  EXPECT_NE(run.err.find(root + "/a.txt"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("CURL_CA_BUNDLE"), std::string::npos) << run.err;
  EXPECT_TRUE(run.out.empty()) << run.out;
}

TEST_F(CliTlsTest, CurlCaBundleMakesTheSiteTrusted) {
  CliRun run = run_e2s({"resolve", e2s::test::https_url(server_, "/pkg"), "a.txt"},
                       env(cert_.cert().string()));
  ASSERT_EQ(run.status, 0) << run.err;
  const fs::path path = run.out.substr(0, run.out.find('\n'));
  EXPECT_EQ(TempDir::read_file(path), "alpha\n");
  EXPECT_EQ(path.string().rfind(cache_.path().string(), 0), 0u) << path;
}

TEST_F(CliTlsTest, MissingCaBundleIsNamed) {
  const std::string missing = (certs_.path() / "no-such-bundle.pem").string();
  CliRun run = run_e2s({"resolve", e2s::test::https_url(server_, "/pkg"), "a.txt"}, env(missing));
  EXPECT_EQ(run.status, 5) << run.err;
  EXPECT_EQ(std::count(run.err.begin(), run.err.end(), '\n'), 1) << run.err;
  EXPECT_NE(run.err.find(missing), std::string::npos) << run.err;
}

}  // namespace

// ---- paths and messages ----------------------------------------------------------------

// resolve promises absolute paths, also from a relative --cache-dir or variable.
TEST_F(CliTest, ARelativeCacheDirStillGivesAbsolutePaths) {
  e2s::test::CliOptions options;
  options.program = "/bin/sh";
  for (const std::vector<std::string>& how :
       {std::vector<std::string>{"--cache-dir", "rel-cache"}, std::vector<std::string>{}}) {
    // Run from the temp folder, with the cache named relative to it.
    std::string command = "cd \"$1\" && EARTH2STUDIO_MODEL_CACHE=rel-var \"$2\"";
    for (const std::string& arg : how) command += " " + arg;
    command += " resolve \"$3\" a.txt";
    const CliRun run = e2s::test::CliProcess({"-c", command, "sh", cache_.path().string(), e2s::test::cli_path(),
                                              server_.url("/pkg")},
                                             options)
                           .wait();
    ASSERT_EQ(run.status, 0) << run.err;
    const fs::path printed = run.out.substr(0, run.out.find('\n'));
    EXPECT_TRUE(printed.is_absolute()) << printed;
    EXPECT_EQ(printed.string().rfind((cache_.path() / (how.empty() ? "rel-var" : "rel-cache")).string(), 0), 0u)
        << printed;
    EXPECT_EQ(TempDir::read_file(printed), "alpha\n");
  }
}

// The same FILE twice is one resolve: the same path twice, and no talk of
// threads waiting for each other.
TEST_F(CliTest, TheSameFileTwiceGivesTheSamePathTwiceQuietly) {
  const CliRun run = run_e2s({"resolve", server_.url("/pkg"), "sub/b.bin", "sub/b.bin", "a.txt", "sub/b.bin"}, env());
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_TRUE(run.err.empty()) << run.err;
  const std::vector<std::string> paths = [&] {
    std::vector<std::string> lines;
    for (std::size_t at = 0, next; (next = run.out.find('\n', at)) != std::string::npos; at = next + 1) {
      lines.push_back(run.out.substr(at, next - at));
    }
    return lines;
  }();
  ASSERT_EQ(paths.size(), 4u) << run.out;
  EXPECT_EQ(paths[0], paths[1]);
  EXPECT_EQ(paths[0], paths[3]);
  EXPECT_EQ(server_.count("GET", "/pkg/sub/b.bin"), 1u);
}

// A status HTTP does not have is a protocol error, said so, and not retried.
TEST_F(CliTest, AStatusOutsideHttpIsAProtocolErrorNotRetried) {
  server_.fault({{"path", "/pkg/a.txt"}, {"kind", "status"}, {"status", 999}, {"times", -1}});
  const CliRun run = run_e2s({"resolve", server_.url("/pkg"), "a.txt"}, env());
  EXPECT_EQ(run.status, 1) << run.err;
  EXPECT_NE(run.err.find("protocol error"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("999"), std::string::npos) << run.err;
  EXPECT_EQ(run.err.find("try again later"), std::string::npos) << run.err;
  EXPECT_EQ(server_.count("GET", "/pkg/a.txt"), 1u) << "not retried";
}

TEST_F(CliTest, AnOversizedHeaderIsNamedAsSuch) {
  server_.fault({{"path", "/pkg/a.txt"}, {"kind", "serve"}, {"headers", {{"X-Huge", std::string(10 << 20, 'h')}}},
                 {"times", -1}});
  const CliRun run = run_e2s({"resolve", server_.url("/pkg"), "a.txt"}, env());
  EXPECT_EQ(run.status, 1) << run.err;
  EXPECT_NE(run.err.find("oversized header"), std::string::npos) << run.err;
  EXPECT_EQ(run.err.find("Out of memory"), std::string::npos) << run.err;
}

// A refusal by the host a redirect led to is that host's, and named so.
TEST_F(CliTest, ARefusalAfterARedirectNamesTheHostThatRefused) {
  TempDir other_files;
  other_files.write_file("x/a.txt", "alpha\n");
  TestServer other("http_server.py", {"--root", other_files.path().string()});
  other.fault({{"path", "/x/a.txt"}, {"kind", "status"}, {"status", 403}, {"times", -1}});
  server_.fault({{"path", "/pkg/a.txt"}, {"kind", "redirect"}, {"location", other.url("/x/a.txt")}, {"times", -1}});
  const CliRun run = run_e2s({"resolve", server_.url("/pkg"), "a.txt"}, env());
  EXPECT_EQ(run.status, 4) << run.err;
  EXPECT_NE(run.err.find("from http://127.0.0.1:" + std::to_string(other.port())), std::string::npos) << run.err;
}
