#include <fnmatch.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <unordered_map>
#include <spdlog/spdlog.h>

#include "cache/cache.hpp"
#include "cache/lock.hpp"
#include "e2s/error.hpp"
#include "e2s/package.hpp"
#include "env.hpp"
#include "http/client.hpp"
#include "http/retry.hpp"
#include "stores/store.hpp"
#include "transfer/download.hpp"
#include "transfer/hash.hpp"
#include "uri/location.hpp"

namespace e2s {
namespace {

namespace fs = std::filesystem;

// The default cache folder of a root: readable (the root's last segment) and
// unique (a hash of the whole root), so packages sharing the default cache
// never collide even when their files have the same names.
fs::path default_storage(const detail::Location& location) {
  std::string_view root = location.root;
  std::string name(root.substr(root.find_last_of('/') + 1));
  for (char& c : name) {
    const bool safe = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
    if (!safe) c = '_';
  }
  if (name.empty() || name == "." || name == "..") name = "package";
  return Package::default_cache("packages/" + name + "-" +
                                detail::sha256_hex(location.root).substr(0, 12));
}

constexpr int kMaxConnections = 16;

PackageOptions with_defaults(PackageOptions options, const detail::Location& location) {
  if (options.timeout.count() <= 0) {
    // huggingface_hub's own variable wins for the Hub (Earth2Studio leaves a
    // user's value in place).
    const auto hub = location.scheme == detail::Scheme::hf ? detail::hub_download_timeout() : std::nullopt;
    options.timeout = hub ? *hub : std::chrono::milliseconds(Package::default_timeout());
  }
  if (options.stall_timeout.count() <= 0 || options.stall_timeout > options.timeout) {
    options.stall_timeout = options.timeout;
  }
  if (options.block_size == 0) options.block_size = Package::default_blocksize();
  options.max_connections = std::clamp(options.max_connections, 1, kMaxConnections);
  if (options.ca_bundle.empty()) options.ca_bundle = detail::default_ca_bundle();
  if (!options.lock_downloads) options.lock_downloads = detail::default_lock_downloads();
  if (options.lock_stale_after.count() <= 0) options.lock_stale_after = detail::default_lock_stale_after();
  if (options.checkpoint_interval.count() <= 0) options.checkpoint_interval = detail::default_checkpoint_interval();
  return options;
}

}  // namespace

struct Package::Impl {
  Impl(std::string root_text, PackageOptions opts)
      : root(std::move(root_text)),
        location(detail::parse_root(root)),
        options(with_defaults(std::move(opts), location)) {
    remote = location.scheme != detail::Scheme::local;
    if (!options.offline && !remote) options.offline = false;  // local roots never need the network
    if (remote) {
      if (options.cache_options.cache_storage.empty()) {
        options.cache_options.cache_storage = default_storage(location);
      }
      // Absolute once, here: resolve() promises absolute paths.
      fs::path& storage = options.cache_options.cache_storage;
      storage = fs::absolute(storage).lexically_normal();
      if (!storage.has_filename() && storage.has_relative_path()) storage = storage.parent_path();
      // cache=false on a remote root still needs a local copy to hand back:
      // it means "never reuse what is cached", i.e. every resolve fetches.
      if (options.cache == false) options.cache_options.expiry_time = std::chrono::seconds(-1);
      if (!options.offline) options.offline = detail::default_offline(location.scheme == detail::Scheme::hf);
      cache.emplace(options.cache_options.cache_storage, options.cache_options);
    }
  }

  // The store and its HTTP client are made on first use, so that building a
  // Package (load_default_package) costs nothing and a cache hit needs neither.
  detail::Store& store() {
    std::lock_guard lock(store_mutex);
    if (!store_) {
      detail::http::ClientOptions client_options;
      client_options.stall_window = options.stall_timeout;
      client_options.min_rate = options.min_rate;
      client_options.ca_bundle = options.ca_bundle;
      client = std::make_unique<detail::http::Client>(client_options);
      retrier = std::make_unique<detail::Retrier>(options.retry,
                                                  detail::RetryBudget{options.timeout, options.min_rate});
      store_ = detail::make_store(location, {client.get(), retrier.get()});
    }
    return *store_;
  }

