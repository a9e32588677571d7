// The reader of fsspec's cache index: JSON as newer fsspec writes it, pickles
// as fsspec 2022.11 (Debian 12's) writes them, and hostile pickles that must
// be refused, never run, and never crash the reader.
#include "neighbours/fsspec_index.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using e2s::detail::FsspecRecord;
using e2s::detail::parse_fsspec_index;

// A literal's bytes, NULs included.
template <std::size_t N>
std::string raw(const char (&literal)[N]) {
  return std::string(literal, N - 1);
}

std::string from_hex(std::string_view hex) {
  std::string bytes;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    bytes += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
  }
  return bytes;
}

// The pickles below were printed by make_fsspec_index_fixtures.py (next to
// this file) with Debian 12's /usr/bin/python3 and fsspec 2022.11: "real_*"
// by fsspec itself (a WholeFileCacheFileSystem over a loopback http server,
// and a CachingFileSystem over the local filesystem), the others by
// pickle.dumps, at protocols 2, 4 and 5, of a dict shaped like fsspec's index.
// real_http: 426 bytes
constexpr std::string_view kRealHttp =
    "8004959f010000000000007d94288c2d687474703a2f2f3132372e302e302e313a33333038332f6d6f64656c732f6663"
    "6e2f776569676874732e746172947d94288c086f726967696e616c9468018c02666e948c403737653762383038353732"
    "323166396666376564613062363335623130636532313431643437373837353864323162333965363663653232363439"
    "6334646436948c06626c6f636b7394888c0474696d65944741dac473d6340f238c03756964948c206561636564353566"
    "61643666396635613161656237623037633439633935376294758c2f687474703a2f2f3132372e302e302e313a333330"
    "38332f6d6f64656c732f66636e2f6d657461646174612e6a736f6e947d94288c086f726967696e616c94680a8c02666e"
    "948c40356534633134336535326534346266313136386163656562633062313830623630613333333131623265643963"
    "39643435373631383966326661643436306665948c06626c6f636b7394888c0474696d65944741dac473d634aac68c03"
    "756964948c2030343232336231313035353334343337643736613237323663333033323938339475752e";

// real_blocks: 246 bytes
constexpr std::string_view kRealBlocks =
    "800495eb000000000000007d948c182f746d702f746d70706e306e773063622f6269672e62696e947d94288c086f7269"
    "67696e616c9468018c02666e948c40353337306463363164636463313563643439393262363838306239656263353533"
    "34353430663232333336656666656536393637303766336437633731613361948c06626c6f636b73945d948c0474696d"
    "65944741dac473d654e7258c03756964948c403737303836663361333266346332306366383335393936313462353139"
    "3038613138346634623266653131306134636233346338393131316331623236393136948c09626c6f636b73697a6594"
    "4d002075732e";

// crafted_protocol_2: 953 bytes
constexpr std::string_view kCraftedProtocol2 =
    "80027d710028585600000068747470733a2f2f6170692e6e67632e6e76696469612e636f6d2f76322f6d6f64656c732f"
    "6e76696469612f6d6f64756c75732f73666e6f2f76657273696f6e732f302e312e302f66696c65732f73666e6f2e7a69"
    "7071017d71022858080000006f726967696e616c710368015802000000666e7104584000000061323862626262306630"
    "303733643832336535623532303139636538363733626331616565653862663165363064333634313031643861643037"
    "39306661376271055806000000626c6f636b73710688580400000074696d6571074741d954fc40100000580300000075"
    "6964710858040000006539623471097558360000004e69636b47656e6576612f65617274685f61694032613363626438"
    "2f70616e67752f70616e67755f776561746865725f362e6f6e6e78710a7d710b28680458400000006534643039363065"
    "313562396661393436646637346663663664316139663932666564323965356238643333633264303661653230653739"
    "6566613533313333710c68065d710d284b004b014b056568074a01f1536568084e5809000000626c6f636b73697a6571"
    "0e4a00005000580400000073697a65710f8a0600000000000158060000006f666673657471104afbffffff7558340000"
    "00657261352d7064732f323032302f30312f646174612f6169725f74656d70657261747572655f61745f325f6d657472"
    "65732e6e6371117d7112286803583900000073333a2f2f657261352d7064732f323032302f30312f646174612f616972"
    "5f74656d70657261747572655f61745f325f6d65747265732e6e63711368045840000000626532303535643733396437"
    "626164366436303362633566633834313536643733376465366230383134343965666531396338326161316364643833"
    "31346631711468065d711568074740040000000000006808580400000030303031711658040000006d65746171177d71"
    "18285801000000747119284b01580100000061711a4e8974711b580100000075711c4b014b0286711d58010000006571"
    "1e29580100000066711f5d71204b07617575584a0000006763702d7075626c69632d646174612d6172636f2d65726135"
    "2f61722f66756c6c5f33372d31682d307032356465672d6368756e6b2d312e7a6172722d76332f2e7a6d657461646174"
    "6171217d7122286803682168044e68068868074740080000000000007558050000006e6f2d666e71237d712428680368"
    "23680747401000000000000075580a0000006e6f742d612d6469637471255d7126284b014b0265752e";

