#include "package/neighbour_caches.hpp"

#include "e2s/error.hpp"
#include "log.hpp"
#include "neighbours/earth2studio_cache.hpp"
#include "util/hash.hpp"

namespace e2s::detail {

namespace fs = std::filesystem;

NeighbourCaches::NeighbourCaches(const Location& location, const PackageOptions& options)
    : location_(location), options_(options) {
  if (location.scheme != Scheme::hf) return;
  hf_ = hf_cache_settings(options.hf);
  if (hf_.mode != HfCacheMode::off && !hf_.folder.empty()) hf_cache_.emplace(hf_.folder, location.hf);
}

fs::path NeighbourCaches::hf_folder() const { return hf_cache_ ? hf_cache_->folder() : fs::path(); }

std::string NeighbourCaches::repo_path(const std::string& path) const {
  const std::string& subfolder = location_.hf.subfolder;
  return subfolder.empty() ? path : subfolder + "/" + path;
}

std::optional<NeighbourFile> NeighbourCaches::from_hf(const HfCachedFile& found, const std::string& path) const {
  NeighbourFile file;
  file.origin = {"hf", found.path};
  file.etag = found.etag;
  file.version = found.commit;
  if (is_lower_hex(found.etag, 64)) file.sha256 = found.etag;
  if (is_lower_hex(found.etag, 40)) file.git_sha1 = found.etag;
  if (found.etag.empty()) {
    file.unverified = "a snapshot copy (a cache without symlinks) names no hash";
  }
  log::debug("{}/{}: found in the Hugging Face cache at {}", location_.root, path, found.path.string());
  return file;
}

std::optional<NeighbourFile> NeighbourCaches::without_request(const std::string& path, bool offline) const {
  if (!hf_cache_) return std::nullopt;
  const std::string& revision = location_.hf.revision;
  const bool pinned = is_lower_hex(revision, 40);
  if (!pinned && !offline) return std::nullopt;  // the Hub says which commit a branch is at now
  const auto commit = hf_cache_->commit_of(revision);
  if (!commit) return std::nullopt;
  const std::string in_repo = repo_path(path);
  if (offline && hf_cache_->known_missing(*commit, in_repo)) {
    const std::string key = location_.root + "/" + path;
    throw Error(Errc::not_found,
                "file not found: " + key + " is not in commit " + *commit + " of " + location_.hf.repo_id +
                    " (huggingface_hub's cache records so in " +
                    (hf_cache_->folder() / ".no_exist" / *commit).string() + "); check the file name",
                key);
  }
  const auto found = hf_cache_->snapshot_file(*commit, in_repo);
  return found ? from_hf(*found, path) : std::nullopt;
}

std::optional<NeighbourFile> NeighbourCaches::matching(const std::string& path, const RemoteFile& remote) const {
  if (auto found = from_hf_cache(path, remote)) return found;
  return from_earth2studio(path, remote);
}

// An Earth2Studio file is proven to be this one by its index naming the same
// URL and by its bytes: the size the store announced, and its hash when the
// store gives one.
std::optional<NeighbourFile> NeighbourCaches::from_earth2studio(const std::string& path,
                                                                const RemoteFile& remote) const {
  const std::string key = fsspec_key(location_, path);
  const auto found =
      find_fsspec_file(earth2studio_folders(*options_.cache_root, options_.cache_options.cache_storage), key);
  if (!found) return std::nullopt;
  NeighbourFile file;
  file.origin = {"earth2studio", found->path};
  file.etag = remote.etag;
  file.version = remote.version;
  file.size = remote.size;
  file.sha256 = remote.sha256;
  file.md5 = remote.md5;
  if (location_.scheme == Scheme::hf && is_lower_hex(remote.etag, 40)) file.git_sha1 = remote.etag;
  log::debug("{}: Earth2Studio's cache holds it at {} (index {})", key, found->path.string(), found->index.string());
  return file;
}

std::optional<NeighbourFile> NeighbourCaches::from_hf_cache(const std::string& path, const RemoteFile& remote) const {
  if (!hf_cache_) return std::nullopt;
  std::optional<HfCachedFile> found = hf_cache_->blob(remote.etag, remote.version);
  if (!found && !remote.version.empty()) {
    found = hf_cache_->snapshot_file(remote.version, repo_path(path));
    // A snapshot's blob of another ETag is another version of the file.
    if (found && !found->etag.empty() && found->etag != remote.etag) found.reset();
  }
  if (!found) return std::nullopt;
  auto file = from_hf(*found, path);
  file->size = remote.size;
  if (found->etag.empty()) {
    // A copy: what the Hub just said names it.
    file->etag = remote.etag;
    file->sha256 = remote.sha256;
    if (is_lower_hex(remote.etag, 40)) file->git_sha1 = remote.etag;
    if (!file->sha256.empty() || !file->git_sha1.empty()) file->unverified.clear();
  }
  return file;
}

std::optional<CacheEntry::Linked> NeighbourCaches::share(const fs::path& file, const std::string& path,
                                                         const RemoteFile& remote) const {
  if (!hf_cache_ || hf_.mode != HfCacheMode::share) return std::nullopt;
  if (!is_hf_blob_name(remote.etag) || remote.version.empty()) {
    log::debug("{}/{}: not shared into the Hugging Face cache: the Hub named no commit or blob", location_.root,
               path);
    return std::nullopt;
  }
  try {
    const auto blob = hf_cache_->share(file, remote.etag, remote.version, location_.hf.revision, repo_path(path),
                                       *options_.lock_stale_after);
    if (!blob) return std::nullopt;
    log::debug("{}/{}: shared into the Hugging Face cache as {}", location_.root, path, blob->string());
    return CacheEntry::Linked{"hf", *blob};
  } catch (const Error& error) {
    log::warn("{}", error.what());
    return std::nullopt;
  }
}

}  // namespace e2s::detail
