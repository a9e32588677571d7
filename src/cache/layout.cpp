#include "cache/layout.hpp"

#include <algorithm>
#include <cctype>

#include "util/hash.hpp"

namespace e2s::detail::layout {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kRootHash = 12;
constexpr std::size_t kContentHash = 16;

bool is_lower_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

}  // namespace

fs::path reserved(std::string_view part) { return fs::path(kReserved) / part; }

fs::path default_package_folder(const fs::path& cache_root, std::string_view root_uri) {
  std::string name(root_uri.substr(root_uri.find_last_of('/') + 1));
  for (char& c : name) {
    const bool safe = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
    if (!safe) c = '_';
  }
  if (name.empty() || name == "." || name == "..") name = "package";
  return cache_root / "packages" / (name + "-" + sha256_hex(root_uri).substr(0, kRootHash));
}

std::string key_name(std::string_view key) { return sha256_hex(key); }

fs::path data_path(std::string_view key, std::string_view file_path, bool same_names) {
  return reserved(kFiles) / legacy_data_path(key, file_path, same_names);
}

fs::path legacy_data_path(std::string_view key, std::string_view file_path, bool same_names) {
  return same_names ? fs::path(file_path) : fs::path(key_name(key));
}

std::string extracted_name(const fs::path& archive, std::string_view identity) {
  return archive.filename().string() + "-" + sha256_hex(identity).substr(0, kContentHash);
}

bool is_extracted_name(std::string_view name) {
  if (name.size() < kContentHash + 2 || name[name.size() - kContentHash - 1] != '-') return false;
  const std::string_view suffix = name.substr(name.size() - kContentHash);
  return std::all_of(suffix.begin(), suffix.end(), is_lower_hex);
}

std::string archive_name_of(std::string_view extracted_name) {
  return std::string(extracted_name.substr(0, extracted_name.size() - kContentHash - 1));
}

fs::path package_folder_of(const fs::path& bookkeeping) {
  return bookkeeping.parent_path().parent_path().parent_path();
}

fs::path extracted_folder(const fs::path& package_folder) {
  return package_folder / reserved(kExtracted);
}

fs::path local_extracted_folder(const fs::path& cache_root) { return cache_root / kExtracted; }

}  // namespace e2s::detail::layout