// crafted_protocol_4: 843 bytes
constexpr std::string_view kCraftedProtocol4 =
    "80049540030000000000007d94288c5668747470733a2f2f6170692e6e67632e6e76696469612e636f6d2f76322f6d6f"
    "64656c732f6e76696469612f6d6f64756c75732f73666e6f2f76657273696f6e732f302e312e302f66696c65732f7366"
    "6e6f2e7a6970947d94288c086f726967696e616c9468018c02666e948c40613238626262623066303037336438323365"
    "35623532303139636538363733626331616565653862663165363064333634313031643861643037393066613762948c"
    "06626c6f636b7394888c0474696d65944741d954fc401000008c03756964948c046539623494758c364e69636b47656e"
    "6576612f65617274685f616940326133636264382f70616e67752f70616e67755f776561746865725f362e6f6e6e7894"
    "7d942868048c406534643039363065313562396661393436646637346663663664316139663932666564323965356238"
    "64333363326430366165323065373965666135333133339468068f94284b004b014b059068074a01f1536568084e8c09"
    "626c6f636b73697a65944a000050008c0473697a65948a060000000000018c066f6666736574944afbffffff758c3465"
    "7261352d7064732f323032302f30312f646174612f6169725f74656d70657261747572655f61745f325f6d6574726573"
    "2e6e63947d942868038c3973333a2f2f657261352d7064732f323032302f30312f646174612f6169725f74656d706572"
    "61747572655f61745f325f6d65747265732e6e639468048c406265323035356437333964376261643664363033626335"
    "66633834313536643733376465366230383134343965666531396338326161316364643833313466319468065d946807"
    "474004000000000000680843020001948c046d657461947d94288c017494284b018c0161944e8974948c0175944b014b"
    "0286948c016594298c016694284b07919475758c4a6763702d7075626c69632d646174612d6172636f2d657261352f61"
    "722f66756c6c5f33372d31682d307032356465672d6368756e6b2d312e7a6172722d76332f2e7a6d6574616461746194"
    "7d94286803682168044e6806886807474008000000000000758c056e6f2d666e947d9428680368236807474010000000"
    "000000758c0a6e6f742d612d64696374945d94284b014b0265752e";

// crafted_protocol_5: 843 bytes
constexpr std::string_view kCraftedProtocol5 =
    "80059540030000000000007d94288c5668747470733a2f2f6170692e6e67632e6e76696469612e636f6d2f76322f6d6f"
    "64656c732f6e76696469612f6d6f64756c75732f73666e6f2f76657273696f6e732f302e312e302f66696c65732f7366"
    "6e6f2e7a6970947d94288c086f726967696e616c9468018c02666e948c40613238626262623066303037336438323365"
    "35623532303139636538363733626331616565653862663165363064333634313031643861643037393066613762948c"
    "06626c6f636b7394888c0474696d65944741d954fc401000008c03756964948c046539623494758c364e69636b47656e"
    "6576612f65617274685f616940326133636264382f70616e67752f70616e67755f776561746865725f362e6f6e6e7894"
    "7d942868048c406534643039363065313562396661393436646637346663663664316139663932666564323965356238"
    "64333363326430366165323065373965666135333133339468068f94284b004b014b059068074a01f1536568084e8c09"
    "626c6f636b73697a65944a000050008c0473697a65948a060000000000018c066f6666736574944afbffffff758c3465"
    "7261352d7064732f323032302f30312f646174612f6169725f74656d70657261747572655f61745f325f6d6574726573"
    "2e6e63947d942868038c3973333a2f2f657261352d7064732f323032302f30312f646174612f6169725f74656d706572"
    "61747572655f61745f325f6d65747265732e6e639468048c406265323035356437333964376261643664363033626335"
    "66633834313536643733376465366230383134343965666531396338326161316364643833313466319468065d946807"
    "474004000000000000680843020001948c046d657461947d94288c017494284b018c0161944e8974948c0175944b014b"
    "0286948c016594298c016694284b07919475758c4a6763702d7075626c69632d646174612d6172636f2d657261352f61"
    "722f66756c6c5f33372d31682d307032356465672d6368756e6b2d312e7a6172722d76332f2e7a6d6574616461746194"
    "7d94286803682168044e6806886807474008000000000000758c056e6f2d666e947d9428680368236807474010000000"
    "000000758c0a6e6f742d612d64696374945d94284b014b0265752e";

// evil_protocol_2: 86 bytes
constexpr std::string_view kEvilProtocol2 =
    "80027d710058010000006b71017d7102285802000000666e710358010000007871045803000000756964710563706f73"
    "69780a73797374656d0a7106580a0000006563686f2070776e6564710785710852710975732e";

