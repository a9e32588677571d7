// The fault matrix: servers that reset, stall, fail with 5xx or 429, answer
// the wrong range, send more or fewer bytes than announced or bytes that do
// not match the announced hash. Each case runs through the library
// (e2s::Package) and the CLI (`e2s resolve`), in single-stream mode (a file
// under 8 MiB) and in parallel-part mode (9 MiB, 4 connections) where it
// applies. A case that succeeds must yield the source's bytes; a case that
// fails must commit nothing: no file at the final path, no metadata about
// it, and a good copy of another file cached before stays as it was.
//
// Stores: plain HTTP (http_server.py) for the transport faults; the fake GCS
// (X-Goog-Hash md5), the fake Hub's CDN (sha256 ETag) and moto S3 (MD5 ETag)
// for the integrity faults, since plain HTTP announces no hash, nor a size
// apart from the reply's own (so a "long" reply is only a fault on a store
// that announced the size first).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "e2s/error.hpp"
#include "e2s/package.hpp"
#include "safety/safety_env.hpp"
#include "support/cli_runner.hpp"
#include "support/fixtures.hpp"
#include "support/moto_server.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"

namespace {

namespace fs = std::filesystem;
using e2s::test::CliRun;
using e2s::test::contains;
using e2s::test::error_of;
using e2s::test::expect_one_error_line;
using e2s::test::lines;
using e2s::test::make_bytes;
using e2s::test::EnvGuard;
using e2s::test::safety::scrubbed;
using e2s::test::TempDir;
using e2s::test::TestServer;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

enum class Mode { single, parallel };

constexpr std::size_t kSmallSize = 300 * 1024;  // one stream
constexpr std::size_t kBigSize = 9u << 20;      // >= 8 MiB: parallel byte ranges
constexpr int kConnections = 4;
constexpr int kLibraryAttempts = 3;             // PackageOptions::retry here
constexpr int kCliAttempts = 5;                 // the CLI's default (it has no retry flag)
constexpr std::uint64_t kCutAfter = 100000;     // body bytes before a cut, short or stall
constexpr const char* kGood = "good bytes, cached before the fault\n";

const std::string& small_bytes() {
  static const std::string bytes = make_bytes(kSmallSize, 11);
  return bytes;
}

const std::string& big_bytes() {
  static const std::string bytes = make_bytes(kBigSize, 12);
  return bytes;
}

std::string mode_name(const ::testing::TestParamInfo<Mode>& info) {
  return info.param == Mode::single ? "single" : "parallel";
}

// Readable test names in ctest (found by ADL).
[[maybe_unused]] void PrintTo(Mode mode, std::ostream* out) {
  *out << (mode == Mode::single ? "single stream" : "parallel parts");
}

// First byte of a recorded request's "Range: bytes=a-[b]", nullopt without one.
std::optional<std::uint64_t> range_begin(const json& request) {
  if (!request.at("range").is_string()) return std::nullopt;
  const std::string range = request.at("range");
  if (range.rfind("bytes=", 0) != 0) return std::nullopt;
  return std::stoull(range.substr(6, range.find('-') - 6));
}

// A file cached before the fault, which a failing download must not touch.
struct GoodCopy {
  fs::path path;
  fs::file_time_type mtime;
  json meta;
};

// One package root on a loopback store, resolved through the library and
// the CLI. Subclasses start the store, point the environment at it and say
// how a fault is injected and which requests fetched the file's bytes.
class FaultTest : public ::testing::TestWithParam<Mode> {
 protected:
  FaultTest() { env_.set("HOME", home_.path().string()); }

  Mode mode() const { return GetParam(); }
  bool parallel() const { return mode() == Mode::parallel; }
  std::string file() const { return parallel() ? "big.bin" : "small.bin"; }
  const std::string& bytes() const { return parallel() ? big_bytes() : small_bytes(); }
  std::string uri() const { return root() + "/" + file(); }

