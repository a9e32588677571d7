#include "support/temp_dir.hpp"

#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace e2s::test {

TempDir::TempDir(const std::filesystem::path& base) {
  std::random_device entropy;
  // The pid keeps parallel ctest processes apart; the random part keeps apart
  // several folders of one process and leftovers of a crashed earlier run.
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::ostringstream name;
    name << "e2s-test-" << ::getpid() << '-' << std::hex << entropy() << entropy();
    auto candidate = base / name.str();
    if (std::filesystem::create_directory(candidate)) {
      path_ = std::move(candidate);
      return;
    }
  }
  throw std::runtime_error("cannot create a unique temporary folder under " + base.string());
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::filesystem::path TempDir::write_file(const std::filesystem::path& relative,
                                          std::string_view bytes) const {
  auto file = path_ / relative;
  std::filesystem::create_directories(file.parent_path());
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) throw std::runtime_error("cannot write " + file.string());
  return file;
}

std::string TempDir::read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + file.string());
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) throw std::runtime_error("cannot read " + file.string());
  return std::move(content).str();
}

}  // namespace e2s::test
