#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <utility>

#include "assets/tensor_detail.hpp"
#include "e2s/assets.hpp"
#include "e2s/error.hpp"

namespace e2s {
namespace {

// The dtype of each C++ element type values<T>() is instantiated for.
template <class T>
constexpr DType kDTypeOf = DType::float32;
template <>
constexpr DType kDTypeOf<bool> = DType::boolean;
template <>
constexpr DType kDTypeOf<std::int8_t> = DType::int8;
template <>
constexpr DType kDTypeOf<std::uint8_t> = DType::uint8;
template <>
constexpr DType kDTypeOf<std::int16_t> = DType::int16;
template <>
constexpr DType kDTypeOf<std::uint16_t> = DType::uint16;
template <>
constexpr DType kDTypeOf<std::int32_t> = DType::int32;
template <>
constexpr DType kDTypeOf<std::uint32_t> = DType::uint32;
template <>
constexpr DType kDTypeOf<std::int64_t> = DType::int64;
template <>
constexpr DType kDTypeOf<std::uint64_t> = DType::uint64;
template <>
constexpr DType kDTypeOf<double> = DType::float64;

// IEEE half precision to float. Every half is a float exactly: the exponent
// is re-biased and the mantissa widened; subnormal halves (mantissa * 2^-24)
// are normal floats.
float half_to_float(std::uint16_t half) {
  const std::uint32_t sign = std::uint32_t{half & 0x8000u} << 16;
  const std::uint32_t exponent = (half >> 10) & 0x1fu;
  const std::uint32_t mantissa = half & 0x3ffu;
  if (exponent == 0) {
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign != 0 ? -magnitude : magnitude;
  }
  const std::uint32_t bits = exponent == 0x1f ? sign | 0x7f800000u | (mantissa << 13)
                                              : sign | ((exponent + 112) << 23) | (mantissa << 13);
  return std::bit_cast<float>(bits);
}

// bfloat16 is the upper half of a float's bits.
float bfloat16_to_float(std::uint16_t value) {
  return std::bit_cast<float>(std::uint32_t{value} << 16);
}

template <class T>
void convert(std::span<const std::byte> bytes, std::vector<float>& out) {
  for (std::size_t i = 0; i < out.size(); ++i) {
    T value;
    std::memcpy(&value, bytes.data() + i * sizeof(T), sizeof(T));
    out[i] = static_cast<float>(value);
  }
}

void check_bytes(DType dtype, const std::vector<std::int64_t>& shape,
                 std::span<const std::byte> bytes) {
  const auto count = detail::element_count(shape, dtype_size(dtype));
  if (!count) {
    throw Error(Errc::integrity, "invalid tensor shape " + detail::shape_string(shape) + " for " +
                                     std::string(dtype_name(dtype)) +
                                     ": a dimension is negative or the size overflows");
  }
  if (*count * dtype_size(dtype) != bytes.size()) {
    throw Error(Errc::integrity, "a " + std::string(dtype_name(dtype)) + " tensor of shape " +
                                     detail::shape_string(shape) + " needs " +
                                     std::to_string(*count * dtype_size(dtype)) + " bytes, got " +
                                     std::to_string(bytes.size()));
  }
  // Any byte but 0 and 1 read as a bool is undefined behaviour, so a
  // hostile file must not get one into values<bool>().
  if (dtype == DType::boolean &&
      std::any_of(bytes.begin(), bytes.end(), [](std::byte b) { return b > std::byte{1}; })) {
    throw Error(Errc::integrity, "a bool tensor holds a byte that is neither 0 nor 1");
  }
}

}  // namespace

std::string_view dtype_name(DType dtype) noexcept {
  switch (dtype) {
    case DType::boolean:
      return "bool";
    case DType::int8:
      return "int8";
    case DType::uint8:
      return "uint8";
    case DType::int16:
      return "int16";
    case DType::uint16:
      return "uint16";
    case DType::int32:
      return "int32";
    case DType::uint32:
      return "uint32";
    case DType::int64:
      return "int64";
    case DType::uint64:
      return "uint64";
    case DType::float16:
      return "float16";
    case DType::bfloat16:
      return "bfloat16";
    case DType::float32:
      return "float32";
    case DType::float64:
      return "float64";
  }
  return "unknown";
}

std::size_t dtype_size(DType dtype) noexcept {
  switch (dtype) {
    case DType::boolean:
    case DType::int8:
    case DType::uint8:
      return 1;
    case DType::int16:
    case DType::uint16:
    case DType::float16:
    case DType::bfloat16:
      return 2;
    case DType::int32:
    case DType::uint32:
    case DType::float32:
      return 4;
    case DType::int64:
    case DType::uint64:
    case DType::float64:
      return 8;
  }
  return 1;
}

Tensor::Tensor(DType dtype, std::vector<std::int64_t> shape, std::vector<std::byte> bytes)
    : dtype_(dtype), shape_(std::move(shape)) {
  check_bytes(dtype_, shape_, bytes);
  auto owned = std::make_shared<const std::vector<std::byte>>(std::move(bytes));
  bytes_ = std::span<const std::byte>(*owned);
  owner_ = std::move(owned);
}

Tensor::Tensor(DType dtype, std::vector<std::int64_t> shape, std::span<const std::byte> bytes,
               std::shared_ptr<const void> owner)
    : dtype_(dtype), shape_(std::move(shape)), bytes_(bytes), owner_(std::move(owner)) {
  check_bytes(dtype_, shape_, bytes_);
}

std::size_t Tensor::size() const noexcept {
  // The constructors checked that the bytes hold exactly the shape's elements.
  return bytes_.size() / dtype_size(dtype_);
}

void Tensor::check_type(DType wanted) const {
  if (wanted != dtype_) {
    throw Error(Errc::other, "the tensor holds " + std::string(dtype_name(dtype_)) + ", not " +
                                 std::string(dtype_name(wanted)) +
                                 ": ask for values of its own type or use to_float32()");
  }
}

template <class T>
std::span<const T> Tensor::values() const {
  check_type(kDTypeOf<T>);
  // A view placed by someone else may sit at any address; reading a T
  // through a misaligned pointer is undefined behaviour.
  if (reinterpret_cast<std::uintptr_t>(bytes_.data()) % alignof(T) != 0) {
    throw Error(Errc::other, "the tensor's bytes are not aligned for " +
                                 std::string(dtype_name(dtype_)) + ": copy bytes() instead");
  }
  return {reinterpret_cast<const T*>(bytes_.data()), size()};
}

template std::span<const bool> Tensor::values<bool>() const;
template std::span<const std::int8_t> Tensor::values<std::int8_t>() const;
template std::span<const std::uint8_t> Tensor::values<std::uint8_t>() const;
template std::span<const std::int16_t> Tensor::values<std::int16_t>() const;
template std::span<const std::uint16_t> Tensor::values<std::uint16_t>() const;
template std::span<const std::int32_t> Tensor::values<std::int32_t>() const;
template std::span<const std::uint32_t> Tensor::values<std::uint32_t>() const;
template std::span<const std::int64_t> Tensor::values<std::int64_t>() const;
template std::span<const std::uint64_t> Tensor::values<std::uint64_t>() const;
template std::span<const float> Tensor::values<float>() const;
template std::span<const double> Tensor::values<double>() const;

std::vector<float> Tensor::to_float32() const {
  std::vector<float> out(size());
  switch (dtype_) {
    case DType::boolean:
      convert<bool>(bytes_, out);
      break;
    case DType::int8:
      convert<std::int8_t>(bytes_, out);
      break;
    case DType::uint8:
      convert<std::uint8_t>(bytes_, out);
      break;
    case DType::int16:
      convert<std::int16_t>(bytes_, out);
      break;
    case DType::uint16:
      convert<std::uint16_t>(bytes_, out);
      break;
    case DType::int32:
      convert<std::int32_t>(bytes_, out);
      break;
    case DType::uint32:
      convert<std::uint32_t>(bytes_, out);
      break;
    case DType::int64:
      convert<std::int64_t>(bytes_, out);
      break;
    case DType::uint64:
      convert<std::uint64_t>(bytes_, out);
      break;
    case DType::float32:
      convert<float>(bytes_, out);
      break;
    case DType::float64:
      convert<double>(bytes_, out);
      break;
    case DType::float16:
    case DType::bfloat16:
      for (std::size_t i = 0; i < out.size(); ++i) {
        std::uint16_t bits;
        std::memcpy(&bits, bytes_.data() + i * 2, 2);
        out[i] = dtype_ == DType::float16 ? half_to_float(bits) : bfloat16_to_float(bits);
      }
      break;
  }
  return out;
}

namespace detail {

std::optional<std::size_t> element_count(std::span<const std::int64_t> shape,
                                         std::size_t item_size) noexcept {
  std::size_t count = 1;
  bool empty = false;
  for (const std::int64_t dim : shape) {
    if (dim < 0) return std::nullopt;
    if (dim == 0) empty = true;
  }
  // An array with a zero dimension is empty whatever its other dimensions,
  // as in NumPy; the others still must not overflow on their own.
  for (const std::int64_t dim : shape) {
    if (dim == 0) continue;
    if (__builtin_mul_overflow(count, static_cast<std::uint64_t>(dim), &count)) return std::nullopt;
  }
  // NumPy's bound too: byte offsets must fit in a ptrdiff_t.
  std::size_t bytes = 0;
  if (__builtin_mul_overflow(count, item_size, &bytes) ||
      bytes > static_cast<std::size_t>(PTRDIFF_MAX)) {
    return std::nullopt;
  }
  return empty ? 0 : count;
}

std::string shape_string(std::span<const std::int64_t> shape) {
  std::string text = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(shape[i]);
  }
  if (shape.size() == 1) text += ",";
  return text + ")";
}

void byteswap_elements(std::span<std::byte> bytes, std::size_t item_size) noexcept {
  if (item_size < 2) return;
  for (std::size_t at = 0; at + item_size <= bytes.size(); at += item_size) {
    std::reverse(bytes.begin() + static_cast<std::ptrdiff_t>(at),
                 bytes.begin() + static_cast<std::ptrdiff_t>(at + item_size));
  }
}

}  // namespace detail
}  // namespace e2s
