#include "package/resolver.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <thread>


#include "e2s/error.hpp"
#include "package/defaults.hpp"
#include "transfer/download.hpp"
#include "log.hpp"
#include "util/hash.hpp"

namespace e2s::detail {

namespace fs = std::filesystem;


Resolver::Resolver(const Location& location, const PackageOptions& options)
    : location_(location),
      options_(options),
      cache_(options.cache_options.cache_storage, options.cache_options, options.clock),
      neighbours_(location, options),
      connection_slots_(options.max_connections),
      mirror_settings_(location.scheme == Scheme::local ? MirrorSettings{} : mirror_settings(options.mirror)) {}

StoreContext Resolver::context() {
  std::lock_guard lock(store_mutex_);
  if (!client_) {
    http::ClientOptions client_options;
    client_options.stall_window = options_.stall_timeout;
    client_options.min_rate = options_.min_rate;
    client_options.ca_bundle = options_.ca_bundle.value_or(fs::path());
    client_ = std::make_unique<http::Client>(client_options);
    retrier_ = std::make_unique<Retrier>(options_.retry, RetryBudget{*options_.timeout, options_.min_rate});
  }
  return StoreContext{client_.get(), retrier_.get(), options_.hf, options_.ngc, options_.s3, options_.gcs};
}

Store& Resolver::store() {
  const StoreContext made = context();
  std::lock_guard lock(store_mutex_);
  if (!store_) store_ = make_store(location_, made);
  return *store_;
}

// A file this resolver handed out before, still unexpired and still the very
// file (its identity): one lstat, no metadata read. This is what makes a
// repeated resolve() in a model's hot path cost about a microsecond.
std::optional<fs::path> Resolver::remembered(std::string_view file_path) {
  std::shared_lock lock(hits_mutex_);
  auto it = hits_.find(file_path);
  if (it == hits_.end() || options_.clock() >= it->second.expires) return std::nullopt;
  const Hit& hit = it->second;
  // A copy written over it by another program, even of the same size, has
  // another identity.
  struct stat status {};
  if (::lstat(hit.path.c_str(), &status) != 0 || !S_ISREG(status.st_mode) || identity_of(status) != hit.identity) {
    return std::nullopt;
  }
  if (options_.on_resolved) options_.on_resolved(Resolved{std::string(file_path), Origin::cache, hit.identity.size, ""});
  return hit.path;
}

fs::path Resolver::remember(std::string_view file_path, fs::path path, const CacheEntry& entry, Origin origin,
                            const std::string& source) {
  if (options_.on_resolved) options_.on_resolved(Resolved{std::string(file_path), origin, entry.size, source});
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

// A miss in offline mode: only a neighbour cache or a site mirror can serve it.
fs::path Resolver::offline_miss(const std::string& key, const std::string& path, std::string_view file_path) {
  if (auto found = neighbours_.without_request(path, /*offline=*/true)) {
    DownloadLock lock = cache_.lock(key, lock_options(options_, "adopting", key));
    if (auto hit = cache_.lookup_any(key, path)) return remember(file_path, std::move(hit->path), hit->entry);
    return adopt(*found, key, path, file_path);
  }
  if (!mirrors().empty()) {
    DownloadLock lock = cache_.lock(key, lock_options(options_, "downloading", key));
    if (auto hit = cache_.lookup_any(key, path)) return remember(file_path, std::move(hit->path), hit->entry);
    if (auto got = from_mirrors(key, path, file_path, nullptr, lock, /*offline=*/true)) return *got;
  }
  const fs::path hf = neighbours_.hf_folder();
  std::string where = "the cache at " + cache_.storage().string();
  if (!hf.empty()) where += ", the Hugging Face cache at " + hf.string();
  for (const auto& mirror : mirrors()) where += ", the site mirror " + mirror->url();
  const bool push_hint = !mirrors().empty();
  throw Error(Errc::offline_miss,
              key + " is in none of " + where + ", and offline mode is on; fetch it first where the network is "
              "reachable: " + (push_hint ? "e2s mirror push " : "e2s fetch ") + location_.root + " " + path,
              key);
}

// Takes a neighbour cache's file into this cache: a hard link checked
// against what names its bytes, committed as a download would be. A file
// whose bytes are not what its name says is an integrity error, never a hit.
fs::path Resolver::adopt(const NeighbourFile& candidate, const std::string& key, const std::string& path,
                         std::string_view file_path, Origin origin, const std::string& source) {
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
      const std::string& cache = found.origin.cache;
      const char* where = cache == "hf" ? " in the Hugging Face cache " : cache == "mirror" ? " in the site mirror "
                                                                                           : " in Earth2Studio's cache ";
      const char* instead = cache == "hf" ? "set E2S_HF_CACHE=off" : cache == "mirror" ? "push it again"
                                                                                      : "set another cache_storage";
      throw Error(Errc::integrity,
                  found.origin.path.string() + where + wrong + ", so it is not " + key + "; delete it, or " + instead +
                      " to download the file instead",
                  key);
    }
    if (!found.unverified.empty()) {
      log::info("{}: taking {} unverified: {}", key, found.origin.path.string(), found.unverified);
    }
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
    if (origin == Origin::mirror) {
      log::info("{}: from the site mirror {} ({}), nothing downloaded upstream", key, source,
                linked ? "a hard link" : "a copy");
    } else {
      log::info("{}: {} {} ({} cache), nothing downloaded", key, linked ? "hard-linked" : "copied",
                found.origin.path.string(), found.origin.cache);
    }
    return remember(file_path, std::move(final_path), entry, origin,
                    source.empty() ? found.origin.path.string() : source);
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

const std::vector<std::unique_ptr<Mirror>>& Resolver::mirrors() {
  std::call_once(mirrors_made_, [this] {
    for (const std::string& url : mirror_settings_.urls) mirrors_.push_back(make_mirror(url, context()));
  });
  return mirrors_;
}

// The first mirror copy of `path` that is the file: under the key of its
// upstream version, with the upstream's ETag and hashes where `upstream`
// (the store's answer) gives them. Without `upstream`, only keys that name
// their version are looked up, unless offline (then any copy is the best
// there is). A copy whose bytes fail its record is reported and skipped.
std::optional<fs::path> Resolver::from_mirrors(const std::string& key, const std::string& path,
                                               std::string_view file_path, const RemoteFile* upstream,
                                               DownloadLock& lock, bool offline) {
  for (const auto& mirror : mirrors()) {
    std::string version = upstream ? upstream->version : location_.hf.revision;
    if (offline && location_.scheme == Scheme::hf && !is_lower_hex(version, 40)) {
      const auto ref = mirror_ref_key(location_);
      const auto commit = ref ? mirror->read_text(*ref) : std::nullopt;
      if (!commit || !is_lower_hex(*commit, 40)) continue;
      version = *commit;
    }
    const auto mirror_key_of = mirror_key(location_, path, version);
    if (!mirror_key_of) continue;
    if (!upstream && !offline && !mirror_key_of->names_version) continue;  // the upstream says which version
    std::optional<MirrorCopy> copy;
    try {
      copy = mirror->find(mirror_key_of->key);
    } catch (const Error& error) {
      log::warn("site mirror {}: {}; going on without it", mirror->url(), error.what());
      continue;
    }
    if (!copy) continue;
    const MirrorRecord& record = copy->record;
    std::string mismatch;
    if (upstream) {
      std::string etag = upstream->etag;
      std::optional<std::uint64_t> size = upstream->size;
      if (!mirror_key_of->names_version && etag.empty()) {
        const RemoteFile described = store().stat_with_size(path, key);
        etag = described.etag;
        size = described.size;
      }
      if (!mirror_key_of->names_version && etag != record.upstream_etag) {
        mismatch = "is of another upstream version (ETag \"" + record.upstream_etag + "\", not \"" + etag + "\")";
      } else if (size && *size != record.size) {
        mismatch = "records " + std::to_string(record.size) + " bytes; the upstream has " + std::to_string(*size);
      } else if (!upstream->sha256.empty() && upstream->sha256 != record.sha256) {
        mismatch = "records sha256 " + record.sha256 + "; the upstream names " + upstream->sha256;
      }
    }
    if (!mismatch.empty()) {
      log::info("{}: not using {}: it {}", key, copy->name, mismatch);
      continue;
    }
    try {
      return fetch_from_mirror(*mirror, *copy, key, path, file_path, upstream, lock);
    } catch (const ForeignFile&) {
      throw;
    } catch (const Error& error) {
      if (error.code() == Errc::io && !copy->file) throw;  // this cache's own failure
      log::warn("{}: the site mirror's copy {} was refused: {}", key, copy->name, error.what());
    }
  }
  return std::nullopt;
}

// Takes a mirror's copy into the cache, checked against its record (and the
// upstream's MD5 when known): a folder mirror's file is hard-linked, any
// other is downloaded. The entry records the upstream's ETag and version,
// which a later revalidation compares with the upstream.
fs::path Resolver::fetch_from_mirror(Mirror& mirror, const MirrorCopy& copy, const std::string& key,
                                     const std::string& path, std::string_view file_path, const RemoteFile* upstream,
                                     DownloadLock& lock) {
  const MirrorRecord& record = copy.record;
  if (copy.file) {
    NeighbourFile found;
    found.origin = {"mirror", *copy.file};
    found.etag = record.upstream_etag;
    found.version = record.upstream_version;
    found.size = record.size;
    found.sha256 = record.sha256;
    if (upstream) found.md5 = upstream->md5;
    return adopt(found, key, path, file_path, Origin::mirror, mirror.url());
  }
  RemoteFile file;
  file.uri = copy.name;
  file.request = copy.request;
  file.size = record.size;
  file.sha256 = record.sha256;
  if (upstream) file.md5 = upstream->md5;
  return transfer(file, key, path, file_path, lock, record.upstream_etag, record.upstream_version, Origin::mirror,
                  mirror.url(), [&file](const http::Result& failed, int attempts) {
                    return http_error(failed, file.uri, attempts);
                  });
}

// A miss, or `replacing` changed on the server: one process downloads (the
// lock), the others wait for its copy. Cheaper sources go first: a neighbour
// cache's or a mirror's copy found without a request (a pinned version),
// then those the store's answer names, then the upstream, whose bytes a
// pushing node also puts in the first writable mirror.
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
    if (auto got = from_mirrors(key, path, file_path, nullptr, lock, false)) return *got;
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
  if (auto got = from_mirrors(key, path, file_path, &file, lock, false)) return *got;

  // Fan-in: of the nodes that miss the file at once, the one holding the
  // mirror's lease goes upstream; the others wait for its copy.
  MirrorLease lease = take_mirror_lease(path, file);
  if (lease.mirror && !lease.held) {
    log::info("{}: another node is fetching it for the site mirror {}; waiting for its copy", key,
              lease.mirror->url());
  }
  while (lease.mirror && !lease.held) {
    std::this_thread::sleep_for(kMirrorPoll);
    lock.heartbeat();  // waiting on the mirror is progress for this cache's waiters
    if (auto got = from_mirrors(key, path, file_path, &file, lock, false)) return *got;
    lease = take_mirror_lease(path, file);
  }
  if (lease.held) {
    // The holder before this node pushes, then releases: a lease taken after
    // that release finds the copy in place.
    if (auto got = from_mirrors(key, path, file_path, &file, lock, false)) {
      lease.mirror->release_lease(lease.key);
      return *got;
    }
  }
  fs::path final_path = transfer(file, key, path, file_path, lock, "", file.version, Origin::upstream, "",
                                 [&source, &key](const http::Result& failed, int attempts) {
                                   return source.error_for(failed, key, attempts);
                                 });
  push_to_mirror(final_path, path, file);
  if (lease.held) lease.mirror->release_lease(lease.key);
  return final_path;
}

// The lease on `path`'s mirror key in the first writable mirror, when this
// node pushes: held, or (mirror set, held false) another node's to wait for.
Resolver::MirrorLease Resolver::take_mirror_lease(const std::string& path, const RemoteFile& file) {
  MirrorLease lease;
  if (!mirror_settings_.push) return lease;
  for (const auto& mirror : mirrors()) {
    if (!mirror->writable()) continue;
    const auto key = mirror_key(location_, path, file.version);
    if (!key) return lease;
    try {
      return MirrorLease{mirror.get(), key->key,
                         mirror->take_lease(key->key, options_.clock() + mirror_settings_.lease)};
    } catch (const Error& error) {
      log::warn("site mirror {}: cannot take a lease on {}: {}", mirror->url(), key->key, error.what());
      return lease;
    }
  }
  return lease;
}

std::pair<bool, std::uint64_t> Resolver::push_file(std::string_view file_path) {
  const std::string path = validate_file_path(file_path, location_.root);
  const std::string key = location_.root + "/" + path;
  Mirror* target = nullptr;
  for (const auto& mirror : mirrors()) {
    if (mirror->writable()) {
      target = mirror.get();
      break;
    }
  }
  if (!target) {
    throw Error(Errc::unsupported,
                "no writable site mirror to push " + key + " to; set E2S_MIRROR to s3://bucket/prefix or a folder",
                key);
  }
  const fs::path local = resolve(file_path);
  const auto entry = cache_.read_entry(key);
  const auto mirror_key_of = entry ? mirror_key(location_, path, entry->version) : std::nullopt;
  if (!mirror_key_of) {
    throw Error(Errc::other, key + " has no key in a site mirror (no upstream version is recorded for it)", key);
  }
  if (const auto copy = target->find(mirror_key_of->key); copy && copy->record.sha256 == entry->sha256) {
    return {false, entry->size};
  }
  target->put(mirror_key_of->key, local, MirrorRecord{entry->size, entry->sha256, entry->etag, entry->version});
  if (const auto ref = mirror_ref_key(location_); ref && !entry->version.empty()) {
    target->write_text(*ref, entry->version);
  }
  log::info("{}: pushed to the site mirror {}", key, target->url());
  return {true, entry->size};
}

std::vector<FileEntry> Resolver::mirror_list() {
  for (const auto& mirror : mirrors()) {
    std::string version = location_.hf.revision;
    if (const auto ref = mirror_ref_key(location_)) version = mirror->read_text(*ref).value_or("");
    const auto prefix = mirror_prefix(location_, version);
    if (!prefix) continue;
    std::vector<FileEntry> files;
    for (const std::string& key : mirror->list(*prefix + "/")) {
      const auto copy = mirror->find(key);
      if (copy) files.push_back({key.substr(prefix->size() + 1), copy->record.size});
    }
    if (files.empty()) continue;
    std::sort(files.begin(), files.end(), [](const FileEntry& a, const FileEntry& b) { return a.path < b.path; });
    return files;
  }
  return {};
}

// With push on, the file this node had to fetch upstream goes to the first
// writable mirror, with its record. A failure is a warning: the node has its
// file.
void Resolver::push_to_mirror(const fs::path& final_path, const std::string& path, const RemoteFile& file) {
  if (!mirror_settings_.push) return;
  const auto entry = cache_.read_entry(location_.root + "/" + path);
  for (const auto& mirror : mirrors()) {
    if (!mirror->writable()) continue;
    const auto key = mirror_key(location_, path, file.version);
    if (!key || !entry) return;
    try {
      // The entry's ETag: the store's, else the one the download's replies carried.
      mirror->put(key->key, final_path, MirrorRecord{entry->size, entry->sha256, entry->etag, file.version});
      if (const auto ref = mirror_ref_key(location_); ref && !file.version.empty()) {
        mirror->write_text(*ref, file.version);
      }
      log::info("{}/{}: pushed to the site mirror {}", location_.root, path, mirror->url());
    } catch (const Error& error) {
      log::warn("cannot push {}/{} to the site mirror {}: {}", location_.root, path, mirror->url(), error.what());
    }
    return;
  }
}

// Downloads `file` into a temp file and commits it under `key`; the entry
// records `etag` (the response's when empty) and `version`.
fs::path Resolver::transfer(const RemoteFile& file, const std::string& key, const std::string& path,
                            std::string_view file_path, DownloadLock& lock, const std::string& etag,
                            const std::string& version, Origin origin, const std::string& source_name,
                            ErrorMapper error_for) {
  log::debug("downloading {} ({} bytes) from {}", key, file.size ? std::to_string(*file.size) : std::string("unknown"),
             origin == Origin::mirror ? source_name : std::string("upstream"));
  const Cache::Temp temp = cache_.claim_temp(key);
  TransferContext context;
  context.client = client_.get();
  context.retrier = retrier_.get();
  context.max_connections = options_.max_connections;
  context.connection_slots = &connection_slots_;
  context.error_for = std::move(error_for);
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
    entry.etag = etag.empty() ? downloaded->etag : etag;
    entry.sha256 = downloaded->sha256;
    entry.version = version;
    entry.fetched_at = options_.clock();
    fs::path final_path = cache_.commit(temp, entry);
    cache_.drop_temp(temp);
    log::debug("cached {} at {}", key, final_path.string());
    if (origin == Origin::mirror) log::info("{}: from the site mirror {}", key, source_name);
    if (origin == Origin::upstream) {
      if (auto linked = neighbours_.share(final_path, path, file)) {
        entry.linked = std::move(linked);
        try {
          cache_.record(entry);  // so that `cache ls` shows it shared, and `cache rm` leaves the blob
        } catch (const Error& error) {
          log::debug("cannot record that {} is shared: {}", key, error.what());
        }
      }
    }
    return remember(file_path, std::move(final_path), entry, origin, source_name);
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