// evil_protocol_4: 74 bytes
constexpr std::string_view kEvilProtocol4 =
    "8004953f000000000000007d948c016b947d94288c02666e948c0178948c03756964948c05706f736978948c06737973"
    "74656d9493948c0a6563686f2070776e6564948594529475732e";

const std::string kNgc =
    "https://api.ngc.nvidia.com/v2/models/nvidia/modulus/sfno/versions/0.1.0/files/sfno.zip";
const std::string kHf = "NickGeneva/earth_ai@2a3cbd8/pangu/pangu_weather_6.onnx";
const std::string kS3 = "era5-pds/2020/01/data/air_temperature_at_2_metres.nc";

// Pieces of a pickle, for the hand-made ones.
std::string le(std::uint64_t value, std::size_t width) {
  std::string bytes;
  for (std::size_t i = 0; i < width; ++i) bytes += static_cast<char>((value >> (8 * i)) & 0xFF);
  return bytes;
}
const std::string kProto4 = "\x80\x04";
std::string str(std::string_view text) {  // SHORT_BINUNICODE
  return "\x8c" + le(text.size(), 1) + std::string(text);
}
// {key: {"fn": fn}} with `extra` (keys and values) in the details, whole.
std::string index_of(std::string_view key, std::string_view fn, const std::string& extra = "") {
  return kProto4 + "}" + str(key) + "}(" + str("fn") + str(fn) + extra + "us.";
}

std::optional<std::vector<FsspecRecord>> parse(std::string_view bytes, std::string* reason = nullptr) {
  return parse_fsspec_index(bytes, reason);
}

// The reason a refused index gives (and that it is refused).
std::string refusal(std::string_view bytes) {
  std::string reason;
  const auto records = parse(bytes, &reason);
  EXPECT_FALSE(records.has_value());
  EXPECT_FALSE(reason.empty());
  return reason;
}

void expect_record(const FsspecRecord& record, std::string_view key, std::string_view original,
                   std::string_view fn, double time) {
  EXPECT_EQ(record.key, key);
  EXPECT_EQ(record.original, original);
  EXPECT_EQ(record.fn, fn);
  EXPECT_DOUBLE_EQ(record.time, time);
}

TEST(FsspecIndex, ReadsJson) {
  // As newer fsspec writes it (json.dump of the same dict, blocks as lists).
  const std::string json = R"({
    "https://example.com/a.nc": {"original": "https://example.com/a.nc", "fn": "f1",
                                 "blocks": true, "time": 1700000000.5, "uid": "u"},
    "ns/model@main/b.onnx": {"fn": "f2", "blocks": [0, 1, 2], "time": 17, "uid": null},
    "bucket/no-fn": {"original": "x", "time": 1.0},
    "bucket/fn-null": {"fn": null},
    "bucket/not-a-dict": [1, 2],
    "bucket/odd-fields": {"fn": "f3", "original": 5, "time": "yesterday",
                          "nested": {"a": {"b": [[], {}]}}}
  })";
  const auto records = parse(json);
  ASSERT_TRUE(records);
  ASSERT_EQ(records->size(), 3u);
  expect_record((*records)[0], "https://example.com/a.nc", "https://example.com/a.nc", "f1", 1700000000.5);
  expect_record((*records)[1], "ns/model@main/b.onnx", "ns/model@main/b.onnx", "f2", 17);
  expect_record((*records)[2], "bucket/odd-fields", "bucket/odd-fields", "f3", 0);

  const auto empty = parse("{}");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->empty());
  // A key given twice: its last details, as Python's json reads it.
  const auto twice = parse(R"({"k": {"fn": "old"}, "j": {"fn": "j"}, "k": {"fn": "new"}})");
  ASSERT_TRUE(twice);
  ASSERT_EQ(twice->size(), 2u);
  EXPECT_EQ((*twice)[0].fn, "new");
}

TEST(FsspecIndex, RefusesJsonThatIsNoIndex) {
  EXPECT_NE(refusal("[1, 2]").find("not an object"), std::string::npos);
  EXPECT_NE(refusal("\"text\"").find("not an object"), std::string::npos);
  EXPECT_NE(refusal("{\"k\": {\"fn\": \"x\"}").find("JSON"), std::string::npos);
  EXPECT_NE(refusal("{\"k\": 1} trailing").find("JSON"), std::string::npos);
  EXPECT_NE(refusal("not json at all").find("neither"), std::string::npos);
  // The parser's message quotes the input: control bytes come out escaped.
  const std::string reason = refusal("{\"k\x01\n\": 1}");
  EXPECT_EQ(reason.find('\n'), std::string::npos);
  EXPECT_EQ(reason.find('\x01'), std::string::npos);
  EXPECT_EQ(refusal(""), "the index is empty");
  // nlohmann-json would stop at a NUL, and read the first document only.
  EXPECT_NE(refusal(raw("{}\0{\"k\": 1}")).find("NUL"), std::string::npos);
  EXPECT_NE(refusal(raw("{\"k\": {\"fn\": \"x\"}}\0")).find("NUL"), std::string::npos);
}

