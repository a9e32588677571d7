// A site mirror's bucket read and written (protocols.md §7.3).
#include "stores/s3_objects.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <pugixml.hpp>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <utility>

#include "env.hpp"
#include "http/errors.hpp"
#include "http/remote_file.hpp"  // unquote_etag
#include "log.hpp"
#include "uri/location.hpp"
#include "util/encoding.hpp"
#include "util/hash.hpp"
#include "util/posix.hpp"
#include "util/text.hpp"

namespace e2s::detail {
namespace {

constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;
// S3's limits (protocols.md §7.3): one PUT, parts, and how many.
constexpr std::uint64_t kMaxPutSize = std::uint64_t{5} << 30;
constexpr std::uint64_t kMinPartSize = 5 * kMiB;
constexpr std::uint64_t kMaxPartSize = std::uint64_t{5} << 30;
constexpr std::uint64_t kMaxParts = 10000;
// Keys one list() gathers: far more than any package holds, far fewer than
// a hostile endpoint's endless pages would cost.
constexpr std::size_t kMaxListedKeys = 1000000;
constexpr std::size_t kHashBlock = kMiB;

bool is_meta_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

// HTTP trims a header value's spaces, and S3 encodes what is not ASCII.
bool is_meta_value(std::string_view value) {
  if (!value.empty() && (value.front() == ' ' || value.back() == ' ')) return false;
  return std::all_of(value.begin(), value.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

std::vector<std::string> metadata_headers(const std::map<std::string, std::string>& metadata,
                                          const std::string& uri) {
  std::vector<std::string> headers;
  for (const auto& [name, value] : metadata) {
    if (!is_meta_name(name) || !is_meta_value(value)) {
      // The value is not quoted: metadata is the caller's, and may be private.
      throw Error(Errc::other,
                  "cannot store the metadata " + quoted(name, 64) + " with " + uri +
                      ": names are lowercase letters, digits, '-' and '_', values printable ASCII "
                      "without leading or trailing spaces",
                  uri);
    }
    headers.push_back("x-amz-meta-" + name + ": " + value);
  }
  return headers;
}

// Content-MD5 is the base64 of the digest's bytes, not of its hex.
std::string base64_of_hex(std::string_view hex) {
  std::string bytes;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    unsigned value = 0;
    std::from_chars(hex.data() + i, hex.data() + i + 2, value, 16);
    bytes.push_back(static_cast<char>(value));
  }
  return base64_encode(bytes);
}

std::string xml_escaped(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '&') out += "&amp;";
    else if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else out += c;
  }
  return out;
}

// At least S3's minimum, and large enough that the parts fit in 10,000
// (then a whole number of MiB).
std::uint64_t part_size_for(std::uint64_t size, std::uint64_t wanted) {
  std::uint64_t part = std::max(wanted, kMinPartSize);
  const std::uint64_t needed = size / kMaxParts + (size % kMaxParts != 0 ? 1 : 0);
  if (part < needed) part = (needed + kMiB - 1) / kMiB * kMiB;
  return part;
}

// Whether the server refused If-None-Match itself, not the write: AWS says
// 501 NotImplemented for a header it does not implement; S3-compatible
// servers say 400 with one of these codes.
bool refuses_condition(const http::Result& result) {
  if (result.transport != http::Transport::ok) return false;
  if (result.response.status == 501) return true;
  if (result.response.status != 400) return false;
  const std::string code = s3_error_code(result.response.error_body);
  return code == "NotImplemented" || code == "InvalidArgument" || code == "InvalidRequest";
}

// "uploadId=<id>", the query naming a multipart upload.
std::string upload_query(const std::string& upload_id) {
  return "uploadId=" + percent_encode(upload_id, false);
}

bool is_precondition_failed(const http::Result& result) {
  return result.transport == http::Transport::ok && result.response.status == 412;
}

bool is_not_found(const http::Result& result) {
  return result.transport == http::Transport::ok && result.response.status == 404;
}

// AWS may answer CompleteMultipartUpload 200 and fail it afterwards, with
// an <Error> body (its documentation says to retry): such a reply becomes
// the 500 it stands for, so that the retry policy and the messages see it.
void surface_embedded_error(http::Result& result, std::string& body) {
  if (!http::is_success(result) || body.empty()) return;
  pugi::xml_document document;
  if (!document.load_buffer(body.data(), body.size()) || !document.child("Error")) return;
  result.response.status = 500;
  result.response.error_body = body.substr(0, 64 * 1024);
  body.clear();
}

}  // namespace

