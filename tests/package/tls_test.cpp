// https:// roots: verification is on, and a site's own CA can be trusted
// through PackageOptions::ca_bundle, CURL_CA_BUNDLE or SSL_CERT_FILE.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <optional>
#include <string>
#include <vector>

#include "e2s/error.hpp"
#include "e2s/package.hpp"
#include "support/env_guard.hpp"
#include "support/fixtures.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"
#include "support/tls.hpp"

namespace {

namespace fs = std::filesystem;
using e2s::test::https_url;
using e2s::test::SelfSignedCertificate;
using e2s::test::TempDir;
using e2s::test::TestServer;

using e2s::test::ScopedEnv;

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

class TlsPackageTest : public ::testing::Test {
 protected:
  TlsPackageTest()
      : cert_(certs_.path()),
        server_("http_server.py", concat({"--root", served_.path().string()}, cert_.server_args())) {
    served_.write_file("pkg/config.json", R"({"layers": 4})");
  }

  e2s::PackageOptions options() const {
    e2s::PackageOptions o;
    o.cache_options.cache_storage = cache_.path() / "store";
    o.retry.initial_backoff = std::chrono::milliseconds(1);
    o.retry.max_backoff = std::chrono::milliseconds(20);
    return o;
  }

  std::string root() const { return https_url(server_, "/pkg"); }

  // Runs resolve("config.json") and returns the e2s::Error it must throw.
  e2s::Error resolve_error(const std::string& root, const e2s::PackageOptions& o) const {
    e2s::Package package(root, o);
    try {
      package.resolve("config.json");
    } catch (const e2s::Error& error) {
      return error;
    }
    ADD_FAILURE() << "resolve over " << root << " succeeded but should have failed";
    return e2s::Error(e2s::Errc::other, "no error", root);
  }

  // Every regular file under the cache folder, bookkeeping included.
  std::vector<fs::path> files_in_cache() const {
    std::vector<fs::path> files;
    if (!fs::exists(cache_.path())) return files;
    for (const auto& entry : fs::recursive_directory_iterator(cache_.path())) {
      if (entry.is_regular_file()) files.push_back(entry.path());
    }
    return files;
  }

