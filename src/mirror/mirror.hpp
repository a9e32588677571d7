// A site mirror: a shared store of verified files between the nodes of a
// cluster and the upstream stores (README, "Running on a cluster"). Files
// live under the keys of mirror/keys.hpp, each with a record of what its
// bytes must be (size, sha256) and which upstream version they are. Nothing
// in a mirror is trusted: the resolver checks every byte it takes from one
// against the record, and the record against the upstream where it can.
//
//   s3://bucket/prefix    objects; the record in x-amz-meta-* metadata
//   folder (shared FS)    <folder>/<key>, <folder>/.e2s-records/<key>.json
//   http(s)://...         read-only: the folder layout served by a web server
//
// Leases (.e2s-leases/<key>) let one node fetch a file upstream while the
// others wait for its copy; they expire, so a dead holder delays, never
// blocks.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "http/client.hpp"
#include "stores/store.hpp"

namespace e2s::detail {

// What a mirror's copy of a file must be.
struct MirrorRecord {
  std::uint64_t size = 0;
  std::string sha256;            // lowercase hex
  std::string upstream_etag;     // the upstream's ETag of that version, "" when none
  std::string upstream_version;  // an HF commit or NGC version, "" when none
};

// A mirror's copy of a file, and how to read it.
struct MirrorCopy {
  MirrorRecord record;
  std::optional<std::filesystem::path> file;  // a folder mirror's file: hard-linked or copied
  http::Request request;                      // else: a GET of it
  std::string name;                           // "<mirror>/<key>", for messages
};

class Mirror {
 public:
  virtual ~Mirror() = default;

  // The mirror as configured, for messages.
  const std::string& url() const noexcept { return url_; }

  // The copy under `key`, when the mirror has one with a record.
  virtual std::optional<MirrorCopy> find(const std::string& key) = 0;

  virtual bool writable() const { return true; }

  // Stores `file` (complete and verified) under `key` with its record, so
  // that a reader never sees the one without the other.
  virtual void put(const std::string& key, const std::filesystem::path& file, const MirrorRecord& record) = 0;

  // Small text objects (an HF branch's commit); nullopt when absent.
  virtual std::optional<std::string> read_text(const std::string& key) = 0;
  virtual void write_text(const std::string& key, const std::string& text) = 0;

  // Takes the lease on `key` until `expires` unless another holder's has
  // not expired; whether this process holds it now.
  virtual bool take_lease(const std::string& key, std::chrono::system_clock::time_point expires) = 0;
  virtual void release_lease(const std::string& key) = 0;

  // The keys under `prefix` ("a/b/" lists a/b/...); records and leases not.
  virtual std::vector<std::string> list(const std::string& prefix) = 0;

 protected:
  explicit Mirror(std::string url) : url_(std::move(url)) {}

 private:
  std::string url_;
};

// The mirror `url` names: s3://bucket[/prefix], http(s)://..., or a folder
// (absolute, or file://). Throws Error(invalid_uri) for anything else.
std::unique_ptr<Mirror> make_mirror(const std::string& url, const StoreContext& context);

// The text of a record and back; nullopt for a record that is not one.
std::string record_json(const MirrorRecord& record);
std::optional<MirrorRecord> parse_record(std::string_view text);

}  // namespace e2s::detail
