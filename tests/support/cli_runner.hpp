// Runs the `e2s` binary the way a user's shell would, for CLI contract tests.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace e2s::test {

class TempDir;

struct CliRun {
  int status = -1;   // exit status; -1 when the process did not exit normally
  int signal = 0;    // the signal that ended it, when one did
  std::string out;   // everything written to stdout
  std::string err;   // everything written to stderr
};

// Decides which of the test's own environment variables the child must not
// see (a runner's real tokens or proxies must not leak into a test).
using EnvFilter = std::function<bool(const std::string& name)>;

struct CliOptions {
  std::map<std::string, std::string> env;  // added to (and replacing) the test's environment
  EnvFilter scrub;                         // names of the test's environment to drop
  // A command the CLI runs under, e.g. {"setpriv", "--reuid=65534", ...} or
  // {"prlimit", "--fsize=1000000", "--"}: it gets cli_path() and the args.
  std::vector<std::string> wrapper;
  // Another program than cli_path() (e.g. an example's), when not empty.
  std::string program;
};

// The e2s command under test: E2S_TEST_CLI when set (scripts/test.sh runs the
// CLI tests again against the command of another build configuration), else
// the one of this build (E2S_CLI_PATH).
std::string cli_path();

// cli_path() with `args`, running in the background: stdin from /dev/null,
// stdout and stderr captured. Killed (SIGKILL) if still running when destroyed.
class CliProcess {
 public:
  CliProcess(const std::vector<std::string>& args, const CliOptions& options = {});
  ~CliProcess();
  CliProcess(const CliProcess&) = delete;
  CliProcess& operator=(const CliProcess&) = delete;

  pid_t pid() const { return pid_; }
  // Sends `signal` (the process keeps running for SIGSTOP).
  void signal(int signal);
  // Waits for the process to end and returns what it did.
  CliRun wait();
  // The same, but kills it (SIGKILL) and returns nullopt when it is still
  // running after `limit`.
  std::optional<CliRun> wait_for(std::chrono::milliseconds limit);

 private:
  CliRun collect(int wstatus, bool reaped = false);

  std::unique_ptr<TempDir> io_;
  pid_t pid_ = -1;
};

// Runs cli_path() with `args` to completion, in the test's environment minus
// the names `scrub` accepts, plus `env`.
CliRun run_e2s(const std::vector<std::string>& args,
               const std::map<std::string, std::string>& env = {}, const EnvFilter& scrub = {});

}  // namespace e2s::test
