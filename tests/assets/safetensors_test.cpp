// e2s::SafeTensors against files make_arrays.py writes by hand at test time
// (every dtype incl. F16 and BF16, 0-d, empty and 3-d tensors, __metadata__,
// tensors left misaligned), compared element by element; that tensors are
// views into the mapping that outlive the SafeTensors object; and that every
// malformed or hostile header is refused with an Error naming file and tensor.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "assets/arrays.hpp"
#include "e2s/assets.hpp"
#include "e2s/error.hpp"
#include "support/fixtures.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using e2s::Errc;
using e2s::SafeTensors;
using e2s::Tensor;
using e2s::test::arrays;
using e2s::test::contains;
using e2s::test::error_of;
using e2s::test::expect_tensor;
using e2s::test::file_bytes;
using e2s::test::TempDir;

// A safetensors file: the header's length as 8 little-endian bytes, the
// header, the data.
std::string safetensors(const std::string& header, const std::string& data) {
  std::string out;
  for (int i = 0; i < 8; ++i) out += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return out + header + data;
}

// The address range of a mapping of `file` in this process that holds
// `address`, from /proc/self/maps; nullopt when there is none.
std::optional<std::pair<std::uintptr_t, std::uintptr_t>> mapping_of(const fs::path& file,
                                                                    const void* address) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  const auto at = reinterpret_cast<std::uintptr_t>(address);
  while (std::getline(maps, line)) {
    if (!line.ends_with(" " + file.string())) continue;
    const std::uintptr_t begin = std::stoull(line.substr(0, line.find('-')), nullptr, 16);
    const std::uintptr_t end = std::stoull(line.substr(line.find('-') + 1), nullptr, 16);
    if (address == nullptr || (begin <= at && at < end)) return std::pair{begin, end};
  }
  return std::nullopt;
}

class SafeTensorsHostile : public ::testing::Test {
 protected:
  // SafeTensors::open on a file holding `bytes`; the Error it throws.
  e2s::Error open_error(const std::string& bytes) {
    const fs::path file = dir_.write_file("model.safetensors", bytes);
    return error_of([&] { SafeTensors::open(file); });
  }
  std::string path() const { return (dir_.path() / "model.safetensors").string(); }

  TempDir dir_;
};

TEST(SafeTensors, ReadsEveryTensorOfTheManifest) {
  const auto& made = arrays();
  for (const auto& record : made.manifest.at("safetensors")) {
    const std::string name = record.at("file").get<std::string>();
    SCOPED_TRACE(name);
    const SafeTensors file = SafeTensors::open(made.dir / name);
    EXPECT_EQ(file.metadata(), (record.at("metadata").get<std::map<std::string, std::string>>()));
    std::vector<std::string> want;
    for (const auto& [tensor, expected] : record.at("tensors").items()) {
      want.push_back(tensor);
      ASSERT_TRUE(file.contains(tensor)) << tensor;
      expect_tensor(file.get(tensor), expected, name + ":" + tensor);
    }
    std::sort(want.begin(), want.end());
    EXPECT_EQ(file.names(), want);
  }
}

TEST(SafeTensors, TensorsAreViewsIntoTheMappingThatOutliveIt) {
  const fs::path model = arrays().dir / "model.safetensors";
  std::optional<Tensor> kept;
  {
    const SafeTensors file = SafeTensors::open(model);
    const Tensor first = file.get("float32");
    const Tensor second = file.get("float32");
    EXPECT_EQ(first.bytes().data(), second.bytes().data());
    // The bytes are the file's own pages, not a copy.
    const auto mapping = mapping_of(model, first.bytes().data());
    ASSERT_TRUE(mapping) << "no mapping of " << model << " holds the tensor";
    EXPECT_LE(reinterpret_cast<std::uintptr_t>(first.bytes().data() + first.bytes().size()),
              mapping->second);
    kept = file.get("float64");
  }
  // The SafeTensors object is gone; the tensor still reads the mapping.
  ASSERT_TRUE(mapping_of(model, kept->bytes().data()));
  EXPECT_EQ(kept->values<double>()[4], std::numeric_limits<double>::max());
  kept.reset();
  EXPECT_FALSE(mapping_of(model, nullptr)) << "the mapping outlived every tensor";
}

TEST(SafeTensors, MisalignedTensorsAreCopiedAndAligned) {
  const SafeTensors file = SafeTensors::open(arrays().dir / "misaligned.safetensors");
  const Tensor f32 = file.get("b_f32");
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(f32.values<float>().data()) % alignof(float), 0u);
  const Tensor i64 = file.get("c_i64");
  EXPECT_EQ(
      reinterpret_cast<std::uintptr_t>(i64.values<std::int64_t>().data()) % alignof(std::int64_t),
      0u);
}

