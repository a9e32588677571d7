#include "cache_command.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <map>
#include <set>
#include <spdlog/spdlog.h>
#include <string>
#include <vector>

#include "cache/inventory.hpp"
#include "util/text.hpp"
#include "e2s/error.hpp"
#include "e2s/package.hpp"
#include "uri/location.hpp"

namespace e2s::cli {
namespace {

namespace fs = std::filesystem;
using detail::CachedPackage;
using detail::DataState;
using detail::ExtractedFolder;
using detail::Inventory;
using detail::StoredFile;
using Verdict = detail::Verification::Verdict;

// Every result line goes through here, so a closed stdout ends the command
// with an error instead of output silently lost.
void out(const std::string& line) {
  if (std::fputs(line.c_str(), stdout) < 0 || std::fputc('\n', stdout) < 0) {
    throw Error(Errc::io, "cannot write to stdout");
  }
}

void flush() {
  if (std::fflush(stdout) != 0) throw Error(Errc::io, "cannot write to stdout");
}

std::string plural(std::size_t count, const char* one, const char* many) {
  return std::to_string(count) + " " + (count == 1 ? one : many);
}

// The inventory of the cache root; damaged metadata is reported here unless
// the caller reports it itself.
Inventory scan(const std::filesystem::path& cache_root, bool warn_damaged = true) {
  Inventory inventory = detail::scan_inventory(cache_root);
  for (const detail::DamagedEntry& damaged : inventory.damaged) {
    if (warn_damaged) spdlog::warn("skipping damaged metadata {}: {}", damaged.meta.string(), damaged.reason);
  }
  return inventory;
}

// What a package line shows: packages with something on disk.
bool shown(const CachedPackage& package) {
  if (package.present_files() > 0 || !package.extracted.empty()) return true;
  for (const StoredFile& file : package.files) {
    if (!file.extracted.empty()) return true;
  }
  return false;
}

// The packages cached for ROOT (as keys spell roots); Error(not_found) when
// there is none.
std::vector<const CachedPackage*> packages_of(const Inventory& inventory, const std::string& root_text) {
  const std::string root = detail::parse_root(root_text).root;
  std::vector<const CachedPackage*> found;
  for (const CachedPackage& package : inventory.packages) {
    if (package.root == root && !package.root.empty()) found.push_back(&package);
  }
  if (found.empty()) {
    throw Error(Errc::not_found,
                "nothing is cached for " + root + " in " + inventory.cache_root.string() +
                    "; 'e2s cache ls' lists the cached packages (choose another cache with --cache-dir)",
                root);
  }
  return found;
}

nlohmann::ordered_json extracted_json(const ExtractedFolder& folder) {
  return {{"folder", folder.path.string()},
          {"archive", folder.archive_name},
          {"bytes", folder.bytes},
          {"last_used", detail::iso8601_utc(folder.last_used)}};
}

// ", 2 shared with the hf cache": how many of a package's files are the
// very inodes of another cache's files (which removing e2s's copy keeps).
std::string sharing_note(const CachedPackage& package) {
  std::map<std::string, std::size_t> shared;
  for (const StoredFile& file : package.files) {
    if (file.state == DataState::present && file.entry.linked) ++shared[file.entry.linked->cache];
  }
  std::string note;
  for (const auto& [cache, count] : shared) {
    note += ", " + std::to_string(count) + " shared with the " + cache + " cache";
  }
  return note;
}

// What removing `file` frees: nothing when another cache keeps its bytes.
std::uint64_t freed_by(const StoredFile& file, bool include_hf_cache) {
  const auto& linked = file.entry.linked;
  if (linked && !(include_hf_cache && linked->cache == "hf")) return 0;
  return file.bytes;
}

int run_ls(const std::filesystem::path& cache_root, bool json) {
  const Inventory inventory = scan(cache_root);
  nlohmann::ordered_json packages = nlohmann::ordered_json::array();
  for (const CachedPackage& package : inventory.packages) {
    if (!shown(package)) continue;
    if (!json) {
      out((package.root.empty() ? "-" : package.root) + "\t" +
          plural(package.present_files(), "file", "files") + sharing_note(package) + "\t" +
          detail::human_bytes(package.bytes()) +
          "\t" + detail::iso8601_utc(package.last_used()) + "\t" + package.folder.string());
      continue;
    }
    nlohmann::ordered_json entries = nlohmann::ordered_json::array();
    nlohmann::ordered_json extracted = nlohmann::ordered_json::array();
    for (const StoredFile& file : package.files) {
      for (const ExtractedFolder& folder : file.extracted) extracted.push_back(extracted_json(folder));
      if (file.state == DataState::missing) continue;
      nlohmann::ordered_json linked = nullptr;
      if (file.entry.linked) linked = {{"cache", file.entry.linked->cache}, {"path", file.entry.linked->path.string()}};
      entries.push_back({{"file", file.entry.file_path},
                         {"state", file.state == DataState::present ? "cached" : "changed"},
                         {"path", file.data.string()},
                         {"bytes", file.bytes},
                         {"fetched_at", detail::iso8601_utc(file.entry.fetched_at)},
                         {"last_used", detail::iso8601_utc(file.last_used)},
                         {"sha256", file.entry.sha256},
                         {"etag", file.entry.etag},
                         {"version", file.entry.version},
                         {"linked", std::move(linked)}});
    }
    for (const ExtractedFolder& folder : package.extracted) extracted.push_back(extracted_json(folder));
    packages.push_back({{"root", package.root},
                        {"folder", package.folder.string()},
                        {"files", package.present_files()},
                        {"bytes", package.bytes()},
                        {"last_used", detail::iso8601_utc(package.last_used())},
                        {"entries", std::move(entries)},
                        {"extracted", std::move(extracted)}});
  }
  // Header values may hold any byte: shown with U+FFFD where not UTF-8.
  if (json) out(packages.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
  flush();
  return 0;
}

// A line on stderr that rewrites itself, for long verifications on a terminal.
class ProgressLine {
 public:
  explicit ProgressLine(bool enabled) : enabled_(enabled) {}
  ~ProgressLine() { clear(); }

  void show(const std::string& text, bool force = false) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (!force && now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    std::fprintf(stderr, "\r\033[K%s", text.c_str());
    std::fflush(stderr);
    shown_ = true;
  }

  void clear() {
    if (!shown_) return;
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
    shown_ = false;
  }

 private:
  bool enabled_;
  bool shown_ = false;
  std::chrono::steady_clock::time_point last_{};
};

std::string label(Verdict verdict) {
  switch (verdict) {
    case Verdict::corrupt: return "corrupt";
    case Verdict::changed: return "changed";
    case Verdict::missing: return "missing";
    case Verdict::ok: break;
  }
  return "ok";
}

// Longer than most: one pass over the inventory that hashes, reports and
// (with --remove) removes, so that a file is read once and judged once.
int run_verify(const std::filesystem::path& cache_root, const std::string& root, bool remove, bool quiet) {
  const Inventory inventory = scan(cache_root, /*warn_damaged=*/!root.empty());
  std::vector<const CachedPackage*> packages;
  if (root.empty()) {
    for (const CachedPackage& package : inventory.packages) packages.push_back(&package);
  } else {
    packages = packages_of(inventory, root);
  }
  std::vector<const StoredFile*> files;
  std::uint64_t total_bytes = 0;
  for (const CachedPackage* package : packages) {
    for (const StoredFile& file : package->files) {
      files.push_back(&file);
      if (file.state == DataState::present) total_bytes += file.bytes;
    }
  }

  ProgressLine progress(!quiet && ::isatty(STDERR_FILENO));
  std::size_t problems = 0;
  std::size_t removed = 0;
  std::size_t changed = 0;  // another program's bytes: never removed
  std::uint64_t done_bytes = 0;
  for (std::size_t i = 0; i < files.size(); ++i) {
    const StoredFile& file = *files[i];
    const std::string counter = "verifying " + std::to_string(i + 1) + "/" + std::to_string(files.size()) + ", ";
    progress.show(counter + detail::human_bytes(done_bytes) + " of " + detail::human_bytes(total_bytes));
    const detail::Verification result = detail::verify_file(inventory.cache_root, file, [&](std::uint64_t bytes) {
      progress.show(counter + detail::human_bytes(done_bytes + bytes) + " of " + detail::human_bytes(total_bytes));
    });
    if (file.state == DataState::present) done_bytes += file.bytes;
    if (result.verdict == Verdict::ok) {
      if (!result.detail.empty()) spdlog::info("{} ({}): {}", file.entry.key, file.data.string(), result.detail);
      continue;
    }
    ++problems;
    std::string line = label(result.verdict) + ": " + file.entry.key + " (" + file.data.string() + "): " + result.detail;
    if (result.verdict == Verdict::changed) {
      ++changed;
      if (remove) line += "; left in place: e2s removes only files it wrote";
    } else if (remove) {
      switch (detail::remove_file(inventory.cache_root, file)) {
        case detail::Removal::removed:
          ++removed;
          line += "; removed";
          break;
        case detail::Removal::fetched_again:
          line += "; kept: fetched again since the check";
          break;
        case detail::Removal::changed:
          ++changed;
          line += "; left in place: changed by another program since the check";
          break;
      }
    }
    progress.clear();
    out(line);
  }
  progress.clear();
  if (root.empty()) {
    for (const detail::DamagedEntry& damaged : inventory.damaged) {
      ++problems;
      std::string line = "damaged metadata: " + damaged.meta.string() + ": " + damaged.reason;
      if (remove) {
        detail::remove_damaged(inventory.cache_root, damaged);
        ++removed;
        line += "; removed";
      }
      out(line);
    }
  }
  out("verified " + plural(files.size(), "file", "files") + " (" + detail::human_bytes(done_bytes) + "): " +
      (problems == 0 ? std::string("all intact")
                     : plural(problems, "problem", "problems") + ", " + std::to_string(removed) + " removed"));
  flush();
  const std::size_t fixable = problems - removed - changed;
  if (fixable > 0 || changed > 0) {
    std::string message;
    if (fixable > 0) {
      message = plural(fixable, "cached file does", "cached files do") +
                " not match the metadata; 'e2s cache verify --remove' deletes them (they are fetched again "
                "when next used)";
    }
    if (changed > 0) {
      message += (message.empty() ? "" : "; ") + plural(changed, "file was", "files were") +
                 " changed by another program since e2s cached them: e2s leaves them in place; move or "
                 "delete them, and e2s fetches them again";
    }
    throw Error(Errc::integrity, message, root);
  }
  return 0;
}

std::string describe(const detail::PruneItem& item) {
  const std::string used = "last used " + detail::iso8601_utc(item.last_used);
  if (item.file) {
    return item.file->entry.key + " (" + detail::human_bytes(item.bytes) + ", " + used + ")";
  }
  return "extracted folder " + item.extracted->path.string() + " (" + detail::human_bytes(item.bytes) + ", " +
         used + ")";
}

std::uint64_t total_bytes(const Inventory& inventory) {
  std::uint64_t total = 0;
  for (const CachedPackage& package : inventory.packages) total += package.bytes();
  return total;
}

int run_prune(const std::filesystem::path& cache_root, const std::string& older_than, const std::string& max_size,
              bool dry_run, bool include_hf_cache) {
  const Inventory inventory = scan(cache_root);
  detail::PruneOptions options;
  if (!older_than.empty()) options.older_than = detail::parse_duration(older_than);
  if (!max_size.empty()) options.max_bytes = detail::parse_byte_size(max_size);
  std::size_t files = 0, folders = 0;
  std::uint64_t freed = 0;
  std::set<fs::path> touched;
  for (const CachedPackage& package : inventory.packages) {
    for (const StoredFile& file : package.files) {
      if (file.state == DataState::changed) {
        out("left in place: " + file.entry.key + " (" + file.data.string() +
            "): changed by another program since e2s cached it");
      }
    }
  }
  for (const detail::PruneItem& item : detail::plan_prune(inventory, options)) {
    const detail::Removal removal =
        dry_run || !item.file ? detail::Removal::removed
                              : detail::remove_file(inventory.cache_root, *item.file,
                                                    {.include_hf_cache = include_hf_cache});
    if (dry_run) {
      out("would remove " + describe(item));
    } else if (removal == detail::Removal::fetched_again) {
      out("kept " + item.file->entry.key + ": fetched again since the scan");
      continue;
    } else if (removal == detail::Removal::changed) {
      out("left in place: " + item.file->entry.key + " (" + item.file->data.string() +
          "): changed by another program since the scan");
      continue;
    } else {
      if (item.extracted) detail::remove_extracted(inventory.cache_root, *item.extracted);
      out("removed " + describe(item));
    }
    (item.file ? files : folders) += 1;
    freed += item.file ? freed_by(*item.file, include_hf_cache) : item.bytes;
    touched.insert(item.package->folder);
  }
  if (!dry_run) {
    for (const fs::path& folder : touched) {
      if (detail::remove_folder_if_unused(inventory.cache_root, folder)) out("removed folder " + folder.string());
    }
  }
  std::string what = plural(files, "file", "files");
  if (folders > 0) what += " and " + plural(folders, "extracted folder", "extracted folders");
  out((dry_run ? "would remove " + what + ", freeing " : "removed " + what + ", freed ") +
      detail::human_bytes(freed) + "; the cache holds " + detail::human_bytes(total_bytes(inventory) - freed) +
      (dry_run ? " after" : ""));
  flush();
  return 0;
}

int run_rm(const std::filesystem::path& cache_root, const std::string& root, bool include_hf_cache) {
  const Inventory inventory = scan(cache_root);
  const std::vector<const CachedPackage*> packages = packages_of(inventory, root);
  std::size_t files = 0;
  std::uint64_t freed = 0;
  for (const CachedPackage* package : packages) {
    for (const StoredFile& file : package->files) {
      // Even when fetched again since the scan: rm means all of ROOT. A file
      // another program changed stays; e2s only stops vouching for it.
      const detail::Removal removal =
          detail::remove_file(inventory.cache_root, file,
                              {.keep_if_fetched_again = false, .forget_changed = true,
                               .include_hf_cache = include_hf_cache});
      if (removal == detail::Removal::changed) {
        out("left " + file.data.string() + " in place: changed by another program since e2s cached it; "
            "removed e2s's record of " + file.entry.key);
      } else if (file.state == DataState::missing) {
        out("removed the metadata of " + file.entry.key + " (its file was missing)");
      } else {
        const auto& linked = file.entry.linked;
        const bool kept = linked && !(include_hf_cache && linked->cache == "hf");
        out("removed " + file.entry.key + " (" + file.data.string() + ", " + detail::human_bytes(file.bytes) +
            (kept ? "; its bytes stay in the " + linked->cache + " cache at " + linked->path.string() : "") + ")");
        ++files;
        freed += freed_by(file, include_hf_cache);
      }
      for (const ExtractedFolder& folder : file.extracted) {
        out("removed extracted folder " + folder.path.string() + " (" + detail::human_bytes(folder.bytes) + ")");
        freed += folder.bytes;
      }
    }
    for (const ExtractedFolder& folder : package->extracted) {
      detail::remove_extracted(inventory.cache_root, folder);
      out("removed extracted folder " + folder.path.string() + " (" + detail::human_bytes(folder.bytes) + ")");
      freed += folder.bytes;
    }
    if (detail::remove_folder_if_unused(inventory.cache_root, package->folder)) {
      out("removed folder " + package->folder.string());
    }
  }
  out("removed " + plural(files, "file", "files") + " of " + packages.front()->root + ", freed " +
      detail::human_bytes(freed));
  flush();
  return 0;
}

CLI::Validator validator(bool (*valid)(const std::string&), const std::string& name, const std::string& hint) {
  return CLI::Validator(
      [valid, hint](std::string& text) { return valid(text) ? std::string() : "\"" + text + "\" is not " + hint; },
      name);
}

}  // namespace

struct CacheCommand::Options {
  CLI::App* cache = nullptr;
  CLI::App* ls = nullptr;
  CLI::App* verify = nullptr;
  CLI::App* prune = nullptr;
  CLI::App* rm = nullptr;
  bool json = false;
  std::string root;
  bool remove = false;
  std::string older_than;
  std::string max_size;
  bool dry_run = false;
  bool include_hf_cache = false;
};

CacheCommand::CacheCommand(CLI::App& app) : options_(std::make_unique<Options>()) {
  Options& o = *options_;
  o.cache = app.add_subcommand("cache", "List, verify, prune or remove what the cache holds");
  o.cache->fallthrough();
  o.cache->require_subcommand(1);
  o.cache->footer(
      "The cache root is --cache-dir, else EARTH2STUDIO_MODEL_CACHE, else EARTH2STUDIO_CACHE,\n"
      "else ~/.cache/earth2studio. A removed file is fetched again when next used.\n\n"
      "Examples:\n"
      "  e2s cache ls                                  one line per package\n"
      "  e2s cache ls --json                           packages and their files as JSON\n"
      "  e2s cache verify                              re-hash every cached file\n"
      "  e2s cache verify hf://ns/model --remove       ... of one package; delete bad files\n"
      "  e2s cache prune --older-than 30d              remove what was not used for 30 days\n"
      "  e2s cache prune --max-size 10G --dry-run      what would go to fit in 10 GiB\n"
      "  e2s cache rm https://example.org/models/tiny  remove one package");

  o.ls = o.cache->add_subcommand(
      "ls", "One line per cached package: ROOT, files, size, last used (UTC), folder (tab-separated)");
  o.ls->fallthrough();
  o.ls->add_flag("--json", o.json,
                 "A JSON array instead: root, folder, files, bytes, last_used, entries (file, path, bytes, "
                 "fetched_at, last_used, sha256, etag, version, linked: another cache's file of the same inode) and "
                 "extracted folders");
  o.ls->footer("Examples:\n  e2s cache ls\n  e2s --cache-dir /shared/cache cache ls --json");

  o.verify = o.cache->add_subcommand(
      "verify", "Re-hash cached files against their metadata (size and SHA-256); print each corrupt, "
                "missing or changed one (changed: another program rewrote it). Exit 6 when problems remain");
  o.verify->fallthrough();
  o.verify->add_option("ROOT", o.root, "Only the files of this package root (default: every package)");
  o.verify->add_flag("--remove", o.remove,
                     "Delete corrupt and missing files' records and data (fetched again when next used); "
                     "files another program changed are never deleted");
  o.verify->footer("Examples:\n  e2s cache verify\n  e2s cache verify https://example.org/models/tiny --remove");

  o.prune = o.cache->add_subcommand(
      "prune", "Remove cached files, least recently used first (by fetch time or last access), with the "
               "archives' extracted folders; files another program changed are left in place. Needs "
               "--older-than, --max-size or both");
  o.prune->fallthrough();
  o.prune->add_option("--older-than", o.older_than,
                      "Remove what was not used for this long: 45s, 90m, 12h, 30d, 2w")
      ->check(validator([](const std::string& text) { return detail::parse_duration(text).has_value(); },
                        "DURATION", "a duration such as 45s, 90m, 12h, 30d or 2w"));
  o.prune->add_option("--max-size", o.max_size,
                      "Then remove the least recently used until the cache holds at most this: bytes, or "
                      "500M, 10G, 1.5GiB (K/M/G/T and KiB... are 1024-based, KB/MB/GB/TB 1000-based)")
      ->check(validator([](const std::string& text) { return detail::parse_byte_size(text).has_value(); },
                        "SIZE", "a size such as 1048576, 500M, 10G or 1.5GiB"));
  o.prune->add_flag("--dry-run", o.dry_run, "Print what would be removed; remove nothing");
  o.prune->add_flag("--include-hf-cache", o.include_hf_cache,
                    "Also delete the Hugging Face cache's blob of a file shared with it (else only e2s's "
                    "name goes, and the bytes stay for huggingface_hub)");
  o.prune->callback([&o] {
    if (o.older_than.empty() && o.max_size.empty()) {
      throw CLI::ValidationError("prune", "give --older-than, --max-size or both");
    }
  });
  o.prune->footer(
      "Examples:\n  e2s cache prune --older-than 30d\n  e2s cache prune --max-size 10G --dry-run\n"
      "  e2s cache prune --older-than 90d --max-size 500GiB");

  o.rm = o.cache->add_subcommand(
      "rm", "Remove every cached file of package ROOT, its extracted folders, and its folder when empty; "
            "a file another program changed stays (only e2s's record of it goes). Exit 3 when nothing is "
            "cached for ROOT");
  o.rm->fallthrough();
  o.rm->add_option("ROOT", o.root, "Package root, as given to resolve")->required();
  o.rm->add_flag("--include-hf-cache", o.include_hf_cache,
                 "Also delete the Hugging Face cache's blobs (and snapshot links) of files shared with it; "
                 "Earth2Studio's files are never deleted");
  o.rm->footer("Examples:\n  e2s cache rm hf://ns/model@main\n  e2s cache rm https://example.org/models/tiny");
}

CacheCommand::~CacheCommand() = default;

bool CacheCommand::parsed() const { return options_->cache->parsed(); }

int CacheCommand::run(const std::filesystem::path& cache_root, bool quiet) {
  const Options& o = *options_;
  if (o.ls->parsed()) return run_ls(cache_root, o.json);
  if (o.verify->parsed()) return run_verify(cache_root, o.root, o.remove, quiet);
  if (o.prune->parsed()) return run_prune(cache_root, o.older_than, o.max_size, o.dry_run, o.include_hf_cache);
  return run_rm(cache_root, o.root, o.include_hf_cache);
}

}  // namespace e2s::cli
