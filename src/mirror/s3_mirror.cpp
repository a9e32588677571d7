// A site mirror in an S3 (or S3-compatible) bucket: the record of each file
// in its object metadata (x-amz-meta-sha256, -size, -upstream-etag,
// -upstream-version), leases as small objects created conditionally.
#include <nlohmann/json.hpp>

#include "e2s/error.hpp"
#include "log.hpp"
#include "mirror/mirror.hpp"
#include "stores/s3_objects.hpp"
#include "util/hash.hpp"

namespace e2s::detail {
namespace {

// Refs and leases are a few bytes; anything larger is not one.
constexpr std::size_t kMaxText = 4096;

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

class S3Mirror final : public Mirror {
 public:
  S3Mirror(std::string url, std::string bucket, std::string prefix, const StoreContext& context)
      : Mirror(std::move(url)),
        prefix_(prefix.empty() ? prefix : prefix + "/"),
        objects_(std::move(bucket), context.s3, *context.client, *context.retrier) {}

  std::optional<MirrorCopy> find(const std::string& key) override {
    const auto info = objects_.head(prefix_ + key);
    if (!info) return std::nullopt;
    const auto field = [&info](const char* name) {
      const auto it = info->metadata.find(name);
      return it == info->metadata.end() ? std::string() : it->second;
    };
    MirrorCopy copy;
    copy.record.size = info->size;
    copy.record.sha256 = field("sha256");
    copy.record.upstream_etag = field("upstream-etag");
    copy.record.upstream_version = field("upstream-version");
    // An object without a record (written by something else) is no copy.
    if (!is_lower_hex(copy.record.sha256, 64) || field("size") != std::to_string(info->size)) return std::nullopt;
    copy.request = objects_.get_request(prefix_ + key);
    copy.name = url() + "/" + key;
    return copy;
  }

  void put(const std::string& key, const std::filesystem::path& file, const MirrorRecord& record) override {
    objects_.put_file(prefix_ + key, file,
                      {{"sha256", record.sha256},
                       {"size", std::to_string(record.size)},
                       {"upstream-etag", record.upstream_etag},
                       {"upstream-version", record.upstream_version}},
                      /*if_absent=*/true);
  }

  std::optional<std::string> read_text(const std::string& key) override {
    return objects_.get_text(prefix_ + key, kMaxText);
  }

  void write_text(const std::string& key, const std::string& text) override {
    objects_.put_text(prefix_ + key, text, {}, /*if_absent=*/false);
  }

  bool take_lease(const std::string& key, std::chrono::system_clock::time_point expires) override {
    const std::string lease = lease_key(key);
    const std::string text =
        nlohmann::json{{"expires", std::chrono::duration<double>(expires.time_since_epoch()).count()}}.dump();
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (objects_.put_text(lease, text, {}, /*if_absent=*/true) == S3Objects::Put::created) return true;
      // Another holder's lease: taken over only once it expired.
      const auto held = nlohmann::json::parse(objects_.get_text(lease, kMaxText).value_or(""), nullptr, false);
      const double until = held.is_object() ? held.value("expires", 0.0) : 0.0;
      if (until > unix_now()) return false;
      objects_.remove(lease);
    }
    return false;
  }

  void release_lease(const std::string& key) override {
    try {
      objects_.remove(lease_key(key));
    } catch (const Error& error) {
      log::debug("cannot release the lease on {}: {}", key, error.what());  // it expires
    }
  }

  std::vector<std::string> list(const std::string& prefix) override {
    std::vector<std::string> keys;
    for (std::string key : objects_.list(prefix_ + prefix)) {
      key.erase(0, prefix_.size());
      if (!key.starts_with(".e2s-leases/")) keys.push_back(std::move(key));
    }
    return keys;
  }

 private:
  std::string lease_key(const std::string& key) const { return prefix_ + ".e2s-leases/" + key; }

  std::string prefix_;  // "" or "a/b/"
  S3Objects objects_;
};

}  // namespace

std::unique_ptr<Mirror> make_s3_mirror(const std::string& url, const StoreContext& context) {
  const Location location = parse_root(url);  // the S3 store's rules for buckets and prefixes
  return std::make_unique<S3Mirror>(url, location.bucket.bucket, location.bucket.prefix, context);
}

}  // namespace e2s::detail