  // A file this Package resolved before, still unexpired and still the very
  // file (its identity): one lstat, no metadata read. This is what makes a
  // repeated resolve() in a model's hot path cost about a microsecond.
  std::optional<fs::path> remembered(std::string_view file_path) {
    std::shared_lock lock(hits_mutex);
    auto it = hits.find(file_path);
    if (it == hits.end() || std::chrono::system_clock::now() >= it->second.expires) return std::nullopt;
    // A copy written over it by another program, even of the same size,
    // has another identity.
    struct stat status {};
    if (::lstat(it->second.path.c_str(), &status) != 0 || !S_ISREG(status.st_mode) ||
        detail::identity_of(status) != it->second.identity) {
      return std::nullopt;
    }
    return it->second.path;
  }

  fs::path remember(std::string_view file_path, fs::path path, const detail::CacheEntry& entry) {
    if (!entry.data) return path;
    std::unique_lock lock(hits_mutex);
    hits.insert_or_assign(std::string(file_path), Hit{path, *entry.data, cache->expires(entry)});
    return path;
  }

  fs::path resolve(std::string_view file_path) {
    if (remote) {
      if (auto hit = remembered(file_path)) return *hit;
    }
    const std::string path = detail::validate_file_path(file_path, root);
    if (!remote) return detail::resolve_local(location, path);

    const std::string key = location.root + "/" + path;
    auto hit = cache->lookup_any(key, path);
    // A file at the final path that is not the one e2s wrote: still a hit
    // only when its bytes are the recorded ones.
    if (!hit) hit = cache->reverify(key, path);
    if (*options.offline) {
      if (!hit) {
        throw Error(Errc::offline_miss,
                    key + " is not in the cache at " + cache->storage().string() +
                        " and offline mode is on; fetch it first where the network is reachable: "
                        "e2s fetch " + root + " " + path,
                    key);
      }
      if (hit->expired) spdlog::warn("offline: serving {} although it expired", key);
      return remember(file_path, std::move(hit->path), hit->entry);
    }
    if (hit && !hit->expired) {
      if (!needs_revalidation(hit->entry)) {
        spdlog::debug("cache hit: {} -> {}", key, hit->path.string());
        return remember(file_path, std::move(hit->path), hit->entry);
      }
      if (still_current(path, key, hit->entry)) return remember(file_path, std::move(hit->path), hit->entry);
      return download(key, path, file_path, &hit->entry);
    }
    return download(key, path, file_path, nullptr);
  }

  // Whether a valid cached entry is to be checked against the server first.
  // The store is asked last: a cache hit that is not due needs none.
  bool needs_revalidation(const detail::CacheEntry& entry) {
    const bool due = options.refresh ||
                     (options.revalidate_after &&
                      std::chrono::system_clock::now() - entry.fetched_at > *options.revalidate_after);
    return due && !store().pinned();  // an HF commit or an NGC version never changes
  }

  // Asks the server whether `entry` is still its file; when it is, the entry
  // gets a new fetch time. An unreachable server leaves the cached copy in
  // use, with a warning: a freshness check must not break a working setup.
  bool still_current(const std::string& path, const std::string& key, detail::CacheEntry entry) {
    try {
      if (!store().unchanged(path, key, {entry.etag, entry.size, entry.version})) {
        spdlog::info("{} changed on the server; downloading it again", key);
        return false;
      }
    } catch (const Error& error) {
      if (error.code() != Errc::network && error.code() != Errc::timeout) throw;
      spdlog::warn("cannot check {} against the server ({}); using the cached copy", key, error.what());
      return true;
    }
    spdlog::debug("{} is unchanged on the server", key);
    entry.fetched_at = std::chrono::system_clock::now();
    try {
      cache->record(entry);
    } catch (const Error& error) {
      spdlog::debug("cannot record the check of {}: {}", key, error.what());  // a read-only cache
    }
    return true;
  }

