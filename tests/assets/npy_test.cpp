// e2s::load_npy, parse_npy and load_npz against arrays NumPy wrote at test
// time (make_arrays.py: every dtype, both byte orders, C and Fortran order,
// format versions 1.0-3.0, 0-d, empty and n-d arrays; .npz stored and
// deflated), compared element by element; and against hostile files: cut
// short anywhere, headers that lie or are not Python dicts, shapes that
// overflow, unsupported dtypes, and .npz zip bombs.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "assets/arrays.hpp"
#include "assets/tensor_detail.hpp"
#include "e2s/assets.hpp"
#include "e2s/error.hpp"
#include "support/fixtures.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using e2s::DType;
using e2s::Errc;
using e2s::Tensor;
using e2s::test::arrays;
using e2s::test::as_bytes;
using e2s::test::contains;
using e2s::test::error_of;
using e2s::test::expect_tensor;
using e2s::test::file_bytes;
using e2s::test::TempDir;

// A .npy file with `header` as its dict, padded as NumPy pads it.
std::string npy(std::string_view header, std::string_view data, int major = 1) {
  const std::size_t prefix = major == 1 ? 10 : 12;
  std::string text(header);
  text += std::string((64 - (prefix + text.size() + 1) % 64) % 64, ' ') + "\n";
  std::string out = "\x93NUMPY";
  out += static_cast<char>(major);
  out += '\0';
  for (std::size_t i = 0; i < prefix - 8; ++i)
    out += static_cast<char>((text.size() >> (8 * i)) & 0xff);
  return out + text + std::string(data);
}

template <class T>
std::string raw(std::initializer_list<T> values) {
  std::string out(values.size() * sizeof(T), '\0');
  std::memcpy(out.data(), std::data(values), out.size());
  return out;
}

Tensor parse(const std::string& bytes) { return e2s::parse_npy(as_bytes(bytes), "test.npy"); }

e2s::Error parse_error(const std::string& bytes) {
  return error_of([&] { parse(bytes); });
}

const std::string kInts = raw<std::int32_t>({1, 2, 3, 4, 5, 6});

TEST(Npy, ReadsEveryArrayNumPyWrote) {
  const auto& made = arrays();
  const auto& records = made.manifest.at("npy");
  ASSERT_GE(records.size(), 60u);
  for (const auto& record : records) {
    const std::string name = record.at("file").get<std::string>();
    SCOPED_TRACE(name);
    const Tensor loaded = e2s::load_npy(made.dir / name);
    expect_tensor(loaded, record, name);
    const std::string bytes = file_bytes(made.dir / name);
    expect_tensor(e2s::parse_npy(as_bytes(bytes), name), record, name + " (parsed)");
  }
}

TEST(Npy, BigEndianAndFortranOrderComeBackAsNativeCOrder) {
  const auto& made = arrays();
  for (const std::string dtype :
       {"int16", "uint16", "int32", "uint32", "int64", "uint64", "float16", "float32", "float64"}) {
    SCOPED_TRACE(dtype);
    const Tensor reference = e2s::load_npy(made.dir / (dtype + "_le_c.npy"));
    for (const std::string variant : {"_le_f", "_be_c", "_be_f"}) {
      const Tensor other = e2s::load_npy(made.dir / (dtype + variant + ".npy"));
      EXPECT_EQ(other.shape(), reference.shape()) << variant;
      ASSERT_EQ(other.bytes().size(), reference.bytes().size()) << variant;
      EXPECT_EQ(std::memcmp(other.bytes().data(), reference.bytes().data(), other.bytes().size()),
                0)
          << variant;
    }
  }
}