  virtual std::string root() const = 0;
  // Forget the store's request log and faults.
  virtual void reset() = 0;
  // Inject `fault` (a http_server.py fault without "path") for file().
  virtual void inject(const json& fault) = 0;
  // The recorded GETs that carried file()'s bytes, in order.
  virtual std::vector<json> data_gets() const = 0;

  // Store variables, for this process (the library) and the CLI's.
  void set_env(const std::string& name, const std::string& value) {
    env_.set(name, value);
    store_env_[name] = value;
  }

  e2s::PackageOptions options() const {
    e2s::PackageOptions o = e2s::test::quick_retry_options(lib_storage());
    o.retry.max_attempts = kLibraryAttempts;
    o.timeout = std::chrono::seconds(30);
    o.stall_timeout = milliseconds(300);
    o.max_connections = kConnections;
    return o;
  }

  fs::path lib_storage() const { return cache_.path() / "lib"; }

  // ---- the library ----------------------------------------------------------

  // Caches the good copy, injects `fault`, resolves file(): its bytes must be the source's.
  void library_ok(const json& fault, e2s::PackageOptions o) {
    const GoodCopy good = good_copy_lib();
    reset();
    if (!fault.is_null()) inject(fault);
    e2s::Package package(root(), o);
    fs::path path;
    try {
      path = package.resolve(file());
    } catch (const e2s::Error& e) {
      FAIL() << "expected success, got " << e2s::to_string(e.code()) << ": " << e.what();
    }
    EXPECT_EQ(path, e2s::test::data_file(lib_storage(), file()));
    EXPECT_TRUE(TempDir::read_file(path) == bytes()) << "the cached bytes differ from the source";
    EXPECT_EQ(e2s::test::cached_meta(lib_storage(), file()).value("size", 0u), bytes().size());
    expect_untouched(good);
  }
  void library_ok(const json& fault) { library_ok(fault, options()); }

  // Caches the good copy, injects `fault`, resolves file(): it must fail with
  // `code`, naming the file, and commit nothing.
  e2s::Error library_fails(const json& fault, e2s::Errc code, e2s::PackageOptions o) {
    const GoodCopy good = good_copy_lib();
    reset();
    if (!fault.is_null()) inject(fault);
    e2s::Package package(root(), o);
    const e2s::Error e = error_of([&] { package.resolve(file()); });
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_EQ(e.uri(), uri()) << e.what();
    EXPECT_TRUE(contains(e.what(), uri())) << e.what();
    expect_nothing_committed(lib_storage(), good);
    return e;
  }
  e2s::Error library_fails(const json& fault, e2s::Errc code) {
    return library_fails(fault, code, options());
  }

  // ---- the CLI --------------------------------------------------------------

  CliRun cli(const std::vector<std::string>& global_args) const {
    std::vector<std::string> args = {"--connections", std::to_string(kConnections)};
    args.insert(args.end(), global_args.begin(), global_args.end());
    args.insert(args.end(), {"resolve", root(), file()});
    return run_cli(args);
  }

  CliRun cli_ok(const json& fault, const std::vector<std::string>& global_args = {}) {
    const GoodCopy good = good_copy_cli();
    reset();
    if (!fault.is_null()) inject(fault);
    CliRun run = cli(global_args);
    EXPECT_EQ(run.status, 0) << run.err;
    const auto out = lines(run.out);
    EXPECT_EQ(out.size(), 1u) << run.out;
    if (run.status == 0 && out.size() == 1) {
      EXPECT_EQ(fs::path(out[0]), cli_storage_ / file());
      EXPECT_TRUE(TempDir::read_file(out[0]) == bytes()) << "the cached bytes differ from the source";
    }
    expect_untouched(good);
    return run;
  }

  CliRun cli_fails(const json& fault, int status, const std::vector<std::string>& global_args = {}) {
    const GoodCopy good = good_copy_cli();
    reset();
    if (!fault.is_null()) inject(fault);
    CliRun run = cli(global_args);
    EXPECT_EQ(run.status, status) << run.err;
    expect_one_error_line(run);
    EXPECT_TRUE(contains(run.err, uri())) << run.err;
    expect_nothing_committed(cli_storage_, good);
    return run;
  }