  // A miss, or `replacing` changed on the server: one process downloads (the
  // lock), the others wait for its copy.
  fs::path download(const std::string& key, const std::string& path, std::string_view file_path,
                    const detail::CacheEntry* replacing) {
    detail::LockOptions lock_options;
    lock_options.enabled = *options.lock_downloads;
    lock_options.stale_after = options.lock_stale_after;
    lock_options.on_wait = [&key](const std::string& holder, bool this_process) {
      // Threads of one process waiting on each other is no news to the user.
      spdlog::log(this_process ? spdlog::level::debug : spdlog::level::warn, "waiting for {} downloading {}",
                  holder, key);
    };
    detail::DownloadLock lock = cache->lock(key, lock_options);
    auto hit = cache->lookup(key, path);
    if (hit && (replacing == nullptr || hit->entry.sha256 != replacing->sha256)) {
      // What the process we waited for fetched.
      spdlog::debug("cache hit after waiting: {} -> {}", key, hit->path.string());
      return remember(file_path, std::move(hit->path), hit->entry);
    }

    detail::Store& source = store();
    detail::RemoteFile file = source.stat(path, key);
    spdlog::debug("downloading {} ({} bytes)", key,
                  file.size ? std::to_string(*file.size) : std::string("unknown"));

    const detail::Cache::Temp temp = cache->claim_temp(key);
    detail::TransferContext context;
    context.client = client.get();
    context.retrier = retrier.get();
    context.max_connections = options.max_connections;
    context.connection_slots = &connection_slots;
    context.error_for = [&source, &key](const detail::http::Result& failed, int attempts) {
      return source.error_for(failed, key, attempts);
    };
    context.progress = [this, &path, &lock](std::uint64_t done, std::optional<std::uint64_t> total) {
      lock.heartbeat();
      if (options.progress) options.progress(Progress{path, done, total, total && done == *total});
    };
    context.resume = temp.partial;
    context.checkpoint_interval = options.checkpoint_interval;
    context.checkpoint = [this, &temp, &key](const detail::Partial& partial) {
      cache->save_journal(temp, key, partial);
    };

    std::optional<detail::Downloaded> downloaded;
    try {
      downloaded = detail::download_file(file, temp.data, context);
      detail::CacheEntry entry;
      entry.key = key;
      entry.file_path = path;
      entry.size = downloaded->size;
      entry.etag = downloaded->etag;
      entry.sha256 = downloaded->sha256;
      entry.version = file.version;
      entry.fetched_at = std::chrono::system_clock::now();
      fs::path final_path = cache->commit(temp, entry);
      cache->drop_temp(temp);
      spdlog::debug("cached {} at {}", key, final_path.string());
      return remember(file_path, std::move(final_path), entry);
    } catch (const detail::ForeignFile&) {
      // The final path holds another program's file. The download is whole
      // and verified: it is kept for when the path is free again.
      try {
        cache->save_journal(temp, key, detail::Partial{downloaded->size, file.etag, downloaded->served_etag,
                                                       {{0, downloaded->size}}});
        cache->release_temp(temp);
      } catch (const Error&) {
        cache->drop_temp(temp);
      }
      throw;
    } catch (const Error& error) {
      // Bytes that arrived intact stay for the next attempt when the failure
      // is the connection's; bad bytes (integrity) and local failures go.
      const bool resumable = error.code() == Errc::network || error.code() == Errc::timeout ||
                             error.code() == Errc::unauthorized;
      resumable ? cache->release_temp(temp) : cache->drop_temp(temp);
      throw;
    } catch (...) {
      cache->drop_temp(temp);
      throw;
    }
  }

