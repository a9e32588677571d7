// e2s::Package: the public API over a root. A local root's files are used in
// place; a remote root's go through its Resolver (package/resolver.hpp), which
// owns the resolve policy. The options every part reads are completed once,
// in the constructor (package/defaults.hpp).
#include "e2s/package.hpp"

#include <fnmatch.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <thread>
#include <unordered_map>

#include "cache/layout.hpp"
#include "e2s/error.hpp"
#include "env.hpp"
#include "package/defaults.hpp"
#include "package/extraction.hpp"
#include "package/resolver.hpp"
#include "stores/store.hpp"
#include "uri/location.hpp"
#include "log.hpp"

namespace e2s {
namespace {

namespace fs = std::filesystem;

bool matches_any(const std::vector<std::string>& globs, const std::string& path) {
  return std::any_of(globs.begin(), globs.end(), [&path](const std::string& glob) {
    return ::fnmatch(glob.c_str(), path.c_str(), 0) == 0;  // '*' crosses '/', as Python's fnmatch
  });
}

// Whether a listed name is one resolve() would accept as it is: a listing is
// the server's word, and a name such as an S3 key "../x" is left out rather
// than handed to the caller.
bool is_usable_listing_path(const std::string& path, const std::string& root) {
  try {
    if (detail::validate_file_path(path, root) == path) return true;
  } catch (const Error&) {
  }
  detail::log::warn("{}: the listing names \"{}\", which is not a file path of the package; left out", root, path);
  return false;
}

}  // namespace

struct Package::Impl {
  Impl(std::string root_text, PackageOptions given)
      : root(std::move(root_text)),
        location(detail::parse_root(root)),
        options(detail::with_defaults(std::move(given), location)) {
    if (location.scheme != detail::Scheme::local) resolver.emplace(location, options);
  }

  fs::path resolve(std::string_view file_path) {
    if (resolver) return resolver->resolve(file_path);
    return detail::resolve_local(location, detail::validate_file_path(file_path, root));
  }

  fs::path resolve_extracted(std::string_view file_path, const ExtractOptions& extract_options) {
    const fs::path archive = resolve(file_path);
    std::string identity;
    fs::path base;
    if (resolver) {
      const auto entry = resolver->cached(detail::validate_file_path(file_path, root));
      identity = entry ? entry->sha256 : archive.string();
      base = detail::layout::extracted_folder(resolver->cache().storage());
    } else {
      identity = detail::local_file_identity(archive, root);
      base = detail::layout::local_extracted_folder(*options.cache_root);
    }
    return detail::extract_once(archive, identity, base, extract_options,
                                detail::lock_options(options, "extracting", archive.filename().string()));
  }

  // The listing's files matching one of `include` (all when empty) and none of `exclude`.
  std::vector<std::string> selected(const std::vector<std::string>& include, const std::vector<std::string>& exclude) {
    std::vector<std::string> wanted;
    for (const FileEntry& file : list()) {
      if ((include.empty() || matches_any(include, file.path)) && !matches_any(exclude, file.path)) {
        wanted.push_back(file.path);
      }
    }
    return wanted;
  }

  std::vector<fs::path> fetch(const std::vector<std::string>& include, const std::vector<std::string>& exclude) {
    return resolve_all(selected(include, exclude));
  }

  std::vector<fs::path> resolve_all(const std::vector<std::string>& file_paths) {
    // Each file once, however often it is named: the same FILE twice is one
    // resolve, not two threads waiting for each other.
    std::vector<std::string> distinct;
    std::vector<std::size_t> slot(file_paths.size());
    std::unordered_map<std::string_view, std::size_t> seen;
    for (std::size_t i = 0; i < file_paths.size(); ++i) {
      const auto [it, fresh] = seen.try_emplace(file_paths[i], distinct.size());
      if (fresh) distinct.push_back(file_paths[i]);
      slot[i] = it->second;
    }
    std::vector<fs::path> resolved(distinct.size());
    std::vector<std::exception_ptr> errors(distinct.size());
    std::atomic<std::size_t> next{0};
    auto work = [&] {
      for (std::size_t i = next++; i < distinct.size(); i = next++) {
        try {
          resolved[i] = resolve(distinct[i]);
        } catch (...) {
          errors[i] = std::current_exception();
        }
      }
    };
    // Files in parallel, each with its own byte ranges: the connection slots
    // keep the requests in flight to max_connections in all.
    const std::size_t threads =
        std::min<std::size_t>(distinct.size(), static_cast<std::size_t>(options.max_connections));
    std::vector<std::thread> workers;
    for (std::size_t i = 1; i < threads; ++i) workers.emplace_back(work);
    work();
    for (auto& worker : workers) worker.join();
    std::vector<fs::path> paths(file_paths.size());
    for (std::size_t i = 0; i < file_paths.size(); ++i) {
      if (errors[slot[i]]) std::rethrow_exception(errors[slot[i]]);  // the first failure in the order given
      paths[i] = resolved[slot[i]];
    }
    return paths;
  }