TEST(FsspecIndex, RefusesDeepOrHugeJson) {
  // 16 levels (the index, the details, 14 more) are read; 17 are not.
  const auto nested = [](int depth) {
    return R"({"k": {"fn": "x", "deep": )" + std::string(depth - 2, '[') + std::string(depth - 2, ']') + "}}";
  };
  EXPECT_TRUE(parse(nested(16)));
  EXPECT_NE(refusal(nested(17)).find("deeper than 16"), std::string::npos);
  EXPECT_NE(refusal(std::string(100000, '[')).find("deeper than 16"), std::string::npos);

  std::string many = "{\"k\": [";
  for (int i = 0; i < 1'000'001; ++i) many += "0,";
  many += "0]}";
  EXPECT_NE(refusal(many).find("more than 1000000"), std::string::npos);
}

TEST(FsspecIndex, ReadsWhatFsspec2022WroteOverHttp) {
  const std::string bytes = from_hex(kRealHttp);
  // fsspec's "original" is its key's own object: the pickle refers to it by
  // memo (BINGET) rather than repeating it.
  EXPECT_NE(bytes.find("\x94h\x01"), std::string::npos);
  const auto records = parse(bytes);
  ASSERT_TRUE(records);
  ASSERT_EQ(records->size(), 2u);
  const std::string weights = "http://127.0.0.1:33083/models/fcn/weights.tar";
  const std::string metadata = "http://127.0.0.1:33083/models/fcn/metadata.json";
  // "fn" is the sha256 of the key.
  expect_record((*records)[0], weights, weights,
                "77e7b80857221f9ff7eda0b635b10ce2141d4778758d21b39e66ce22649c4dd6", 1796329304.8134239);
  expect_record((*records)[1], metadata, metadata,
                "5e4c143e52e44bf1168aceebc0b180b60a33311b2ed9c9d4576189f2fad460fe", 1796329304.8229232);
}

TEST(FsspecIndex, ReadsWhatFsspec2022WroteForABlockCache) {
  // One entry (so SETITEM, not SETITEMS), "blocks" a list, and a "blocksize".
  const auto records = parse(from_hex(kRealBlocks));
  ASSERT_TRUE(records);
  ASSERT_EQ(records->size(), 1u);
  expect_record((*records)[0], "/tmp/tmppn0nw0cb/big.bin", "/tmp/tmppn0nw0cb/big.bin",
                "5370dc61dcdc15cd4992b6880b9ebc5534540f22336effee696707f3d7c71a3a", 1796329305.326608);
}

TEST(FsspecIndex, ReadsEveryProtocolFrom2To5) {
  // Block lists and sets, bytes, tuples, frozensets, None, big and negative
  // ints, nested dicts: accepted and ignored. The entries whose "fn" is None
  // or missing, and the one whose details are a list, are skipped.
  for (const std::string_view hex : {kCraftedProtocol2, kCraftedProtocol4, kCraftedProtocol5}) {
    SCOPED_TRACE(hex.substr(0, 4));
    const auto records = parse(from_hex(hex));
    ASSERT_TRUE(records);
    ASSERT_EQ(records->size(), 3u);
    expect_record((*records)[0], kNgc, kNgc,
                  "a28bbbb0f0073d823e5b52019ce8673bc1aeee8bf1e60d364101d8ad0790fa7b", 1700000000.25);
    expect_record((*records)[1], kHf, kHf,
                  "e4d0960e15b9fa946df74fcf6d1a9f92fed29e5b8d33c2d06ae20e79efa53133", 1700000001);
    expect_record((*records)[2], kS3, "s3://" + kS3,
                  "be2055d739d7bad6d603bc5fc84156d737de6b081449efe19c82aa1cdd8314f1", 2.5);
  }
}

