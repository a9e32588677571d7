// NumPy's .npy format (numpy/lib/format.py): the magic "\x93NUMPY", a version,
// a little-endian header length, a Python dict literal naming descr,
// fortran_order and shape, then the raw elements. .npz is a zip of them.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <tuple>
#include <utility>

#include "assets/tensor_detail.hpp"
#include "e2s/assets.hpp"
#include "e2s/error.hpp"
#include "util/posix.hpp"

namespace e2s {
namespace {

using detail::read_some;
using detail::UniqueFd;

namespace fs = std::filesystem;

constexpr std::string_view kMagic = "\x93NUMPY";
// NumPy writes headers of a few hundred bytes and itself refuses more than
// 10,000 by default; this only stops a length field from asking for gigabytes.
constexpr std::size_t kMaxHeader = std::size_t{1} << 20;
constexpr std::size_t kMaxDims = 64;  // NumPy's own limit

// Reads up to `size` bytes into `out`; fewer only at the end of the input.
using Reader = std::function<std::size_t(std::byte* out, std::size_t size)>;

[[noreturn]] void fail(Errc code, const std::string& name, const std::string& what) {
  throw Error(code, "cannot read the NumPy array " + name + ": " + what, name);
}

struct Header {
  DType dtype = DType::float32;
  bool swap = false;  // stored in the other byte order than this machine's
  bool fortran_order = false;
  std::vector<std::int64_t> shape;
};

// descr as NumPy writes it: a byte order ('<', '>', '|' not applicable,
// '=' native), a kind letter and the item size.
std::pair<DType, bool> parse_descr(const std::string& descr, const std::string& name) {
  std::string_view rest = descr;
  char order = '=';
  if (!rest.empty() && std::string_view("<>|=").find(rest.front()) != std::string_view::npos) {
    order = rest.front();
    rest.remove_prefix(1);
  }
  static constexpr std::pair<std::string_view, DType> kTypes[] = {
      {"b1", DType::boolean}, {"i1", DType::int8},    {"u1", DType::uint8},
      {"i2", DType::int16},   {"u2", DType::uint16},  {"i4", DType::int32},
      {"u4", DType::uint32},  {"i8", DType::int64},   {"u8", DType::uint64},
      {"f2", DType::float16}, {"f4", DType::float32}, {"f8", DType::float64},
  };
  for (const auto& [code, dtype] : kTypes) {
    if (rest != code) continue;
    const bool little = std::endian::native == std::endian::little;
    const bool swap = (order == '<' && !little) || (order == '>' && little);
    return {dtype, swap && dtype_size(dtype) > 1};
  }
  // A well-formed type code of a kind we do not read (complex, strings,
  // objects, datetimes, long double) differs from a garbled one.
  const bool type_code =
      !rest.empty() && (std::isalpha(static_cast<unsigned char>(rest[0])) != 0) &&
      rest.size() <= 32 &&
      std::all_of(rest.begin(), rest.end(), [](char c) { return c > ' ' && c < 0x7f; });
  if (type_code) {
    fail(Errc::unsupported, name,
         "dtype " + detail::quoted(descr) +
             " is not supported (only bool, int8-64, uint8-64, float16, float32 and float64; "
             "no complex, string, object or datetime arrays)");
  }
  fail(Errc::integrity, name, "the header's descr " + detail::quoted(descr) + " is not a dtype");
}

// The header dict, read as Python literals: single or double quoted strings,
// True/False, and a tuple of integers, with any spacing and trailing commas.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& name) : text_(text), name_(name) {}

