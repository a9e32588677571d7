// How a failed HTTP result is told to the user: the generic mapping to
// e2s::Error that stores refine for their own services, and the one-line
// description that retry logs and messages share.
#pragma once

#include <string>

#include "e2s/error.hpp"
#include "http/client.hpp"

namespace e2s::detail {

// One-line human description of a failed result ("HTTP 503", "connection reset: ...").
std::string describe(const http::Result& result);

// The generic mapping: 404/410 not_found, 401/403 unauthorized, transport
// failures network/timeout, the rest other. Messages name `uri` and the next step.
Error http_error(const http::Result& failed, const std::string& uri, int attempts);

}  // namespace e2s::detail