TEST(Npy, HeaderIsReadAsAPythonLiteral) {
  // Spaces anywhere, trailing commas, double quotes, key order, Python 2 longs.
  for (const std::string header :
       {"{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }",
        "{ 'descr' : '<i4' ,\t'fortran_order':False,'shape':( 2 , 3 , ) , }",
        "{\"shape\": (2, 3), \"fortran_order\": False, \"descr\": \"<i4\"}",
        "{'descr':'<i4','fortran_order':False,'shape':(2L, 3L)}",
        "  {'descr': '<i4', 'fortran_order': False, 'shape': (2, 3)}  "}) {
    SCOPED_TRACE(header);
    const Tensor t = parse(npy(header, kInts));
    EXPECT_EQ(t.shape(), (std::vector<std::int64_t>{2, 3}));
    const auto values = t.values<std::int32_t>();
    EXPECT_EQ(std::vector<std::int32_t>(values.begin(), values.end()),
              (std::vector<std::int32_t>{1, 2, 3, 4, 5, 6}));
  }
}

TEST(Npy, EveryByteOrderMark) {
  const std::string doubles = raw<double>({1.5, -2.25});
  for (const std::string descr : {"<f8", "=f8", "f8"}) {
    const Tensor t =
        parse(npy("{'descr': '" + descr + "', 'fortran_order': False, 'shape': (2,), }", doubles));
    EXPECT_EQ(t.values<double>()[1], -2.25) << descr;
  }
  const Tensor bytes =
      parse(npy("{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }", "\x01\x02\xff"));
  EXPECT_EQ(bytes.values<std::uint8_t>()[2], 255);
  const Tensor flags = parse(
      npy("{'descr': '|b1', 'fortran_order': True, 'shape': (2,), }", std::string("\x00\x01", 2)));
  EXPECT_FALSE(flags.values<bool>()[0]);
  EXPECT_TRUE(flags.values<bool>()[1]);
  const Tensor swapped =
      parse(npy("{'descr': '>u2', 'fortran_order': False, 'shape': (1,), }", "\x12\x34"));
  EXPECT_EQ(swapped.values<std::uint16_t>()[0], 0x1234);
}

TEST(Npy, LongHeadersOfFormatsTwoAndThree) {
  // Past version 1.0's 64 KiB header limit: what versions 2.0 and 3.0 exist for.
  const std::string header =
      "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }" + std::string(70000, ' ');
  for (int major : {2, 3}) {
    const Tensor t = parse(npy(header, kInts, major));
    EXPECT_EQ(t.values<std::int32_t>()[5], 6) << major;
  }
}

TEST(Npy, UnsupportedDtypesAreNamed) {
  for (const std::string descr :
       {"|O", "<c8", "<c16", "<U5", "|S3", "|V4", "<M8[ns]", "<m8[s]", "<f16"}) {
    SCOPED_TRACE(descr);
    const auto error =
        parse_error(npy("{'descr': '" + descr + "', 'fortran_order': False, 'shape': (1,), }",
                        std::string(16, '\0')));
    EXPECT_EQ(error.code(), Errc::unsupported) << error.what();
    EXPECT_TRUE(contains(error.what(), "test.npy")) << error.what();
    EXPECT_TRUE(contains(error.what(), descr)) << error.what();
  }
  const auto structured = parse_error(
      npy("{'descr': [('a', '<f4'), ('b', '<i8')], 'fortran_order': False, 'shape': (1,), }",
          std::string(12, '\0')));
  EXPECT_EQ(structured.code(), Errc::unsupported) << structured.what();
  EXPECT_TRUE(contains(structured.what(), "structured")) << structured.what();
}