TEST(SafeTensors, MissingTensorIsNotFound) {
  const fs::path model = arrays().dir / "model.safetensors";
  const SafeTensors file = SafeTensors::open(model);
  EXPECT_FALSE(file.contains("nope"));
  const auto error = error_of([&] { file.get("nope"); });
  EXPECT_EQ(error.code(), Errc::not_found);
  EXPECT_TRUE(contains(error.what(), model.string())) << error.what();
  EXPECT_TRUE(contains(error.what(), "\"nope\"")) << error.what();
}

TEST(SafeTensors, EmptyDataAndNoTensors) {
  TempDir dir;
  const SafeTensors nothing =
      SafeTensors::open(dir.write_file("a.safetensors", safetensors("{}", "")));
  EXPECT_TRUE(nothing.names().empty());
  EXPECT_TRUE(nothing.metadata().empty());
  const SafeTensors padded = SafeTensors::open(dir.write_file(
      "b.safetensors",
      safetensors(
          R"({"__metadata__": null, "e": {"dtype": "F32", "shape": [0, 3], "data_offsets": [0, 0]}}   )",
          "")));
  EXPECT_EQ(padded.get("e").size(), 0u);
  EXPECT_EQ(padded.get("e").shape(), (std::vector<std::int64_t>{0, 3}));
}

TEST_F(SafeTensorsHostile, TruncatedAtEveryCutPoint) {
  const std::string bytes = file_bytes(arrays().dir / "model.safetensors");
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    const auto error = open_error(bytes.substr(0, cut));
    EXPECT_EQ(error.code(), Errc::integrity) << "cut at " << cut << ": " << error.what();
    EXPECT_TRUE(contains(error.what(), path())) << error.what();
  }
}

TEST_F(SafeTensorsHostile, HeaderLengthsThatLie) {
  const std::string header = R"({"t": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}})";
  std::string past_end = safetensors(header, "ab");
  past_end[0] = static_cast<char>(past_end[0] + 3);
  auto error = open_error(past_end);
  EXPECT_EQ(error.code(), Errc::integrity);
  EXPECT_TRUE(contains(error.what(), "past the end")) << error.what();
  std::string huge = safetensors(header, "ab");
  std::memcpy(huge.data(), "\x00\x00\x00\x00\x00\x00\x00\x80", 8);
  error = open_error(huge);
  EXPECT_EQ(error.code(), Errc::integrity);
  EXPECT_TRUE(contains(error.what(), "exceeds")) << error.what();
  EXPECT_EQ(open_error("").code(), Errc::integrity);
  EXPECT_EQ(open_error(std::string("\x02\x00\x00", 3)).code(), Errc::integrity);
}

