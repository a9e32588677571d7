// The parts of the store contract every store shares: requests under the
// package's retry policy, small replies read whole, and Store's defaults.
#include "stores/store.hpp"

namespace e2s::detail {

http::Result perform_with_retries(const StoreContext& context, const http::Request& request,
                                  const std::string& uri, int& attempts,
                                  const http::BodySink& sink) {
  return context.retrier->run(
      [&] {
        ++attempts;
        return context.client->perform(request, sink);
      },
      [&uri](const http::Result& failed, std::chrono::milliseconds pause) {
        log_retry(uri, failed, pause);
      });
}

TextReply fetch_text(const StoreContext& context, http::Request request, const std::string& uri) {
  constexpr std::size_t kMaxReplyBytes = 64u << 20;
  TextReply reply;
  bool too_large = false;
  request.on_response = [&reply](const http::Response&) {
    reply.body.clear();  // a retried request starts over
    return true;
  };
  reply.result = perform_with_retries(context, request, uri, reply.attempts,
                                      [&](const char* data, std::size_t size) {
                                        if (reply.body.size() + size > kMaxReplyBytes) {
                                          too_large = true;
                                          return false;
                                        }
                                        reply.body.append(data, size);
                                        return true;
                                      });
  if (too_large) {
    throw Error(Errc::other,
                "the server answered more than 64 MiB for a listing or API call about " + uri +
                    "; check the endpoint settings",
                uri);
  }
  return reply;
}

bool Store::unchanged(std::string_view file_path, const std::string& uri, const CachedCopy& cached) {
  const RemoteFile now = stat(file_path, uri);
  if (now.size && *now.size != cached.size) return false;
  if (!now.etag.empty() && !cached.etag.empty()) return now.etag == cached.etag;
  if (!now.version.empty() && !cached.version.empty()) return now.version == cached.version;
  return false;
}

std::vector<FileEntry> Store::list(const std::string& uri) {
  throw Error(Errc::unsupported,
              "cannot list " + uri + ": this kind of store has no folder listing; name the files "
              "to resolve instead",
              uri);
}

}  // namespace e2s::detail