TEST(Npy, MalformedHeadersAreIntegrityErrors) {
  const std::string ok_dtype = "'descr': '<i4', 'fortran_order': False";
  for (const std::string& header : std::vector<std::string>{
           "[('descr', '<i4')]",                                   // not a dict
           "garbage",                                              // not Python
           "",                                                     // nothing
           "{" + ok_dtype + "}",                                   // no shape
           "{'descr': '<i4', 'shape': (6,)}",                      // no fortran_order
           "{'fortran_order': False, 'shape': (6,)}",              // no descr
           "{" + ok_dtype + ", 'shape': (6,), 'extra': 1}",        // unknown key
           "{" + ok_dtype + ", 'shape': (6,), 'shape': (6,)}",     // key twice
           "{" + ok_dtype + ", 'shape': (6)}",                     // an int, not a tuple
           "{" + ok_dtype + ", 'shape': [6]}",                     // a list
           "{" + ok_dtype + ", 'shape': (-6,)}",                   // negative
           "{" + ok_dtype + ", 'shape': (6.0,)}",                  // not an integer
           "{" + ok_dtype + ", 'shape': (2 3)}",                   // no comma
           "{" + ok_dtype + ", 'shape': (6,),,}",                  // two commas
           "{" + ok_dtype + ", 'shape': (6,)} trailing",           // text after the dict
           "{" + ok_dtype + ", 'shape': (6,)",                     // unclosed
           "{'descr': '<i4', 'fortran_order': 0, 'shape': (6,)}",  // not a bool
           "{'descr': <i4, 'fortran_order': False, 'shape': (6,)}",
           "{'descr': '<i4, 'fortran_order': False, 'shape': (6,)}",
           "{'descr': '', 'fortran_order': False, 'shape': (6,)}",
           "{'descr': '<42', 'fortran_order': False, 'shape': (6,)}",
           "{'descr': '\x01\xff', 'fortran_order': False, 'shape': (6,)}",
           "{" + ok_dtype + ", 'shape': (99999999999999999999,)}",  // past int64
       }) {
    SCOPED_TRACE(header);
    const auto error = parse_error(npy(header, kInts));
    EXPECT_EQ(error.code(), Errc::integrity) << error.what();
    EXPECT_TRUE(contains(error.what(), "test.npy")) << error.what();
    EXPECT_EQ(std::string(error.what()).find('\n'), std::string::npos) << error.what();
  }
}

TEST(Npy, ShapesThatLieAboutTheData) {
  const auto dict = [](const std::string& shape) {
    return "{'descr': '<i4', 'fortran_order': False, 'shape': " + shape + ", }";
  };
  const auto more = parse_error(npy(dict("(2, 4)"), kInts));
  EXPECT_EQ(more.code(), Errc::integrity);
  EXPECT_TRUE(contains(more.what(), "truncated")) << more.what();
  const auto fewer = parse_error(npy(dict("(5,)"), kInts));
  EXPECT_EQ(fewer.code(), Errc::integrity);
  EXPECT_TRUE(contains(fewer.what(), "(5,)")) << fewer.what();
  EXPECT_EQ(parse_error(npy(dict("()"), kInts)).code(), Errc::integrity);
  EXPECT_EQ(parse_error(npy(dict("(0, 6)"), kInts)).code(), Errc::integrity);
  // The same shapes with the right amount of data are fine.
  EXPECT_EQ(parse(npy(dict("()"), raw<std::int32_t>({7}))).values<std::int32_t>()[0], 7);
  EXPECT_EQ(parse(npy(dict("(0, 6)"), "")).size(), 0u);
}

TEST(Npy, HostileShapesDoNotOverflow) {
  for (const std::string shape :
       {"(4611686018427387904, 4611686018427387904)",          // 2**62 each
        "(9223372036854775807, 2)", "(2305843009213693952,)",  // * 4 bytes
        "(0, 4611686018427387904, 4611686018427387904)",
        "(0, 1152921504606846976)",  // 2**60 * 8 bytes, past ptrdiff_t
        "(65536, 65536, 65536, 65536, 65536)"}) {
    SCOPED_TRACE(shape);
    const auto error = parse_error(
        npy("{'descr': '<i4', 'fortran_order': False, 'shape': " + shape + ", }", kInts));
    EXPECT_EQ(error.code(), Errc::integrity) << error.what();
  }
  std::string many = "(";
  for (int i = 0; i < 65; ++i) many += "1, ";
  const auto deep = parse_error(npy(
      "{'descr': '<i4', 'fortran_order': True, 'shape': " + many + "), }", raw<std::int32_t>({1})));
  EXPECT_EQ(deep.code(), Errc::integrity);
  EXPECT_TRUE(contains(deep.what(), "dimensions")) << deep.what();
  // A zero dimension makes the array empty however large the others, as in NumPy.
  EXPECT_EQ(
      parse(npy("{'descr': '<f8', 'fortran_order': True, 'shape': (0, 576460752303423488), }", ""))
          .size(),
      0u);
}

