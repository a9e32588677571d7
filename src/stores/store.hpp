// A store speaks one protocol. It answers what a file is and how to fetch it;
// it never writes files (the transfer engine writes, the cache commits).
// Adding a protocol means one new store file and one line in scheme_table.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "e2s/options.hpp"

#include "e2s/error.hpp"
#include "http/client.hpp"
#include "http/errors.hpp"
#include "http/remote_file.hpp"  // RemoteFile, what stat() answers
#include "http/retry.hpp"
#include "uri/location.hpp"

namespace e2s::detail {

// What a store needs from its package: the shared HTTP client and retry
// policy, and who it is to its service (unset fields: the environment's).
struct StoreContext {
  http::Client* client = nullptr;
  Retrier* retrier = nullptr;
  HubOptions hf;
  NgcOptions ngc;
  S3Options s3;
  GcsOptions gcs;
};

// Performs `request` under the package's retry policy, logging retries
// against `uri`; counts the attempts made into `attempts`. Body bytes of a 2xx
// response go to `sink`; a sink must start over when called for a new attempt.
http::Result perform_with_retries(const StoreContext& context, const http::Request& request,
                                  const std::string& uri, int& attempts,
                                  const http::BodySink& sink = {});

// A small reply (JSON, XML) read whole.
struct TextReply {
  http::Result result;
  std::string body;  // of the final 2xx response
  int attempts = 0;
  bool ok() const {
    return http::is_success(result);
  }
};

// Performs `request` under the retry policy and keeps its body. Throws
// Error(other) naming `uri` when the body passes 64 MiB: no listing page or
// API reply is that large, so the server is not what it should be.
TextReply fetch_text(const StoreContext& context, http::Request request, const std::string& uri);

class Store {
 public:
  virtual ~Store() = default;

  // Metadata of `file_path` (validated, relative to the root) and the request
  // that downloads it. `uri` names the file in messages. Throws Error:
  // not_found, unauthorized, network, timeout, other.
  virtual RemoteFile stat(std::string_view file_path, const std::string& uri) = 0;

  // stat() with the size (and ETag) filled in where stat() leaves them to
  // the download (plain HTTP states them in its first ranged reply): for
  // checking another cache's copy when nothing is to be downloaded. The
  // default is stat().
  virtual RemoteFile stat_with_size(std::string_view file_path, const std::string& uri) {
    return stat(file_path, uri);
  }

  // Every file under the root (recursively), paths relative to it, in any
  // order. `uri` names the root in messages. The default throws
  // Error(unsupported): not every protocol can list a folder.
  virtual std::vector<FileEntry> list(const std::string& uri);

  // What the cache holds of a file, for revalidation.
  struct CachedCopy {
    std::string etag;     // "" when none was recorded
    std::uint64_t size = 0;
    std::string version;  // the store's version (an HF commit), "" when none
  };

  // Whether `cached` is still the server's copy of `file_path`. The default
  // asks stat() (a HEAD or metadata request) and compares ETag, else
  // version; without either it answers false (download to be sure). Throws
  // what stat() throws.
  virtual bool unchanged(std::string_view file_path, const std::string& uri, const CachedCopy& cached);

  // Whether the root names a version that never changes (an HF commit, an
  // NGC model version): its cached files are then never revalidated.
  virtual bool pinned() const { return false; }

  // Turns a failed response into the Error the user sees. The default is
  // http_error(); stores override it to decode their service's error replies.
  virtual Error error_for(const http::Result& failed, const std::string& uri, int attempts) const {
    return http_error(failed, uri, attempts);
  }
};

// The scheme table: a store for a remote location. Throws Error(unsupported)
// for a location without a remote store (local roots).
std::unique_ptr<Store> make_store(const Location& location, const StoreContext& context);

// http(s):// roots: files at <base_url>/<percent-encoded path>.
std::unique_ptr<Store> make_http_store(const Location& location, const StoreContext& context);

// hf:// roots: the Hugging Face Hub (protocols.md §1).
std::unique_ptr<Store> make_hf_store(const Location& location, const StoreContext& context);

// ngc://models/ roots: the NGC model registry (protocols.md §2).
std::unique_ptr<Store> make_ngc_store(const Location& location, const StoreContext& context);

// s3:// roots: Amazon S3 and S3-compatible stores (protocols.md §3).
std::unique_ptr<Store> make_s3_store(const Location& location, const StoreContext& context);

// gs:// roots: Google Cloud Storage, anonymous (protocols.md §4).
std::unique_ptr<Store> make_gcs_store(const Location& location, const StoreContext& context);

// Local roots are used in place: the absolute path of `file_path` under the
// root folder. Throws Error(not_found) when it is not a regular file, naming
// the root.
std::filesystem::path resolve_local(const Location& location, const std::string& file_path);

// Every regular file under a local root, paths relative to it. Throws
// Error(not_found) when the root folder does not exist.
std::vector<FileEntry> list_local(const Location& location);

}  // namespace e2s::detail
