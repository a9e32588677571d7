// A scratch folder for one test.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace e2s::test {

// Creates a fresh, uniquely named folder under the system temp directory and
// removes it with everything inside when destroyed. Throws
// std::filesystem::filesystem_error when the folder cannot be created.
class TempDir {
 public:
  TempDir() : TempDir(std::filesystem::temp_directory_path()) {}
  // The same under `base` (e.g. another filesystem).
  explicit TempDir(const std::filesystem::path& base);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

  // Writes `bytes` to path()/relative, creating parent folders; returns the
  // full path. Throws std::runtime_error on failure.
  std::filesystem::path write_file(const std::filesystem::path& relative,
                                   std::string_view bytes) const;

  // The whole content of `file`. Throws std::runtime_error when unreadable.
  static std::string read_file(const std::filesystem::path& file);

 private:
  std::filesystem::path path_;
};

}  // namespace e2s::test
