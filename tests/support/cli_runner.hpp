// Runs the `e2s` binary the way a user's shell would, for CLI contract tests.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace e2s::test {

struct CliRun {
  int status = -1;   // exit status; -1 when the process did not exit normally
  std::string out;   // everything written to stdout
  std::string err;   // everything written to stderr
};

// Decides which of the test's own environment variables the child must not
// see (a runner's real tokens or proxies must not leak into a test).
using EnvFilter = std::function<bool(const std::string& name)>;

// Runs E2S_CLI_PATH with `args`, stdin from /dev/null and no terminal, in the
// test's environment minus the names `scrub` accepts, plus `env`.
CliRun run_e2s(const std::vector<std::string>& args,
               const std::map<std::string, std::string>& env = {}, const EnvFilter& scrub = {});

}  // namespace e2s::test
