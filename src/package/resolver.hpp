// The resolve policy of a remote root: what resolve() does with the cache,
// offline mode, revalidation and the lock between processes, and how a miss
// is downloaded and committed. One per Package; thread-safe.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <semaphore>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "cache/cache.hpp"
#include "e2s/options.hpp"
#include "http/client.hpp"
#include "stores/store.hpp"
#include "http/retry.hpp"
#include "env.hpp"
#include "mirror/keys.hpp"
#include "mirror/mirror.hpp"
#include "package/neighbour_caches.hpp"
#include "transfer/download.hpp"
#include "uri/location.hpp"

namespace e2s::detail {

class Resolver {
 public:
  // `options` went through with_defaults(); both must outlive the resolver.
  Resolver(const Location& location, const PackageOptions& options);

  // The absolute local path of the file `file_path` (as the caller gave it),
  // downloading it first when it is not cached (or must be fetched again).
  std::filesystem::path resolve(std::string_view file_path);

  // The cache's record of a cached file, when there is one.
  std::optional<CacheEntry> cached(const std::string& path);

  // Uploads `file_path` (resolved first) to the first writable mirror
  // unless it holds the same bytes: whether it was uploaded, and its size.
  std::pair<bool, std::uint64_t> push_file(std::string_view file_path);
  // What the first mirror that has any holds for the root.
  std::vector<FileEntry> mirror_list();

  // The package's store, made on first use.
  Store& store();

  const Cache& cache() const { return cache_; }

 private:
  std::optional<std::filesystem::path> remembered(std::string_view file_path);
  std::filesystem::path remember(std::string_view file_path, std::filesystem::path path, const CacheEntry& entry,
                                 Origin origin = Origin::cache, const std::string& source = "");
  StoreContext context();
  bool needs_revalidation(const CacheEntry& entry);
  bool still_current(const std::string& path, const std::string& key, CacheEntry entry);
  std::filesystem::path download(const std::string& key, const std::string& path, std::string_view file_path,
                                 const CacheEntry* replacing);
  std::filesystem::path offline_miss(const std::string& key, const std::string& path, std::string_view file_path);
  std::filesystem::path adopt(const NeighbourFile& found, const std::string& key, const std::string& path,
                              std::string_view file_path, Origin origin = Origin::neighbour,
                              const std::string& source = "");
  std::optional<std::filesystem::path> try_adopt(const NeighbourFile& found, const std::string& key,
                                                 const std::string& path, std::string_view file_path);
  std::filesystem::path transfer(const RemoteFile& file, const std::string& key, const std::string& path,
                                 std::string_view file_path, DownloadLock& lock, const std::string& etag,
                                 const std::string& version, Origin origin, const std::string& source_name,
                                 ErrorMapper error_for);

  // The site mirrors, made on first use.
  const std::vector<std::unique_ptr<Mirror>>& mirrors();
  std::optional<std::filesystem::path> from_mirrors(const std::string& key, const std::string& path,
                                                    std::string_view file_path, const RemoteFile* upstream,
                                                    DownloadLock& lock, bool offline);
  std::filesystem::path fetch_from_mirror(Mirror& mirror, const MirrorCopy& copy, const std::string& key,
                                          const std::string& path, std::string_view file_path,
                                          const RemoteFile* upstream, DownloadLock& lock);
  struct MirrorLease {
    Mirror* mirror = nullptr;  // none: no writable mirror, or this node does not push
    std::string key;
    bool held = false;
  };
  MirrorLease take_mirror_lease(const std::string& path, const RemoteFile& file);
  void push_to_mirror(const std::filesystem::path& final_path, const std::string& path, const RemoteFile& file);

  // How often a node waiting for another's mirror copy looks for it.
  static constexpr std::chrono::milliseconds kMirrorPoll{250};

  const Location& location_;
  const PackageOptions& options_;
  Cache cache_;
  NeighbourCaches neighbours_;

  // Every request of this package's downloads holds one: parallel files and
  // parallel parts together keep to max_connections.
  std::counting_semaphore<16> connection_slots_;

  // Files this resolver handed out, with the identity they had: a repeated
  // resolve() of an unchanged file costs one lstat.
  struct Hit {
    std::filesystem::path path;
    FileIdentity identity;
    std::chrono::system_clock::time_point expires;
  };
  // Heterogeneous lookup: resolve(string_view) finds without allocating.
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const noexcept {
      return std::hash<std::string_view>{}(text);
    }
  };
  std::shared_mutex hits_mutex_;
  std::unordered_map<std::string, Hit, StringHash, std::equal_to<>> hits_;

  // The store and its HTTP client are made on first use, so that building a
  // Package (load_default_package) costs nothing and a cache hit needs neither.
  std::mutex store_mutex_;
  std::unique_ptr<http::Client> client_;
  std::unique_ptr<Retrier> retrier_;
  std::unique_ptr<Store> store_;

  MirrorSettings mirror_settings_;
  std::once_flag mirrors_made_;
  std::vector<std::unique_ptr<Mirror>> mirrors_;
};

}  // namespace e2s::detail