  // ---- what the server saw ----------------------------------------------------

  std::size_t count_status(int status) const {
    std::size_t n = 0;
    for (const auto& request : data_gets()) n += request.at("status") == status ? 1 : 0;
    return n;
  }

  std::size_t ranged_gets() const {
    std::size_t n = 0;
    for (const auto& request : data_gets()) n += range_begin(request) ? 1 : 0;
    return n;
  }

  // Ranged requests that start at byte `begin`.
  std::size_t gets_from(std::uint64_t begin) const {
    std::size_t n = 0;
    for (const auto& request : data_gets()) n += range_begin(request) == begin ? 1 : 0;
    return n;
  }

  // A request resumed inside the first `after` bytes of the file, where the
  // fault cut the first reply (parallel parts start at 1 MiB multiples).
  bool resumed_within(std::uint64_t after) const {
    for (const auto& request : data_gets()) {
      const auto begin = range_begin(request);
      if (begin && *begin > 0 && *begin <= after) return true;
    }
    return false;
  }

  // Requests for the part or stream that kept failing: in parallel mode the
  // other parts never start, so those are the ranged ones.
  std::size_t attempts_seen() const { return parallel() ? ranged_gets() : data_gets().size(); }

  // In parallel mode the file really went as several byte ranges.
  void expect_parts() const {
    if (parallel()) {
      EXPECT_GE(ranged_gets(), static_cast<std::size_t>(kConnections));
    }
  }

  // ---- the cache --------------------------------------------------------------

  void expect_untouched(const GoodCopy& good) const {
    ASSERT_TRUE(fs::is_regular_file(good.path)) << good.path;
    EXPECT_EQ(TempDir::read_file(good.path), kGood);
    EXPECT_EQ(fs::last_write_time(good.path), good.mtime);
    EXPECT_EQ(e2s::test::cached_meta(e2s::test::storage_of(good.path, "good.txt"), "good.txt"), good.meta);
  }

  // Nothing of file() is in `storage`, and the good copy is the only file there.
  void expect_nothing_committed(const fs::path& storage, const GoodCopy& good) const {
    EXPECT_FALSE(fs::exists(fs::symlink_status(e2s::test::data_file(storage, file())))) << e2s::test::data_file(storage, file());
    EXPECT_TRUE(e2s::test::cached_meta(storage, file()).is_null())
        << e2s::test::cached_meta(storage, file()).dump();
    EXPECT_EQ(e2s::test::cached_files(storage), std::vector<fs::path>{good.path});
    expect_untouched(good);
  }

  static GoodCopy good_copy_at(const fs::path& path) {
    GoodCopy good{path, fs::last_write_time(path),
                  e2s::test::cached_meta(e2s::test::storage_of(path, "good.txt"), "good.txt")};
    EXPECT_FALSE(good.meta.is_null());
    return good;
  }

  GoodCopy good_copy_lib() {
    e2s::Package package(root(), options());
    return good_copy_at(package.resolve("good.txt"));
  }

  GoodCopy good_copy_cli() {
    CliRun run = run_cli({"resolve", root(), "good.txt"});
    EXPECT_EQ(run.status, 0) << run.err;
    const auto out = lines(run.out);
    EXPECT_EQ(out.size(), 1u) << run.out;
    const fs::path path = out.empty() ? fs::path() : fs::path(out[0]);
    cli_storage_ = path.parent_path();
    return good_copy_at(path);
  }

  CliRun run_cli(const std::vector<std::string>& args) const {
    std::map<std::string, std::string> env = store_env_;
    env["EARTH2STUDIO_CACHE"] = (cache_.path() / "cli").string();
    env["HOME"] = home_.path().string();
    return e2s::test::run_e2s(args, env, scrubbed);
  }