  Header parse() {
    Header header;
    bool has_descr = false;
    bool has_order = false;
    bool has_shape = false;
    skip_space();
    expect('{', "the header is not a dict");
    while (true) {
      skip_space();
      if (eat('}')) break;
      const std::string key = string_literal("a key");
      skip_space();
      expect(':', "':' after " + detail::quoted(key));
      skip_space();
      if (key == "descr") {
        if (has_descr) bad("'descr' appears twice");
        has_descr = true;
        // A list of fields: a structured (record) dtype.
        if (peek() == '[' || peek() == '(' || peek() == '{') {
          fail(Errc::unsupported, name_, "structured (record) dtypes are not supported");
        }
        std::tie(header.dtype, header.swap) = parse_descr(string_literal("descr"), name_);
      } else if (key == "fortran_order") {
        if (has_order) bad("'fortran_order' appears twice");
        has_order = true;
        header.fortran_order = boolean();
      } else if (key == "shape") {
        if (has_shape) bad("'shape' appears twice");
        has_shape = true;
        header.shape = shape_tuple();
      } else {
        bad("unexpected key " + detail::quoted(key));
      }
      skip_space();
      if (eat(',')) continue;
      expect('}', "',' or '}' after the value of " + detail::quoted(key));
      break;
    }
    skip_space();
    if (at_ < text_.size()) bad("bytes after the header dict");
    if (!has_descr || !has_order || !has_shape) {
      bad("the header lacks one of 'descr', 'fortran_order' and 'shape'");
    }
    return header;
  }

 private:
  [[noreturn]] void bad(const std::string& what) const {
    fail(Errc::integrity, name_, "malformed header: " + what);
  }
  char peek() const { return at_ < text_.size() ? text_[at_] : '\0'; }
  bool eat(char c) {
    if (peek() != c || at_ >= text_.size()) return false;
    ++at_;
    return true;
  }
  void expect(char c, const std::string& what) {
    if (!eat(c)) bad("expected " + what);
  }
  void skip_space() {
    while (at_ < text_.size() &&
           (text_[at_] == ' ' || text_[at_] == '\t' || text_[at_] == '\n' || text_[at_] == '\r')) {
      ++at_;
    }
  }
  bool word(std::string_view w) {
    if (text_.substr(at_, w.size()) != w) return false;
    at_ += w.size();
    return true;
  }

  std::string string_literal(const std::string& what) {
    const char quote = peek();
    if (quote != '\'' && quote != '"') bad("expected a quoted string as " + what);
    ++at_;
    std::string value;
    while (true) {
      if (at_ >= text_.size()) bad("unterminated string");
      const char c = text_[at_++];
      if (c == quote) break;
      if (c == '\n') bad("unterminated string");
      if (c == '\\') {
        if (at_ >= text_.size()) bad("unterminated string");
        value += text_[at_++];
        continue;
      }
      value += c;
    }
    return value;
  }

  bool boolean() {
    if (word("True")) return true;
    if (word("False")) return false;
    bad("'fortran_order' is not True or False");
  }

  std::vector<std::int64_t> shape_tuple() {
    // Python's (3) is the integer 3, not a tuple: NumPy refuses it too.
    expect('(', "'shape' to be a tuple");
    std::vector<std::int64_t> shape;
    bool comma = false;
    while (true) {
      skip_space();
      if (eat(')')) break;
      if (!shape.empty() && !comma) bad("expected ',' between dimensions");
      shape.push_back(dimension());
      skip_space();
      comma = eat(',');
      if (!comma) {
        skip_space();
        expect(')', "')' after the shape");
        break;
      }
    }
    if (shape.size() == 1 && !comma) bad("'shape' is not a tuple");
    if (shape.size() > kMaxDims) bad("more than " + std::to_string(kMaxDims) + " dimensions");
    return shape;
  }

  std::int64_t dimension() {
    if (peek() == '-') bad("negative dimension in 'shape'");
    if (peek() < '0' || peek() > '9') bad("a dimension in 'shape' is not an integer");
    std::int64_t value = 0;
    while (peek() >= '0' && peek() <= '9') {
      const int digit = text_[at_++] - '0';
      if (value > (std::numeric_limits<std::int64_t>::max() - digit) / 10) {
        bad("a dimension in 'shape' is too large");
      }
      value = value * 10 + digit;
    }
    // Python 2 wrote long integers as 3L; NumPy still reads such files.
    if (peek() == 'L' || peek() == 'l') ++at_;
    return value;
  }