TEST_F(SafeTensorsHostile, MalformedHeadersNameTheProblem) {
  const auto tensor = [](const std::string& dtype, const std::string& shape,
                         const std::string& offsets) {
    return R"({"w": {"dtype": )" + dtype + R"(, "shape": )" + shape + R"(, "data_offsets": )" +
           offsets + "}}";
  };
  const std::string data(24, '\0');  // what [0, 24] of six F32 would need
  const std::pair<std::string, std::string> cases[] = {
      {"not valid UTF-8 JSON", "{\"w\": "},
      {"not valid UTF-8 JSON", "nonsense"},
      {"UTF-8", "{\"w\xff\xfe\": {}}"},
      {"not a JSON object", R"([1, 2, 3])"},
      {"not a JSON object", R"("w")"},
      {"\"w\" is not described", R"({"w": [1, 2]})"},
      {"\"w\" has no dtype", R"({"w": {"shape": [6], "data_offsets": [0, 24]}})"},
      {"\"w\" has no dtype", tensor("32", "[6]", "[0, 24]")},
      {"\"w\" has no shape", R"({"w": {"dtype": "F32", "data_offsets": [0, 24]}})"},
      {"\"w\" has a negative dimension", tensor("\"F32\"", "[-6]", "[0, 24]")},
      {"\"w\" has a negative dimension", tensor("\"F32\"", "[-2, -3]", "[0, 24]")},
      {"not an integer", tensor("\"F32\"", "[6.0]", "[0, 24]")},
      {"not an integer", tensor("\"F32\"", "[\"6\"]", "[0, 24]")},
      {"too large", tensor("\"F32\"", "[9223372036854775808]", "[0, 24]")},
      {"overflows", tensor("\"F32\"", "[4611686018427387904, 4611686018427387904]", "[0, 24]")},
      {"overflows", tensor("\"U8\"", "[4294967296, 4294967296, 4294967296]", "[0, 24]")},
      {"\"w\" has shape (2, 3) of float32 (24 bytes) but data_offsets of 20 bytes",
       tensor("\"F32\"", "[2, 3]", "[4, 24]")},
      {"\"w\" has shape (7,)", tensor("\"F32\"", "[7]", "[0, 24]")},
      {"outside", tensor("\"F32\"", "[7]", "[0, 28]")},
      {"outside", tensor("\"F32\"", "[6]", "[24, 0]")},
      {"outside", tensor("\"U8\"", "[1]", "[18446744073709551615, 0]")},
      {"data_offsets [begin, end]", tensor("\"F32\"", "[6]", "[0]")},
      {"data_offsets [begin, end]", tensor("\"F32\"", "[6]", "[-4, 20]")},
      {"data_offsets [begin, end]", tensor("\"F32\"", "[6]", "[0, 24, 24]")},
      {"data_offsets [begin, end]", tensor("\"F32\"", "[6]", "\"0-24\"")},
      {"overlaps", R"({"a": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]},
                       "b": {"dtype": "U8", "shape": [4], "data_offsets": [20, 24]}})"},
      {"unused bytes before tensor \"b\"",
       R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
           "b": {"dtype": "U8", "shape": [4], "data_offsets": [20, 24]}})"},
      {"8 bytes after the last tensor", tensor("\"F32\"", "[4]", "[0, 16]")},
      {"\"__metadata__\" is not an object", R"({"__metadata__": [1]})"},
      {"\"__metadata__\" value \"n\" is not a string", R"({"__metadata__": {"n": 1}})"},
  };
  for (const auto& [what, header] : cases) {
    SCOPED_TRACE(header);
    const std::string bytes = safetensors(header, data);
    const auto error = open_error(bytes);
    EXPECT_EQ(error.code(), Errc::integrity) << error.what();
    EXPECT_TRUE(contains(error.what(), what)) << error.what();
    EXPECT_TRUE(contains(error.what(), path())) << error.what();
    EXPECT_EQ(std::string(error.what()).find('\n'), std::string::npos) << error.what();
  }
}

TEST_F(SafeTensorsHostile, BoolBytesOtherThanZeroOrOne) {
  const auto error =
      open_error(safetensors(R"({"mask": {"dtype": "BOOL", "shape": [3], "data_offsets": [0, 3]}})",
                             std::string("\x01\x00\x02", 3)));
  EXPECT_EQ(error.code(), Errc::integrity);
  EXPECT_TRUE(contains(error.what(), "\"mask\"")) << error.what();
}

TEST_F(SafeTensorsHostile, UnsupportedDtypesNameTheTensor) {
  for (const std::string dtype : {"F8_E4M3", "F8_E5M2", "C64", "F4", "STRING"}) {
    SCOPED_TRACE(dtype);
    const auto error = open_error(safetensors(
        R"({"fp8.weight": {"dtype": ")" + dtype + R"(", "shape": [4], "data_offsets": [0, 4]}})",
        "abcd"));
    EXPECT_EQ(error.code(), Errc::unsupported) << error.what();
    EXPECT_TRUE(contains(error.what(), "\"fp8.weight\"")) << error.what();
    EXPECT_TRUE(contains(error.what(), dtype)) << error.what();
  }
}

TEST_F(SafeTensorsHostile, NamesFromTheFileCannotBreakTheMessageLine) {
  const auto error = open_error(safetensors(
      R"({"evil\nname\u0000": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 0]}})", ""));
  EXPECT_EQ(error.code(), Errc::integrity);
  EXPECT_EQ(std::string(error.what()).find('\n'), std::string::npos) << error.what();
  EXPECT_TRUE(contains(error.what(), "evil\\x0Aname\\x00")) << error.what();
}

TEST(SafeTensors, UnreadableFilesAreIoErrors) {
  TempDir dir;
  const auto missing = error_of([&] { SafeTensors::open(dir.path() / "missing.safetensors"); });
  EXPECT_EQ(missing.code(), Errc::io);
  EXPECT_TRUE(contains(missing.what(), "missing.safetensors")) << missing.what();
  EXPECT_EQ(error_of([&] { SafeTensors::open(dir.path()); }).code(), Errc::io);
}

}  // namespace
