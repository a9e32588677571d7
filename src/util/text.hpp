// Text for people and for the cache's records. Text from outside (URIs, file
// and entry names, header fields) is made safe for a one-line message: a
// hostile name must not break the line or fake one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace e2s::detail {

// '"' and '\' backslashed, control characters (and DEL) as \xHH.
std::string escaped(std::string_view text);

// "escaped", in double quotes, cut after `limit` bytes with "...".
std::string quoted(std::string_view text, std::size_t limit = 200);

// ASCII letters lowercased, every other byte as it is (scheme, host and
// header names, units: never locale-dependent).
std::string ascii_lower(std::string_view text);

// "512 B", "1.5 KiB", "3.0 MiB", "12.4 GiB".
std::string human_bytes(std::uint64_t bytes);

// Text from outside (a header value: an ETag may carry any byte) in a form a
// JSON record can hold, losslessly: '%', control bytes, DEL and every byte
// of 0x80 and above as %XX; everything else as it is. unescape_record()
// gives the bytes back; nullopt for a malformed escape.
std::string escape_record(std::string_view text);
std::optional<std::string> unescape_record(std::string_view text);

// Whether `text` is well-formed UTF-8 (no overlong forms, no surrogates).
bool is_utf8(std::string_view text);

}  // namespace e2s::detail
