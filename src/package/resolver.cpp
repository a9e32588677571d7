#include "package/resolver.hpp"

#include <sys/stat.h>


#include "e2s/error.hpp"
#include "package/defaults.hpp"
#include "transfer/download.hpp"
#include "log.hpp"

namespace e2s::detail {

namespace fs = std::filesystem;


Resolver::Resolver(const Location& location, const PackageOptions& options)
    : location_(location),
      options_(options),
      cache_(options.cache_options.cache_storage, options.cache_options, options.clock),
      neighbours_(location, options),
      connection_slots_(options.max_connections) {}

Store& Resolver::store() {
  std::lock_guard lock(store_mutex_);
  if (!store_) {
    http::ClientOptions client_options;
    client_options.stall_window = options_.stall_timeout;
    client_options.min_rate = options_.min_rate;
    client_options.ca_bundle = options_.ca_bundle.value_or(fs::path());
    client_ = std::make_unique<http::Client>(client_options);
    retrier_ = std::make_unique<Retrier>(options_.retry, RetryBudget{*options_.timeout, options_.min_rate});
    store_ = make_store(location_, StoreContext{client_.get(), retrier_.get(), options_.hf, options_.ngc,
                                                options_.s3, options_.gcs});
  }
  return *store_;
}

// A file this resolver handed out before, still unexpired and still the very
// file (its identity): one lstat, no metadata read. This is what makes a
// repeated resolve() in a model's hot path cost about a microsecond.
std::optional<fs::path> Resolver::remembered(std::string_view file_path) {
  std::shared_lock lock(hits_mutex_);
  auto it = hits_.find(file_path);
  if (it == hits_.end() || options_.clock() >= it->second.expires) return std::nullopt;
  // A copy written over it by another program, even of the same size, has
  // another identity.
  struct stat status {};
  if (::lstat(it->second.path.c_str(), &status) != 0 || !S_ISREG(status.st_mode) ||
      identity_of(status) != it->second.identity) {
    return std::nullopt;
  }
  return it->second.path;
}

fs::path Resolver::remember(std::string_view file_path, fs::path path, const CacheEntry& entry) {
  if (!entry.data) return path;
  std::unique_lock lock(hits_mutex_);
  hits_.insert_or_assign(std::string(file_path), Hit{path, *entry.data, cache_.expires(entry)});
  return path;
}

fs::path Resolver::resolve(std::string_view file_path) {
  if (auto hit = remembered(file_path)) return *hit;
  const std::string path = validate_file_path(file_path, location_.root);
  const std::string key = location_.root + "/" + path;
  auto hit = cache_.lookup_any(key, path);
  // A file at the final path that is not the one e2s wrote: still a hit only
  // when its bytes are the recorded ones.
  if (!hit) hit = cache_.reverify(key, path);
  if (*options_.offline) {
    if (!hit) return offline_miss(key, path, file_path);
    if (hit->expired) log::warn("offline: serving {} although it expired", key);
    return remember(file_path, std::move(hit->path), hit->entry);
  }
  if (hit && !hit->expired) {
    if (!needs_revalidation(hit->entry)) {
      log::debug("cache hit: {} -> {}", key, hit->path.string());
      return remember(file_path, std::move(hit->path), hit->entry);
    }
    if (still_current(path, key, hit->entry)) return remember(file_path, std::move(hit->path), hit->entry);
    return download(key, path, file_path, &hit->entry);
  }
  return download(key, path, file_path, nullptr);
}

std::optional<CacheEntry> Resolver::cached(const std::string& path) {
  auto hit = cache_.lookup(location_.root + "/" + path, path);
  if (!hit) return std::nullopt;
  return std::move(hit->entry);
}

// Whether a valid cached entry is to be checked against the server first.
// The store is asked last: a cache hit that is not due needs none.
bool Resolver::needs_revalidation(const CacheEntry& entry) {
  const bool due = options_.refresh ||
                   (options_.revalidate_after && options_.clock() - entry.fetched_at > *options_.revalidate_after);
  return due && !store().pinned();  // an HF commit or an NGC version never changes
}

// Asks the server whether `entry` is still its file; when it is, the entry
// gets a new fetch time. An unreachable server leaves the cached copy in use,
// with a warning: a freshness check must not break a working setup.
bool Resolver::still_current(const std::string& path, const std::string& key, CacheEntry entry) {
  try {
    if (!store().unchanged(path, key, {entry.etag, entry.size, entry.version})) {
      log::info("{} changed on the server; downloading it again", key);
      return false;
    }
  } catch (const Error& error) {
    if (error.code() != Errc::network && error.code() != Errc::timeout) throw;
    log::warn("cannot check {} against the server ({}); using the cached copy", key, error.what());
    return true;
  }
  log::debug("{} is unchanged on the server", key);
  entry.fetched_at = options_.clock();
  try {
    cache_.record(entry);
  } catch (const Error& error) {
    log::debug("cannot record the check of {}: {}", key, error.what());  // a read-only cache
  }
  return true;
}

// A miss in offline mode: only what a neighbour cache holds can serve it.
fs::path Resolver::offline_miss(const std::string& key, const std::string& path, std::string_view file_path) {
  if (auto found = neighbours_.without_request(path, /*offline=*/true)) {
    DownloadLock lock = cache_.lock(key, lock_options(options_, "adopting", key));
    if (auto hit = cache_.lookup_any(key, path)) return remember(file_path, std::move(hit->path), hit->entry);
    return adopt(*found, key, path, file_path);
  }
  const fs::path hf = neighbours_.hf_folder();
  throw Error(Errc::offline_miss,
              key + " is not in the cache at " + cache_.storage().string() +
                  (hf.empty() ? std::string() : " nor in the Hugging Face cache at " + hf.string()) +
                  " and offline mode is on; fetch it first where the network is reachable: "
                  "e2s fetch " + location_.root + " " + path,
              key);
}

// Takes a neighbour cache's file into this cache: a hard link checked
// against what names its bytes, committed as a download would be. A file
// whose bytes are not what its name says is an integrity error, never a hit.
fs::path Resolver::adopt(const NeighbourFile& candidate, const std::string& key, const std::string& path,
                         std::string_view file_path) {
  NeighbourFile found = candidate;
  if (found.sha256.empty()) {
    // A store that names no hash (plain HTTP) still names a version: the
    // bytes e2s recorded for that very version are what the file must hold.
    const auto known = cache_.read_entry(key);
    if (known && !known->etag.empty() && known->etag == found.etag && found.size == known->size) {
      found.sha256 = known->sha256;
    }
  }
  const Cache::Temp temp = cache_.claim_temp(key);
  try {
    const bool linked = cache_.fill_temp(temp, found.origin.path);
    const auto digest = cache_.hash_temp(temp, !found.git_sha1.empty(), !found.md5.empty());
    std::string wrong;
    if (!digest) {
      wrong = "cannot be read";
    } else if (found.size && digest->size != *found.size) {
      wrong = "holds " + std::to_string(digest->size) + " bytes, not " + std::to_string(*found.size);
    } else if (!found.sha256.empty() && digest->sha256 != found.sha256) {
      wrong = "has sha256 " + digest->sha256 + ", not " + found.sha256;
    } else if (!found.git_sha1.empty() && digest->git_sha1 != found.git_sha1) {
      wrong = "has git blob hash " + digest->git_sha1 + ", not " + found.git_sha1;
    } else if (!found.md5.empty() && digest->md5 != found.md5) {
      wrong = "has MD5 " + digest->md5 + ", not " + found.md5;
    }
    if (!wrong.empty()) {
      const bool hf = found.origin.cache == "hf";
      throw Error(Errc::integrity,
                  found.origin.path.string() + " in the " + (hf ? "Hugging Face" : "Earth2Studio") + " cache " +
                      wrong + ", so it is not " + key + "; delete it, or set " +
                      (hf ? "E2S_HF_CACHE=off" : "another cache_storage") + " to download the file instead",
                  key);
    }
    if (!found.unverified.empty()) log::info("{}: taking {} unverified: {}", key, found.origin.path.string(), found.unverified);
    CacheEntry entry;
    entry.key = key;
    entry.file_path = path;
    entry.size = digest->size;
    entry.etag = found.etag;
    entry.sha256 = digest->sha256;
    entry.version = found.version;
    entry.fetched_at = options_.clock();
    if (linked) entry.linked = found.origin;
    fs::path final_path = cache_.commit(temp, entry);
    cache_.drop_temp(temp);
    log::info("{}: {} {} ({} cache), nothing downloaded", key, linked ? "hard-linked" : "copied",
              found.origin.path.string(), found.origin.cache);
    return remember(file_path, std::move(final_path), entry);
  } catch (...) {
    cache_.drop_temp(temp);
    throw;
  }
}

// adopt() where the network can make up for a bad neighbour: its failure is
// reported, and the file downloaded instead.
std::optional<fs::path> Resolver::try_adopt(const NeighbourFile& found, const std::string& key,
                                            const std::string& path, std::string_view file_path) {
  try {
    return adopt(found, key, path, file_path);
  } catch (const ForeignFile&) {
    throw;  // the final path is the problem, which a download shares
  } catch (const Error& error) {
    if (error.code() != Errc::integrity && error.code() != Errc::io) throw;
    log::warn("{}; downloading it instead", error.what());
    return std::nullopt;
  }
}

// A miss, or `replacing` changed on the server: one process downloads (the
// lock), the others wait for its copy. A neighbour cache's copy goes first:
// one without a request (a pinned commit), else one the store's answer names.
fs::path Resolver::download(const std::string& key, const std::string& path, std::string_view file_path,
                            const CacheEntry* replacing) {
  DownloadLock lock = cache_.lock(key, lock_options(options_, "downloading", key));
  auto hit = cache_.lookup(key, path);
  if (hit && (replacing == nullptr || hit->entry.sha256 != replacing->sha256)) {
    // What the process we waited for fetched.
    log::debug("cache hit after waiting: {} -> {}", key, hit->path.string());
    return remember(file_path, std::move(hit->path), hit->entry);
  }
  if (replacing == nullptr) {
    if (auto found = neighbours_.without_request(path, /*offline=*/false)) {
      if (auto adopted = try_adopt(*found, key, path, file_path)) return *adopted;
    }
  }

  Store& source = store();
  const RemoteFile file = source.stat(path, key);
  if (auto found = neighbours_.matching(path, file)) {
    if (!found->size) {
      // Nothing proves another cache's copy but its size and hashes.
      const RemoteFile described = source.stat_with_size(path, key);
      found->size = described.size;
      if (found->etag.empty()) found->etag = described.etag;
    }
    if (found->size) {
      if (auto adopted = try_adopt(*found, key, path, file_path)) return *adopted;
    }
  }
  log::debug("downloading {} ({} bytes)", key, file.size ? std::to_string(*file.size) : std::string("unknown"));

  const Cache::Temp temp = cache_.claim_temp(key);
  TransferContext context;
  context.client = client_.get();
  context.retrier = retrier_.get();
  context.max_connections = options_.max_connections;
  context.connection_slots = &connection_slots_;
  context.error_for = [&source, &key](const http::Result& failed, int attempts) {
    return source.error_for(failed, key, attempts);
  };
  context.progress = [this, &path, &lock](std::uint64_t done, std::optional<std::uint64_t> total) {
    lock.heartbeat();
    if (options_.progress) options_.progress(Progress{path, done, total, total && done == *total});
  };
  context.resume = temp.partial;
  context.checkpoint_interval = *options_.checkpoint_interval;
  context.checkpoint = [this, &temp, &key](const Partial& partial) { cache_.save_journal(temp, key, partial); };

  std::optional<Downloaded> downloaded;
  try {
    downloaded = download_file(file, temp.data, context);
    CacheEntry entry;
    entry.key = key;
    entry.file_path = path;
    entry.size = downloaded->size;
    entry.etag = downloaded->etag;
    entry.sha256 = downloaded->sha256;
    entry.version = file.version;
    entry.fetched_at = options_.clock();
    fs::path final_path = cache_.commit(temp, entry);
    cache_.drop_temp(temp);
    log::debug("cached {} at {}", key, final_path.string());
    if (auto linked = neighbours_.share(final_path, path, file)) {
      entry.linked = std::move(linked);
      try {
        cache_.record(entry);  // so that `cache ls` shows it shared, and `cache rm` leaves the blob
      } catch (const Error& error) {
        log::debug("cannot record that {} is shared: {}", key, error.what());
      }
    }
    return remember(file_path, std::move(final_path), entry);
  } catch (const ForeignFile&) {
    // The final path holds another program's file. The download is whole and
    // verified: it is kept for when the path is free again.
    try {
      cache_.save_journal(temp, key, Partial{downloaded->size, file.etag, downloaded->served_etag,
                                             {{0, downloaded->size}}});
      cache_.release_temp(temp);
    } catch (const Error&) {
      cache_.drop_temp(temp);
    }
    throw;
  } catch (const Error& error) {
    // Bytes that arrived intact stay for the next attempt when the failure is
    // the connection's; bad bytes (integrity) and local failures go.
    const bool resumable = error.code() == Errc::network || error.code() == Errc::timeout ||
                           error.code() == Errc::unauthorized;
    resumable ? cache_.release_temp(temp) : cache_.drop_temp(temp);
    throw;
  } catch (...) {
    cache_.drop_temp(temp);
    throw;
  }
}

}  // namespace e2s::detail