TEST(FsspecIndex, FollowsTheMemo) {
  // Protocol 2 style: BINPUT and BINGET by number, and an entry put twice.
  const std::string put_get = raw("\x80\x02}q\x00X\x01\x00\x00\x00kq\x01}q\x02(X\x02\x00\x00\x00" "fnq\x03"
                                  "X\x01\x00\x00\x00xq\x03X\x08\x00\x00\x00originalh\x03us.");
  auto records = parse(put_get);
  ASSERT_TRUE(records);
  ASSERT_EQ(records->size(), 1u);
  expect_record((*records)[0], "k", "x", "x", 0);

  // Past 256 entries: LONG_BINPUT and LONG_BINGET, as the pickler writes them.
  std::string many = kProto4 + "}" + str("k") + "}(" + str("blocks") + "](";
  for (int i = 0; i < 300; ++i) many += str("s" + std::to_string(i)) + "r" + le(i, 4);
  many += "e" + str("fn") + "j" + le(299, 4) + str("original") + "j" + le(7, 4) + "us.";
  records = parse(many);
  ASSERT_TRUE(records);
  ASSERT_EQ(records->size(), 1u);
  expect_record((*records)[0], "k", "s7", "s299", 0);

  // A memo index past the next one, or never put, is refused.
  EXPECT_NE(refusal(kProto4 + "}q\x05.").find("memo index 5"), std::string::npos);
  EXPECT_NE(refusal(kProto4 + "}r" + le(0xFFFFFFFF, 4) + ".").find("memo index 4294967295"), std::string::npos);
  EXPECT_NE(refusal(kProto4 + "}\x94h\x01.").find("memo index 1"), std::string::npos);
  EXPECT_NE(refusal(kProto4 + "}\x94j" + le(0xFFFFFFFF, 4) + ".").find("out of range"), std::string::npos);
  EXPECT_NE(refusal(kProto4 + "\x94.").find("underflows"), std::string::npos);
}

TEST(FsspecIndex, RefusesCodeNamingTheOpcode) {
  // {"k": {"fn": "x", "uid": Evil()}}, Evil reducing to os.system("echo pwned").
  EXPECT_NE(refusal(from_hex(kEvilProtocol2)).find("GLOBAL (0x63) is not plain data"), std::string::npos);
  EXPECT_NE(refusal(from_hex(kEvilProtocol4)).find("STACK_GLOBAL (0x93) is not plain data"), std::string::npos);
  // A set at protocol 2 is a call of builtins.set: refused too.
  EXPECT_NE(refusal(raw("\x80\x02" "c__builtin__\nset\nq\x00]\x85R.")).find("GLOBAL"), std::string::npos);

  const std::pair<char, std::string_view> kCalls[] = {
      {'R', "REDUCE"}, {'b', "BUILD"}, {'i', "INST"}, {'o', "OBJ"}, {'\x81', "NEWOBJ"},
      {'\x92', "NEWOBJ_EX"}, {'P', "PERSID"}, {'Q', "BINPERSID"}, {'\x82', "EXT1"},
      {'\x83', "EXT2"}, {'\x84', "EXT4"}, {'\x96', "BYTEARRAY8"}, {'\x97', "NEXT_BUFFER"},
      {'\x98', "READONLY_BUFFER"}, {'0', "POP"}, {'2', "DUP"}, {'d', "DICT"}, {'l', "LIST"},
      {'S', "STRING"}, {'V', "UNICODE"}, {'I', "INT"}, {'F', "FLOAT"}, {'g', "GET"}, {'p', "PUT"}};
  for (const auto& [code, name] : kCalls) {
    // After a valid value, where a hostile pickle would put them.
    const std::string reason = refusal(kProto4 + "}" + str("os") + str("system") + code + "\n\n.");
    EXPECT_NE(reason.find("opcode " + std::string(name) + " ("), std::string::npos) << reason;
    EXPECT_NE(reason.find("byte 15:"), std::string::npos) << reason;
  }
  EXPECT_NE(refusal(kProto4 + "\xff.").find("unknown 0xff"), std::string::npos);
}

TEST(FsspecIndex, NoPrefixOfAnIndexIsOne) {
  for (const std::string_view hex : {kRealHttp, kRealBlocks, kCraftedProtocol2, kCraftedProtocol4,
                                     kCraftedProtocol5}) {
    const std::string bytes = from_hex(hex);
    for (std::size_t length = 0; length < bytes.size(); ++length) {
      std::string reason;
      EXPECT_FALSE(parse(std::string_view(bytes).substr(0, length), &reason)) << length;
      EXPECT_FALSE(reason.empty());
    }
    ASSERT_TRUE(parse(bytes));
    EXPECT_NE(refusal(bytes + "x").find("after STOP"), std::string::npos);
  }
}

TEST(FsspecIndex, RefusesLengthsPastTheEnd) {
  const auto past = [](const std::string& bytes) {
    const std::string reason = refusal(bytes);
    EXPECT_NE(reason.find("past the end"), std::string::npos) << reason;
  };
  past(kProto4 + "X" + le(0xFFFFFFFF, 4) + "abc.");
  past(kProto4 + "\x8d" + le(std::uint64_t{1} << 63, 8) + "abc.");
  past(kProto4 + "\x8d" + le(~std::uint64_t{0}, 8) + "abc.");
  past(kProto4 + "\x8c\xff" + "abc.");
  past(kProto4 + "C\x05" + "abc");
  past(kProto4 + "B" + le(0xFFFFFFF0, 4) + "abc.");
  past(kProto4 + "\x8e" + le(~std::uint64_t{0} - 3, 8) + ".");
  past(kProto4 + "\x95" + le(~std::uint64_t{0}, 8) + "}.");
  past(kProto4 + "\x95" + le(3, 8) + "}.");
  past(kProto4 + "\x8a\xff" + "\x01\x02.");
  past(kProto4 + "\x8b" + le(0x7FFFFFFF, 4) + "\x01.");
  past(kProto4 + "G" + "\x01\x02.");
  past(kProto4 + "J" + "\x01\x02.");
  past(kProto4 + "M" + "\x01");
  past(kProto4 + "q");
  past("\x80");
  EXPECT_NE(refusal(kProto4 + "\x8b" + le(0xFFFFFFFF, 4) + ".").find("negative length"), std::string::npos);
  // A FRAME exactly as long as the rest is fine.
  EXPECT_TRUE(parse(kProto4 + "\x95" + le(3, 8) + "}\x94."));
}

