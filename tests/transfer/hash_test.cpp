#include "util/hash.hpp"

#include <gtest/gtest.h>

#include "util/encoding.hpp"

namespace e2s::detail {
namespace {

TEST(Digest, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  Digest md5(DigestAlgorithm::md5);
  md5.update("abc", 3);
  EXPECT_EQ(md5.hex_final(), "900150983cd24fb0d6963f7d28e17f72");
}

TEST(Digest, IncrementalEqualsWholeAndResetStartsOver) {
  Digest digest;
  digest.update("hello ", 6);
  digest.update("world", 5);
  EXPECT_EQ(digest.hex_final(), sha256_hex("hello world"));
  digest.reset();
  digest.update("x", 1);
  EXPECT_EQ(digest.hex_final(), sha256_hex("x"));
}

TEST(Crc32c, KnownVectorsAndIncrementalUse) {
  Crc32c crc;
  crc.update("123456789", 9);
  EXPECT_EQ(crc.value(), 0xE3069283u);  // the standard check value of CRC-32C
  crc.reset();
  EXPECT_EQ(crc.value(), 0u);
  crc.update("1234", 4);
  crc.update("56789", 5);
  EXPECT_EQ(crc.value(), 0xE3069283u);
}

TEST(Base64, RoundTripsAndRejectsGarbage) {
  EXPECT_EQ(base64_encode("$oauthtoken:key"), "JG9hdXRodG9rZW46a2V5");
  EXPECT_EQ(base64_decode("aGVsbG8="), "hello");
  EXPECT_EQ(base64_decode("aGk="), "hi");
  EXPECT_EQ(base64_decode("YWJj"), "abc");
  EXPECT_EQ(base64_decode(""), "");
  EXPECT_EQ(base64_decode("a"), std::nullopt);
  EXPECT_EQ(base64_decode("a=bc"), std::nullopt);
  EXPECT_EQ(base64_decode("ab!c"), std::nullopt);
  // GCS sends a 16-byte MD5 this way.
  auto md5 = base64_decode("kAFQmDzST7DWlj99KOF/cg==");
  ASSERT_TRUE(md5);
  EXPECT_EQ(to_hex(*md5), "900150983cd24fb0d6963f7d28e17f72");
}

}  // namespace
}  // namespace e2s::detail