  std::string_view text_;
  const std::string& name_;
  std::size_t at_ = 0;
};

// Fortran (column-major) elements to C (row-major) order.
std::vector<std::byte> to_c_order(std::span<const std::byte> in,
                                  const std::vector<std::int64_t>& shape, std::size_t item) {
  const std::size_t count = in.size() / item;
  const std::size_t dims = std::min(shape.size(), kMaxDims);
  std::vector<std::byte> out(in.size());
  std::array<std::size_t, kMaxDims> stride{};  // in elements, of the Fortran layout
  std::array<std::size_t, kMaxDims> index{};
  std::size_t s = 1;
  for (std::size_t k = 0; k < dims; ++k) {
    stride[k] = s;
    s *= static_cast<std::size_t>(shape[k]);
  }
  std::size_t from = 0;
  for (std::size_t i = 0; i < count; ++i) {
    std::memcpy(out.data() + i * item, in.data() + from * item, item);
    // The next C-order index: the last dimension moves fastest.
    for (std::size_t k = dims; k-- > 0;) {
      from += stride[k];
      if (++index[k] < static_cast<std::size_t>(shape[k])) break;
      from -= stride[k] * index[k];
      index[k] = 0;
    }
  }
  return out;
}

std::size_t read_full(const Reader& read, std::byte* out, std::size_t size) {
  std::size_t got = 0;
  while (got < size) {
    const std::size_t n = read(out + got, size - got);
    if (n == 0) break;
    got += n;
  }
  return got;
}

// One .npy from `read`. `total`, when known, is the size of the whole input
// (file or zip member), checked against the header before anything large is
// allocated; `max_data` bounds the elements' bytes when it is not known.
Tensor read_npy(const Reader& read, std::optional<std::uint64_t> total, std::uint64_t max_data,
                const std::string& name) {
  std::array<std::byte, 12> prefix{};
  std::size_t got = read_full(read, prefix.data(), 10);
  if (got == 0) fail(Errc::integrity, name, "the file is empty");
  if (got < kMagic.size() || std::memcmp(prefix.data(), kMagic.data(), kMagic.size()) != 0) {
    fail(Errc::integrity, name, "not a .npy file (no \\x93NUMPY magic)");
  }
  if (got < 10) fail(Errc::integrity, name, "truncated in the header");
  const auto major = static_cast<unsigned>(prefix[6]);
  const auto minor = static_cast<unsigned>(prefix[7]);
  if (major < 1 || major > 3) {
    fail(Errc::unsupported, name,
         "format version " + std::to_string(major) + "." + std::to_string(minor) +
             " is not supported (1.0, 2.0 and 3.0 are)");
  }
  std::size_t header_length = 0;
  std::size_t offset = 10;
  if (major == 1) {
    header_length = static_cast<std::size_t>(prefix[8]) | static_cast<std::size_t>(prefix[9]) << 8;
  } else {
    if (read_full(read, prefix.data() + 10, 2) < 2)
      fail(Errc::integrity, name, "truncated in the header");
    offset = 12;
    for (int i = 3; i >= 0; --i)
      header_length = header_length << 8 | static_cast<std::size_t>(prefix[8 + i]);
  }
  if (header_length > kMaxHeader) {
    fail(Errc::integrity, name,
         "the header claims " + std::to_string(header_length) + " bytes, more than the " +
             std::to_string(kMaxHeader) + " allowed");
  }
  if (total && *total < offset + header_length)
    fail(Errc::integrity, name, "truncated in the header");
  std::string text(header_length, '\0');
  if (read_full(read, reinterpret_cast<std::byte*>(text.data()), header_length) < header_length) {
    fail(Errc::integrity, name, "truncated in the header");
  }
  offset += header_length;
  const Header header = HeaderParser(text, name).parse();

  const std::size_t item = dtype_size(header.dtype);
  const auto count = detail::element_count(header.shape, item);
  if (!count) {
    fail(Errc::integrity, name, "shape " + detail::shape_string(header.shape) + " overflows");
  }
  const std::uint64_t data_size = std::uint64_t{*count} * item;
  const std::string needs = "shape " + detail::shape_string(header.shape) + " of " +
                            std::string(dtype_name(header.dtype)) + " needs " +
                            std::to_string(data_size) + " data bytes";
  if (total) {
    const std::uint64_t have = *total - offset;
    if (have < data_size)
      fail(Errc::integrity, name, "truncated: " + needs + ", there are " + std::to_string(have));
    if (have > data_size) {
      fail(Errc::integrity, name, needs + " but " + std::to_string(have) + " follow the header");
    }
  } else if (data_size > max_data) {
    fail(Errc::integrity, name, needs + ", more than the " + std::to_string(max_data) + " allowed");
  }

  std::vector<std::byte> data(data_size);
  if (read_full(read, data.data(), data.size()) < data.size()) {
    fail(Errc::integrity, name, "truncated: " + needs);
  }
  std::byte extra{};
  if (read(&extra, 1) != 0) fail(Errc::integrity, name, needs + " but more follow");

  if (header.fortran_order && header.shape.size() > 1 && !data.empty()) {
    data = to_c_order(data, header.shape, item);
  }
  if (header.swap) detail::byteswap_elements(data, item);
  try {
    return Tensor(header.dtype, header.shape, std::move(data));
  } catch (const Error& e) {
    fail(e.code(), name, e.what());
  }
}

// The file opened for reading, and its size; Error(io) when it cannot be.
std::pair<int, std::uint64_t> open_file(const fs::path& file, std::string_view what) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw Error(
        Errc::io,
        "cannot open the " + std::string(what) + " " + file.string() + ": " + std::strerror(errno),
        file.string());
  }
  struct stat status {};
  const bool stated = ::fstat(fd, &status) == 0;
  if (!stated || !S_ISREG(status.st_mode)) {
    const int error = errno;
    ::close(fd);
    throw Error(Errc::io,
                "cannot read the " + std::string(what) + " " + file.string() + ": " +
                    (stated ? "not a regular file" : std::strerror(error)),
                file.string());
  }
  return {fd, static_cast<std::uint64_t>(status.st_size)};
}

