// What npy_test.cpp and safetensors_test.cpp share: the files make_arrays.py
// writes (once per test process) with their manifest, and an element-by-element
// comparison of a Tensor with a manifest record.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "e2s/assets.hpp"
#include "support/temp_dir.hpp"

namespace e2s::test {

struct Arrays {
  std::filesystem::path dir;
  nlohmann::json manifest;
};

// Runs make_arrays.py into a temp folder the first time, with Debian's
// interpreter when there is one (NumPy is installed for it, as the test
// servers pick theirs); throws when the script fails.
inline const Arrays& arrays() {
  static const std::unique_ptr<TempDir> dir = std::make_unique<TempDir>();
  static const Arrays made = [] {
    const bool system_python = ::access("/usr/bin/python3", X_OK) == 0;
    std::string python = system_python ? "/usr/bin/python3" : "python3";
    std::string script = std::string(E2S_ASSETS_TEST_DIR) + "/make_arrays.py";
    std::string out = dir->path().string();
    std::vector<char*> argv = {python.data(), script.data(), out.data(), nullptr};
    const pid_t pid = ::fork();
    if (pid == 0) {
      if (system_python) {
        ::execv(argv[0], argv.data());
      } else {
        ::execvp(argv[0], argv.data());
      }
      ::_exit(127);
    }
    int status = 0;
    if (pid < 0 || ::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
      throw std::runtime_error("make_arrays.py failed (is python3-numpy installed?)");
    }
    std::ifstream in(dir->path() / "manifest.json");
    return Arrays{dir->path(), nlohmann::json::parse(in)};
  }();
  return made;
}

// A manifest number: JSON has no NaN or infinities, so they come as strings.
inline double manifest_float(const nlohmann::json& value) {
  if (value.is_string()) {
    const std::string text = value.get<std::string>();
    if (text == "nan") return std::nan("");
    return text == "inf" ? INFINITY : -INFINITY;
  }
  return value.get<double>();
}

// Equal as IEEE values: NaN matches NaN, and -0.0 does not match 0.0.
inline bool same_float(double got, double want) {
  if (std::isnan(want)) return std::isnan(got);
  return got == want && std::signbit(got) == std::signbit(want);
}

template <class T>
void expect_values(const Tensor& tensor, const nlohmann::json& want, const std::string& what) {
  const auto got = tensor.values<T>();
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if constexpr (std::is_floating_point_v<T>) {
      EXPECT_TRUE(same_float(got[i], manifest_float(want[i])))
          << what << " element " << i << ": " << got[i] << " != " << want[i];
    } else {
      EXPECT_EQ(got[i], want[i].get<T>()) << what << " element " << i;
    }
  }
}

// Every element of `tensor` as values<T>() of its type and as to_float32()
// against the manifest record {dtype, shape, values}.
inline void expect_tensor(const Tensor& tensor, const nlohmann::json& record,
                          const std::string& what) {
  ASSERT_EQ(std::string(dtype_name(tensor.dtype())), record.at("dtype").get<std::string>()) << what;
  EXPECT_EQ(tensor.shape(), record.at("shape").get<std::vector<std::int64_t>>()) << what;
  const auto& want = record.at("values");
  ASSERT_EQ(tensor.size(), want.size()) << what;
  EXPECT_EQ(tensor.bytes().size(), tensor.size() * dtype_size(tensor.dtype())) << what;
  switch (tensor.dtype()) {
    case DType::boolean:
      expect_values<bool>(tensor, want, what);
      break;
    case DType::int8:
      expect_values<std::int8_t>(tensor, want, what);
      break;
    case DType::uint8:
      expect_values<std::uint8_t>(tensor, want, what);
      break;
    case DType::int16:
      expect_values<std::int16_t>(tensor, want, what);
      break;
    case DType::uint16:
      expect_values<std::uint16_t>(tensor, want, what);
      break;
    case DType::int32:
      expect_values<std::int32_t>(tensor, want, what);
      break;
    case DType::uint32:
      expect_values<std::uint32_t>(tensor, want, what);
      break;
    case DType::int64:
      expect_values<std::int64_t>(tensor, want, what);
      break;
    case DType::uint64:
      expect_values<std::uint64_t>(tensor, want, what);
      break;
    case DType::float32:
      expect_values<float>(tensor, want, what);
      break;
    case DType::float64:
      expect_values<double>(tensor, want, what);
      break;
    case DType::float16:
    case DType::bfloat16:
      break;  // no C++ type: to_float32 below is the check
  }
  const std::vector<float> floats = tensor.to_float32();
  ASSERT_EQ(floats.size(), want.size()) << what;
  for (std::size_t i = 0; i < floats.size(); ++i) {
    float expected = 0;
    if (want[i].is_boolean()) {
      expected = want[i].get<bool>() ? 1.0f : 0.0f;
    } else if (want[i].is_number_unsigned()) {
      expected = static_cast<float>(want[i].get<std::uint64_t>());
    } else if (want[i].is_number_integer()) {
      expected = static_cast<float>(want[i].get<std::int64_t>());
    } else {
      expected = static_cast<float>(manifest_float(want[i]));
    }
    EXPECT_TRUE(same_float(floats[i], expected))
        << what << " to_float32 element " << i << ": " << floats[i] << " != " << expected;
  }
}

// The bytes of `file`.
inline std::string file_bytes(const std::filesystem::path& file) {
  return TempDir::read_file(file);
}

inline std::span<const std::byte> as_bytes(const std::string& text) {
  return std::as_bytes(std::span<const char>(text));
}

}  // namespace e2s::test