struct S3Objects::Reply {
  http::Result result;
  std::string body;  // of a 2xx reply
  int attempts = 0;
  bool too_large = false;  // the body passed its limit: the transfer was stopped
  bool ok() const { return http::is_success(result); }
};

// What put() sends: bytes in memory, or a file read through one descriptor
// (so that every part comes from the same file, whatever is renamed over
// its path meanwhile).
struct S3Objects::Source {
  const std::string* text = nullptr;
  std::filesystem::path path;
  UniqueFd fd;
  struct stat opened {};  // the file when opened: it must stay so
  std::uint64_t size = 0;

  static Source of_text(const std::string& text) {
    Source source;
    source.text = &text;
    source.size = text.size();
    return source;
  }

  static Source of_file(const std::filesystem::path& path, const std::string& uri) {
    Source source;
    source.path = path;
    source.fd = UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!source.fd || ::fstat(source.fd.get(), &source.opened) != 0) {
      throw Error(Errc::io,
                  "cannot read " + path.string() + " to write it to " + uri + ": " + std::strerror(errno) +
                      "; check that the file exists and is readable",
                  uri);
    }
    if (!S_ISREG(source.opened.st_mode)) {
      throw Error(Errc::io, "cannot write " + path.string() + " to " + uri + ": not a regular file", uri);
    }
    source.size = static_cast<std::uint64_t>(source.opened.st_size);
    return source;
  }

  http::RequestBody body(std::uint64_t offset, std::uint64_t length) const {
    if (text != nullptr) return text->substr(offset, length);
    return http::FileRange{fd.get(), offset, length};
  }

  // A body in memory is signed with its hash. A streamed one goes
  // UNSIGNED-PAYLOAD: its Content-MD5 already lets the server check it, and
  // a second digest of every part would cost CPU on multi-GB files.
  std::string payload_sha256(std::uint64_t offset, std::uint64_t length) const {
    if (text != nullptr) return sha256_hex(std::string_view(*text).substr(offset, length));
    return std::string(kUnsignedPayload);
  }

  // Base64 MD5 of the range, for Content-MD5: the server checks that the
  // bytes it received are these.
  std::string content_md5(std::uint64_t offset, std::uint64_t length, const std::string& uri) const {
    Digest md5(DigestAlgorithm::md5);
    if (text != nullptr) {
      md5.update(text->data() + offset, length);
      return base64_of_hex(md5.hex_final());
    }
    std::string block(static_cast<std::size_t>(std::min<std::uint64_t>(length, kHashBlock)), '\0');
    for (std::uint64_t done = 0; done < length;) {
      const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(block.size(), length - done));
      const ssize_t got = pread_some(fd.get(), block.data(), want, static_cast<off_t>(offset + done));
      if (got <= 0) {
        throw changed(uri, got < 0 ? std::string("cannot read it: ") + std::strerror(errno)
                                   : "it ended at byte " + std::to_string(offset + done) + " of the " +
                                         std::to_string(size) + " it had");
      }
      md5.update(block.data(), static_cast<std::size_t>(got));
      done += static_cast<std::uint64_t>(got);
    }
    return base64_of_hex(md5.hex_final());
  }

  // Error(io) unless the file still has the size and mtime it had when opened.
  void check_unchanged(const std::string& uri) const {
    if (text != nullptr) return;
    struct stat now {};
    if (::fstat(fd.get(), &now) != 0) throw changed(uri, std::string("fstat: ") + std::strerror(errno));
    if (now.st_size != opened.st_size || now.st_mtim.tv_sec != opened.st_mtim.tv_sec ||
        now.st_mtim.tv_nsec != opened.st_mtim.tv_nsec) {
      throw changed(uri, "its size or modification time changed");
    }
  }

  Error changed(const std::string& uri, const std::string& detail) const {
    return Error(Errc::io,
                 "the file " + path.string() + " changed while it was written to " + uri + " (" + detail +
                     "); nothing was stored, write it again once it is complete",
                 uri);
  }
};

S3Objects::S3Objects(std::string bucket, const S3Options& options, http::Client& client, Retrier& retrier)
    : s3_(std::move(bucket), aws_settings(options)), client_(client), retrier_(retrier) {}

