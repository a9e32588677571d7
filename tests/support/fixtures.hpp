// Small helpers the store and CLI tests share: test data, text checks, the
// cache folder's contents and errors. Kept here so each test file holds only
// what is particular to its store.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "e2s/error.hpp"
#include "e2s/options.hpp"
#include "support/cli_runner.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"

namespace e2s::test {

// Deterministic bytes, different for each seed (so a mixed-up file shows).
std::string make_bytes(std::size_t size, unsigned seed);

bool contains(const std::string& text, const std::string& part);

// ASCII lowercase, for case-insensitive header and message checks.
std::string lower(std::string text);

// Lowercase hex of `size` raw bytes.
std::string hex(const unsigned char* data, unsigned size);

// Lowercase hex MD5 of `data` (what S3-like stores send as a simple ETag).
std::string md5_hex(const std::string& data);

// The lines of `text`, which must end with a newline (a test failure if not).
std::vector<std::string> lines(const std::string& text);

// One line "e2s: error: ..." on stderr, nothing on stdout.
void expect_one_error_line(const CliRun& run);

// The Error `action` throws; a test failure when it throws none.
e2s::Error error_of(const std::function<void()>& action);

// Every cached file under the cache folder `cache` (in .e2s/files/), and
// any other program's file there; not the cache's own bookkeeping.
std::vector<std::filesystem::path> cached_files(const std::filesystem::path& cache);

// Where the cache folder `storage` keeps `file_path` (same_names on):
// .e2s/files/<file path>.
std::filesystem::path data_file(const std::filesystem::path& storage, const std::string& file_path);
// The cache folder of the data file `data` of `file_path`: the inverse.
std::filesystem::path storage_of(const std::filesystem::path& data, const std::string& file_path);

// The metadata record (.e2s/meta/*.json) a cache storage folder keeps for
// `file_path`, or null when there is none.
nlohmann::json cached_meta(const std::filesystem::path& storage, const std::string& file_path);

// Every request a loopback server recorded, in order: the "requests" of a
// /_stats reply, or of `server`'s.
std::vector<nlohmann::json> recorded_requests(const nlohmann::json& stats);
std::vector<nlohmann::json> recorded_requests(const TestServer& server);
// Only those to `host`, for the fakes that serve several ("hub" and "cdn";
// "api", "auth" and "storage").
std::vector<nlohmann::json> recorded_requests(const TestServer& server, const std::string& host);

// Library options with the cache in `storage` and retries 1 ms apart (at
// most 20 ms), so that tests of failures and retries cost no waiting.
e2s::PackageOptions quick_retry_options(const std::filesystem::path& storage);

// A library test's cache folder, each root's storage in a sub-folder `sub` of
// it ("store" unless a test keeps several roots apart), for store fixtures to
// inherit.
class CacheFolder {
 protected:
  e2s::PackageOptions options(const std::string& sub = "store") const {
    return quick_retry_options(cache_.path() / sub);
  }

  // The cache's metadata record for `file_path` in storage folder `sub`.
  nlohmann::json meta(const std::string& file_path, const std::string& sub = "store") const {
    return cached_meta(cache_.path() / sub, file_path);
  }

  std::vector<std::filesystem::path> cached_files() const {
    return e2s::test::cached_files(cache_.path());
  }

  TempDir cache_;
};

// A plain GET of a fake's JSON route that TestServer does not wrap (/_info,
// a JSON API). Throws std::runtime_error when the transfer fails; the HTTP
// status is not checked.
nlohmann::json get_json(const std::string& url);

}  // namespace e2s::test
