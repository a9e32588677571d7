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
#include "package/neighbour_caches.hpp"
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

  // The package's store, made on first use.
  Store& store();

  const Cache& cache() const { return cache_; }

 private:
  std::optional<std::filesystem::path> remembered(std::string_view file_path);
  std::filesystem::path remember(std::string_view file_path, std::filesystem::path path, const CacheEntry& entry);
  bool needs_revalidation(const CacheEntry& entry);
  bool still_current(const std::string& path, const std::string& key, CacheEntry entry);
  std::filesystem::path download(const std::string& key, const std::string& path, std::string_view file_path,
                                 const CacheEntry* replacing);
  std::filesystem::path offline_miss(const std::string& key, const std::string& path, std::string_view file_path);
  std::filesystem::path adopt(const NeighbourFile& found, const std::string& key, const std::string& path,
                              std::string_view file_path);
  std::optional<std::filesystem::path> try_adopt(const NeighbourFile& found, const std::string& key,
                                                 const std::string& path, std::string_view file_path);

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
};

}  // namespace e2s::detail