// A FRAME of `content`.
std::string frame(const std::string& content) {
  return "\x95" + le(content.size(), 8) + content;
}

TEST(FsspecIndex, ReadsFramesAsPythonWritesThem) {
  // A str of 64 KiB or more goes after its opcode's frame, unframed; then
  // the next frame.
  const std::string head = "}" + str("k") + "}(" + str("fn") + str("x") + str("uid") + "\x8d" + le(70000, 8);
  const std::string framed = kProto4 + frame(head) + std::string(70000, 'u') + frame("us.");
  EXPECT_TRUE(parse(framed));
  // Frames of no bytes, and frames back to back.
  EXPECT_TRUE(parse(kProto4 + frame("") + frame("}") + frame("") + frame(".")));

  // An opcode across the end of its frame (Python's C reader, given a file,
  // then reads the wrong bytes), or a frame inside the rest of another.
  const auto crosses = [](const std::string& bytes, std::string_view why) {
    const std::string reason = refusal(bytes);
    EXPECT_NE(reason.find(why), std::string::npos) << reason;
  };
  crosses(kProto4 + "\x95" + le(3, 8) + str("kk") + "\x94.", "crosses the end of its FRAME");
  crosses(kProto4 + "\x95" + le(head.size() + 10, 8) + head + std::string(70000, 'u') + "us.",
          "crosses the end of its FRAME");
  crosses(kProto4 + frame("}" + frame(".") + "N"), "starts before the last one ends");
  crosses(kProto4 + frame("}" + frame(".")), "starts before the last one ends");
}

TEST(FsspecIndex, RefusesTooLargeAnInput) {
  std::string huge = index_of("k", "x");
  huge.resize(e2s::detail::kFsspecIndexMaxBytes + 1, ' ');
  EXPECT_NE(refusal(huge).find("more than the 64.0 MiB read"), std::string::npos);
}

// {"k": {"fn": "x", "deep": <a list nested `depth` deep>}}, built bottom-up
// with APPEND, as Python pickles nested one-item lists.
std::string nested_lists(int depth) {
  return index_of("k", "x", str("deep") + std::string(depth, ']') + std::string(depth - 1, 'a'));
}

// The same with two-item dicts, as Python pickles them: a MARK for each
// dict under way.
std::string nested_dicts(int depth) {
  std::string value = "N";
  for (int i = 0; i < depth; ++i) value = "}(" + str("a") + value + str("b") + "Nu";
  return index_of("k", "x", str("deep") + value);
}

TEST(FsspecIndex, RefusesDeepNesting) {
  // 16 levels (the index, the details, 14 more) are read; 17 are not.
  EXPECT_TRUE(parse(nested_lists(14)));
  EXPECT_NE(refusal(nested_lists(15)).find("nesting deeper than 16"), std::string::npos);
  EXPECT_TRUE(parse(nested_dicts(14)));
  EXPECT_NE(refusal(nested_dicts(15)).find("nesting deeper than 16"), std::string::npos);
  EXPECT_NE(refusal(nested_lists(100000)).find("nesting deeper than 16"), std::string::npos);
  EXPECT_NE(refusal(kProto4 + std::string(100000, '(')).find("nesting deeper than 16"), std::string::npos);

  // Nesting top-down through the memo (a list filled after it was placed in
  // another) would dodge the count: refused as Python's pickler never does it.
  std::string top_down = kProto4 + "]\x94";
  for (int i = 1; i < 40; ++i) top_down += "]\x94" "a" "h" + le(i, 1);
  EXPECT_NE(refusal(top_down + ".").find("changes after it was nested"), std::string::npos);
  // And no container holds itself (nor so a cycle).
  EXPECT_NE(refusal(kProto4 + raw("]\x94h\x00" "a.")).find("holds itself"), std::string::npos);
  const std::string cycle = kProto4 + "]\x94]\x94" "a" "h\x01" + raw("h\x00" "a.");
  EXPECT_NE(refusal(cycle).find("changes after"), std::string::npos);
}

