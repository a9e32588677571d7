// The `e2s` command: resolve and read files of model packages.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <cstring>
#include <map>
#include <mutex>
#include <iostream>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <string>
#include <vector>

#include "cache_command.hpp"
#include "e2s/e2s.hpp"
#include "env.hpp"
#include "http/client.hpp"
#include "http/retry.hpp"
#include "mirror/mirror.hpp"
#include "progress_bar.hpp"

namespace {

struct GlobalOptions {
  std::string cache_dir;
  double timeout_seconds = 0;
  bool quiet = false;
  bool verbose = false;
  int connections = 0;
  bool offline = false;
  bool refresh = false;
};

void configure_logging(const GlobalOptions& global) {
  // Logs go to stderr: stdout carries only results (paths, file bytes).
  auto logger = spdlog::stderr_color_mt("e2s");
  logger->set_pattern("e2s: %l: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(global.verbose ? spdlog::level::debug
                    : global.quiet ? spdlog::level::err
                                   : spdlog::level::warn);
}

e2s::PackageOptions package_options(const GlobalOptions& global, e2s::cli::ProgressBar& bar) {
  e2s::PackageOptions options;
  if (global.timeout_seconds > 0) {
    options.timeout = std::chrono::milliseconds(static_cast<std::int64_t>(global.timeout_seconds * 1000));
  }
  if (global.connections > 0) options.max_connections = global.connections;
  if (global.offline) options.offline = true;  // else the environment decides
  options.refresh = global.refresh;
  if (!global.cache_dir.empty()) options.cache_root = global.cache_dir;
  if (bar.enabled()) options.progress = [&bar](const e2s::Progress& p) { bar.update(p); };
  return options;
}

int fail(const std::string& message, int status) {
  std::fprintf(stderr, "e2s: error: %s\n", message.c_str());
  return status;
}

int run_resolve(const GlobalOptions& global, const std::string& root,
                const std::vector<std::string>& files) {
  e2s::cli::ProgressBar bar(stderr, !global.quiet && ::isatty(STDERR_FILENO));
  e2s::Package package(root, package_options(global, bar));
  // Files download in parallel; paths are printed only once all resolved, so
  // a script never reads a partial list from a command that failed.
  const std::vector<std::filesystem::path> paths = package.resolve_all(files);
  bar.clear();
  for (const auto& path : paths) std::printf("%s\n", path.c_str());
  return std::fflush(stdout) == 0 ? 0 : fail("cannot write to stdout", 1);
}

int run_cat(const GlobalOptions& global, const std::string& root, const std::string& file) {
  e2s::cli::ProgressBar bar(stderr, !global.quiet && ::isatty(STDERR_FILENO));
  e2s::Package package(root, package_options(global, bar));
  auto in = package.open(file);
  bar.clear();
  std::vector<char> buffer(package.options().block_size);
  while (*in) {
    in->read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const auto count = static_cast<std::size_t>(in->gcount());
    if (count > 0 && std::fwrite(buffer.data(), 1, count, stdout) != count) {
      return fail(std::string("cannot write to stdout: ") + std::strerror(errno), 1);
    }
  }
  if (in->bad()) return fail("read error on the cached copy of " + file, 1);
  return std::fflush(stdout) == 0 ? 0 : fail("cannot write to stdout", 1);
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (bytes >= 1024 && unit < 4) {
    bytes /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof(text), unit == 0 ? "%.0f %s" : "%.1f %s", bytes, units[unit]);
  return text;
}

// The whole package, or the files named or matched, into the cache; a
// summary on stdout. What was cached before counts as files, not as bytes
// transferred.
int run_fetch(const GlobalOptions& global, const std::string& root, const std::vector<std::string>& files,
              const std::vector<std::string>& include, const std::vector<std::string>& exclude) {
  e2s::cli::ProgressBar bar(stderr, !global.quiet && ::isatty(STDERR_FILENO));
  e2s::PackageOptions options = package_options(global, bar);
  std::mutex mutex;
  std::map<std::string, std::uint64_t> downloaded;  // file -> bytes received
  options.progress = [&](const e2s::Progress& progress) {
    if (bar.enabled()) bar.update(progress);
    std::lock_guard lock(mutex);
    downloaded[progress.file] = progress.bytes_done;
  };
  std::map<e2s::Origin, std::size_t> origins;  // where each file came from
  std::map<e2s::Origin, std::uint64_t> origin_bytes;
  options.on_resolved = [&](const e2s::Resolved& resolved) {
    std::lock_guard lock(mutex);
    ++origins[resolved.origin];
    origin_bytes[resolved.origin] += resolved.bytes;
  };
  e2s::Package package(root, options);
  const auto start = std::chrono::steady_clock::now();
  const std::vector<std::filesystem::path> paths =
      files.empty() ? package.fetch(include, exclude) : package.resolve_all(files);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  bar.clear();
  std::uint64_t total = 0, bytes = 0;
  for (const auto& path : paths) {
    std::error_code ec;
    total += std::filesystem::file_size(path, ec);
  }
  for (const auto& [file, done] : downloaded) bytes += done;
  if (paths.empty()) {
    std::printf("no file of %s matches\n", root.c_str());
    return 0;
  }
  std::printf("%zu files, %s in the cache at %s\n", paths.size(), human_bytes(static_cast<double>(total)).c_str(),
              package.cache().empty() ? root.c_str() : package.cache().c_str());
  std::printf("downloaded %zu files, %s in %.2f s (%s/s); %zu already cached\n", downloaded.size(),
              human_bytes(static_cast<double>(bytes)).c_str(), seconds,
              human_bytes(seconds > 0 ? static_cast<double>(bytes) / seconds : 0).c_str(),
              paths.size() - std::min(paths.size(), downloaded.size()));
  auto from = [&](e2s::Origin origin) {
    return std::to_string(origins[origin]) + " (" + std::to_string(origin_bytes[origin]) + " B)";
  };
  std::printf("from: cache %s, other caches %s, site mirror %s, upstream %s\n", from(e2s::Origin::cache).c_str(),
              from(e2s::Origin::neighbour).c_str(), from(e2s::Origin::mirror).c_str(),
              from(e2s::Origin::upstream).c_str());
  return std::fflush(stdout) == 0 ? 0 : fail("cannot write to stdout", 1);
}

// Fills the first writable site mirror with files of ROOT, from the cache
// where they are.
int run_mirror_push(const GlobalOptions& global, const std::string& root, const std::vector<std::string>& files,
                    const std::vector<std::string>& include, const std::vector<std::string>& exclude) {
  e2s::cli::ProgressBar bar(stderr, !global.quiet && ::isatty(STDERR_FILENO));
  e2s::PackageOptions options = package_options(global, bar);
  options.mirror.push = false;  // pushed below, every file, not only those fetched upstream
  e2s::Package package(root, options);
  const e2s::Package::MirrorPush pushed = package.push_to_mirror(files, include, exclude);
  bar.clear();
  std::printf("pushed %zu files (%s) of %s to the site mirror; %zu were there already\n", pushed.uploaded,
              human_bytes(static_cast<double>(pushed.bytes)).c_str(), root.c_str(), pushed.present);
  return std::fflush(stdout) == 0 ? 0 : fail("cannot write to stdout", 1);
}

// Every key of every mirror (SIZE<TAB>MIRROR<TAB>KEY): what a mirror holds,
// for all roots.
int run_mirror_ls_all(const GlobalOptions& global) {
  e2s::cli::ProgressBar no_bar(stderr, false);
  const e2s::PackageOptions options = package_options(global, no_bar);
  const e2s::detail::MirrorSettings settings = e2s::detail::mirror_settings(options.mirror);
  if (settings.urls.empty()) return fail("no site mirror is set; set E2S_MIRROR (see 'e2s --help')", 2);
  e2s::detail::http::Client client;
  e2s::detail::Retrier retrier(options.retry);
  const e2s::detail::StoreContext context{&client, &retrier, options.hf, options.ngc, options.s3, options.gcs};
  for (const std::string& url : settings.urls) {
    const auto mirror = e2s::detail::make_mirror(url, context);
    for (const std::string& key : mirror->list("")) {
      const auto copy = mirror->find(key);
      if (copy) std::printf("%llu\t%s\t%s\n", static_cast<unsigned long long>(copy->record.size), url.c_str(), key.c_str());
    }
  }
  return std::fflush(stdout) == 0 ? 0 : fail("cannot write to stdout", 1);
}

int run_mirror_ls(const GlobalOptions& global, const std::string& root) {
  if (root.empty()) return run_mirror_ls_all(global);
  e2s::cli::ProgressBar no_bar(stderr, false);
  e2s::Package package(root, package_options(global, no_bar));
  const std::vector<e2s::FileEntry> files = package.mirror_list();
  if (files.empty()) {
    return fail("no site mirror holds files of " + root + "; fill one with 'e2s mirror push " + root +
                    "' (E2S_MIRROR names the mirrors)",
                3);
  }
  for (const e2s::FileEntry& file : files) {
    std::printf("%s\t%s\n", file.size ? std::to_string(*file.size).c_str() : "-", file.path.c_str());
  }
  return std::fflush(stdout) == 0 ? 0 : fail("cannot write to stdout", 1);
}

int run_ls(const GlobalOptions& global, const std::string& root) {
  e2s::cli::ProgressBar no_bar(stderr, false);
  e2s::Package package(root, package_options(global, no_bar));
  for (const e2s::FileEntry& file : package.list()) {
    const std::string size = file.size ? std::to_string(*file.size) : "-";
    std::printf("%s\t%s\n", size.c_str(), file.path.c_str());
  }
  return std::fflush(stdout) == 0 ? 0 : fail("cannot write to stdout", 1);
}

}  // namespace