std::string S3Objects::uri(const std::string& key) const {
  return "s3://" + s3_.name() + "/" + escaped(key);
}

// Writes are never redirected, signed or not: libcurl would turn a
// redirected POST into a GET without its body.
http::Request S3Objects::write_request(const std::string& method, const std::string& key,
                                       const std::string& query, std::string_view payload_sha256) const {
  http::Request request = s3_.request(s3_.object_path(key), query, payload_sha256);
  request.method = method;
  request.follow_redirects = false;
  return request;
}

http::Request S3Objects::get_request(const std::string& key) const {
  return s3_.request(s3_.object_path(key), "");
}

// Performs `request` under the retry policy and keeps its reply's body, up
// to `limit` bytes (a longer one stops the transfer: Reply::too_large).
S3Objects::Reply S3Objects::send(const http::Request& request, const std::string& uri, std::size_t limit) {
  Reply reply;
  http::Request bounded = request;
  bounded.on_response = [&reply](const http::Response&) {
    reply.body.clear();  // a retried request starts over
    return true;
  };
  const http::BodySink sink = [&](const char* data, std::size_t size) {
    reply.too_large = reply.body.size() + size > limit;
    if (!reply.too_large) reply.body.append(data, size);
    return !reply.too_large;
  };
  reply.result = retrier_.run(
      [&] {
        ++reply.attempts;
        http::Result result = client_.perform(bounded, sink);
        if (request.method == "POST") surface_embedded_error(result, reply.body);
        return result;
      },
      [&uri](const http::Result& failed, std::chrono::milliseconds pause) { log_retry(uri, failed, pause); });
  return reply;
}

void S3Objects::fail(const Reply& reply, const std::string& uri, const Source* source) const {
  if (reply.too_large) {
    throw Error(Errc::other,
                "the S3 endpoint " + s3_.host() + " answered more than an S3 reply holds about " + uri +
                    "; check AWS_ENDPOINT_URL",
                uri);
  }
  // Else only the request body's reader aborts a write: the file ran short.
  if (source != nullptr && reply.result.transport == http::Transport::aborted) {
    throw source->changed(uri, reply.result.detail);
  }
  throw s3_error(reply.result, uri, reply.attempts, s3_, S3Use::mirror);
}

std::optional<S3Objects::Info> S3Objects::head(const std::string& key) {
  const std::string u = uri(key);
  http::Request request = get_request(key);
  request.method = "HEAD";
  const Reply reply = send(request, u);
  if (is_not_found(reply.result)) return std::nullopt;
  if (!reply.ok()) {
    throw s3_error(with_error_body(client_, reply.result, get_request(key)), u, reply.attempts, s3_,
                   S3Use::mirror);
  }
  const http::Response& response = reply.result.response;
  Info info;
  const auto size = http::parse_decimal(response.header("content-length"));
  if (!size) {
    throw Error(Errc::other,
                "the S3 endpoint " + s3_.host() + " answered HEAD " + u +
                    " without a size; check AWS_ENDPOINT_URL",
                u);
  }
  info.size = *size;
  info.etag = unquote_etag(response.header("etag"));
  constexpr std::string_view kMetaPrefix = "x-amz-meta-";
  for (const auto& [name, value] : response.headers) {
    if (name.starts_with(kMetaPrefix)) info.metadata[name.substr(kMetaPrefix.size())] = value;
  }
  return info;
}

std::optional<std::string> S3Objects::get_text(const std::string& key, std::size_t max_bytes) {
  const std::string u = uri(key);
  const Reply reply = send(get_request(key), u, max_bytes);
  if (reply.too_large) {
    throw Error(Errc::other,
                u + " is larger than " + std::to_string(max_bytes) +
                    " bytes, more than such an object may hold; check what wrote it",
                u);
  }
  if (is_not_found(reply.result)) return std::nullopt;
  if (!reply.ok()) fail(reply, u);
  return reply.body;
}

void S3Objects::remove(const std::string& key) {
  const std::string u = uri(key);
  const Reply reply = send(write_request("DELETE", key, "", kEmptyPayloadSha256), u);
  if (!reply.ok() && !is_not_found(reply.result)) fail(reply, u);
}

