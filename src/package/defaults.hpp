// What a Package's options are once every unset field has its default: the
// environment supplies defaults, a value set in code always wins.
#pragma once

#include <string>

#include "cache/lock.hpp"
#include "e2s/options.hpp"
#include "uri/location.hpp"

namespace e2s::detail {

// `options` with every field that stands for "from the environment" filled
// in, limits applied, and the cache folder of a remote root made absolute.
// Reads the environment; no other I/O.
PackageOptions with_defaults(PackageOptions options, const Location& location);

// The lock options of a download or an extraction (`activity`, e.g.
// "downloading") of `what`, for options that went through with_defaults().
LockOptions lock_options(const PackageOptions& options, const std::string& activity, const std::string& what);

}  // namespace e2s::detail
