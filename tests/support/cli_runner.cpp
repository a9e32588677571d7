#include "support/cli_runner.hpp"

#include <chrono>
#include <cstdlib>
#include <thread>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/temp_dir.hpp"

extern char** environ;

namespace e2s::test {

std::string cli_path() {
  const char* other = std::getenv("E2S_TEST_CLI");
  return other != nullptr && *other != '\0' ? std::string(other) : std::string(E2S_CLI_PATH);
}

CliProcess::CliProcess(const std::vector<std::string>& args, const CliOptions& options)
    : io_(std::make_unique<TempDir>()) {
  // Everything the child needs is built before fork(): only async-signal-safe
  // calls may follow it in a threaded test process.
  std::vector<std::string> env_strings;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string text = *entry;
    const std::string name = text.substr(0, text.find('='));
    if ((options.scrub && options.scrub(name)) || options.env.count(name) != 0) continue;
    env_strings.push_back(text);
  }
  for (const auto& [name, value] : options.env) env_strings.push_back(name + "=" + value);
  std::vector<char*> envp;
  for (auto& text : env_strings) envp.push_back(text.data());
  envp.push_back(nullptr);
  std::vector<std::string> arg_strings = options.wrapper;
  arg_strings.push_back(options.program.empty() ? cli_path() : options.program);
  arg_strings.insert(arg_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& text : arg_strings) argv.push_back(text.data());
  argv.push_back(nullptr);
  const std::string program = arg_strings.front();
  const bool search_path = !options.wrapper.empty();

  // Opened here, so that they exist even when the child is killed at once.
  const std::string out = (io_->path() / "out").string(), err = (io_->path() / "err").string();
  const int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int err_fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  pid_ = ::fork();
  if (pid_ == 0) {
    const int null_fd = ::open("/dev/null", O_RDONLY);
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    ::dup2(null_fd, 0);
    if (search_path) {
      ::execvpe(program.c_str(), argv.data(), envp.data());
    } else {
      ::execve(program.c_str(), argv.data(), envp.data());
    }
    ::_exit(127);
  }
  ::close(out_fd);
  ::close(err_fd);
}

CliProcess::~CliProcess() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

void CliProcess::signal(int signal) {
  if (pid_ > 0) ::kill(pid_, signal);
}

CliRun CliProcess::wait() { return collect(0); }

std::optional<CliRun> CliProcess::wait_for(std::chrono::milliseconds limit) {
  if (pid_ <= 0) return CliRun{};
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    int wstatus = 0;
    const pid_t ended = ::waitpid(pid_, &wstatus, WNOHANG);
    if (ended == pid_) return collect(wstatus, /*reaped=*/true);
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  signal(SIGKILL);
  wait();
  return std::nullopt;
}

CliRun CliProcess::collect(int wstatus, bool reaped) {
  CliRun run;
  if (pid_ <= 0) return run;
  if (!reaped) ::waitpid(pid_, &wstatus, 0);
  pid_ = -1;
  run.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
  run.signal = WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0;
  run.out = TempDir::read_file(io_->path() / "out");
  run.err = TempDir::read_file(io_->path() / "err");
  return run;
}

CliRun run_e2s(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
               const EnvFilter& scrub) {
  CliOptions options;
  options.env = env;
  options.scrub = scrub;
  return CliProcess(args, options).wait();
}

}  // namespace e2s::test