  fs::path resolve_extracted(std::string_view file_path, const ExtractOptions& extract_options) {
    const fs::path archive = resolve(file_path);
    // What names the archive's content: its sha256 when cached, else (a local
    // file) its path, size and modification time.
    std::string identity;
    fs::path base;
    if (remote) {
      const std::string path = detail::validate_file_path(file_path, root);
      auto hit = cache->lookup(location.root + "/" + path, path);
      identity = hit ? hit->entry.sha256 : archive.string();
      base = cache->storage() / detail::Cache::kReservedFolder / "extracted";
    } else {
      struct stat status {};
      if (::stat(archive.c_str(), &status) != 0) {
        throw Error(Errc::io, "cannot read " + archive.string() + ": " + std::strerror(errno), root);
      }
      identity = fs::absolute(archive).string() + "\n" + std::to_string(status.st_size) + "\n" +
                 std::to_string(status.st_mtim.tv_sec) + "." + std::to_string(status.st_mtim.tv_nsec);
      base = Package::default_cache("extracted");
    }
    const fs::path folder =
        base / (archive.filename().string() + "-" + detail::sha256_hex(identity).substr(0, 16));
    if (is_folder(folder)) return folder;

    std::error_code ec;
    fs::create_directories(base, ec);
    if (ec) {
      throw Error(Errc::io,
                  "cannot create " + base.string() + " to extract " + archive.filename().string() +
                      " into: " + ec.message() + "; choose a writable cache with --cache-dir or "
                      "EARTH2STUDIO_CACHE",
                  base.string());
    }
    // One process extracts; the others wait for its folder.
    detail::LockOptions lock_options;
    lock_options.enabled = *options.lock_downloads;
    lock_options.stale_after = options.lock_stale_after;
    lock_options.on_wait = [&archive](const std::string& holder, bool this_process) {
      spdlog::log(this_process ? spdlog::level::debug : spdlog::level::warn, "waiting for {} extracting {}",
                  holder, archive.filename().string());
    };
    fs::path lock_file = folder;
    lock_file += ".lock";
    detail::DownloadLock lock = detail::DownloadLock::acquire(lock_file, lock_options);
    if (!is_folder(folder)) {
      spdlog::debug("extracting {} into {}", archive.string(), folder.string());
      extract_archive(archive, folder, extract_options);
    }
    return folder;
  }

  std::vector<fs::path> fetch(const std::vector<std::string>& include, const std::vector<std::string>& exclude) {
    auto matches_any = [](const std::vector<std::string>& globs, const std::string& path) {
      return std::any_of(globs.begin(), globs.end(), [&path](const std::string& glob) {
        return ::fnmatch(glob.c_str(), path.c_str(), 0) == 0;  // '*' crosses '/', as Python's fnmatch
      });
    };
    std::vector<std::string> wanted;
    for (const FileEntry& file : list()) {
      if ((include.empty() || matches_any(include, file.path)) && !matches_any(exclude, file.path)) {
        wanted.push_back(file.path);
      }
    }
    return resolve_all(wanted);
  }

  static bool is_folder(const fs::path& path) {
    std::error_code ec;
    return fs::is_directory(fs::symlink_status(path, ec));
  }

  std::vector<fs::path> resolve_all(const std::vector<std::string>& file_paths) {
    // Each file once, however often it is named: the same FILE twice is one
    // resolve, not two threads waiting for each other.
    std::vector<std::string> distinct;
    std::vector<std::size_t> slot(file_paths.size());
    std::unordered_map<std::string_view, std::size_t> seen;
    for (std::size_t i = 0; i < file_paths.size(); ++i) {
      const auto [it, fresh] = seen.try_emplace(file_paths[i], distinct.size());
      if (fresh) distinct.push_back(file_paths[i]);
      slot[i] = it->second;
    }
    std::vector<fs::path> resolved(distinct.size());
    std::vector<std::exception_ptr> errors(distinct.size());
    std::atomic<std::size_t> next{0};
    auto work = [&] {
      for (std::size_t i = next++; i < distinct.size(); i = next++) {
        try {
          resolved[i] = resolve(distinct[i]);
        } catch (...) {
          errors[i] = std::current_exception();
        }
      }
    };
    // Files in parallel, each with its own byte ranges: the connection slots
    // keep the requests in flight to max_connections in all.
    const std::size_t threads =
        std::min<std::size_t>(distinct.size(), static_cast<std::size_t>(options.max_connections));
    std::vector<std::thread> workers;
    for (std::size_t i = 1; i < threads; ++i) workers.emplace_back(work);
    work();
    for (auto& worker : workers) worker.join();
    std::vector<fs::path> paths(file_paths.size());
    for (std::size_t i = 0; i < file_paths.size(); ++i) {
      if (errors[slot[i]]) std::rethrow_exception(errors[slot[i]]);  // the first failure in the order given
      paths[i] = resolved[slot[i]];
    }
    return paths;
  }

