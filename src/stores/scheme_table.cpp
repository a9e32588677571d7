// The scheme table: which store speaks for which kind of package root.
#include "stores/store.hpp"

namespace e2s::detail {

namespace {

using Factory = std::unique_ptr<Store> (*)(const Location&, const StoreContext&);

struct SchemeEntry {
  Scheme scheme;
  Factory factory;
};

constexpr SchemeEntry kSchemes[] = {
    {Scheme::http, &make_http_store},
    {Scheme::hf, &make_hf_store},
    {Scheme::ngc, &make_ngc_store},
    {Scheme::s3, &make_s3_store},
    {Scheme::gs, &make_gcs_store},
};

}  // namespace

std::unique_ptr<Store> make_store(const Location& location, const StoreContext& context) {
  for (const SchemeEntry& entry : kSchemes) {
    if (entry.scheme == location.scheme) return entry.factory(location, context);
  }
  throw Error(Errc::unsupported,
              "package root \"" + location.root + "\" has no remote store (" +
                  std::string(to_string(location.scheme)) + ")",
              location.root);
}

}  // namespace e2s::detail