// Longer than most: CLI11 declares every subcommand and option in one
// scope, and `--help` follows the order written here.
int main(int argc, char** argv) {
  // A file-size limit (ulimit -f) must end a download with a clear error and
  // its temp file removed, not kill the process mid-write.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{
      "e2s: fetch model package files into a verified local cache.\n"
      "A package root is a folder: a local path, file://, http(s)://, hf://, ngc://models/..., "
      "s3:// or gs://.",
      "e2s"};
  app.set_version_flag("--version", std::string("e2s ") + e2s::kVersion);
  app.require_subcommand(1);

  GlobalOptions global;
  app.add_option("--cache-dir", global.cache_dir,
                 "Cache root (overrides EARTH2STUDIO_MODEL_CACHE / EARTH2STUDIO_CACHE)");
  app.add_option("--timeout", global.timeout_seconds,
                 "Give up on a file after SECONDS without progress, retries and their pauses counted "
                 "(default: EARTH2STUDIO_PACKAGE_TIMEOUT or 300). A connection that receives "
                 "nothing, or less than 1 KiB/s, for min(SECONDS, 30) is cut and resumed; a "
                 "Retry-After longer than the time left ends the transfer at once")
      ->type_name("SECONDS")
      ->check(CLI::Validator(
          [](const std::string& text) -> std::string {
            try {
              std::size_t used = 0;
              const double value = std::stod(text, &used);
              if (used == text.size() && value >= 0.001 && value <= 1e7) return {};
            } catch (const std::exception&) {
            }
            return "expected seconds from 0.001 to 10000000, got \"" + text + "\"";
          },
          ""));
  app.add_option("--connections", global.connections,
                 "Parallel connections per download and across files (1-16, default 16)")
      ->check(CLI::Range(1, 16));
  app.add_flag("--offline", global.offline,
               "No network: serve from the cache or fail with exit 7 (also EARTH2STUDIO_OFFLINE=1, "
               "and HF_HUB_OFFLINE=1 for hf:// roots)");
  app.add_flag("--refresh", global.refresh,
               "Check cached files against the server (a conditional request) and download "
               "only those that changed; pinned versions (HF commits, NGC versions) are not checked");
  app.add_flag("-q,--quiet", global.quiet, "No progress bar, errors only");
  app.add_flag("-v,--verbose", global.verbose, "Log what e2s does (cache hits, requests, retries)");
  app.footer(
      "Exit status: 0 ok; 2 usage or invalid URI/path; 3 not found; 4 unauthorized or forbidden;\n"
      "5 network failure or timeout after retries; 6 integrity (size or hash mismatch);\n"
      "7 offline and not cached; 1 anything else.\n\n"
      "Environment: EARTH2STUDIO_MODEL_CACHE > EARTH2STUDIO_CACHE (cache root, default\n"
      "~/.cache/earth2studio); EARTH2STUDIO_PACKAGE_TIMEOUT (seconds, default 300);\n"
      "EARTH2STUDIO_OFFLINE=1 (as --offline; HF_HUB_OFFLINE=1 for hf:// roots);\n"
      "CURL_CA_BUNDLE or SSL_CERT_FILE (CA bundle for https); http_proxy, https_proxy, no_proxy;\n"
      "E2S_LOCKS=0 (no download locks between processes, for filesystems whose locks\n"
      "misbehave); E2S_LOCK_STALE_SECONDS (a lock holder without progress for this long is\n"
      "passed, default 120); E2S_HF_CACHE=read|share|off (use, also fill, or ignore\n"
      "huggingface_hub's cache at HF_HUB_CACHE, default read); E2S_MIRROR (site mirrors:\n"
      "s3://bucket/prefix, http(s)://..., folders; comma-separated), E2S_MIRROR_PUSH=1 (upload\n"
      "what this node fetched upstream).");

  std::string root;
  std::vector<std::string> files;
  CLI::App* resolve = app.add_subcommand(
      "resolve", "Print the local path of each FILE of package ROOT, one per line, in order, "
                 "downloading what is not cached");
  resolve->fallthrough();
  resolve->add_option("ROOT", root, "Package root")->required();
  resolve->add_option("FILE", files, "File paths relative to ROOT")->required();

  std::string cat_file;
  CLI::App* cat = app.add_subcommand("cat", "Write the bytes of FILE of package ROOT to stdout");
  cat->fallthrough();
  cat->add_option("ROOT", root, "Package root")->required();
  cat->add_option("FILE", cat_file, "File path relative to ROOT")->required();

  std::vector<std::string> fetch_files, include, exclude;
  CLI::App* fetch = app.add_subcommand(
      "fetch", "Download package ROOT into the cache: every file of its listing, those matching "
               "--include and not --exclude, or the FILEs named; prints a summary");
  fetch->fallthrough();
  fetch->add_option("ROOT", root, "Package root")->required();
  fetch->add_option("FILE", fetch_files, "File paths relative to ROOT (default: the whole package)");
  fetch->add_option("--include", include, "Glob of files to fetch, e.g. '*.npy' or 'weights/*' (repeatable)")
      ->allow_extra_args(false);
  fetch->add_option("--exclude", exclude, "Glob of files to leave out (repeatable)")->allow_extra_args(false);
  fetch->footer("Prefetch on a login node, then run with --offline (or EARTH2STUDIO_OFFLINE=1) where\n"
                "there is no network:  e2s fetch hf://org/model --include '*.safetensors'");

  CLI::App* ls = app.add_subcommand(
      "ls", "List the files of package ROOT: SIZE<TAB>PATH per line, sorted by path "
            "(local, hf:// roots; plain http(s) has no listing)");
  ls->fallthrough();
  ls->add_option("ROOT", root, "Package root")->required();

  std::vector<std::string> push_files, push_include, push_exclude;
  CLI::App* mirror = app.add_subcommand("mirror", "Fill or list a site mirror (E2S_MIRROR): a shared, verified "
                                                  "store of files between the nodes and the upstream stores");
  mirror->fallthrough();
  mirror->require_subcommand(1);
  CLI::App* mirror_push = mirror->add_subcommand(
      "push", "Upload files of package ROOT (from the cache where they are, else fetched) to the first "
              "writable mirror in E2S_MIRROR, with their size and sha256; files already there are skipped");
  mirror_push->fallthrough();
  mirror_push->add_option("ROOT", root, "Package root")->required();
  mirror_push->add_option("FILE", push_files, "File paths relative to ROOT (default: the whole package)");
  mirror_push->add_option("--include", push_include, "Glob of files to push (repeatable)")->allow_extra_args(false);
  mirror_push->add_option("--exclude", push_exclude, "Glob of files to leave out (repeatable)")
      ->allow_extra_args(false);
  mirror_push->footer(
      "On a login node, before a job whose nodes have no internet:\n"
      "  E2S_MIRROR=s3://site-models/e2s e2s mirror push hf://org/model --include '*.safetensors'");
  CLI::App* mirror_ls = mirror->add_subcommand(
      "ls", "List what the first mirror that has any holds for package ROOT: SIZE<TAB>PATH per line; "
            "without ROOT, every file of every mirror: SIZE<TAB>MIRROR<TAB>KEY");
  mirror_ls->fallthrough();
  mirror_ls->add_option("ROOT", root, "Package root (default: everything)");

  e2s::cli::CacheCommand cache(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return fail(std::string(e.what()) + "; run 'e2s --help' for usage", 2);
  }

  configure_logging(global);

  try {
    if (resolve->parsed()) return run_resolve(global, root, files);
    if (ls->parsed()) return run_ls(global, root);
    if (mirror_push->parsed()) {
      if (!push_files.empty() && (!push_include.empty() || !push_exclude.empty())) {
        return fail("give FILEs or --include/--exclude, not both; see 'e2s mirror push --help'", 2);
      }
      return run_mirror_push(global, root, push_files, push_include, push_exclude);
    }
    if (mirror_ls->parsed()) return run_mirror_ls(global, root);
    if (cache.parsed()) {
      const std::filesystem::path cache_root =
          global.cache_dir.empty() ? e2s::Package::default_cache() : e2s::detail::absolute_folder(global.cache_dir);
      return cache.run(cache_root, global.quiet);
    }
    if (fetch->parsed()) {
      if (!fetch_files.empty() && (!include.empty() || !exclude.empty())) {
        return fail("give FILEs or --include/--exclude, not both; see 'e2s fetch --help'", 2);
      }
      return run_fetch(global, root, fetch_files, include, exclude);
    }
    return run_cat(global, root, cat_file);
  } catch (const e2s::Error& e) {
    return fail(e.what(), e2s::exit_status(e.code()));
  } catch (const std::exception& e) {
    return fail(e.what(), 1);
  }
}
