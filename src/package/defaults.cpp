#include "package/defaults.hpp"

#include <algorithm>

#include "cache/layout.hpp"
#include "env.hpp"
#include "log.hpp"

namespace e2s::detail {
namespace {

// Parallel requests of one Package, files and parts together.
constexpr int kMaxConnections = 16;

}  // namespace

PackageOptions with_defaults(PackageOptions options, const Location& location) {
  const bool remote = location.scheme != Scheme::local;
  if (!options.timeout) {
    // huggingface_hub's own variable wins for the Hub (Earth2Studio leaves a
    // user's value in place).
    const auto hub = location.scheme == Scheme::hf ? hub_download_timeout() : std::nullopt;
    options.timeout = hub ? *hub : std::chrono::milliseconds(default_package_timeout());
  }
  if (options.stall_timeout.count() <= 0 || options.stall_timeout > *options.timeout) {
    options.stall_timeout = *options.timeout;
  }
  if (options.block_size == 0) options.block_size = std::size_t{1} << 20;
  options.max_connections = std::clamp(options.max_connections, 1, kMaxConnections);
  if (!options.ca_bundle) options.ca_bundle = default_ca_bundle();
  if (!options.lock_downloads) options.lock_downloads = default_lock_downloads();
  if (!options.lock_stale_after) options.lock_stale_after = default_lock_stale_after();
  if (!options.checkpoint_interval) options.checkpoint_interval = default_checkpoint_interval();
  options.cache_root = absolute_folder(options.cache_root ? *options.cache_root : default_cache_root());
  if (!options.clock) options.clock = [] { return std::chrono::system_clock::now(); };
  if (!remote) {
    if (!options.offline) options.offline = false;  // local roots never need the network
    return options;
  }
  if (!options.offline) options.offline = default_offline(location.scheme == Scheme::hf);
  std::filesystem::path& storage = options.cache_options.cache_storage;
  if (storage.empty()) storage = layout::default_package_folder(*options.cache_root, location.root);
  // Absolute once, here: resolve() promises absolute paths.
  storage = absolute_folder(storage);
  // Not reusing cached copies still needs a local copy to hand back: every
  // resolve fetches, as if each cached file had expired.
  if (!options.cache) options.cache_options.expiry_time = std::chrono::seconds(-1);
  return options;
}

LockOptions lock_options(const PackageOptions& options, const std::string& activity, const std::string& what) {
  LockOptions lock;
  lock.enabled = options.lock_downloads.value_or(true);
  if (options.lock_stale_after) lock.stale_after = *options.lock_stale_after;
  lock.on_wait = [activity, what](const std::string& holder, bool this_process) {
    // Threads of one process waiting on each other is no news to the user.
    log::at(this_process ? LogLevel::debug : LogLevel::warn, "waiting for {} {} {}", holder,
                activity, what);
  };
  return lock;
}

}  // namespace e2s::detail
