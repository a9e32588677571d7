// Placeholder until the S3 object writes land.
#include "e2s/error.hpp"
#include "mirror/mirror.hpp"

namespace e2s::detail {

std::unique_ptr<Mirror> make_s3_mirror(const std::string& url, const StoreContext&) {
  throw Error(Errc::unsupported, "s3:// site mirrors are not built yet: " + url, url);
}

}  // namespace e2s::detail
