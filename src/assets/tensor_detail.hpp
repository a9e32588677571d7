// What the tensor, .npy/.npz and safetensors readers share: shape arithmetic
// that cannot overflow, byte swapping, and message text that stays one line.
#pragma once

#include "util/text.hpp"  // quoted(), for names read from files

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "e2s/assets.hpp"

namespace e2s::detail {

// Number of elements of `shape`, or nullopt when a dimension is negative or
// the byte count (elements * item_size, zero dimensions left out, as NumPy
// counts) does not fit in a ptrdiff_t.
std::optional<std::size_t> element_count(std::span<const std::int64_t> shape,
                                         std::size_t item_size) noexcept;

// "(2, 3)", "(4,)", "()": as NumPy prints shapes.
std::string shape_string(std::span<const std::int64_t> shape);

// Reverses the bytes of each `item_size`-byte element of `bytes` in place.
void byteswap_elements(std::span<std::byte> bytes, std::size_t item_size) noexcept;

// load_npz with a ceiling on the bytes all members may expand to (load_npz
// uses the machine's physical memory), so tests can show the ceiling holds.
std::map<std::string, Tensor> load_npz(const std::filesystem::path& file,
                                       std::uint64_t max_total_bytes);

}  // namespace e2s::detail
