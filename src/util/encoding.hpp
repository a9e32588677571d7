// Byte encodings that services speak: hex digests, base64 credentials and
// checksums. Stores and digests both use them, so they sit below both.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace e2s::detail {

// Standard base64 (RFC 4648, with padding) of `data`, for HTTP Basic credentials.
std::string base64_encode(std::string_view data);

// Decodes standard base64; nullopt when `text` is not valid base64.
std::optional<std::string> base64_decode(std::string_view text);

// Lowercase hex of arbitrary bytes.
std::string to_hex(std::string_view bytes);

}  // namespace e2s::detail
