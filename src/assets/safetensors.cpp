// The safetensors format: an 8-byte little-endian header length, a JSON
// header mapping each tensor name to its dtype, shape and [begin, end) byte
// offsets into the data that follows, and an optional "__metadata__" object.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <tuple>
#include <utility>

#include "assets/tensor_detail.hpp"
#include "e2s/assets.hpp"
#include "e2s/error.hpp"

namespace e2s {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The reference implementation's own limit: no honest header comes close.
constexpr std::uint64_t kMaxHeader = 100'000'000;

std::optional<DType> parse_dtype(std::string_view name) {
  static constexpr std::pair<std::string_view, DType> kTypes[] = {
      {"BOOL", DType::boolean}, {"U8", DType::uint8},      {"I8", DType::int8},
      {"U16", DType::uint16},   {"I16", DType::int16},     {"U32", DType::uint32},
      {"I32", DType::int32},    {"U64", DType::uint64},    {"I64", DType::int64},
      {"F16", DType::float16},  {"BF16", DType::bfloat16}, {"F32", DType::float32},
      {"F64", DType::float64},
  };
  for (const auto& [code, dtype] : kTypes) {
    if (code == name) return dtype;
  }
  return std::nullopt;
}

struct Entry {
  std::string name;
  DType dtype;
  std::vector<std::int64_t> shape;
  std::uint64_t begin;
  std::uint64_t end;
};

// Builds the error a malformed file gets, naming the file.
using Complaint = std::function<Error(const std::string& what)>;

// One tensor's description in the header (`key`: its name), checked against
// the data section's size.
Entry parse_entry(const std::string& key, const json& value, std::uint64_t data_size, const Complaint& bad,
                  const std::string& where) {
  const std::string tensor = "tensor " + detail::quoted(key);
  if (!value.is_object()) throw bad(tensor + " is not described by an object");

  const auto dtype_field = value.find("dtype");
  if (dtype_field == value.end() || !dtype_field->is_string())
    throw bad(tensor + " has no dtype");
  const auto& dtype_text = dtype_field->get_ref<const std::string&>();
  const auto dtype = parse_dtype(dtype_text);
  if (!dtype) {
    throw Error(Errc::unsupported,
                "cannot read the safetensors file " + where + ": " + tensor + " has dtype " +
                    detail::quoted(dtype_text) +
                    ", which e2s does not read (BOOL, U8-U64, I8-I64, F16, BF16, F32, F64)",
                where);
  }

  const auto shape_field = value.find("shape");
  if (shape_field == value.end() || !shape_field->is_array()) throw bad(tensor + " has no shape");
  std::vector<std::int64_t> shape;
  for (const auto& dim : *shape_field) {
    if (dim.is_number_unsigned()) {
      if (dim.get<std::uint64_t>() > std::uint64_t{std::numeric_limits<std::int64_t>::max()}) {
        throw bad(tensor + " has a dimension too large");
      }
      shape.push_back(dim.get<std::int64_t>());
    } else if (dim.is_number_integer()) {
      throw bad(tensor + " has a negative dimension");
    } else {
      throw bad(tensor + " has a dimension that is not an integer");
    }
  }

  const auto offsets = value.find("data_offsets");
  if (offsets == value.end() || !offsets->is_array() || offsets->size() != 2 ||
      !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned()) {
    throw bad(tensor + " has no data_offsets [begin, end] of two non-negative integers");
  }
  const auto begin = (*offsets)[0].get<std::uint64_t>();
  const auto end = (*offsets)[1].get<std::uint64_t>();
  if (begin > end || end > data_size) {
    throw bad(tensor + " has data_offsets [" + std::to_string(begin) + ", " +
              std::to_string(end) + "] outside the " + std::to_string(data_size) +
              "-byte data section");
  }
  const std::size_t item = dtype_size(*dtype);
  const auto count = detail::element_count(shape, item);
  if (!count)
    throw bad(tensor + " has shape " + detail::shape_string(shape) + ", which overflows");
  if (std::uint64_t{*count} * item != end - begin) {
    throw bad(tensor + " has shape " + detail::shape_string(shape) + " of " +
              std::string(dtype_name(*dtype)) + " (" + std::to_string(*count * item) +
              " bytes) but data_offsets of " + std::to_string(end - begin) + " bytes");
  }
  return {key, *dtype, std::move(shape), begin, end};
}

// Sorts `entries` by offset and checks that they tile the data section.
void check_tiling(std::vector<Entry>& entries, std::uint64_t data_size, const Complaint& bad) {
  // As the reference implementation: the tensors tile the data section,
  // without overlaps (one tensor's bytes read as another's) or gaps.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  });
  std::uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry& entry : entries) {
    if (entry.begin < covered) {
      throw bad("tensor " + detail::quoted(entry.name) + " overlaps tensor " +
                detail::quoted(previous->name));
    }
    if (entry.begin > covered) {
      throw bad(std::to_string(entry.begin - covered) + " unused bytes before tensor " +
                detail::quoted(entry.name));
    }
    covered = entry.end;
    previous = &entry;
  }
  if (covered != data_size) {
    throw bad(std::to_string(data_size - covered) + " bytes after the last tensor's data");
  }
}

}  // namespace

