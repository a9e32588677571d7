#include "mirror/mirror.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "cache/folder.hpp"
#include "e2s/error.hpp"
#include "log.hpp"
#include "uri/location.hpp"
#include "util/hash.hpp"
#include "util/posix.hpp"

namespace e2s::detail {
namespace {

namespace fs = std::filesystem;

constexpr const char* kRecords = ".e2s-records";
constexpr const char* kLeases = ".e2s-leases";

Error mirror_error(const std::string& what, const fs::path& path, int error) {
  return Error(Errc::io,
               "cannot " + what + " " + path.string() + " in the site mirror: " + std::strerror(error) +
                   "; check that the mirror folder is writable by this user, or unset E2S_MIRROR_PUSH",
               path.string());
}

double unix_seconds(std::chrono::system_clock::time_point time) {
  return std::chrono::duration<double>(time.time_since_epoch()).count();
}

// Writes `text` to `path` through a temp file and a rename.
void write_file_atomically(const fs::path& path, const std::string& text) {
  std::error_code error;
  fs::create_directories(path.parent_path(), error);
  if (error) throw mirror_error("create", path.parent_path(), error.value());
  const fs::path temp = path.string() + "." + unique_suffix() + ".partial";
  UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!fd) throw mirror_error("create", temp, errno);
  if (!write_all(fd.get(), text.data(), text.size()) || ::fsync(fd.get()) != 0) {
    const int failed = errno;
    ::unlink(temp.c_str());
    throw mirror_error("write", temp, failed);
  }
  fd.close();
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int failed = errno;
    ::unlink(temp.c_str());
    throw mirror_error("write", path, failed);
  }
}

// A folder on a filesystem the nodes share (NFS, Lustre, GPFS).
class FolderMirror final : public Mirror {
 public:
  FolderMirror(std::string url, fs::path folder) : Mirror(std::move(url)), folder_(std::move(folder)) {}

  std::optional<MirrorCopy> find(const std::string& key) override {
    const auto text = read_small_file(folder_ / kRecords / (key + ".json"));
    if (!text) return std::nullopt;
    auto record = parse_record(*text);
    const fs::path data = folder_ / key;
    struct stat status {};
    if (!record || ::lstat(data.c_str(), &status) != 0 || !S_ISREG(status.st_mode)) return std::nullopt;
    MirrorCopy copy;
    copy.record = std::move(*record);
    copy.file = data;
    copy.name = data.string();
    return copy;
  }

