#include "package/extraction.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "cache/layout.hpp"
#include "e2s/assets.hpp"
#include "e2s/error.hpp"
#include "log.hpp"

namespace e2s::detail {
namespace {

namespace fs = std::filesystem;

bool is_folder(const fs::path& path) {
  std::error_code ec;
  return fs::is_directory(fs::symlink_status(path, ec));
}

}  // namespace

fs::path extract_once(const fs::path& archive, const std::string& identity, const fs::path& base,
                      const ExtractOptions& options, const LockOptions& lock) {
  const fs::path folder = base / layout::extracted_name(archive, identity);
  if (is_folder(folder)) return folder;

  std::error_code ec;
  fs::create_directories(base, ec);
  if (ec) {
    throw Error(Errc::io,
                "cannot create " + base.string() + " to extract " + archive.filename().string() +
                    " into: " + ec.message() + "; choose a writable cache with --cache-dir or "
                    "EARTH2STUDIO_CACHE",
                base.string());
  }
  fs::path lock_file = folder;
  lock_file += ".lock";
  DownloadLock held = DownloadLock::acquire(lock_file, lock);
  if (!is_folder(folder)) {
    log::debug("extracting {} into {}", archive.string(), folder.string());
    extract_archive(archive, folder, options);
  }
  return folder;
}

std::string local_file_identity(const fs::path& file, const std::string& root) {
  struct stat status {};
  if (::stat(file.c_str(), &status) != 0) {
    throw Error(Errc::io, "cannot read " + file.string() + ": " + std::strerror(errno), root);
  }
  return fs::absolute(file).string() + "\n" + std::to_string(status.st_size) + "\n" +
         std::to_string(status.st_mtim.tv_sec) + "." + std::to_string(status.st_mtim.tv_nsec);
}

}  // namespace e2s::detail
