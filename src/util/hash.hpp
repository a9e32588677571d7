// Streaming digests (OpenSSL EVP): downloads are verified as they arrive,
// and cached files when they are read back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <memory>
#include <string>
#include <string_view>

namespace e2s::detail {

// sha1 only to check files named by a git blob hash (the Hugging Face
// cache's regular files), never as a security boundary of its own.
enum class DigestAlgorithm { sha256, md5, sha1 };

// Incremental digest. Not thread-safe; one per stream.
class Digest {
 public:
  explicit Digest(DigestAlgorithm algorithm = DigestAlgorithm::sha256);
  ~Digest();
  Digest(Digest&&) noexcept;
  Digest& operator=(Digest&&) noexcept;

  void update(const void* data, std::size_t size);
  // Lowercase hex of the digest of everything passed so far. Ends the stream:
  // call reset() before reusing.
  std::string hex_final();
  // Starts over with no data.
  void reset();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// CRC-32C (Castagnoli), as Google Cloud Storage reports it. Debian ships no
// C/C++ library for it; the table-driven form is a few lines.
class Crc32c {
 public:
  void update(const void* data, std::size_t size);
  std::uint32_t value() const noexcept { return ~state_; }
  void reset() noexcept { state_ = 0xFFFFFFFFu; }

 private:
  std::uint32_t state_ = 0xFFFFFFFFu;
};

// Lowercase hex SHA-256 of `data`.
std::string sha256_hex(std::string_view data);

// Whether `text` is `length` lowercase hex digits (a digest's name).
bool is_lower_hex(std::string_view text, std::size_t length);

}  // namespace e2s::detail