// What load_npz may expand an archive to: no honest .npz holds more arrays
// than fit in memory, since they are all loaded at once.
std::uint64_t physical_memory() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page_size <= 0) return std::uint64_t{16} << 30;  // unknown: a common size
  return static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page_size);
}

struct ArchiveFree {
  void operator()(archive* a) const { archive_read_free(a); }
};

std::string archive_message(archive* a) {
  const char* message = archive_error_string(a);
  return message != nullptr ? detail::quoted(message) : "unknown error";
}

}  // namespace

Tensor parse_npy(std::span<const std::byte> bytes, const std::string& name) {
  std::size_t at = 0;
  const Reader read = [&](std::byte* out, std::size_t size) {
    const std::size_t n = std::min(size, bytes.size() - at);
    if (n > 0) std::memcpy(out, bytes.data() + at, n);
    at += n;
    return n;
  };
  return read_npy(read, bytes.size(), bytes.size(), name);
}

Tensor load_npy(const fs::path& file) {
  const auto opened = open_file(file, "NumPy array");
  const UniqueFd owned(opened.first);
  const int fd = opened.first;
  const std::uint64_t size = opened.second;
  const std::string name = file.string();
  const Reader read = [&](std::byte* out, std::size_t want) -> std::size_t {
    const ssize_t n = read_some(fd, out, want);
    if (n < 0) {
      throw Error(Errc::io, "cannot read the NumPy array " + name + ": " + std::strerror(errno), name);
    }
    return static_cast<std::size_t>(n);
  };
  return read_npy(read, size, size, name);
}

std::map<std::string, Tensor> load_npz(const fs::path& file) {
  return detail::load_npz(file, physical_memory());
}