  void put(const std::string& key, const fs::path& file, const MirrorRecord& record) override {
    const fs::path data = folder_ / key;
    std::error_code error;
    fs::create_directories(data.parent_path(), error);
    if (error) throw mirror_error("create", data.parent_path(), error.value());
    const fs::path temp = data.string() + "." + unique_suffix() + ".partial";
    // A hard link when the cache is on the same filesystem: no byte copied,
    // and e2s's cache never rewrites a file in place.
    if (::link(file.c_str(), temp.c_str()) != 0) {
      UniqueFd in(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
      UniqueFd out(::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
      if (!in || !out) throw mirror_error("create", temp, errno);
      bool failed_read = false;
      if (const int failed = copy_durably(in.get(), out.get(), failed_read); failed != 0) {
        ::unlink(temp.c_str());
        throw mirror_error(failed_read ? "read" : "write", failed_read ? file : temp, failed);
      }
    }
    if (::rename(temp.c_str(), data.c_str()) != 0) {
      const int failed = errno;
      ::unlink(temp.c_str());
      throw mirror_error("write", data, failed);
    }
    // The record last: a reader that finds it finds the data.
    write_file_atomically(folder_ / kRecords / (key + ".json"), record_json(record));
  }

  std::optional<std::string> read_text(const std::string& key) override { return read_small_file(folder_ / key); }

  void write_text(const std::string& key, const std::string& text) override {
    write_file_atomically(folder_ / key, text);
  }

  bool take_lease(const std::string& key, std::chrono::system_clock::time_point expires) override {
    const fs::path lease = folder_ / kLeases / key;
    std::error_code error;
    fs::create_directories(lease.parent_path(), error);
    if (error) throw mirror_error("create", lease.parent_path(), error.value());
    for (int attempt = 0; attempt < 2; ++attempt) {
      UniqueFd fd(::open(lease.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
      if (fd) {
        const std::string text = nlohmann::json{{"expires", unix_seconds(expires)}}.dump();
        write_all(fd.get(), text.data(), text.size());
        return true;
      }
      if (errno != EEXIST) throw mirror_error("create", lease, errno);
      // Another holder's lease: taken over only once it expired.
      const auto text = read_small_file(lease);
      const auto held = nlohmann::json::parse(text.value_or(""), nullptr, false);
      const double until = held.is_object() ? held.value("expires", 0.0) : 0.0;
      if (until > unix_seconds(std::chrono::system_clock::now())) return false;
      ::unlink(lease.c_str());
    }
    return false;
  }

  void release_lease(const std::string& key) override { ::unlink((folder_ / kLeases / key).c_str()); }

  std::vector<std::string> list(const std::string& prefix) override {
    std::vector<std::string> keys;
    std::error_code error;
    const fs::path start = folder_ / prefix;
    for (fs::recursive_directory_iterator it(start, error), end; !error && it != end; it.increment(error)) {
      const std::string name = it->path().filename().string();
      if (it->is_directory() && (name == kRecords || name == kLeases)) {
        it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file() && !name.ends_with(".partial")) {
        keys.push_back(it->path().lexically_relative(folder_).string());
      }
    }
    return keys;
  }

 private:
  fs::path folder_;
};

// A web server serving a folder mirror's layout: read-only.
class HttpMirror final : public Mirror {
 public:
  HttpMirror(std::string url, const StoreContext& context) : Mirror(url), base_(std::move(url)), context_(context) {
    while (base_.ends_with('/')) base_.pop_back();
  }

  bool writable() const override { return false; }

  std::optional<MirrorCopy> find(const std::string& key) override {
    const auto text = read_text(std::string(kRecords) + "/" + key + ".json");
    if (!text) return std::nullopt;
    auto record = parse_record(*text);
    if (!record) return std::nullopt;
    MirrorCopy copy;
    copy.record = std::move(*record);
    copy.request.url = url_of(key);
    copy.name = copy.request.url;
    return copy;
  }

  void put(const std::string&, const fs::path&, const MirrorRecord&) override { refuse(); }
  void write_text(const std::string&, const std::string&) override { refuse(); }

  std::optional<std::string> read_text(const std::string& key) override {
    http::Request request;
    request.url = url_of(key);
    const TextReply reply = fetch_text(context_, request, request.url);
    if (reply.ok()) return reply.body;
    if (reply.result.transport == http::Transport::ok && reply.result.response.status == 404) return std::nullopt;
    log::warn("site mirror {}: cannot read {} ({}); going on without it", base_, key,
              http_error(reply.result, request.url, reply.attempts).what());
    return std::nullopt;
  }

  // A read-only mirror takes no leases: nodes behind it go upstream.
  bool take_lease(const std::string&, std::chrono::system_clock::time_point) override { return true; }
  void release_lease(const std::string&) override {}
  std::vector<std::string> list(const std::string&) override {
    throw Error(Errc::unsupported, "the http(s) site mirror " + base_ + " cannot be listed", base_);
  }

 private:
  std::string url_of(const std::string& key) const { return base_ + "/" + percent_encode(key, true); }
  [[noreturn]] void refuse() const {
    throw Error(Errc::unsupported, "the site mirror " + base_ + " is read-only (http); push to an s3:// or folder mirror",
                base_);
  }

  std::string base_;
  StoreContext context_;
};

}  // namespace

std::string record_json(const MirrorRecord& record) {
  return nlohmann::json{{"size", record.size},
                        {"sha256", record.sha256},
                        {"upstream_etag", record.upstream_etag},
                        {"upstream_version", record.upstream_version}}
             .dump() +
         "\n";
}

std::optional<MirrorRecord> parse_record(std::string_view text) {
  const auto json = nlohmann::json::parse(text, nullptr, false);
  if (!json.is_object()) return std::nullopt;
  MirrorRecord record;
  try {
    record.size = json.at("size").get<std::uint64_t>();
    record.sha256 = json.at("sha256").get<std::string>();
    record.upstream_etag = json.value("upstream_etag", "");
    record.upstream_version = json.value("upstream_version", "");
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
  if (!is_lower_hex(record.sha256, 64)) return std::nullopt;
  return record;
}

std::unique_ptr<Mirror> make_s3_mirror(const std::string& url, const StoreContext& context);

std::unique_ptr<Mirror> make_mirror(const std::string& url, const StoreContext& context) {
  if (url.starts_with("s3://")) return make_s3_mirror(url, context);
  if (url.starts_with("http://") || url.starts_with("https://")) return std::make_unique<HttpMirror>(url, context);
  fs::path folder = url.starts_with("file://") ? fs::path(url.substr(7)) : fs::path(url);
  if (!folder.is_absolute()) {
    throw Error(Errc::invalid_uri,
                "site mirror \"" + url + "\" is none of s3://bucket/prefix, http(s)://..., or an absolute folder; "
                "check E2S_MIRROR",
                url);
  }
  return std::make_unique<FolderMirror>(url, folder.lexically_normal());
}

}  // namespace e2s::detail
