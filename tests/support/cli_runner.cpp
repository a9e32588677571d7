#include "support/cli_runner.hpp"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/temp_dir.hpp"

extern char** environ;

namespace e2s::test {

CliRun run_e2s(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
               const EnvFilter& scrub) {
  // Everything the child needs is built before fork(): only async-signal-safe
  // calls may follow it in a threaded test process.
  std::vector<std::string> env_strings;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string text = *entry;
    const std::string name = text.substr(0, text.find('='));
    if ((scrub && scrub(name)) || env.count(name) != 0) continue;
    env_strings.push_back(text);
  }
  for (const auto& [name, value] : env) env_strings.push_back(name + "=" + value);
  std::vector<char*> envp;
  for (auto& text : env_strings) envp.push_back(text.data());
  envp.push_back(nullptr);
  std::vector<std::string> arg_strings = {E2S_CLI_PATH};
  arg_strings.insert(arg_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& text : arg_strings) argv.push_back(text.data());
  argv.push_back(nullptr);

  TempDir io;
  const std::string out = (io.path() / "out").string(), err = (io.path() / "err").string();
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err_fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int null_fd = ::open("/dev/null", O_RDONLY);
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    ::dup2(null_fd, 0);
    ::execve(E2S_CLI_PATH, argv.data(), envp.data());
    ::_exit(127);
  }
  int wstatus = 0;
  ::waitpid(pid, &wstatus, 0);
  CliRun run;
  run.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
  run.out = TempDir::read_file(out);
  run.err = TempDir::read_file(err);
  return run;
}

}  // namespace e2s::test