std::vector<std::string> S3Objects::list(const std::string& prefix, int page_size) {
  const std::string u = uri(prefix);
  std::vector<std::string> keys;
  std::string token;
  do {
    const http::Request request =
        s3_.request(s3_.bucket_path(), s3_list_query(prefix, token, std::clamp(page_size, 1, 1000)));
    const Reply reply = send(request, u);
    if (!reply.ok()) fail(reply, u);
    std::optional<S3ListPage> page = parse_s3_list_page(reply.body);
    if (!page) {
      throw Error(Errc::other,
                  "the S3 endpoint " + s3_.host() + " answered something that is not an S3 listing for " +
                      u + "; check AWS_ENDPOINT_URL",
                  u);
    }
    for (S3ListPage::Object& object : page->objects) {
      if (object.key.starts_with(prefix)) keys.push_back(std::move(object.key));
    }
    if (keys.size() > kMaxListedKeys) {
      throw Error(Errc::other,
                  "more than " + std::to_string(kMaxListedKeys) + " keys under " + u +
                      "; list a narrower prefix",
                  u);
    }
    token = std::move(page->next_token);
  } while (!token.empty());
  return keys;
}

S3Objects::Put S3Objects::put_file(const std::string& key, const std::filesystem::path& file,
                                   const std::map<std::string, std::string>& metadata, bool if_absent,
                                   std::uint64_t multipart_above, std::uint64_t part_size) {
  const Source source = Source::of_file(file, uri(key));
  return put(key, source, metadata, if_absent, multipart_above, part_size);
}

S3Objects::Put S3Objects::put_text(const std::string& key, const std::string& body,
                                   const std::map<std::string, std::string>& metadata, bool if_absent) {
  return put(key, Source::of_text(body), metadata, if_absent, kMaxPutSize, kMinPartSize);
}

S3Objects::Put S3Objects::put(const std::string& key, const Source& source,
                              const std::map<std::string, std::string>& metadata, bool if_absent,
                              std::uint64_t multipart_above, std::uint64_t part_size) {
  const std::vector<std::string> headers = metadata_headers(metadata, uri(key));
  // Found now, the object costs no upload; the condition on the write
  // itself catches a writer racing this one.
  if (if_absent && head(key)) return Put::already_there;
  if (source.text != nullptr || source.size <= std::min(multipart_above, kMaxPutSize)) {
    return put_whole(key, source, headers, if_absent);
  }
  return put_parts(key, source, headers, if_absent, part_size);
}

S3Objects::Put S3Objects::put_whole(const std::string& key, const Source& source,
                                    const std::vector<std::string>& headers, bool conditional) {
  const std::string u = uri(key);
  const std::string md5 = source.content_md5(0, source.size, u);
  const std::string sha256 = source.payload_sha256(0, source.size);
  return conditional_write(
      [&](bool condition) {
        http::Request request = write_request("PUT", key, "", sha256);
        request.headers.insert(request.headers.end(), headers.begin(), headers.end());
        request.headers.push_back("Content-MD5: " + md5);
        if (condition) request.headers.push_back("If-None-Match: *");
        request.body = source.body(0, source.size);
        return request;
      },
      u, conditional, &source);
}

S3Objects::Put S3Objects::put_parts(const std::string& key, const Source& source,
                                    const std::vector<std::string>& headers, bool conditional,
                                    std::uint64_t wanted_part_size) {
  const std::string u = uri(key);
  const std::uint64_t part_size = part_size_for(source.size, wanted_part_size);
  if (part_size > kMaxPartSize) {
    throw Error(Errc::other,
                "cannot write " + source.path.string() + " to " + u +
                    ": it is larger than S3 objects can be (10,000 parts of 5 GiB)",
                u);
  }
  const std::string upload_id = create_upload(key, headers);
  try {
    std::vector<std::string> etags;
    for (std::uint64_t offset = 0; offset < source.size; offset += part_size) {
      const int number = static_cast<int>(etags.size()) + 1;
      etags.push_back(upload_part(key, upload_id, number, source, offset,
                                  std::min(part_size, source.size - offset)));
    }
    source.check_unchanged(u);
    const Put outcome = complete(key, upload_id, etags, conditional);
    // A refused Complete leaves the upload and its parts in place.
    if (outcome == Put::already_there) abort_upload(key, upload_id);
    return outcome;
  } catch (...) {
    abort_upload(key, upload_id);
    throw;
  }
}