TEST(Npy, HeaderLengthsThatLie) {
  std::string past_end = npy("{'descr': '<i4', 'fortran_order': False, 'shape': (6,), }", kInts);
  past_end[8] = '\xff';
  past_end[9] = '\x7f';
  EXPECT_EQ(parse_error(past_end).code(), Errc::integrity);
  std::string huge = npy("{'descr': '<i4', 'fortran_order': False, 'shape': (6,), }", kInts, 2);
  std::memcpy(huge.data() + 8, "\xff\xff\xff\xff", 4);
  const auto error = parse_error(huge);
  EXPECT_EQ(error.code(), Errc::integrity);
  EXPECT_TRUE(contains(error.what(), "allowed")) << error.what();
}

TEST(Npy, MagicAndVersion) {
  const std::string good = npy("{'descr': '<i4', 'fortran_order': False, 'shape': (6,), }", kInts);
  EXPECT_EQ(parse_error("").code(), Errc::integrity);
  EXPECT_EQ(parse_error("PK\x03\x04 not npy at all").code(), Errc::integrity);
  EXPECT_EQ(parse_error("\x93NUMPX" + good.substr(6)).code(), Errc::integrity);
  std::string future = good;
  future[6] = '\x04';
  EXPECT_EQ(parse_error(future).code(), Errc::unsupported);
  future[6] = '\x00';
  EXPECT_EQ(parse_error(future).code(), Errc::unsupported);
}

TEST(Npy, BoolBytesOtherThanZeroOrOneAreRefused) {
  const auto error = parse_error(npy("{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }",
                                     std::string("\x00\x01\x02", 3)));
  EXPECT_EQ(error.code(), Errc::integrity) << error.what();
}

TEST(Npy, TruncatedAtEveryCutPoint) {
  const auto& made = arrays();
  for (const std::string name :
       {"float64_be_f.npy", "int16_le_c.npy", "bool_scalar.npy", "float32_v2.npy"}) {
    const std::string bytes = file_bytes(made.dir / name);
    for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
      const auto error = error_of([&] { e2s::parse_npy(as_bytes(bytes.substr(0, cut)), name); });
      EXPECT_EQ(error.code(), Errc::integrity) << name << " cut at " << cut << ": " << error.what();
    }
  }
  // The same through files, at a few cut points.
  TempDir dir;
  const std::string bytes = file_bytes(made.dir / "float32_le_c.npy");
  for (std::size_t cut : {std::size_t{0}, std::size_t{5}, std::size_t{9}, std::size_t{40},
                          std::size_t{127}, std::size_t{128}, bytes.size() - 1}) {
    const fs::path file = dir.write_file("cut.npy", bytes.substr(0, cut));
    const auto error = error_of([&] { e2s::load_npy(file); });
    EXPECT_EQ(error.code(), Errc::integrity) << cut << ": " << error.what();
    EXPECT_TRUE(contains(error.what(), file.string())) << error.what();
  }
  const fs::path longer = dir.write_file("longer.npy", bytes + "x");
  EXPECT_EQ(error_of([&] { e2s::load_npy(longer); }).code(), Errc::integrity);
}

TEST(Npy, UnreadableFilesAreIoErrors) {
  TempDir dir;
  const auto missing = error_of([&] { e2s::load_npy(dir.path() / "missing.npy"); });
  EXPECT_EQ(missing.code(), Errc::io);
  EXPECT_TRUE(contains(missing.what(), "missing.npy")) << missing.what();
  EXPECT_EQ(error_of([&] { e2s::load_npy(dir.path()); }).code(), Errc::io);
}

