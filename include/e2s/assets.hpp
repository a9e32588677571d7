// Reading what model packages hold: NumPy arrays (.npy, .npz), safetensors
// checkpoints and archives (zip, tar, tar.gz). Each is one call, and each
// refuses a malformed or hostile file with an Error naming it, never reading
// or writing outside what it was given.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "e2s/options.hpp"  // ExtractOptions

namespace e2s {

// Element types of NumPy and safetensors arrays.
enum class DType {
  boolean, int8, uint8, int16, uint16, int32, uint32, int64, uint64,
  float16, bfloat16, float32, float64,
};

// "float32", "int64", ... (NumPy's names; "bfloat16" for bfloat16).
std::string_view dtype_name(DType dtype) noexcept;
std::size_t dtype_size(DType dtype) noexcept;

// An n-dimensional array in row-major (C) order and native byte order: what a
// model computes with. Cheap to copy: copies share the bytes, which live as
// long as any copy (owned memory, or a mapping of the file it was read from).
class Tensor {
 public:
  Tensor() = default;
  // Takes `bytes` (row-major, native byte order); throws Error(integrity)
  // when their size does not match shape and dtype (or a dimension is
  // negative, or a bool byte is neither 0 nor 1).
  Tensor(DType dtype, std::vector<std::int64_t> shape, std::vector<std::byte> bytes);
  // A view of bytes owned by `owner` (kept alive by the Tensor).
  Tensor(DType dtype, std::vector<std::int64_t> shape, std::span<const std::byte> bytes,
         std::shared_ptr<const void> owner);

  DType dtype() const noexcept { return dtype_; }
  const std::vector<std::int64_t>& shape() const noexcept { return shape_; }
  // Number of elements (1 for a 0-d array; 0 for a default-constructed Tensor).
  std::size_t size() const noexcept;
  std::span<const std::byte> bytes() const noexcept { return bytes_; }

  // The elements as T; throws Error(other) unless T is exactly the dtype's
  // type (bool, std::int8_t ... std::uint64_t, float, double; float16 and
  // bfloat16 have no C++ type: use to_float32 or bytes()), or when a view's
  // bytes are not aligned for T (never so for the readers below).
  template <class T>
  std::span<const T> values() const;

  // Every element converted to float (any dtype; float16 and bfloat16
  // exactly, 64-bit integers and doubles rounded).
  std::vector<float> to_float32() const;

 private:
  void check_type(DType wanted) const;

  DType dtype_ = DType::float32;
  std::vector<std::int64_t> shape_;
  std::span<const std::byte> bytes_;
  std::shared_ptr<const void> owner_;
};

// values<T> exists for exactly these types (instantiated in the library).
extern template std::span<const bool> Tensor::values<bool>() const;
extern template std::span<const std::int8_t> Tensor::values<std::int8_t>() const;
extern template std::span<const std::uint8_t> Tensor::values<std::uint8_t>() const;
extern template std::span<const std::int16_t> Tensor::values<std::int16_t>() const;
extern template std::span<const std::uint16_t> Tensor::values<std::uint16_t>() const;
extern template std::span<const std::int32_t> Tensor::values<std::int32_t>() const;
extern template std::span<const std::uint32_t> Tensor::values<std::uint32_t>() const;
extern template std::span<const std::int64_t> Tensor::values<std::int64_t>() const;
extern template std::span<const std::uint64_t> Tensor::values<std::uint64_t>() const;
extern template std::span<const float> Tensor::values<float>() const;
extern template std::span<const double> Tensor::values<double>() const;

// Reads a .npy file (format 1.0, 2.0, 3.0): any dtype above, either byte
// order, C or Fortran order (returned in C order). Throws Error: integrity for
// a truncated or malformed file (header, shape or size that lies), unsupported
// for object arrays, structured dtypes and complex numbers; io when unreadable.
Tensor load_npy(const std::filesystem::path& file);
// The same from bytes in memory; `name` is used in messages.
Tensor parse_npy(std::span<const std::byte> bytes, const std::string& name);

// Reads every array of a .npz file (stored or deflated), by name without the
// ".npy" suffix. Same errors as load_npy.
std::map<std::string, Tensor> load_npz(const std::filesystem::path& file);

// A safetensors file, memory-mapped: tensors are views into the mapping
// (zero-copy; the file must be little-endian, as the format says), which
// stays mapped while any Tensor from it lives. A tensor the file places
// misaligned for its type is copied instead. open() validates the header
// (JSON, dtypes, shapes, offsets within the file, no overlaps or gaps) and
// throws Error(integrity) naming the file and tensor; Error(unsupported) for
// a dtype outside DType (F8_E4M3, ...); Error(io) when unreadable.
class SafeTensors {
 public:
  static SafeTensors open(const std::filesystem::path& file);

  // Tensor names, sorted.
  std::vector<std::string> names() const;
  bool contains(std::string_view name) const;
  // Throws Error(not_found) naming the file and the tensor when absent.
  Tensor get(std::string_view name) const;
  // The header's "__metadata__" (string to string), empty when none.
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }

 private:
  std::filesystem::path file_;
  std::shared_ptr<const void> mapping_;
  std::map<std::string, Tensor, std::less<>> tensors_;
  std::map<std::string, std::string> metadata_;
};


// Extracts `archive` (zip, or tar plain or compressed with gzip, bzip2, xz or
// zstd; told apart by content) into `destination`, which must not exist
// (else Error(io)); its missing parent folders are created. Entries go to a
// temp folder beside it ("<destination>.part-...") that is renamed into place
// once complete, so the destination is never partial; on failure the temp
// folder is removed and nothing is left at `destination`. When another
// process creates `destination` meanwhile (two extracting the same archive
// into a cache), theirs is kept, ours dropped, and the call returns normally.
//
// Refuses with Error(integrity), naming the archive and the entry: entry
// paths that are absolute, have a ".." segment, a backslash, a control
// character or a drive letter ("./a" and "a//b" are fine); symlinks whose
// target is absolute, climbs above the archive's folder, or has ".." after a
// name; entries written through a symlink extracted earlier; hard links to
// anything but a regular file extracted earlier; devices, FIFOs and sockets;
// a path that an earlier entry already extracted (duplicates are refused,
// never replaced; a folder may be listed twice); empty, truncated and
// non-archive files; and archives past the limits in `options`. Files get
// mode 0644, or 0755 when the archive gives the owner exec, and folders 0755
// (less the umask): no owner, setuid, setgid or sticky bit is taken from the
// archive. Throws Error(io) when the archive cannot be opened or writing fails.
void extract_archive(const std::filesystem::path& archive, const std::filesystem::path& destination,
                     const ExtractOptions& options = {});

}  // namespace e2s
