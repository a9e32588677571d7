#include <system_error>

#include "stores/store.hpp"

namespace e2s::detail {

std::filesystem::path resolve_local(const Location& location, const std::string& file_path) {
  std::filesystem::path path = location.local_dir / std::filesystem::path(file_path);
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    const bool root_exists = std::filesystem::is_directory(location.local_dir, ec);
    throw Error(Errc::not_found,
                root_exists ? "file \"" + file_path + "\" not found in package " + location.root +
                                  " (looked at " + path.string() + ")"
                            : "package folder " + location.local_dir.string() +
                                  " does not exist; check the package root",
                location.root + "/" + file_path);
  }
  return path;
}

std::vector<FileEntry> list_local(const Location& location) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::recursive_directory_iterator it(location.local_dir, ec), end;
  if (ec) {
    throw Error(Errc::not_found,
                "cannot list package folder " + location.local_dir.string() + ": " + ec.message() +
                    "; check the package root",
                location.root);
  }
  std::vector<FileEntry> files;
  for (; it != end; it.increment(ec)) {
    if (ec) break;
    if (!it->is_regular_file(ec)) continue;
    files.push_back({it->path().lexically_relative(location.local_dir).generic_string(),
                     static_cast<std::uint64_t>(it->file_size(ec))});
  }
  return files;
}

}  // namespace e2s::detail
