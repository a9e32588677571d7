// Text for people and for the cache's records. Text from outside (URIs, file
// and entry names, header fields) is made safe for a one-line message: a
// hostile name must not break the line or fake one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace e2s::detail {

// '"' and '\' backslashed, control characters (and DEL) as \xHH.
std::string escaped(std::string_view text);

// "escaped", in double quotes, cut after `limit` bytes with "...".
std::string quoted(std::string_view text, std::size_t limit = 200);

// "512 B", "1.5 KiB", "3.0 MiB", "12.4 GiB".
std::string human_bytes(std::uint64_t bytes);

}  // namespace e2s::detail
