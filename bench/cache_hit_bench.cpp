// W4 of bench/: what a cache hit costs in process (Google Benchmark).
//
// Setup, before any timing: a temp folder with a tiny package, served on
// loopback by tests/servers/http_server.py; one real resolve() warms the cache,
// then the server is stopped, so every timed resolve() must be a hit (a miss
// would fail on the closed port and abort the benchmark).
//
//   e2s_cache_hit_bench [--server=PATH] [--python=BIN] [benchmark flags]
//
// --server defaults to the repository's tests/servers/http_server.py (set at
// build time), --python to $E2S_BENCH_PYTHON or python3. bench/run.sh runs it
// with --benchmark_format=json and reads the "median" aggregates.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <e2s/e2s.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace {

namespace fs = std::filesystem;

constexpr const char* kFile = "weights.bin";
constexpr const char* kNestedFile = "sub/folder/model.onnx";

struct Fixture {
  fs::path dir;
  std::string root;
  e2s::PackageOptions options;
  std::unique_ptr<e2s::Package> package;
};
Fixture* fixture = nullptr;

struct Server {
  pid_t pid = -1;
  int stdin_fd = -1;
  int port = 0;
};

// Starts the loopback server; it prints "PORT n" and exits when its stdin closes.
Server start_server(const std::string& python, const std::string& script, const fs::path& root) {
  int in[2];
  int out[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) {
    throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  std::vector<std::string> args = {python, script, "--root", root.string(), "--port", "0"};
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  Server server;
  const int rc = ::posix_spawnp(&server.pid, python.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(in[0]);
  ::close(out[1]);
  if (rc != 0) throw std::runtime_error("cannot start " + python + ": " + std::strerror(rc));
  server.stdin_fd = in[1];
  FILE* lines = ::fdopen(out[0], "r");
  char line[256] = {};
  const bool got = lines != nullptr && std::fgets(line, sizeof line, lines) != nullptr;
  if (lines != nullptr) std::fclose(lines);
  if (!got || std::sscanf(line, "PORT %d", &server.port) != 1) {
    throw std::runtime_error("the loopback server " + script + " did not print its port");
  }
  return server;
}

void stop_server(Server& server) {
  if (server.stdin_fd >= 0) ::close(server.stdin_fd);
  if (server.pid > 0) ::waitpid(server.pid, nullptr, 0);
  server = Server{};
}

void write_file(const fs::path& path, std::size_t size) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  std::string block(size, '\0');
  for (std::size_t i = 0; i < size; ++i) block[i] = static_cast<char>((i * 2654435761u) >> 13);
  out.write(block.data(), static_cast<std::streamsize>(block.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

// The hit a model pays on every load_model: the same Package resolving a
// file that is already cached.
void BM_ResolveHit(benchmark::State& state) {
  for (auto _ : state) {
    fs::path path = fixture->package->resolve(kFile);
    benchmark::DoNotOptimize(path);
  }
}

void BM_ResolveHitNested(benchmark::State& state) {
  for (auto _ : state) {
    fs::path path = fixture->package->resolve(kNestedFile);
    benchmark::DoNotOptimize(path);
  }
}

// load_default_package() + load_model() in a fresh process: a new Package
// (root parsed, cache folder derived) and one hit.
void BM_NewPackageAndResolveHit(benchmark::State& state) {
  for (auto _ : state) {
    e2s::Package package(fixture->root, fixture->options);
    fs::path path = package.resolve(kFile);
    benchmark::DoNotOptimize(path);
  }
}

BENCHMARK(BM_ResolveHit)->Repetitions(10)->ReportAggregatesOnly(true)->UseRealTime();
BENCHMARK(BM_ResolveHitNested)->Repetitions(10)->ReportAggregatesOnly(true)->UseRealTime();
BENCHMARK(BM_NewPackageAndResolveHit)->Repetitions(10)->ReportAggregatesOnly(true)->UseRealTime();

// Takes --name=value out of argv (so Google Benchmark does not see it).
std::string take_flag(int& argc, char** argv, const std::string& name, std::string fallback) {
  const std::string prefix = "--" + name + "=";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], prefix.c_str(), prefix.size()) == 0) {
      fallback = argv[i] + prefix.size();
      for (int j = i; j + 1 < argc; ++j) argv[j] = argv[j + 1];
      --argc;
      --i;
    }
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const char* python_env = std::getenv("E2S_BENCH_PYTHON");
  const std::string python = take_flag(argc, argv, "python", python_env ? python_env : "python3");
  const std::string script = take_flag(argc, argv, "server", E2S_BENCH_HTTP_SERVER);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;

  std::string pattern = (fs::temp_directory_path() / "e2s-hit-bench-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    std::fprintf(stderr, "cannot make a temp folder: %s\n", std::strerror(errno));
    return 1;
  }
  Fixture setup;
  setup.dir = pattern;
  int status = 0;
  try {
    write_file(setup.dir / "served" / kFile, 1 << 20);
    write_file(setup.dir / "served" / kNestedFile, 4096);
    Server server = start_server(python, script, setup.dir / "served");
    setup.root = "http://127.0.0.1:" + std::to_string(server.port) + "/";
    setup.options.cache_options.cache_storage = setup.dir / "cache";
    setup.package = std::make_unique<e2s::Package>(setup.root, setup.options);
    try {
      setup.package->resolve(kFile);  // the one real download
      setup.package->resolve(kNestedFile);
    } catch (...) {
      stop_server(server);
      throw;
    }
    stop_server(server);  // from here on, only hits can succeed
    fixture = &setup;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "e2s_cache_hit_bench: %s\n", e.what());
    status = 1;
  }
  fixture = nullptr;
  setup.package.reset();
  std::error_code ignored;
  fs::remove_all(setup.dir, ignored);
  return status;
}