  EnvGuard env_{e2s::test::safety::scrubbed};
  std::map<std::string, std::string> store_env_;
  TempDir home_;   // no ~/.aws or ~/.cache/huggingface of the machine's user
  TempDir cache_;
  fs::path cli_storage_;  // the CLI's cache folder of root(), once known
};

// ---- plain HTTP: transport faults -------------------------------------------------

class HttpFaults : public FaultTest {
 protected:
  HttpFaults() : server_("http_server.py", {"--root", served_.path().string()}) {
    served_.write_file("pkg/small.bin", small_bytes());
    served_.write_file("pkg/big.bin", big_bytes());
    served_.write_file("pkg/good.txt", kGood);
  }

  std::string root() const override { return server_.url("/pkg"); }
  void reset() override { server_.reset(); }

  void inject(const json& fault) override {
    json spec = fault;
    spec["path"] = "/pkg/" + file();
    if (!spec.contains("methods")) spec["methods"] = {"GET"};
    // Plain HTTP learns a file's size from the reply to its first GET, which
    // asks for the first 1 MiB (in parallel mode the rest then goes as
    // parts): the fault hits that first request.
    server_.fault(spec);
  }

  std::vector<json> data_gets() const override {
    std::vector<json> out;
    const json stats = server_.stats();  // not a temporary: the loop keeps references into it
    for (const auto& request : stats.at("requests")) {
      const std::string path = request.at("path");
      if (request.at("method") == "GET" && path == "/pkg/" + file()) out.push_back(request);
    }
    return out;
  }

  TempDir served_;
  TestServer server_;
};

INSTANTIATE_TEST_SUITE_P(Modes, HttpFaults, ::testing::Values(Mode::single, Mode::parallel), mode_name);

TEST_P(HttpFaults, ConnectionResetMidBodyIsResumed) {
  const json cut = {{"kind", "cut"}, {"after", kCutAfter}};
  library_ok(cut);
  EXPECT_TRUE(resumed_within(kCutAfter));
  expect_parts();
  cli_ok(cut);
  EXPECT_TRUE(resumed_within(kCutAfter));
  expect_parts();
}

TEST_P(HttpFaults, ConnectionResetBeforeAnyByteEveryTimeIsANetworkError) {
  library_fails({{"kind", "cut"}, {"after", 0}, {"times", -1}}, e2s::Errc::network);
  EXPECT_EQ(attempts_seen(), static_cast<std::size_t>(kLibraryAttempts));
}

TEST_P(HttpFaults, StallIsAbortedAndResumed) {
  // The connection stays open and silent for 3 s; the library's stall timeout
  // is 0.3 s. The CLI's --timeout is also its budget without progress, so it
  // gets 1 s: a loaded machine may be slow to send the bytes before the stall.
  const json stall = {{"kind", "stall"}, {"after", kCutAfter}, {"seconds", 3}};
  const auto start = Clock::now();
  library_ok(stall);
  EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(2500)) << "the stall was waited out";
  EXPECT_TRUE(resumed_within(kCutAfter));
  expect_parts();
  cli_ok(stall, {"--timeout", "1"});
  EXPECT_TRUE(resumed_within(kCutAfter));
  expect_parts();
}

TEST_P(HttpFaults, StallEveryTimeIsATimeout) {
  e2s::PackageOptions o = options();
  o.retry.max_attempts = 2;
  const e2s::Error e =
      library_fails({{"kind", "stall"}, {"after", 0}, {"seconds", 3}, {"times", -1}},
                    e2s::Errc::timeout, o);
  EXPECT_EQ(attempts_seen(), 2u);
  EXPECT_TRUE(contains(e.what(), "--timeout") || contains(e.what(), "EARTH2STUDIO_PACKAGE_TIMEOUT"))
      << e.what();
}