namespace detail {

// Longer than most: libarchive's read loop holds the bounds (entries, total
// bytes, each member's size) beside the reads they bound.
std::map<std::string, Tensor> load_npz(const fs::path& file, std::uint64_t max_total_bytes) {
  const std::string where = file.string();
  const auto opened = open_file(file, ".npz file");
  const UniqueFd owned(opened.first);
  const int fd = opened.first;
  const std::uint64_t size = opened.second;
  const auto bad = [&](const std::string& what) {
    return Error(Errc::integrity, "cannot read the .npz file " + where + ": " + what, where);
  };
  if (size == 0) throw bad("the file is empty");
  // numpy.savez() with no arrays writes a zip of just its end record, which
  // libarchive does not recognise as a zip.
  if (size >= 22 && size <= 22 + 0xffff) {
    std::array<unsigned char, 22> end{};
    if (::pread(fd, end.data(), end.size(), 0) == static_cast<ssize_t>(end.size()) &&
        std::memcmp(end.data(), "PK\x05\x06", 4) == 0 &&
        std::all_of(end.begin() + 4, end.begin() + 20, [](unsigned char b) { return b == 0; }) &&
        22u + (end[20] | end[21] << 8) == size) {
      return {};
    }
  }

  std::unique_ptr<archive, ArchiveFree> zip(archive_read_new());
  if (!zip) throw std::bad_alloc();
  // The seekable reader trusts the central directory, whose sizes bound each
  // member before it is read; numpy.savez and savez_compressed write stored
  // and deflated members, which libarchive both reads.
  archive_read_support_format_zip_seekable(zip.get());
  if (archive_read_open_fd(zip.get(), fd, 64 * 1024) != ARCHIVE_OK) {
    throw bad("not a zip archive (" + archive_message(zip.get()) + ")");
  }

  std::map<std::string, Tensor> arrays;
  std::uint64_t budget = max_total_bytes;
  while (true) {
    archive_entry* entry = nullptr;
    const int status = archive_read_next_header(zip.get(), &entry);
    if (status == ARCHIVE_EOF) break;
    if (status < ARCHIVE_WARN)
      throw bad("not a readable zip archive (" + archive_message(zip.get()) + ")");
    const char* path = archive_entry_pathname_utf8(entry);
    if (path == nullptr) path = archive_entry_pathname(entry);
    if (path == nullptr) throw bad("a member has no readable name");
    const std::string member = path;
    const std::string name = where + " member " + detail::quoted(member);
    if (archive_entry_filetype(entry) != AE_IFREG) {
      throw bad("member " + detail::quoted(member) + " is not a file");
    }
    constexpr std::string_view kSuffix = ".npy";
    if (member.size() <= kSuffix.size() || !member.ends_with(kSuffix)) {
      throw bad("member " + detail::quoted(member) + " is not a .npy array");
    }
    const std::string key = member.substr(0, member.size() - kSuffix.size());
    if (arrays.contains(key)) throw bad("member " + detail::quoted(member) + " appears twice");

    std::optional<std::uint64_t> declared;
    if (archive_entry_size_is_set(entry) != 0 && archive_entry_size(entry) >= 0) {
      declared = static_cast<std::uint64_t>(archive_entry_size(entry));
      if (*declared > budget) {
        throw bad("member " + detail::quoted(member) + " expands to " + std::to_string(*declared) +
                  " bytes, more than the " + std::to_string(budget) + " left to load");
      }
    }
    // Never more than the declared size plus the one byte that shows the
    // member is longer than it claims: a lying zip stops there.
    std::uint64_t left = declared ? *declared + 1 : budget + 1;
    const Reader read = [&](std::byte* out, std::size_t want) -> std::size_t {
      if (left == 0) return 0;
      const std::size_t ask = static_cast<std::size_t>(std::min<std::uint64_t>(want, left));
      while (true) {
        const la_ssize_t n = archive_read_data(zip.get(), out, ask);
        if (n >= 0) {
          left -= static_cast<std::uint64_t>(n);
          return static_cast<std::size_t>(n);
        }
        if (n == ARCHIVE_RETRY) continue;
        throw Error(Errc::integrity,
                    "cannot read the NumPy array " + name + ": " + archive_message(zip.get()),
                    where);
      }
    };
    Tensor tensor = read_npy(read, declared, budget, name);
    budget -= std::min<std::uint64_t>(budget, tensor.bytes().size());
    arrays.emplace(key, std::move(tensor));
  }
  return arrays;
}

}  // namespace detail
}  // namespace e2s