  std::vector<FileEntry> list() {
    std::vector<FileEntry> files;
    if (!resolver) {
      files = detail::list_local(location);
    } else if (*options.offline) {
      throw Error(Errc::offline_miss,
                  "cannot list " + root + " in offline mode: listing asks the server; run "
                  "with offline mode off",
                  root);
    } else {
      files = resolver->store().list(root);
      std::erase_if(files, [this](const FileEntry& file) { return !is_usable_listing_path(file.path, root); });
    }
    std::sort(files.begin(), files.end(),
              [](const FileEntry& a, const FileEntry& b) { return a.path < b.path; });
    return files;
  }

  std::string root;
  detail::Location location;
  PackageOptions options;
  std::optional<detail::Resolver> resolver;  // remote roots only
  const fs::path no_cache;
};

Package::Package(std::string root, PackageOptions options)
    : impl_(std::make_unique<Impl>(std::move(root), std::move(options))) {}
Package::~Package() = default;
Package::Package(Package&&) noexcept = default;
Package& Package::operator=(Package&&) noexcept = default;

fs::path Package::resolve(std::string_view file_path) { return impl_->resolve(file_path); }

std::vector<fs::path> Package::resolve_all(const std::vector<std::string>& file_paths) {
  return impl_->resolve_all(file_paths);
}

std::vector<FileEntry> Package::list() { return impl_->list(); }

Package::MirrorPush Package::push_to_mirror(const std::vector<std::string>& file_paths,
                                            const std::vector<std::string>& include,
                                            const std::vector<std::string>& exclude) {
  if (!impl_->resolver) {
    throw Error(Errc::unsupported, impl_->root + " is a local folder: only remote roots are mirrored", impl_->root);
  }
  MirrorPush pushed;
  for (const std::string& file : file_paths.empty() ? impl_->selected(include, exclude) : file_paths) {
    const auto [uploaded, bytes] = impl_->resolver->push_file(file);
    (uploaded ? pushed.uploaded : pushed.present) += 1;
    if (uploaded) pushed.bytes += bytes;
  }
  return pushed;
}

std::vector<FileEntry> Package::mirror_list() {
  if (!impl_->resolver) return {};
  return impl_->resolver->mirror_list();
}

std::vector<fs::path> Package::fetch(const std::vector<std::string>& include,
                                     const std::vector<std::string>& exclude) {
  return impl_->fetch(include, exclude);
}

fs::path Package::resolve_extracted(std::string_view file_path, const ExtractOptions& options) {
  return impl_->resolve_extracted(file_path, options);
}

std::unique_ptr<std::istream> Package::open(std::string_view file_path) {
  fs::path path = resolve(file_path);
  // The buffer is set before the file is opened: libstdc++ honours only that.
  struct BufferedFile : std::ifstream {
    std::unique_ptr<char[]> buffer;
  };
  auto stream = std::make_unique<BufferedFile>();
  const std::size_t size = impl_->options.block_size;
  stream->buffer = std::make_unique<char[]>(size);
  stream->rdbuf()->pubsetbuf(stream->buffer.get(), static_cast<std::streamsize>(size));
  stream->open(path, std::ios::binary);
  if (!*stream) {
    throw Error(Errc::io,
                "cannot open " + path.string() + " for reading; check its permissions",
                impl_->root + "/" + std::string(file_path));
  }
  return stream;
}

fs::path Package::get(std::string_view file_path) { return resolve(file_path); }

const std::string& Package::root() const noexcept { return impl_->root; }

const fs::path& Package::cache() const noexcept {
  return impl_->resolver ? impl_->resolver->cache().storage() : impl_->no_cache;
}

const PackageOptions& Package::options() const noexcept { return impl_->options; }

fs::path Package::default_cache(std::string_view sub) {
  const fs::path root = detail::default_cache_root();
  return sub.empty() ? root : root / fs::path(sub);
}

std::chrono::seconds Package::default_timeout() { return detail::default_package_timeout(); }

std::size_t Package::default_blocksize() noexcept { return std::size_t{1} << 20; }

}  // namespace e2s