TEST_P(HttpFaults, TransientServerErrorsAreRetried) {
  for (const auto& [status, times] : {std::pair{500, 1}, std::pair{502, 2}, std::pair{503, 2}}) {
    SCOPED_TRACE("HTTP " + std::to_string(status));
    const json fault = {{"kind", "status"}, {"status", status}, {"times", times}};
    fs::remove_all(cache_.path());
    library_ok(fault);
    EXPECT_EQ(count_status(status), static_cast<std::size_t>(times));
    if (!parallel()) {
      EXPECT_EQ(data_gets().size(), static_cast<std::size_t>(times + 1));
    }
    expect_parts();
    cli_ok(fault);
    EXPECT_EQ(count_status(status), static_cast<std::size_t>(times));
    expect_parts();
  }
}

TEST_P(HttpFaults, PermanentServerErrorsAreANetworkErrorAfterEveryAttempt) {
  for (const int status : {500, 502, 503}) {
    SCOPED_TRACE("HTTP " + std::to_string(status));
    fs::remove_all(cache_.path());
    const e2s::Error e =
        library_fails({{"kind", "status"}, {"status", status}, {"times", -1}}, e2s::Errc::network);
    EXPECT_EQ(e.http_status(), status) << e.what();
    EXPECT_EQ(count_status(status), static_cast<std::size_t>(kLibraryAttempts));
    // The CLI has no flag for its backoff (0.5 s doubling); a server that
    // says "Retry-After: 0" is retried at once, which keeps this fast.
    cli_fails({{"kind", "status"}, {"status", status}, {"times", -1}, {"retry_after", "0"}}, 5);
    EXPECT_EQ(count_status(status), static_cast<std::size_t>(kCliAttempts));
  }
}

TEST_P(HttpFaults, TooManyRequestsWaitsForRetryAfter) {
  const json fault = {{"kind", "status"}, {"status", 429}, {"retry_after", "1"}};
  e2s::PackageOptions o = options();
  o.retry.max_backoff = std::chrono::seconds(5);  // the cap of an honoured Retry-After
  // The backoff alone would wait at most 1 ms: any wait near 1 s is Retry-After's.
  auto start = Clock::now();
  library_ok(fault, o);
  auto took = Clock::now() - start;
  EXPECT_GE(took, milliseconds(950));
  EXPECT_LT(took, milliseconds(4000));
  EXPECT_EQ(count_status(429), 1u);
  expect_parts();

  good_copy_cli();  // cached before the clock starts
  start = Clock::now();
  cli_ok(fault);
  took = Clock::now() - start;
  EXPECT_GE(took, milliseconds(950));
  EXPECT_LT(took, milliseconds(4000));
  EXPECT_EQ(count_status(429), 1u);
  expect_parts();
}

TEST_P(HttpFaults, WrongRangeIsRefusedAndFetchedAgain) {
  // Single: the whole-file GET gets a 206 for bytes 1-, refused, then the
  // file again. Parallel: the first part gets its range shifted by a byte,
  // refused, then the part again.
  const json fault = {{"kind", "wrong_range"}};
  library_ok(fault);
  EXPECT_EQ(parallel() ? gets_from(0) : data_gets().size(), 2u);
  expect_parts();
  cli_ok(fault);
  EXPECT_EQ(parallel() ? gets_from(0) : data_gets().size(), 2u);
  expect_parts();
}

TEST_P(HttpFaults, WrongRangeEveryTimeIsANetworkError) {
  const e2s::Error e = library_fails({{"kind", "wrong_range"}, {"times", -1}}, e2s::Errc::network);
  EXPECT_TRUE(contains(e.what(), "range")) << e.what();
  EXPECT_EQ(attempts_seen(), static_cast<std::size_t>(kLibraryAttempts));
}

TEST_P(HttpFaults, ShortBodyIsResumed) {
  const json fault = {{"kind", "short"}, {"after", kCutAfter}};
  library_ok(fault);
  EXPECT_TRUE(resumed_within(kCutAfter));
  expect_parts();
  cli_ok(fault);
  EXPECT_TRUE(resumed_within(kCutAfter));
  expect_parts();
}