TEST(Npz, ReadsStoredAndDeflatedArchives) {
  const auto& made = arrays();
  for (const auto& archive : made.manifest.at("npz")) {
    const std::string name = archive.at("file").get<std::string>();
    SCOPED_TRACE(name);
    const auto loaded = e2s::load_npz(made.dir / name);
    const auto& records = archive.at("arrays");
    ASSERT_EQ(loaded.size(), records.size());
    for (const auto& [key, record] : records.items()) {
      ASSERT_TRUE(loaded.contains(key)) << key;
      expect_tensor(loaded.at(key), record, name + ":" + key);
    }
  }
}

TEST(Npz, HostileArchivesAreRefused) {
  const auto& made = arrays();
  const std::pair<std::string, Errc> cases[] = {
      {"bomb_lying.npz", Errc::integrity},  // inflates past its declared size
      {"huge_shape.npz", Errc::integrity},  // npy header claims 8 TiB
      {"not_npy.npz", Errc::integrity},     // a member that is no .npy
      {"folder.npz", Errc::integrity},      // a folder member
      {"bad_crc.npz", Errc::integrity},     // a changed byte
      {"not_a_zip.npz", Errc::integrity},   //
      {"empty_file.npz", Errc::integrity},  //
      {"object.npz", Errc::unsupported},    // pickled Python objects
  };
  for (const auto& [name, code] : cases) {
    const auto error = error_of([&] { e2s::load_npz(made.dir / name); });
    EXPECT_EQ(error.code(), code) << name << ": " << error.what();
    EXPECT_TRUE(contains(error.what(), (made.dir / name).string())) << error.what();
    EXPECT_EQ(std::string(error.what()).find('\n'), std::string::npos) << error.what();
  }
  EXPECT_EQ(error_of([&] { e2s::load_npz(made.dir / "missing.npz"); }).code(), Errc::io);
}

TEST(Npz, MembersPastTheCeilingAreRefusedBeforeLoading) {
  const auto& made = arrays();
  const fs::path zeros = made.dir / "zeros.npz";  // 8 MiB of float64 zeros, deflated
  const auto error = error_of([&] { e2s::detail::load_npz(zeros, std::uint64_t{1} << 20); });
  EXPECT_EQ(error.code(), Errc::integrity) << error.what();
  EXPECT_TRUE(contains(error.what(), "zeros.npy")) << error.what();
  const auto loaded = e2s::detail::load_npz(zeros, std::uint64_t{16} << 20);
  ASSERT_EQ(loaded.at("zeros").size(), std::size_t{1} << 20);
  EXPECT_EQ(loaded.at("zeros").values<double>()[12345], 0.0);
}

TEST(Npz, TruncatedAtEveryCutPoint) {
  const auto& made = arrays();
  TempDir dir;
  for (const std::string name : {"stored.npz", "compressed.npz"}) {
    const std::string bytes = file_bytes(made.dir / name);
    for (std::size_t cut = 0; cut < bytes.size(); cut += 3) {
      const fs::path file = dir.write_file("cut.npz", bytes.substr(0, cut));
      const auto error = error_of([&] { e2s::load_npz(file); });
      EXPECT_EQ(error.code(), Errc::integrity) << name << " cut at " << cut << ": " << error.what();
    }
  }
}

TEST(Tensor, HoldsWhatItWasGiven) {
  Tensor t(DType::int16, {2, 2}, std::vector<std::byte>(8, std::byte{1}));
  EXPECT_EQ(t.size(), 4u);
  EXPECT_EQ(t.values<std::int16_t>()[3], 0x0101);
  const Tensor copy = t;
  EXPECT_EQ(copy.bytes().data(), t.bytes().data());  // copies share the bytes
  EXPECT_EQ(Tensor().size(), 0u);
  EXPECT_EQ(Tensor(DType::float64, {}, std::vector<std::byte>(8)).size(), 1u);
}