  // Whatever the developer's shell says, the tests start from "system store".
  ScopedEnv no_curl_bundle_{"CURL_CA_BUNDLE", std::nullopt};
  ScopedEnv no_ssl_cert_file_{"SSL_CERT_FILE", std::nullopt};
  TempDir served_;
  TempDir cache_;
  TempDir certs_;
  SelfSignedCertificate cert_;
  TestServer server_;
};

TEST_F(TlsPackageTest, SelfSignedServerIsRejectedAndNothingIsCached) {
  const e2s::Error error = resolve_error(root(), options());
  EXPECT_EQ(error.code(), e2s::Errc::network) << error.what();
  const std::string message = error.what();
  EXPECT_NE(message.find("TLS"), std::string::npos) << message;
  EXPECT_NE(message.find("certificate"), std::string::npos) << message;
  EXPECT_NE(message.find("CURL_CA_BUNDLE"), std::string::npos) << message;
  EXPECT_NE(message.find("SSL_CERT_FILE"), std::string::npos) << message;
  EXPECT_NE(message.find(root() + "/config.json"), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  EXPECT_TRUE(files_in_cache().empty()) << files_in_cache().front();
}

TEST_F(TlsPackageTest, CaBundleOptionTrustsTheSitesCa) {
  e2s::PackageOptions o = options();
  o.ca_bundle = cert_.cert();
  e2s::Package package(root(), o);
  const fs::path path = package.resolve("config.json");
  EXPECT_EQ(path, e2s::test::data_file(cache_.path() / "store", "config.json"));
  EXPECT_EQ(TempDir::read_file(path), R"({"layers": 4})");
  // Cached for good: a package without the bundle is served from the cache.
  e2s::Package again(root(), options());
  EXPECT_EQ(again.resolve("config.json"), path);
}

TEST_F(TlsPackageTest, CurlCaBundleVariableTrustsTheSitesCa) {
  ScopedEnv bundle("CURL_CA_BUNDLE", cert_.cert().string());
  e2s::Package package(root(), options());
  EXPECT_EQ(package.options().ca_bundle, cert_.cert());
  EXPECT_EQ(TempDir::read_file(package.resolve("config.json")), R"({"layers": 4})");
}

TEST_F(TlsPackageTest, SslCertFileVariableTrustsTheSitesCa) {
  ScopedEnv file("SSL_CERT_FILE", cert_.cert().string());
  e2s::Package package(root(), options());
  EXPECT_EQ(package.options().ca_bundle, cert_.cert());
  EXPECT_EQ(TempDir::read_file(package.resolve("config.json")), R"({"layers": 4})");
}

TEST_F(TlsPackageTest, CurlCaBundleWinsOverSslCertFileAndTheOptionOverBoth) {
  ScopedEnv bundle("CURL_CA_BUNDLE", cert_.cert().string());
  ScopedEnv file("SSL_CERT_FILE", (certs_.path() / "other.pem").string());
  e2s::Package package(root(), options());
  EXPECT_EQ(package.options().ca_bundle, cert_.cert());
  EXPECT_NO_THROW(package.resolve("config.json"));

  e2s::PackageOptions o = options();
  o.ca_bundle = certs_.path() / "option.pem";
  EXPECT_EQ(e2s::Package(root(), o).options().ca_bundle, certs_.path() / "option.pem");
}

TEST_F(TlsPackageTest, MissingCaBundleIsNamedInTheError) {
  e2s::PackageOptions o = options();
  o.ca_bundle = certs_.path() / "no-such-bundle.pem";
  const e2s::Error error = resolve_error(root(), o);
  EXPECT_EQ(error.code(), e2s::Errc::network) << error.what();
  const std::string message = error.what();
  EXPECT_NE(message.find("CA bundle " + o.ca_bundle->string()), std::string::npos) << message;
  EXPECT_NE(message.find("CURL_CA_BUNDLE"), std::string::npos) << message;
  EXPECT_NE(message.find("SSL_CERT_FILE"), std::string::npos) << message;
  EXPECT_TRUE(files_in_cache().empty()) << files_in_cache().front();
}

TEST_F(TlsPackageTest, BundleWithoutCertificatesIsNamedInTheError) {
  e2s::PackageOptions o = options();
  o.ca_bundle = certs_.write_file("empty.pem", "not a certificate\n");
  const e2s::Error error = resolve_error(root(), o);
  EXPECT_EQ(error.code(), e2s::Errc::network) << error.what();
  EXPECT_NE(std::string(error.what()).find(o.ca_bundle->string()), std::string::npos)
      << error.what();
}

TEST_F(TlsPackageTest, BundleOfAnotherCaIsRejected) {
  // The bundle replaces the trust anchors; it does not switch verification off.
  const SelfSignedCertificate other(certs_.path(), "other");
  e2s::PackageOptions o = options();
  o.ca_bundle = other.cert();
  const e2s::Error error = resolve_error(root(), o);
  EXPECT_EQ(error.code(), e2s::Errc::network) << error.what();
  EXPECT_NE(std::string(error.what()).find("certificate"), std::string::npos) << error.what();
  EXPECT_TRUE(files_in_cache().empty()) << files_in_cache().front();
}

TEST_F(TlsPackageTest, HostNameIsVerified) {
  // The certificate names 127.0.0.1 only; "localhost" reaches the same server.
  e2s::PackageOptions o = options();
  o.ca_bundle = cert_.cert();
  const std::string root = "https://localhost:" + std::to_string(server_.port()) + "/pkg";
  const e2s::Error error = resolve_error(root, o);
  EXPECT_EQ(error.code(), e2s::Errc::network) << error.what();
  EXPECT_NE(std::string(error.what()).find("subject name"), std::string::npos) << error.what();
}

}  // namespace