TEST_P(HttpFaults, EmptyBodyEveryTimeIsANetworkError) {
  library_fails({{"kind", "short"}, {"after", 0}, {"times", -1}}, e2s::Errc::network);
  EXPECT_EQ(attempts_seen(), static_cast<std::size_t>(kLibraryAttempts));
}

// ---- the fake GCS: bytes against X-Goog-Hash md5, size against the HEAD ------------

// Single-stream only: the fake computes CRC-32C in pure Python, which takes
// seconds for a 9 MiB object (the Hub and S3 cases below cover parallel mode).
class GcsFaults : public FaultTest {
 protected:
  GcsFaults() : server_("gcs_server.py", {"--root", buckets_.path().string()}) {
    buckets_.write_file("models/pkg/small.bin", small_bytes());
    buckets_.write_file("models/pkg/good.txt", kGood);
    set_env("STORAGE_EMULATOR_HOST", server_.url());
  }

  std::string root() const override { return "gs://models/pkg"; }
  void reset() override { server_.reset(); }

  void inject(const json& fault) override {
    json spec = fault;
    spec["path"] = "/models/pkg/" + file();
    spec["methods"] = {"GET"};  // the HEAD tells the true size and hashes
    server_.fault(spec);
  }

  std::vector<json> data_gets() const override {
    std::vector<json> out;
    const json stats = server_.stats();
    for (const auto& request : stats.at("requests")) {
      const std::string path = request.at("path");
      if (request.at("method") == "GET" && path == "/models/pkg/" + file()) out.push_back(request);
    }
    return out;
  }

  TempDir buckets_;
  TestServer server_;
};

INSTANTIATE_TEST_SUITE_P(Modes, GcsFaults, ::testing::Values(Mode::single), mode_name);

TEST_P(GcsFaults, CorruptBytesFailTheMd5) {
  const json corrupt = {{"kind", "corrupt"}, {"times", -1}};
  const e2s::Error e = library_fails(corrupt, e2s::Errc::integrity);
  EXPECT_TRUE(contains(e.what(), "md5")) << e.what();
  EXPECT_EQ(data_gets().size(), 1u) << "a hash mismatch is not worth a retry of the same bytes";
  const CliRun run = cli_fails(corrupt, 6);
  EXPECT_TRUE(contains(run.err, "md5")) << run.err;
}

TEST_P(GcsFaults, LongerBodyThanTheHeadAnnouncedIsAnIntegrityError) {
  const json longer = {{"kind", "long"}, {"extra", 5}, {"times", -1}};
  library_fails(longer, e2s::Errc::integrity);
  EXPECT_EQ(data_gets().size(), 1u);
  cli_fails(longer, 6);
}

TEST_P(GcsFaults, ShorterBodyIsResumedAndStillMatchesTheMd5) {
  const json shorter = {{"kind", "short"}, {"after", kCutAfter}};
  library_ok(shorter);
  EXPECT_TRUE(resumed_within(kCutAfter));
  cli_ok(shorter);
  EXPECT_TRUE(resumed_within(kCutAfter));
}

// ---- the fake Hub's CDN: bytes against the sha256 ETag -----------------------------

class HfFaults : public FaultTest {
 protected:
  HfFaults() : hub_("hf_server.py", {"--root", repos_.path().string()}) {
    // Both data files are LFS (>= 1024 bytes): sha256 ETag, bytes from the CDN.
    repos_.write_file("models/acme/faults/main/small.bin", small_bytes());
    repos_.write_file("models/acme/faults/main/big.bin", big_bytes());
    repos_.write_file("models/acme/faults/main/good.txt", kGood);
    set_env("HF_ENDPOINT", hub_.url());
    set_env("HF_HOME", home_.path().string());
  }

  std::string root() const override { return "hf://acme/faults"; }
  void reset() override { hub_.reset(); }

  void inject(const json& fault) override {
    json spec = fault;
    spec["host"] = "cdn";
    spec["path"] = "*";
    spec["methods"] = {"GET"};
    hub_.fault(spec);
  }

