// Text from outside (URIs, file and entry names, header fields) made safe for
// a one-line message: a hostile name must not break the line or fake one.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace e2s::detail {

// '"' and '\' backslashed, control characters (and DEL) as \xHH.
std::string escaped(std::string_view text);

// "escaped", in double quotes, cut after `limit` bytes with "...".
std::string quoted(std::string_view text, std::size_t limit = 200);

}  // namespace e2s::detail