TEST(FsspecIndex, RefusesTooManyItems) {
  std::string nones = kProto4 + "}" + str("k") + "](";
  nones += std::string(1'000'001, 'N');
  EXPECT_NE(refusal(nones + "es.").find("more than 1000000 items"), std::string::npos);
  std::string gets = kProto4 + "N\x94";
  for (int i = 0; i < 1'000'001; ++i) gets += raw("h\x00");
  EXPECT_NE(refusal(gets + ".").find("more than 1000000 items"), std::string::npos);
  EXPECT_NE(refusal(kProto4 + "N" + std::string(1'000'001, '\x94') + ".").find("memo entries"),
            std::string::npos);
}

TEST(FsspecIndex, SkipsEntriesWithoutAStringFn) {
  const std::string bytes = kProto4 + "}(" +
      str("bytes") + "}" + str("fn") + "C\x01x" "s" +  // fn as bytes
      str("int") + "}" + str("fn") + "K\x01" "s" +     // fn as an int
      str("list") + "]" +                               // details a list
      "K\x07" "}" + str("fn") + str("x") + "s" +       // an int key
      str("good") + "}" + str("fn") + str("g") + "s" +
      "u.";
  const auto records = parse(bytes);
  ASSERT_TRUE(records);
  ASSERT_EQ(records->size(), 1u);
  expect_record((*records)[0], "good", "good", "g", 0);
}

TEST(FsspecIndex, AcceptsBlocksAsListOrSet) {
  const auto blocks = [](const std::string& value) {
    const auto records = parse(index_of("k", "x", str("blocks") + value + str("time") + "J" + le(5, 4)));
    EXPECT_TRUE(records) << value.size();
    if (records) {
      EXPECT_DOUBLE_EQ(records->at(0).time, 5);
    }
  };
  blocks("]");
  blocks("](K\x01K\x02K\x03" "e");
  blocks("]K\x01" "a");
  blocks("\x8f(K\x01K\x02" "\x90");
  blocks("(K\x01K\x02" "\x91");
  blocks("\x88");
  // Tuples of each size, bytes of each width, ints of each width.
  blocks("K\x01\x85K\x01K\x02\x86K\x01K\x02K\x03\x87)(K\x01K\x02K\x03K\x04t\x86\x87\x86");
  blocks("C\x01x" "B" + le(1, 4) + "y" "\x8e" + le(1, 8) + "z" "\x86\x86");
  blocks("\x8d" + le(1, 8) + "w");
  blocks("\x8a\x09" + std::string(9, '\x7f') + "\x8b" + le(2, 4) + "\xff\xff" "\x86");
}

TEST(FsspecIndex, ReadsNumbersAsPythonDoes) {
  const auto time = [](const std::string& value) {
    const auto records = parse(index_of("k", "x", str("time") + value));
    EXPECT_TRUE(records);
    return records ? records->at(0).time : -1;
  };
  EXPECT_DOUBLE_EQ(time("G\x41\xda\xc4\x73\xd6\x34\x0f\x23"), 1796329304.8134239);
  EXPECT_DOUBLE_EQ(time("J\xff\xff\xff\xff"), -1);
  EXPECT_DOUBLE_EQ(time("K\xff"), 255);
  EXPECT_DOUBLE_EQ(time("M\xff\xff"), 65535);
  EXPECT_DOUBLE_EQ(time(raw("\x8a\x00")), 0);
  EXPECT_DOUBLE_EQ(time(raw("\x8a\x05\x00\x00\x00\x00\x01")), 4294967296.0);
  EXPECT_DOUBLE_EQ(time("\x8a\x01\xfb"), -5);
  EXPECT_DOUBLE_EQ(time("\x8a\x08" + le(~std::uint64_t{0}, 8)), -1);
  // Not a number, or not a finite one: as if absent.
  EXPECT_DOUBLE_EQ(time("\x8a\x09" + std::string(9, '\x01')), 0);
  EXPECT_DOUBLE_EQ(time(raw("G\x7f\xf8\x00\x00\x00\x00\x00\x00")), 0);
  EXPECT_DOUBLE_EQ(time(raw("G\x7f\xf0\x00\x00\x00\x00\x00\x00")), 0);
  EXPECT_DOUBLE_EQ(time("\x88"), 0);
  EXPECT_DOUBLE_EQ(time("N"), 0);
  EXPECT_DOUBLE_EQ(time(str("1700000000")), 0);
}

TEST(FsspecIndex, KeepsTheLastOfAKeyGivenTwice) {
  const std::string bytes = kProto4 + "}(" +
      str("k") + "}(" + str("fn") + str("old") + str("fn") + str("new") + "u" +
      str("j") + "}" + str("fn") + str("j") + "s" +
      str("k") + "}(" + str("fn") + str("newer") + str("time") + "K\x02u" +
      str("gone") + "}" + str("fn") + str("g") + "s" +
      str("gone") + "}" + str("fn") + "Ns" + "u.";
  const auto records = parse(bytes);
  ASSERT_TRUE(records);
  ASSERT_EQ(records->size(), 2u);
  expect_record((*records)[0], "k", "k", "newer", 2);
  expect_record((*records)[1], "j", "j", "j", 0);
}

