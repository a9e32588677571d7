// Mirror keys name the upstream identity and version of a file, and are
// plain paths (a folder mirror stores them as such).
#include <gtest/gtest.h>

#include "mirror/keys.hpp"
#include "uri/location.hpp"

namespace e2s::detail {
namespace {

const std::string kCommit(40, 'a');

std::optional<std::string> key_of(const std::string& root, const std::string& path, const std::string& version = "") {
  const auto key = mirror_key(parse_root(root), path, version);
  if (!key) return std::nullopt;
  return key->key;
}

TEST(MirrorKeys, NameTheUpstreamAndItsVersion) {
  EXPECT_EQ(key_of("hf://ns/m@" + kCommit, "w.bin", kCommit), "hf/models/ns/m/" + kCommit + "/w.bin");
  EXPECT_EQ(key_of("hf://datasets/ns/d/sub", "x/y.nc", kCommit), "hf/datasets/ns/d/" + kCommit + "/sub/x/y.nc");
  EXPECT_EQ(key_of("ngc://models/nvidia/modulus/sfno@0.1.0", "sfno/w.tar"), "ngc/nvidia/modulus/sfno/0.1.0/sfno/w.tar");
  EXPECT_EQ(key_of("ngc://models/org/fcn@1.0", "a.zip"), "ngc/org/-/fcn/1.0/a.zip");
  EXPECT_EQ(key_of("s3://bucket/pre/fix", "a.bin"), "s3/bucket/pre/fix/a.bin");
  EXPECT_EQ(key_of("gs://bucket", "a.bin"), "gs/bucket/a.bin");
  EXPECT_EQ(key_of("https://example.org:8443/models/fcn", "a.bin"), "https/example.org:8443/models/fcn/a.bin");
}

TEST(MirrorKeys, AVersionThatMustBeKnownFirstHasNoKey) {
  EXPECT_FALSE(key_of("hf://ns/m", "w.bin", "main"));  // a branch: the Hub names its commit
  EXPECT_FALSE(key_of("/local/folder", "w.bin"));
  EXPECT_FALSE(mirror_ref_key(parse_root("hf://ns/m@" + kCommit)));
  EXPECT_EQ(mirror_ref_key(parse_root("hf://ns/m@v1.0")), "hf/models/ns/m/refs/v1.0");
  EXPECT_TRUE(mirror_key(parse_root("hf://ns/m"), "w.bin", kCommit)->names_version);
  EXPECT_FALSE(mirror_key(parse_root("s3://bkt"), "w.bin", "")->names_version);
}

TEST(MirrorKeys, NoKeyLeavesItsFolderOrTakesTheMirrorsOwnNames) {
  EXPECT_FALSE(key_of("s3://bkt", ".e2s-records/x.json"));
  EXPECT_FALSE(key_of("s3://bkt", "a/.e2s-leases/x"));
}

}  // namespace
}  // namespace e2s::detail