  std::vector<json> data_gets() const override {
    std::vector<json> out;
    const json stats = hub_.stats();
    for (const auto& request : stats.at("requests")) {
      if (request.at("host") == "cdn" && request.at("method") == "GET") out.push_back(request);
    }
    return out;
  }

  TempDir repos_;
  TestServer hub_;
};

INSTANTIATE_TEST_SUITE_P(Modes, HfFaults, ::testing::Values(Mode::single, Mode::parallel), mode_name);

TEST_P(HfFaults, CorruptBytesFailTheSha256) {
  const json corrupt = {{"kind", "corrupt"}, {"times", -1}};
  const e2s::Error e = library_fails(corrupt, e2s::Errc::integrity);
  EXPECT_TRUE(contains(e.what(), "sha256")) << e.what();
  expect_parts();
  const CliRun run = cli_fails(corrupt, 6);
  EXPECT_TRUE(contains(run.err, "sha256")) << run.err;
}

TEST_P(HfFaults, LongerBodyThanAnnounced) {
  const json longer = {{"kind", "long"}, {"extra", 5}, {"times", -1}};
  if (!parallel()) {
    // The one stream announces more than X-Linked-Size said.
    library_fails(longer, e2s::Errc::integrity);
    cli_fails(longer, 6);
    return;
  }
  // Each part's Content-Range is right, only its body runs on: the bytes past
  // the part are dropped and the file still matches its sha256.
  library_ok(longer);
  expect_parts();
  cli_ok(longer);
  expect_parts();
}

TEST_P(HfFaults, ResetMidBodyIsResumedAndStillMatchesTheSha256) {
  const json cut = {{"kind", "cut"}, {"after", kCutAfter}};
  library_ok(cut);
  EXPECT_TRUE(resumed_within(kCutAfter));
  expect_parts();
  cli_ok(cut);
  EXPECT_TRUE(resumed_within(kCutAfter));
  expect_parts();
}

// ---- moto S3: bytes against a lying MD5 ETag ----------------------------------------

class S3Faults : public FaultTest {
 protected:
  S3Faults() {
    // moto injects no faults: the objects' stored ETags are MD5s of other bytes.
    const json setup = {
        {"buckets",
         {{{"name", "faulty"},
           {"public", true},
           {"objects",
            {{{"key", "pkg/small.bin"},
              {"file", data_.write_file("small.bin", small_bytes()).string()},
              {"etag", kLyingEtag}},
             {{"key", "pkg/big.bin"},
              {"file", data_.write_file("big.bin", big_bytes()).string()},
              {"etag", kLyingEtag}},
             {{"key", "pkg/good.txt"}, {"text", kGood}}}}}}}};
    moto_ = std::make_unique<e2s::test::MotoServer>(setup);
    set_env("AWS_ENDPOINT_URL", moto_->endpoint());
  }

  static constexpr const char* kLyingEtag = "0123456789abcdef0123456789abcdef";

  std::string root() const override { return "s3://faulty/pkg"; }
  void reset() override {}
  void inject(const json&) override {}
  std::vector<json> data_gets() const override { return {}; }  // moto keeps no request log

  TempDir data_;
  std::unique_ptr<e2s::test::MotoServer> moto_;
};

INSTANTIATE_TEST_SUITE_P(Modes, S3Faults, ::testing::Values(Mode::single, Mode::parallel), mode_name);

TEST_P(S3Faults, BytesThatDoNotMatchTheMd5EtagAreAnIntegrityError) {
  const e2s::Error e = library_fails(json(), e2s::Errc::integrity);
  EXPECT_TRUE(contains(e.what(), "md5")) << e.what();
  EXPECT_TRUE(contains(e.what(), kLyingEtag)) << e.what();
  const CliRun run = cli_fails(json(), 6);
  EXPECT_TRUE(contains(run.err, "md5")) << run.err;
}

}  // namespace