TEST(FsspecIndex, RefusesWhatIsNotAnIndexPickle) {
  const auto refused = [](const std::string& bytes, std::string_view why) {
    const std::string reason = refusal(bytes);
    EXPECT_NE(reason.find(why), std::string::npos) << reason;
  };
  refused(kProto4 + "].", "holds a list, not a dict");
  refused(kProto4 + "N.", "holds a None, not a dict");
  refused(kProto4 + "}}.", "leaves 2 values");
  refused(kProto4 + "}(.", "1 marks");
  refused(kProto4 + ".", "leaves 0 values");
  refused(kProto4 + "}", "ends before its STOP");
  refused("\x80\x01}.", "protocol 1");
  refused("\x80\x06}.", "protocol 6");
  refused(kProto4 + "]NNs.", "SETITEM (0x73) on a list");
  refused(kProto4 + "}Na.", "APPEND (0x61) on a dict");
  refused(kProto4 + ")(N\x90.", "ADDITEMS (0x90) on a tuple");
  refused(kProto4 + "}(Nu.", "a key without a value");
  refused(kProto4 + "}]Ns.", "a list as a dict key");
  refused(kProto4 + "}]\x85Ns.", "a tuple as a dict key");
  refused(kProto4 + "\x8f(]\x90.", "a list as a dict key or set item");
  refused(kProto4 + "(}\x91.", "a dict as a dict key or set item");
  refused(kProto4 + "}Ns.", "underflows");
  refused(kProto4 + "(}u.", "underflows");
  refused(kProto4 + "}((Nu.", "underflows");
  refused(kProto4 + "}(N(Nu.", "SETITEMS (0x75) on a None");
  refused(kProto4 + "N\x87.", "underflows");
  refused(kProto4 + "t.", "no MARK");
  refused(kProto4 + "}" + str("\xff") + ".", "not UTF-8");
  refused(kProto4 + "}" + str("\xc0\x80") + ".", "not UTF-8");
  refused(kProto4 + "}" + str("\xe2\x82") + ".", "not UTF-8");
  // A lone surrogate, as pickle writes a path's undecodable byte: taken.
  EXPECT_TRUE(parse(index_of("/data/\xed\xb3\xbf.nc", "x")));
  EXPECT_TRUE(parse(index_of("caf\xc3\xa9/\xf0\x9f\x8c\x8d", "x")));
}

// Bytes changed at random, from the valid indexes: a reader that trusts a
// length, a memo index or the stack's shape crashes here (and under the
// sanitizer build, reads out of bounds).
TEST(FsspecIndex, SurvivesRandomMutations) {
  std::vector<std::string> seeds;
  for (const std::string_view hex : {kRealHttp, kRealBlocks, kCraftedProtocol2, kCraftedProtocol4,
                                     kCraftedProtocol5, kEvilProtocol2, kEvilProtocol4}) {
    seeds.push_back(from_hex(hex));
  }
  seeds.push_back(nested_dicts(14));
  seeds.push_back(R"({"k": {"fn": "x", "blocks": [1, 2], "time": 1.5}, "j": {"fn": "y"}})");
  static constexpr char kInteresting[] = {'\x00', '\x01', '\x7f', '\x80', '\xff', '(', '.', ')', ']',
                                          '}', 'a', 'e', 'h', 'j', 'q', 'r', 's', 'u', 't', '\x8c',
                                          '\x8d', '\x90', '\x91', '\x94', '\x95', 'X', 'B'};
  std::mt19937_64 random(20261203);
  const auto pick = [&random](std::size_t bound) {
    return bound == 0 ? 0 : static_cast<std::size_t>(random() % bound);
  };
  std::size_t accepted = 0;
  for (int round = 0; round < 6000; ++round) {
    std::string bytes = seeds[pick(seeds.size())];
    for (std::size_t edits = 1 + pick(4); edits-- > 0;) {
      const std::size_t at = pick(bytes.size());
      switch (pick(6)) {
        case 0: bytes[at] = static_cast<char>(random()); break;
        case 1: bytes[at] = kInteresting[pick(sizeof(kInteresting))]; break;
        case 2: bytes.insert(at, 1, kInteresting[pick(sizeof(kInteresting))]); break;
        case 3: bytes.erase(at, 1 + pick(8)); break;
        case 4: bytes.insert(at, bytes.substr(pick(bytes.size()), pick(64))); break;
        default: bytes.resize(at); break;
      }
      if (bytes.empty()) bytes = seeds[0];
    }
    std::string reason;
    const auto records = parse(bytes, &reason);
    if (records) {
      ++accepted;
    } else {
      EXPECT_FALSE(reason.empty());
    }
  }
  // Some mutations (a changed hash digit) leave a valid index: the run saw both.
  EXPECT_GT(accepted, 0u);
  EXPECT_LT(accepted, 6000u);
}

}  // namespace
