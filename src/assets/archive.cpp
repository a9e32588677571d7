// Archive extraction: libarchive reads and decompresses, e2s writes. Every
// entry is created by hand below a temp folder beside the destination
// (openat relative to folders opened without following symlinks, files with
// O_EXCL | O_NOFOLLOW), so that every rule on paths, links, types and sizes
// is here rather than in archive_write_disk's flags.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <locale.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "cache/folder.hpp"
#include "e2s/assets.hpp"
#include "e2s/error.hpp"
#include "util/text.hpp"
#include "util/posix.hpp"

namespace e2s {
namespace {

namespace fs = std::filesystem;
using detail::unique_suffix;

// The ratio limit applies only past this many extracted bytes, so that small
// archives of zeros (or a few padded files) are never refused.
constexpr std::uint64_t kRatioFloor = std::uint64_t{64} << 20;
constexpr std::size_t kBufferSize = std::size_t{256} << 10;

constexpr std::string_view kUnsafeAdvice =
    "the archive is corrupt or hostile: do not use it, get it again from a trusted source";
constexpr std::string_view kLimitAdvice =
    "it may be a decompression bomb; raise the limit in e2s::ExtractOptions only if the archive "
    "is trusted";

using detail::UniqueFd;

struct ArchiveFree {
  void operator()(archive* reader) const noexcept { archive_read_free(reader); }
};

bool is_control(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return byte < 0x20 || byte == 0x7F;
}

// libarchive's message for the last failure of `reader`, on one line.
std::string library_reason(archive* reader) {
  const char* message = archive_error_string(reader);
  if (message == nullptr) return "libarchive gave no reason";
  std::string line = "libarchive: ";
  for (const char* c = message; *c != '\0'; ++c) line += is_control(*c) ? ' ' : *c;
  while (line.back() == ' ') line.pop_back();
  return line;
}

// Why an archive could not be read from its start.
std::string not_an_archive(archive* reader) {
  return "it is not a zip or tar archive (plain, gzip, bzip2, xz or zstd) or it is corrupt (" +
         library_reason(reader) +
         "); check that the file is the archive you meant, or get it again";
}

std::string join(const std::vector<std::string>& parts, std::size_t count) {
  std::string out;
  for (std::size_t i = 0; i < count; ++i) {
    if (i > 0) out += '/';
    out += parts[i];
  }
  return out;
}

std::vector<std::string> split(std::string_view text) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t end = std::min(text.find('/', start), text.size());
    parts.emplace_back(text.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

// Removes the temp folder with everything in it unless released.
class TempFolder {
 public:
  explicit TempFolder(fs::path path) : path_(std::move(path)) {}
  ~TempFolder() {
    if (path_.empty()) return;
    std::error_code ignored;
    fs::remove_all(path_, ignored);  // removes symlinks, never follows them
  }
  TempFolder(const TempFolder&) = delete;
  TempFolder& operator=(const TempFolder&) = delete;

  const fs::path& path() const noexcept { return path_; }
  void release() noexcept { path_.clear(); }

 private:
  fs::path path_;
};

// While alive, this thread's locale is C.UTF-8 (other threads and the
// process's locale are untouched): libarchive converts names to the current
// locale's charset, and in the default "C" locale it cannot represent the
// UTF-8 names of zips and pax tars, so they would come out unreadable.
class Utf8Names {
 public:
  Utf8Names() : utf8_(::newlocale(LC_CTYPE_MASK, "C.UTF-8", nullptr)) {
    if (utf8_ != nullptr) previous_ = ::uselocale(utf8_);
  }
  ~Utf8Names() {
    if (utf8_ == nullptr) return;
    ::uselocale(previous_);
    ::freelocale(utf8_);
  }
  Utf8Names(const Utf8Names&) = delete;
  Utf8Names& operator=(const Utf8Names&) = delete;

 private:
  locale_t utf8_;
  locale_t previous_ = nullptr;
};

// Reads the entries of one archive and writes them below the folder `root`.
class Extractor {
 public:
  Extractor(const fs::path& archive_path, std::uint64_t archive_size, const ExtractOptions& options,
            const fs::path& root_path, int root)
      : archive_path_(archive_path),
        archive_size_(archive_size),
        options_(options),
        root_path_(root_path),
        root_(root),
        buffer_(kBufferSize) {}

  // Extracts every entry of `reader` (opened on the archive), then fsyncs
  // what it wrote.
  void run(archive* reader) {
    reader_ = reader;
    for (;;) {
      archive_entry* entry = nullptr;
      const int status = archive_read_next_header(reader_, &entry);
      if (status == ARCHIVE_EOF) break;
      if (status < ARCHIVE_WARN) {
        if (entries_ == 0) {
          fail(Errc::integrity, not_an_archive(reader_));
        }
        fail(Errc::integrity, "reading the entry after " + detail::quoted(name_) + " failed (" +
                                  library_error() +
                                  "); the archive is truncated or corrupt: get it again");
      }
      ++entries_;
      const char* raw_name = archive_entry_pathname(entry);
      if (raw_name == nullptr) raw_name = archive_entry_pathname_utf8(entry);
      name_ = raw_name != nullptr ? raw_name : "";
      if (entries_ > options_.max_entries) {
        fail(Errc::integrity, "it has more than max_entries (" +
                                  std::to_string(options_.max_entries) + ") entries; " +
                                  std::string(kLimitAdvice));
      }
      if (raw_name == nullptr) refuse("has no readable name");
      extract(entry);
    }
    sync_folders();
  }

 private:
  [[noreturn]] void fail(Errc code, const std::string& what) const {
    throw Error(code, "cannot extract archive " + archive_path_.string() + ": " + what,
                archive_path_.string());
  }

  // The current entry breaks a safety rule.
  [[noreturn]] void refuse(const std::string& reason) const {
    fail(Errc::integrity,
         "entry " + detail::quoted(name_) + " " + reason + "; " + std::string(kUnsafeAdvice));
  }

  [[noreturn]] void write_failed(const std::string& what, const std::string& relative,
                                 int error) const {
    const bool full = error == ENOSPC || error == EDQUOT;
    fail(Errc::io, "cannot " + what + " " + (root_path_ / relative).string() + " for entry " +
                       detail::quoted(name_) + ": " + std::strerror(error) +
                       (full ? "; free some disk space and try again"
                             : "; check that the destination's folder is writable"));
  }

  [[noreturn]] void read_failed() const {
    fail(Errc::integrity, "reading entry " + detail::quoted(name_) + " failed (" + library_error() +
                              "); the archive is truncated or corrupt: get it again");
  }

  std::string library_error() const { return library_reason(reader_); }

  // The path of an entry (or a hard link's target) as validated segments:
  // the rules of package file paths, with "." and empty segments dropped.
  // `what` names the path in messages ("" for the entry's own name).
  std::vector<std::string> checked_path(std::string_view path, const std::string& what) const {
    const auto bad = [&](const std::string& reason) {
      refuse(what.empty() ? reason : what + " " + detail::quoted(path) + " which " + reason);
    };
    for (char c : path) {
      if (c == '\\') bad("contains a backslash");
      if (is_control(c)) bad("contains a control character");
    }
    if (!path.empty() && path.front() == '/') bad("is an absolute path");
    std::vector<std::string> parts;
    for (std::string& part : split(path)) {
      if (part.empty() || part == ".") continue;
      if (part == "..") bad("has a '..' segment");
      parts.push_back(std::move(part));
    }
    if (!parts.empty() && parts[0].size() >= 2 && parts[0][1] == ':' &&
        ((parts[0][0] >= 'A' && parts[0][0] <= 'Z') ||
         (parts[0][0] >= 'a' && parts[0][0] <= 'z'))) {
      bad("starts with a Windows drive");
    }
    return parts;
  }

  // Opens the folder made of the first `count` segments of `parts` below the
  // root, one component at a time without following symlinks, creating the
  // missing ones when `create`.
  UniqueFd open_folder(const std::vector<std::string>& parts, std::size_t count, bool create) {
    UniqueFd folder(::openat(root_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!folder) write_failed("open", "", errno);
    for (std::size_t i = 0; i < count; ++i) {
      const char* part = parts[i].c_str();
      constexpr int kFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
      UniqueFd next(::openat(folder.get(), part, kFlags));
      if (!next && errno == ENOENT && create) {
        if (::mkdirat(folder.get(), part, 0755) == 0) {
          created_folders_.insert(join(parts, i + 1));
        } else if (errno != EEXIST) {
          write_failed("create the folder", join(parts, i + 1), errno);
        }
        next = UniqueFd(::openat(folder.get(), part, kFlags));
      }
      if (!next) {
        const int error = errno;
        struct stat status {};
        if (::fstatat(folder.get(), part, &status, AT_SYMLINK_NOFOLLOW) == 0) {
          if (S_ISLNK(status.st_mode)) {
            refuse("goes through the symlink " + detail::quoted(join(parts, i + 1)) +
                   " made by an earlier entry (writing through symlinks is refused)");
          }
          if (!S_ISDIR(status.st_mode)) {
            refuse("needs " + detail::quoted(join(parts, i + 1)) +
                   " to be a folder, but an earlier entry made it a file");
          }
        }
        write_failed("open the folder", join(parts, i + 1), error);
      }
      folder = std::move(next);
    }
    return folder;
  }

  // Counts `bytes` more extracted bytes; throws when past a limit.
  void account(std::uint64_t bytes) {
    check_total(total_ + bytes, "expands");
    total_ += bytes;
  }

  void check_total(std::uint64_t total, const std::string& verb) const {
    const bool overflow = total < total_;
    if (overflow || total > options_.max_bytes) {
      fail(Errc::integrity, "entry " + detail::quoted(name_) + " " + verb + " the archive past max_bytes (" +
                                std::to_string(options_.max_bytes) + " bytes); " +
                                std::string(kLimitAdvice));
    }
    if (total > kRatioFloor &&
        static_cast<double>(total) > options_.max_ratio * static_cast<double>(archive_size_)) {
      std::ostringstream ratio;
      ratio << options_.max_ratio;
      fail(Errc::integrity, "entry " + detail::quoted(name_) + " " + verb + " the archive past max_ratio (" +
                                ratio.str() + " times its " + std::to_string(archive_size_) +
                                " bytes); " + std::string(kLimitAdvice));
    }
  }

  void extract(archive_entry* entry) {
    std::vector<std::string> parts = checked_path(name_, "");
    if (const char* target = archive_entry_hardlink(entry)) {
      extract_hardlink(parts, target);
      return;
    }
    switch (archive_entry_filetype(entry)) {
      case AE_IFDIR:
        open_folder(parts, parts.size(), true);
        return;
      case AE_IFREG:
        extract_file(parts, entry);
        return;
      case AE_IFLNK:
        extract_symlink(parts, archive_entry_symlink(entry));
        return;
      case AE_IFCHR:
      case AE_IFBLK:
        refuse("is a device (devices are refused)");
      case AE_IFIFO:
        refuse("is a FIFO (FIFOs are refused)");
      case AE_IFSOCK:
        refuse("is a socket (sockets are refused)");
      default:
        refuse("has an unknown file type");
    }
  }

  // The folder of a file or link entry, and its name in it.
  std::pair<UniqueFd, const std::string&> parent_of(const std::vector<std::string>& parts) {
    if (parts.empty()) refuse("names the archive's root folder, which can only be a folder");
    return {open_folder(parts, parts.size() - 1, true), parts.back()};
  }

  [[noreturn]] void refuse_duplicate() const {
    refuse("appears twice, or collides with an earlier entry of the same path");
  }

  void extract_file(const std::vector<std::string>& parts, archive_entry* entry) {
    if (archive_entry_size_is_set(entry)) {
      const la_int64_t declared = archive_entry_size(entry);
      if (declared > 0) check_total(total_ + static_cast<std::uint64_t>(declared), "would expand");
    }
    auto [folder, name] = parent_of(parts);
    const std::string relative = join(parts, parts.size());
    // Owner's exec bit kept, nothing else: no setuid, setgid, sticky or
    // group- or world-writable files. The umask applies.
    const mode_t mode = (archive_entry_perm(entry) & S_IXUSR) != 0 ? 0755 : 0644;
    UniqueFd file(::openat(folder.get(), name.c_str(),
                           O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
    if (!file) {
      if (errno == EEXIST) refuse_duplicate();
      write_failed("create", relative, errno);
    }
    for (;;) {
      const la_ssize_t got = archive_read_data(reader_, buffer_.data(), buffer_.size());
      if (got == 0) break;
      if (got < 0) read_failed();
      account(static_cast<std::uint64_t>(got));
      if (!detail::write_all(file.get(), buffer_.data(), static_cast<std::size_t>(got))) {
        write_failed("write", relative, errno);
      }
    }
    if (::fsync(file.get()) != 0) write_failed("write", relative, errno);
    if (const int error = file.close(); error != 0) write_failed("write", relative, error);
    files_.insert(relative);
  }

  // A symlink's target must be relative, and resolve inside the root from
  // the link's folder: leading ".." segments climb at most to the root, and
  // none follows a name (after "a/" a ".." could climb out of wherever a
  // symlink "a" points, so lexical resolution would not be the real one).
  void extract_symlink(const std::vector<std::string>& parts, const char* target) {
    const std::string_view text = target != nullptr ? target : "";
    const auto bad = [&](const std::string& reason) {
      refuse("is a symlink to " + detail::quoted(text) + " which " + reason);
    };
    if (text.empty()) bad("is empty");
    if (text.front() == '/') bad("is absolute (links must stay inside the archive's folder)");
    for (char c : text) {
      if (c == '\\') bad("contains a backslash");
      if (is_control(c)) bad("contains a control character");
    }
    std::size_t climbs = 0;
    bool named = false;
    for (const std::string& part : split(text)) {
      if (part.empty() || part == ".") continue;
      if (part != "..") {
        named = true;
      } else if (named) {
        bad("has a '..' segment after a name");
      } else {
        ++climbs;
      }
    }
    if (parts.empty() || climbs > parts.size() - 1) bad("leaves the archive's folder");
    auto [folder, name] = parent_of(parts);
    if (::symlinkat(target, folder.get(), name.c_str()) != 0) {
      if (errno == EEXIST) refuse_duplicate();
      write_failed("create the symlink", join(parts, parts.size()), errno);
    }
  }

  // A hard link may only point to a regular file extracted before it.
  void extract_hardlink(const std::vector<std::string>& parts, std::string_view target) {
    const std::vector<std::string> target_parts = checked_path(target, "is a hard link to");
    const std::string target_relative = join(target_parts, target_parts.size());
    if (target_parts.empty() || files_.count(target_relative) == 0) {
      refuse("is a hard link to " + detail::quoted(target) +
             " which is not a file extracted before it from this archive");
    }
    UniqueFd target_folder = open_folder(target_parts, target_parts.size() - 1, false);
    auto [folder, name] = parent_of(parts);
    if (::linkat(target_folder.get(), target_parts.back().c_str(), folder.get(), name.c_str(), 0) !=
        0) {
      if (errno == EEXIST) refuse_duplicate();
      write_failed("create the hard link", join(parts, parts.size()), errno);
    }
  }

  // Makes the folders' entries durable before the rename publishes them.
  void sync_folders() {
    created_folders_.insert("");
    for (const std::string& relative : created_folders_) {
      const std::vector<std::string> parts =
          relative.empty() ? std::vector<std::string>{} : split(relative);
      UniqueFd folder = open_folder(parts, parts.size(), false);
      if (::fsync(folder.get()) != 0) write_failed("write", relative, errno);
    }
  }

  const fs::path& archive_path_;
  std::uint64_t archive_size_;
  const ExtractOptions& options_;
  const fs::path& root_path_;
  int root_;
  archive* reader_ = nullptr;
  std::vector<char> buffer_;
  std::string name_;  // the current entry's name, as in the archive
  std::uint64_t entries_ = 0;
  std::uint64_t total_ = 0;                // bytes extracted so far
  std::set<std::string> files_;            // regular files extracted, normalised
  std::set<std::string> created_folders_;  // folders created, normalised
};

Error destination_error(const std::string& what, const fs::path& path, int error) {
  return Error(Errc::io,
               "cannot extract into " + path.string() + ": " + what + ": " + std::strerror(error) +
                   "; check that its folder is writable or extract elsewhere",
               path.string());
}

}  // namespace

void extract_archive(const fs::path& archive_path, const fs::path& destination,
                     const ExtractOptions& options) {
  UniqueFd input(::open(archive_path.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat status {};
  if (!input || ::fstat(input.get(), &status) != 0) {
    throw Error(Errc::io,
                "cannot open archive " + archive_path.string() + ": " + std::strerror(errno) +
                    "; check the path and its permissions",
                archive_path.string());
  }
  if (!S_ISREG(status.st_mode)) {
    throw Error(Errc::io,
                "cannot extract archive " + archive_path.string() +
                    ": it is not a regular file; give the path of the archive file",
                archive_path.string());
  }
  if (status.st_size == 0) {
    throw Error(Errc::integrity,
                "cannot extract archive " + archive_path.string() +
                    ": the file is empty; get the archive again",
                archive_path.string());
  }
  const auto archive_size = static_cast<std::uint64_t>(status.st_size);

  fs::path target = destination.lexically_normal();
  if (!target.empty() && target.filename().empty()) target = target.parent_path();
  if (target.empty() || target.filename() == "." || target.filename() == "..") {
    throw Error(Errc::io,
                "cannot extract into \"" + destination.string() +
                    "\": not a folder name; give the path of a new folder",
                destination.string());
  }
  struct stat existing {};
  if (::lstat(target.c_str(), &existing) == 0) {
    throw Error(Errc::io,
                "cannot extract archive " + archive_path.string() + " into " + target.string() +
                    ": it already exists; remove it or extract into a new folder",
                target.string());
  }
  if (errno != ENOENT) throw destination_error("cannot check it", target, errno);

  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) {
    throw destination_error("cannot create its folder " + parent.string(), target, ec.value());
  }

  // Beside the destination, so the final rename stays on one filesystem.
  fs::path temp_path;
  for (int attempt = 0;; ++attempt) {
    temp_path = parent / (target.filename().string() + ".part-" + unique_suffix());
    if (::mkdir(temp_path.c_str(), 0755) == 0) break;
    if (errno != EEXIST || attempt == 100) {
      throw destination_error("cannot create the temp folder " + temp_path.string(), target, errno);
    }
  }
  TempFolder temp(temp_path);
  UniqueFd root(::open(temp_path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!root) {
    throw destination_error("cannot open the temp folder " + temp_path.string(), target, errno);
  }

  const Utf8Names utf8_names;  // outlives the reader, which caches the charset
  std::unique_ptr<archive, ArchiveFree> reader(archive_read_new());
  if (!reader) throw std::bad_alloc();
  // Named formats and filters only: format_all would add mtree (whose
  // entries read files of this machine) and filter_all filters that run
  // external programs.
  archive_read_support_format_tar(reader.get());
  archive_read_support_format_zip(reader.get());
  archive_read_support_filter_gzip(reader.get());
  archive_read_support_filter_bzip2(reader.get());
  archive_read_support_filter_xz(reader.get());
  archive_read_support_filter_lzma(reader.get());
  archive_read_support_filter_zstd(reader.get());
  Extractor extractor(archive_path, archive_size, options, temp_path, root.get());
  if (archive_read_open_fd(reader.get(), input.get(), kBufferSize) != ARCHIVE_OK) {
    throw Error(
        Errc::integrity,
        "cannot extract archive " + archive_path.string() + ": " + not_an_archive(reader.get()),
        archive_path.string());
  }
  extractor.run(reader.get());
  reader.reset();
  root.close();

  // RENAME_NOREPLACE: a plain rename would replace an empty folder created
  // meanwhile.
  int renamed =
      ::renameat2(AT_FDCWD, temp_path.c_str(), AT_FDCWD, target.c_str(), RENAME_NOREPLACE);
  if (renamed != 0 && errno == EINVAL) {
    // A filesystem without RENAME_NOREPLACE: a non-empty folder is still not
    // replaced (ENOTEMPTY).
    renamed = ::rename(temp_path.c_str(), target.c_str());
  }
  if (renamed != 0) {
    // Another process extracted to the same destination first: theirs stays,
    // ours is removed (by `temp`), and the caller sees the destination there.
    if (errno == EEXIST || errno == ENOTEMPTY) return;
    throw destination_error("cannot rename " + temp_path.string() + " to it", target, errno);
  }
  temp.release();
  UniqueFd parent_fd(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (parent_fd) ::fsync(parent_fd.get());
}

}  // namespace e2s
