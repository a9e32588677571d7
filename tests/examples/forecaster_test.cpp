// The example AutoModel end to end: its package written by NumPy, loaded
// through a local root, plain HTTP and (as its default package) the Hub.
#include "forecaster/forecaster.hpp"

#include <unistd.h>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "support/cli_runner.hpp"
#include "support/env_guard.hpp"
#include "support/fixtures.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"

namespace {

namespace fs = std::filesystem;
using e2s::examples::Forecaster;
using e2s::test::ScopedEnv;
using e2s::test::TempDir;
using e2s::test::TestServer;

// Debian's python3 has numpy (python3-numpy); a python3 earlier on PATH may not.
std::string python() { return ::access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3"; }

class ForecasterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    package_ = new TempDir;
    const std::string command = python() + " " + E2S_EXAMPLES_DIR "/forecaster/make_package.py " +
                                package_->path().string();
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
  }
  static void TearDownTestSuite() {
    delete package_;
    package_ = nullptr;
  }

  static fs::path package() { return package_->path(); }

  // Six steps from initial_state.npy, against what NumPy computed.
  static void expect_forecast_matches(const Forecaster& model) {
    std::vector<float> state = e2s::load_npy(package() / "initial_state.npy").to_float32();
    const e2s::Tensor expected = e2s::load_npy(package() / "expected_forecast.npy");
    ASSERT_EQ(expected.shape().size(), 2u);
    const std::vector<float> want = expected.to_float32();
    const std::size_t n = state.size();
    for (std::int64_t step = 0; step < expected.shape()[0]; ++step) {
      state = model.step(state);
      for (std::size_t i = 0; i < n; ++i) {
        const float reference = want[static_cast<std::size_t>(step) * n + i];
        EXPECT_NEAR(state[i], reference, 1e-4f * std::max(1.0f, std::fabs(reference)))
            << "step " << step + 1 << ", " << model.variables()[i];
      }
    }
  }

  // No proxy, token or cache setting of the runner's shell reaches the model.
  TempDir cache_;
  ScopedEnv model_cache_{"EARTH2STUDIO_MODEL_CACHE", std::nullopt};
  ScopedEnv cache_root_{"EARTH2STUDIO_CACHE", cache_.path().string()};
  ScopedEnv hf_token_{"HF_TOKEN", std::nullopt};
  ScopedEnv http_proxy_{"http_proxy", std::nullopt};
  ScopedEnv no_proxy_{"no_proxy", "127.0.0.1"};

  static TempDir* package_;
};

TempDir* ForecasterTest::package_ = nullptr;

TEST_F(ForecasterTest, FromALocalRootTheForecastMatchesNumPy) {
  const Forecaster model = e2s::from_pretrained<Forecaster>(package().string());
  EXPECT_EQ(model.variables(), (std::vector<std::string>{"t2m", "u10", "v10", "msl", "tcwv"}));
  EXPECT_EQ(model.step_hours(), 6);
  expect_forecast_matches(model);
}

TEST_F(ForecasterTest, FromAnHttpRootTheArchiveIsExtractedOnce) {
  TestServer server("http_server.py", {"--root", package().string()});
  const std::string root = server.url("/");
  expect_forecast_matches(e2s::from_pretrained<Forecaster>(root));
  EXPECT_EQ(server.count("GET", "/forecaster.zip"), 1u);

  e2s::Package package(root);
  const fs::path folder = package.resolve_extracted("forecaster.zip");
  EXPECT_TRUE(fs::exists(folder / "forecaster" / "weights.safetensors"));
  EXPECT_EQ(folder.string().rfind(package.cache().string(), 0), 0u) << "extracted inside the cache";
  // A later load (another Package, as another process would) does no work:
  // no request, and the folder is the one already there.
  std::ofstream(folder / "marker") << "left by the test";
  server.reset();
  expect_forecast_matches(e2s::from_pretrained<Forecaster>(root));
  EXPECT_EQ(server.stats()["requests"].size(), 0u);
  EXPECT_TRUE(fs::exists(folder / "marker"));
}

TEST_F(ForecasterTest, TheDefaultPackageComesFromTheHub) {
  TempDir hub;
  const fs::path repo = hub.path() / "models" / "e2s-examples" / "forecaster" / "main";
  fs::create_directories(repo);
  for (const auto& entry : fs::directory_iterator(package())) fs::copy(entry.path(), repo);
  TestServer server("hf_server.py", {"--root", hub.path().string()});
  ScopedEnv endpoint("HF_ENDPOINT", server.url(""));

  expect_forecast_matches(e2s::from_pretrained<Forecaster>());
  // Cached where the model asked: default_cache("forecaster"), own names.
  EXPECT_TRUE(fs::exists(e2s::test::data_file(cache_.path() / "forecaster", "forecaster.zip")));
  EXPECT_TRUE(fs::exists(e2s::test::data_file(cache_.path() / "forecaster", "global_means.npy")));
}

TEST_F(ForecasterTest, AChangedArchiveIsExtractedAfresh) {
  TempDir local;
  fs::copy(package(), local.path(), fs::copy_options::recursive);
  e2s::Package package(local.path().string());
  const fs::path first = package.resolve_extracted("forecaster.zip");
  EXPECT_EQ(first.string().rfind(cache_.path().string(), 0), 0u) << "local archives extract into the cache";
  // Another archive under the same name: another folder.
  fs::remove(local.path() / "forecaster.zip");
  fs::copy(package_->path() / "forecaster.zip", local.path() / "forecaster.zip");
  std::ofstream(local.path() / "forecaster.zip", std::ios::app) << "";  // new mtime at least
  fs::last_write_time(local.path() / "forecaster.zip",
                      fs::last_write_time(local.path() / "forecaster.zip") + std::chrono::seconds(5));
  const fs::path second = package.resolve_extracted("forecaster.zip");
  EXPECT_NE(first, second);
  EXPECT_TRUE(fs::exists(second / "forecaster" / "config.json"));
}

TEST_F(ForecasterTest, TheProgramPrintsAForecast) {
  const e2s::test::CliRun run = e2s::test::CliProcess(
      {package().string(), "--steps", "2"},
      {.env = {{"EARTH2STUDIO_CACHE", cache_.path().string()}}, .scrub = {}, .wrapper = {},
       .program = E2S_FORECASTER_PATH})
                                     .wait();
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out.rfind("hour", 0), 0u) << run.out;
  EXPECT_NE(run.out.find("t2m"), std::string::npos);
  EXPECT_EQ(std::count(run.out.begin(), run.out.end(), '\n'), 4) << run.out;  // header + hours 0, 6, 12
}

}  // namespace