std::string S3Objects::create_upload(const std::string& key, const std::vector<std::string>& headers) {
  const std::string u = uri(key);
  // "uploads=": libcurl 7.88.1 signs the query as written, and the
  // canonical form of a bare name has the '='.
  http::Request request = write_request("POST", key, "uploads=", kEmptyPayloadSha256);
  request.headers.insert(request.headers.end(), headers.begin(), headers.end());
  const Reply reply = send(request, u);
  if (!reply.ok()) fail(reply, u);
  pugi::xml_document document;
  std::string upload_id;
  if (document.load_buffer(reply.body.data(), reply.body.size())) {
    upload_id = document.child("InitiateMultipartUploadResult").child_value("UploadId");
  }
  if (upload_id.empty()) {
    throw Error(Errc::other,
                "the S3 endpoint " + s3_.host() + " started no multipart upload of " + u +
                    " (no UploadId in its reply); check AWS_ENDPOINT_URL",
                u);
  }
  return upload_id;
}

std::string S3Objects::upload_part(const std::string& key, const std::string& upload_id, int number,
                                   const Source& source, std::uint64_t offset, std::uint64_t length) {
  const std::string u = uri(key);
  const std::string query = "partNumber=" + std::to_string(number) + "&" + upload_query(upload_id);
  http::Request request = write_request("PUT", key, query, source.payload_sha256(offset, length));
  request.headers.push_back("Content-MD5: " + source.content_md5(offset, length, u));
  request.body = source.body(offset, length);
  const Reply reply = send(request, u);
  if (!reply.ok()) fail(reply, u, &source);
  std::string etag = reply.result.response.header("etag");
  if (etag.empty()) {
    throw Error(Errc::other,
                "the S3 endpoint " + s3_.host() + " gave no ETag for part " + std::to_string(number) +
                    " of " + u + "; check AWS_ENDPOINT_URL",
                u);
  }
  return etag;
}

S3Objects::Put S3Objects::complete(const std::string& key, const std::string& upload_id,
                                   const std::vector<std::string>& etags, bool conditional) {
  std::string xml = "<CompleteMultipartUpload>";
  for (std::size_t i = 0; i < etags.size(); ++i) {
    xml += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>" + xml_escaped(etags[i]) +
           "</ETag></Part>";
  }
  xml += "</CompleteMultipartUpload>";
  const std::string sha256 = sha256_hex(xml);
  return conditional_write(
      [&](bool condition) {
        http::Request request = write_request("POST", key, upload_query(upload_id), sha256);
        request.headers.push_back("Content-Type: application/xml");
        if (condition) request.headers.push_back("If-None-Match: *");
        request.body = xml;
        return request;
      },
      uri(key), conditional);
}

void S3Objects::abort_upload(const std::string& key, const std::string& upload_id) noexcept {
  try {
    const std::string u = uri(key);
    const Reply reply = send(write_request("DELETE", key, upload_query(upload_id), kEmptyPayloadSha256), u);
    // 404 NoSuchUpload: already gone.
    if (reply.ok() || is_not_found(reply.result)) return;
    log::warn("{}: could not abort the multipart upload {} ({}); its parts stay stored until the "
              "bucket's lifecycle rule for incomplete uploads removes them",
              u, quoted(upload_id, 200), describe(reply.result));
  } catch (const std::exception& e) {
    log::warn("s3://{}: could not abort the multipart upload {}: {}", s3_.name(), quoted(upload_id, 200),
              e.what());
  } catch (...) {
  }
}

S3Objects::Put S3Objects::conditional_write(const std::function<http::Request(bool conditional)>& request,
                                            const std::string& uri, bool conditional, const Source* source) {
  if (conditional && !conditions_refused_) {
    const Reply reply = send(request(true), uri);
    if (reply.ok()) return Put::created;
    if (is_precondition_failed(reply.result)) return Put::already_there;
    if (!refuses_condition(reply.result)) fail(reply, uri, source);
    log::info("{}: the server refused If-None-Match ({}); writing without it (a HEAD found no object)",
              uri, describe(reply.result));
    const Reply plain = send(request(false), uri);
    if (!plain.ok()) fail(plain, uri, source);
    conditions_refused_ = true;
    return Put::created;
  }
  const Reply reply = send(request(false), uri);
  if (!reply.ok()) fail(reply, uri, source);
  return Put::created;
}

}  // namespace e2s::detail