// Longer than most: the file is mapped and its header checked in one place,
// because every tensor shares the mapping that starts here and each check
// sits beside the byte it guards (parse_entry and check_tiling do the rest).
SafeTensors SafeTensors::open(const fs::path& file) {
  const std::string where = file.string();
  const auto bad = [&](const std::string& what) {
    return Error(Errc::integrity, "invalid safetensors file " + where + ": " + what, where);
  };
  const auto io_error = [&](const std::string& what) {
    return Error(Errc::io, "cannot read the safetensors file " + where + ": " + what, where);
  };

  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw io_error(std::strerror(errno));
  struct stat status {};
  if (::fstat(fd, &status) != 0) {
    const int error = errno;
    ::close(fd);
    throw io_error(std::strerror(error));
  }
  if (!S_ISREG(status.st_mode)) {
    ::close(fd);
    throw io_error("not a regular file");
  }
  const auto size = static_cast<std::uint64_t>(status.st_size);
  if (size < 8) {
    ::close(fd);
    throw bad(size == 0 ? "the file is empty" : "shorter than its 8-byte header length");
  }
  // Read-only and private: the tensors see the file as it was opened. Cache
  // files are replaced by rename, never truncated in place, so the mapping
  // does not shrink under the views.
  void* address = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_error = errno;
  ::close(fd);
  if (address == MAP_FAILED) throw io_error(std::strerror(map_error));
  std::shared_ptr<const void> mapping(
      address, [size](const void* p) { ::munmap(const_cast<void*>(p), size); });
  const auto* base = static_cast<const std::byte*>(address);

  std::uint64_t header_length = 0;
  for (int i = 7; i >= 0; --i)
    header_length = header_length << 8 | static_cast<std::uint64_t>(base[i]);
  if (header_length > kMaxHeader) {
    throw bad("the header length " + std::to_string(header_length) + " exceeds the " +
              std::to_string(kMaxHeader) + " bytes allowed");
  }
  if (header_length > size - 8) {
    throw bad("the header length " + std::to_string(header_length) + " runs past the end of the " +
              std::to_string(size) + "-byte file");
  }
  const auto* text = reinterpret_cast<const char*>(base + 8);
  // nlohmann refuses invalid JSON and ill-formed UTF-8 alike.
  const json header = json::parse(text, text + header_length, nullptr, false);
  if (header.is_discarded()) throw bad("the header is not valid UTF-8 JSON");
  if (!header.is_object()) throw bad("the header is not a JSON object");

  const std::byte* data = base + 8 + header_length;
  const std::uint64_t data_size = size - 8 - header_length;

  SafeTensors result;
  result.file_ = file;
  result.mapping_ = mapping;
  std::vector<Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      if (value.is_null()) continue;
      if (!value.is_object()) throw bad("\"__metadata__\" is not an object");
      for (const auto& [meta_key, meta_value] : value.items()) {
        if (!meta_value.is_string()) {
          throw bad("\"__metadata__\" value " + detail::quoted(meta_key) + " is not a string");
        }
        result.metadata_.emplace(meta_key, meta_value.get<std::string>());
      }
      continue;
    }
    entries.push_back(parse_entry(key, value, data_size, bad, where));
  }

  check_tiling(entries, data_size, bad);

  for (Entry& entry : entries) {
    std::span<const std::byte> bytes(data + entry.begin, entry.end - entry.begin);
    try {
      result.tensors_.emplace(entry.name,
                              Tensor(entry.dtype, std::move(entry.shape), bytes, mapping));
    } catch (const Error& e) {
      throw bad("tensor " + detail::quoted(entry.name) + ": " + e.what());
    }
  }
  return result;
}

std::vector<std::string> SafeTensors::names() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, tensor] : tensors_) names.push_back(name);
  return names;
}

bool SafeTensors::contains(std::string_view name) const {
  return tensors_.find(name) != tensors_.end();
}

Tensor SafeTensors::get(std::string_view name) const {
  const auto found = tensors_.find(name);
  if (found == tensors_.end()) {
    throw Error(Errc::not_found,
                "the safetensors file " + file_.string() + " has no tensor " +
                    detail::quoted(name) + " (names() lists those it has)",
                file_.string());
  }
  const Tensor& view = found->second;
  const std::size_t item = dtype_size(view.dtype());
  const bool aligned = reinterpret_cast<std::uintptr_t>(view.bytes().data()) % item == 0;
  if (aligned && std::endian::native == std::endian::little) return view;
  // A file whose header or offsets leave a tensor misaligned for its type,
  // or a big-endian machine: the elements need a copy to be read as values.
  std::vector<std::byte> copy(view.bytes().begin(), view.bytes().end());
  if constexpr (std::endian::native == std::endian::big) detail::byteswap_elements(copy, item);
  return Tensor(view.dtype(), view.shape(), std::move(copy));
}

}  // namespace e2s