  std::vector<FileEntry> list() {
    std::vector<FileEntry> files;
    if (!remote) {
      files = detail::list_local(location);
    } else if (*options.offline) {
      throw Error(Errc::offline_miss,
                  "cannot list " + root + " in offline mode: listing asks the server; run "
                  "with offline mode off",
                  root);
    } else {
      files = store().list(root);
      // A listing is the server's word: a name that resolve() would refuse
      // (an S3 key "../x") is left out rather than handed to the caller.
      std::erase_if(files, [this](const FileEntry& file) {
        bool usable = false;
        try {
          usable = detail::validate_file_path(file.path, root) == file.path;
        } catch (const Error&) {
        }
        if (!usable) {
          spdlog::warn("{}: the listing names \"{}\", which is not a file path of the package; "
                       "left out", root, file.path);
        }
        return !usable;
      });
    }
    std::sort(files.begin(), files.end(),
              [](const FileEntry& a, const FileEntry& b) { return a.path < b.path; });
    return files;
  }

  std::string root;
  detail::Location location;
  PackageOptions options;
  bool remote = false;
  std::optional<detail::Cache> cache;
  const fs::path no_cache;

  // Every request of this package's downloads holds one: parallel files and
  // parallel parts together keep to max_connections.
  std::counting_semaphore<16> connection_slots{options.max_connections};

  struct Hit {
    fs::path path;
    detail::FileIdentity identity;
    std::chrono::system_clock::time_point expires;
  };
  // Heterogeneous lookup: resolve(string_view) finds without allocating.
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const noexcept {
      return std::hash<std::string_view>{}(text);
    }
  };
  std::shared_mutex hits_mutex;
  std::unordered_map<std::string, Hit, StringHash, std::equal_to<>> hits;

  std::mutex store_mutex;
  std::unique_ptr<detail::http::Client> client;
  std::unique_ptr<detail::Retrier> retrier;
  std::unique_ptr<detail::Store> store_;
};

Package::Package(std::string root, PackageOptions options)
    : impl_(std::make_unique<Impl>(std::move(root), std::move(options))) {}
Package::~Package() = default;
Package::Package(Package&&) noexcept = default;
Package& Package::operator=(Package&&) noexcept = default;

fs::path Package::resolve(std::string_view file_path) { return impl_->resolve(file_path); }

std::vector<fs::path> Package::resolve_all(const std::vector<std::string>& file_paths) {
  return impl_->resolve_all(file_paths);
}

std::vector<FileEntry> Package::list() { return impl_->list(); }

std::vector<fs::path> Package::fetch(const std::vector<std::string>& include,
                                     const std::vector<std::string>& exclude) {
  return impl_->fetch(include, exclude);
}

fs::path Package::resolve_extracted(std::string_view file_path, const ExtractOptions& options) {
  return impl_->resolve_extracted(file_path, options);
}

std::unique_ptr<std::istream> Package::open(std::string_view file_path) {
  fs::path path = resolve(file_path);
  auto stream = std::make_unique<std::ifstream>(path, std::ios::binary);
  if (!*stream) {
    throw Error(Errc::io,
                "cannot open " + path.string() + " for reading; check its permissions",
                impl_->root + "/" + std::string(file_path));
  }
  return stream;
}

fs::path Package::get(std::string_view file_path) { return resolve(file_path); }

const std::string& Package::root() const noexcept { return impl_->root; }

const fs::path& Package::cache() const noexcept {
  return impl_->cache ? impl_->cache->storage() : impl_->no_cache;
}

const PackageOptions& Package::options() const noexcept { return impl_->options; }

}  // namespace e2s
