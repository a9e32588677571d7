// `e2s mirror push` and `e2s mirror ls` with a folder mirror, and the
// offline node that reads only the mirror, as a cluster uses them: a login
// node fills the mirror, compute nodes without internet read it.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "safety/safety_env.hpp"
#include "support/cli_runner.hpp"
#include "support/fixtures.hpp"
#include "support/temp_dir.hpp"
#include "support/test_server.hpp"

namespace {

using e2s::test::CliOptions;
using e2s::test::CliProcess;
using e2s::test::CliRun;
using e2s::test::contains;
using e2s::test::make_bytes;
using e2s::test::TempDir;
using e2s::test::TestServer;

class MirrorCliTest : public ::testing::Test {
 protected:
  MirrorCliTest() {
    repos_.write_file("models/acme/w/main/weights.bin", weights_);
    repos_.write_file("models/acme/w/main/config.json", "{}\n");
    repos_.write_file("models/acme/w/main/notes.md", "notes\n");
    hub_ = std::make_unique<TestServer>("hf_server.py", std::vector<std::string>{"--root", repos_.path().string()});
  }

  CliRun e2s(const std::vector<std::string>& args, const std::string& node, bool offline = false) const {
    CliOptions options;
    options.scrub = e2s::test::safety::scrubbed;
    options.env = {{"HF_ENDPOINT", hub_->url()},
                   {"EARTH2STUDIO_MODEL_CACHE", (caches_.path() / node).string()},
                   {"E2S_MIRROR", mirror_.path().string()},
                   {"E2S_HF_CACHE", "off"}};
    if (offline) options.env["EARTH2STUDIO_OFFLINE"] = "1";
    return CliProcess(args, options).wait();
  }

  TempDir repos_, mirror_, caches_;
  const std::string weights_ = make_bytes(600 * 1024, 3);
  std::unique_ptr<TestServer> hub_;
};

TEST_F(MirrorCliTest, ALoginNodeFillsTheMirrorAndAnOfflineNodeReadsIt) {
  const CliRun push = e2s({"mirror", "push", "hf://acme/w", "--exclude", "*.md"}, "login");
  ASSERT_EQ(push.status, 0) << push.err;
  EXPECT_TRUE(contains(push.out, "pushed 2 files")) << push.out;
  const CliRun again = e2s({"-q", "mirror", "push", "hf://acme/w", "config.json"}, "login");
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_TRUE(contains(again.out, "pushed 0 files")) << again.out;
  EXPECT_TRUE(contains(again.out, "1 were there already")) << again.out;

  const CliRun ls = e2s({"mirror", "ls", "hf://acme/w"}, "login");
  ASSERT_EQ(ls.status, 0) << ls.err;
  EXPECT_EQ(ls.out, "3\tconfig.json\n" + std::to_string(weights_.size()) + "\tweights.bin\n");

  const CliRun all = e2s({"mirror", "ls"}, "login");
  ASSERT_EQ(all.status, 0) << all.err;
  EXPECT_TRUE(contains(all.out, "3\t" + mirror_.path().string() + "\thf/models/acme/w/")) << all.out;
  EXPECT_EQ(std::count(all.out.begin(), all.out.end(), '\n'), 2) << all.out;

  hub_->reset();
  const CliRun fetch = e2s({"-v", "fetch", "hf://acme/w", "weights.bin", "config.json"}, "compute", true);
  ASSERT_EQ(fetch.status, 0) << fetch.err;
  EXPECT_TRUE(contains(fetch.out, "from: cache 0 (0 B), other caches 0 (0 B), site mirror 2 (" +
                                      std::to_string(weights_.size() + 3) + " B), upstream 0 (0 B)"))
      << fetch.out;
  EXPECT_TRUE(contains(fetch.err, "site mirror")) << "-v says where: " << fetch.err;
  EXPECT_TRUE(e2s::test::recorded_requests(*hub_).empty()) << "zero upstream requests";

  const CliRun miss = e2s({"resolve", "hf://acme/w", "notes.md"}, "compute", true);
  EXPECT_EQ(miss.status, 7) << miss.err;
  e2s::test::expect_one_error_line(miss);
  EXPECT_TRUE(contains(miss.err, "site mirror " + mirror_.path().string())) << miss.err;
  EXPECT_TRUE(contains(miss.err, "e2s mirror push hf://acme/w notes.md")) << miss.err;
}

TEST_F(MirrorCliTest, PushingToAReadOnlyMirrorSaysWhatToDo) {
  CliOptions options;
  options.scrub = e2s::test::safety::scrubbed;
  options.env = {{"HF_ENDPOINT", hub_->url()},
                 {"EARTH2STUDIO_MODEL_CACHE", caches_.path().string()},
                 {"E2S_MIRROR", "https://mirror.example.org/e2s"}};
  const CliRun run = CliProcess({"mirror", "push", "hf://acme/w", "config.json"}, options).wait();
  EXPECT_NE(run.status, 0);
  e2s::test::expect_one_error_line(run);
  EXPECT_TRUE(contains(run.err, "no writable site mirror")) << run.err;
}

}  // namespace