TEST(Tensor, RefusesBytesThatDoNotMatchTheShape) {
  EXPECT_EQ(error_of([] {
              Tensor(DType::float32, {2, 2}, std::vector<std::byte>(15));
            }).code(),
            Errc::integrity);
  EXPECT_EQ(error_of([] { Tensor(DType::float32, {-1}, std::vector<std::byte>(4)); }).code(),
            Errc::integrity);
  EXPECT_EQ(error_of([] {
              Tensor(DType::uint8, {INT64_MAX, INT64_MAX}, std::vector<std::byte>(1));
            }).code(),
            Errc::integrity);
  EXPECT_EQ(
      error_of([] { Tensor(DType::boolean, {1}, std::vector<std::byte>{std::byte{7}}); }).code(),
      Errc::integrity);
}

TEST(Tensor, ValuesOnlyAsItsOwnType) {
  const Tensor t(DType::int32, {1}, std::vector<std::byte>(4));
  const auto error = error_of([&] { t.values<float>(); });
  EXPECT_EQ(error.code(), Errc::other);
  EXPECT_TRUE(contains(error.what(), "int32")) << error.what();
  EXPECT_EQ(error_of([&] { t.values<std::uint32_t>(); }).code(), Errc::other);
  const Tensor half(DType::float16, {1}, std::vector<std::byte>(2));
  EXPECT_EQ(error_of([&] { half.values<std::uint16_t>(); }).code(), Errc::other);
  // A view at an odd address cannot be read as int32s.
  auto storage = std::make_shared<std::vector<std::byte>>(9);
  const Tensor odd(DType::int32, {2}, std::span<const std::byte>(storage->data() + 1, 8), storage);
  EXPECT_EQ(error_of([&] { odd.values<std::int32_t>(); }).code(), Errc::other);
  EXPECT_EQ(odd.to_float32(), (std::vector<float>{0, 0}));
}

TEST(Tensor, EveryFloat16ConvertsExactly) {
  std::vector<std::byte> bytes(65536 * 2);
  for (std::uint32_t i = 0; i < 65536; ++i) {
    const auto half = static_cast<std::uint16_t>(i);
    std::memcpy(bytes.data() + i * 2, &half, 2);
  }
  const std::vector<float> floats = Tensor(DType::float16, {65536}, std::move(bytes)).to_float32();
  for (std::uint32_t i = 0; i < 65536; ++i) {
    const int exponent = static_cast<int>((i >> 10) & 0x1f);
    const double mantissa = i & 0x3ff;
    double want = exponent == 0    ? std::ldexp(mantissa, -24)
                  : exponent == 31 ? (mantissa == 0 ? INFINITY : NAN)
                                   : std::ldexp(mantissa + 1024, exponent - 25);
    if (i & 0x8000) want = -want;
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(floats[i])) << i;
      // The payload survives: a quiet NaN stays quiet, a signalling one keeps its bits.
      EXPECT_EQ(std::bit_cast<std::uint32_t>(floats[i]) & 0x7fffff, (i & 0x3ffu) << 13) << i;
    } else {
      EXPECT_TRUE(e2s::test::same_float(floats[i], want))
          << i << ": " << floats[i] << " != " << want;
    }
  }
}

TEST(Tensor, DtypeNamesAndSizes) {
  EXPECT_EQ(e2s::dtype_name(DType::boolean), "bool");
  EXPECT_EQ(e2s::dtype_name(DType::bfloat16), "bfloat16");
  EXPECT_EQ(e2s::dtype_name(DType::uint64), "uint64");
  EXPECT_EQ(e2s::dtype_size(DType::boolean), 1u);
  EXPECT_EQ(e2s::dtype_size(DType::bfloat16), 2u);
  EXPECT_EQ(e2s::dtype_size(DType::float32), 4u);
  EXPECT_EQ(e2s::dtype_size(DType::int64), 8u);
}

}  // namespace
