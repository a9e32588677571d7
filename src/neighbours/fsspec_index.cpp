#include "neighbours/fsspec_index.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <new>
#include <unordered_map>
#include <utility>

#include <nlohmann/json.hpp>

#include "util/text.hpp"

namespace e2s::detail {
namespace {

// Containers inside containers: fsspec's index has 3 (the index, an entry's
// details, a block list).
constexpr std::size_t kMaxDepth = 16;
// Values a pickle pushes or memoizes, values a JSON holds: bounds what a
// hostile index costs (under 200 MiB, at 64 MiB of input).
constexpr std::size_t kMaxItems = 1'000'000;

// The pickle opcodes run here (pickletools.py has them all).
namespace op {
constexpr unsigned char kProto = 0x80, kFrame = 0x95, kStop = '.', kMark = '(';
constexpr unsigned char kEmptyDict = '}', kEmptyList = ']', kEmptySet = 0x8f, kEmptyTuple = ')';
constexpr unsigned char kTuple1 = 0x85, kTuple2 = 0x86, kTuple3 = 0x87, kTuple = 't';
constexpr unsigned char kFrozenSet = 0x91, kSetItem = 's', kSetItems = 'u', kAppend = 'a';
constexpr unsigned char kAppends = 'e', kAddItems = 0x90;
constexpr unsigned char kShortBinUnicode = 0x8c, kBinUnicode = 'X', kBinUnicode8 = 0x8d;
constexpr unsigned char kShortBinBytes = 'C', kBinBytes = 'B', kBinBytes8 = 0x8e;
constexpr unsigned char kBinInt = 'J', kBinInt1 = 'K', kBinInt2 = 'M', kLong1 = 0x8a, kLong4 = 0x8b;
constexpr unsigned char kBinFloat = 'G', kNewTrue = 0x88, kNewFalse = 0x89, kNone = 'N';
constexpr unsigned char kMemoize = 0x94, kBinPut = 'q', kLongBinPut = 'r', kBinGet = 'h';
constexpr unsigned char kLongBinGet = 'j';
}  // namespace op

// Every opcode's name, for a refusal to name the one it met.
std::string opcode_name(unsigned char code) {
  static constexpr std::pair<unsigned char, const char*> kNames[] = {
      {'(', "MARK"}, {'.', "STOP"}, {'0', "POP"}, {'1', "POP_MARK"}, {'2', "DUP"},
      {'F', "FLOAT"}, {'I', "INT"}, {'J', "BININT"}, {'K', "BININT1"}, {'L', "LONG"},
      {'M', "BININT2"}, {'N', "NONE"}, {'P', "PERSID"}, {'Q', "BINPERSID"}, {'R', "REDUCE"},
      {'S', "STRING"}, {'T', "BINSTRING"}, {'U', "SHORT_BINSTRING"}, {'V', "UNICODE"},
      {'X', "BINUNICODE"}, {'a', "APPEND"}, {'b', "BUILD"}, {'c', "GLOBAL"}, {'d', "DICT"},
      {'}', "EMPTY_DICT"}, {'e', "APPENDS"}, {'g', "GET"}, {'h', "BINGET"}, {'i', "INST"},
      {'j', "LONG_BINGET"}, {'l', "LIST"}, {']', "EMPTY_LIST"}, {'o', "OBJ"}, {'p', "PUT"},
      {'q', "BINPUT"}, {'r', "LONG_BINPUT"}, {'s', "SETITEM"}, {'t', "TUPLE"},
      {')', "EMPTY_TUPLE"}, {'u', "SETITEMS"}, {'G', "BINFLOAT"}, {'B', "BINBYTES"},
      {'C', "SHORT_BINBYTES"}, {0x80, "PROTO"}, {0x81, "NEWOBJ"}, {0x82, "EXT1"},
      {0x83, "EXT2"}, {0x84, "EXT4"}, {0x85, "TUPLE1"}, {0x86, "TUPLE2"}, {0x87, "TUPLE3"},
      {0x88, "NEWTRUE"}, {0x89, "NEWFALSE"}, {0x8a, "LONG1"}, {0x8b, "LONG4"},
      {0x8c, "SHORT_BINUNICODE"}, {0x8d, "BINUNICODE8"}, {0x8e, "BINBYTES8"},
      {0x8f, "EMPTY_SET"}, {0x90, "ADDITEMS"}, {0x91, "FROZENSET"}, {0x92, "NEWOBJ_EX"},
      {0x93, "STACK_GLOBAL"}, {0x94, "MEMOIZE"}, {0x95, "FRAME"}, {0x96, "BYTEARRAY8"},
      {0x97, "NEXT_BUFFER"}, {0x98, "READONLY_BUFFER"}};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex = "0x";
  hex += kHex[code >> 4];
  hex += kHex[code & 0xF];
  for (const auto& [known, name] : kNames) {
    if (known == code) return std::string(name) + " (" + hex + ")";
  }
  return "unknown " + hex;
}

// UTF-8 as Python's pickle writes a str: with "surrogatepass", so a lone
// surrogate (a path's undecodable byte) is allowed; anything else that is
// not well-formed UTF-8 Python itself refuses.
bool is_pickled_utf8(std::string_view text) {
  for (std::size_t i = 0; i < text.size();) {
    const auto byte = static_cast<unsigned char>(text[i]);
    std::size_t length = 1;
    std::uint32_t code = byte;
    if (byte >= 0xC0 && byte < 0xE0) {
      length = 2;
      code = byte & 0x1F;
    } else if (byte >= 0xE0 && byte < 0xF0) {
      length = 3;
      code = byte & 0x0F;
    } else if (byte >= 0xF0 && byte < 0xF8) {
      length = 4;
      code = byte & 0x07;
    } else if (byte >= 0x80) {
      return false;
    }
    if (length > text.size() - i) return false;
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code = (code << 6) | (next & 0x3F);
    }
    static constexpr std::uint32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code < kSmallest[length] || code > 0x10FFFF) return false;
    i += length;
  }
  return true;
}

enum class Kind : std::uint8_t {
  none, boolean, integer, big_integer, floating, text, bytes, dict, list, set, frozenset, tuple
};

const char* kind_name(Kind kind) {
  static constexpr const char* kNames[] = {"None", "bool", "int", "int", "float", "str",
                                           "bytes", "dict", "list", "set", "frozenset", "tuple"};
  return kNames[static_cast<std::size_t>(kind)];
}

// A value the pickle built. Values refer to each other by index (the memo
// lets one value appear in several places), so nothing is freed recursively.
struct Node {
  Kind kind = Kind::none;
  // Placed in a container: it may no longer change. Python's pickler fills a
  // container before placing it (only self-referencing values do otherwise),
  // so depths stay exact and no container can hold itself.
  bool nested = false;
  bool hashable = true;      // may be a dict key or a set item, as in Python
  std::uint8_t depth = 0;    // 0 for a scalar, 1 + its deepest item's for a container
  double number = 0;         // integer, floating
  std::string_view text;     // text, bytes: a slice of the input
  std::vector<std::uint32_t> items;  // a dict's keys and values in turn
};

// Runs a pickle's opcodes over a stack, as Python's unpickler does, for the
// plain-data opcodes only. Every step checks its operands against what is
// left of the input before using them.
class Unpickler {
 public:
  explicit Unpickler(std::string_view input) : input_(input) {}

  // The pickled value, or nullopt with why in reason().
  std::optional<std::uint32_t> run();
  const Node& at(std::uint32_t id) const { return nodes_[id]; }
  const std::string& reason() const { return reason_; }

 private:
  bool step(unsigned char code);
  bool refuse(const std::string& why);

  bool read(std::size_t count, std::string_view& out);
  bool framed(std::size_t count);
  bool read_le(std::size_t width, std::uint64_t& out);

  // The stack above the innermost MARK is all an opcode may take.
  std::size_t fence() const { return marks_.empty() ? 0 : marks_.back(); }
  bool need(std::size_t count);
  bool pop_mark(std::size_t& mark);
  bool push(std::uint32_t id);
  bool push_new(Node node);
  std::optional<std::uint32_t> add_node(Node node);

  bool push_scalar(Kind kind, double number = 0);
  bool push_slice(Kind kind, std::size_t length_width);
  bool push_long(std::size_t length);
  bool push_float();
  bool push_container(Kind kind);
  bool pack(Kind kind, std::size_t first);
  bool fill(std::size_t target, std::size_t first, Kind kind);
  bool nest(std::uint32_t container, std::uint32_t item, bool must_hash);
  bool put(std::uint64_t index);
  bool get(std::uint64_t index);

  std::string_view input_;
  std::size_t pos_ = 0;
  std::size_t op_start_ = 0;
  bool in_frame_ = false;
  std::size_t frame_end_ = 0;
  std::vector<Node> nodes_;
  std::vector<std::uint32_t> stack_;
  std::vector<std::uint32_t> memo_;
  std::vector<std::size_t> marks_;
  std::size_t pushed_ = 0;
  std::string reason_;
};

std::optional<std::uint32_t> Unpickler::run() {
  while (pos_ < input_.size()) {
    op_start_ = pos_;
    std::string_view byte;
    if (!read(1, byte)) return std::nullopt;
    const auto code = static_cast<unsigned char>(byte[0]);
    if (code != op::kStop) {
      if (!step(code)) return std::nullopt;
      continue;
    }
    // Stricter than Python, which takes the top and ignores the rest: an
    // index fsspec wrote is exactly one value and nothing after it.
    if (!marks_.empty() || stack_.size() != 1) {
      refuse("STOP leaves " + std::to_string(stack_.size()) + " values and " +
             std::to_string(marks_.size()) + " marks, not one value");
      return std::nullopt;
    }
    if (pos_ != input_.size()) {
      refuse("bytes after STOP");
      return std::nullopt;
    }
    return stack_.back();
  }
  op_start_ = input_.size();
  refuse("the pickle ends before its STOP");
  return std::nullopt;
}

bool Unpickler::refuse(const std::string& why) {
  reason_ = "pickle byte " + std::to_string(op_start_) + ": " + why;
  return false;
}

bool Unpickler::read(std::size_t count, std::string_view& out) {
  if (count > input_.size() - pos_) {
    return refuse(opcode_name(static_cast<unsigned char>(input_[op_start_])) + " runs past the end");
  }
  if (!framed(count)) return false;
  out = input_.substr(pos_, count);
  pos_ += count;
  return true;
}

// Python's pickler groups opcodes in FRAMEs, and writes a large str or bytes
// after its opcode's frame: the bytes a read takes lie in the current frame,
// or wholly after it (as pickle.py's reader checks; the C reader, given a
// file, misreads a pickle whose frames are otherwise).
bool Unpickler::framed(std::size_t count) {
  if (!in_frame_) return true;
  if (pos_ == frame_end_) {
    in_frame_ = false;
    return true;
  }
  if (count > frame_end_ - pos_) return refuse("an opcode crosses the end of its FRAME");
  return true;
}

bool Unpickler::read_le(std::size_t width, std::uint64_t& out) {
  std::string_view bytes;
  if (!read(width, bytes)) return false;
  out = 0;
  for (std::size_t i = width; i-- > 0;) out = (out << 8) | static_cast<unsigned char>(bytes[i]);
  return true;
}

bool Unpickler::need(std::size_t count) {
  if (stack_.size() - fence() >= count) return true;
  return refuse("the stack underflows");
}

bool Unpickler::pop_mark(std::size_t& mark) {
  if (marks_.empty()) return refuse("no MARK to end");
  mark = marks_.back();
  marks_.pop_back();
  return true;
}

bool Unpickler::push(std::uint32_t id) {
  if (++pushed_ > kMaxItems) return refuse("more than " + std::to_string(kMaxItems) + " items");
  stack_.push_back(id);
  return true;
}

std::optional<std::uint32_t> Unpickler::add_node(Node node) {
  if (nodes_.size() >= kMaxItems) {
    refuse("more than " + std::to_string(kMaxItems) + " items");
    return std::nullopt;
  }
  nodes_.push_back(std::move(node));
  return static_cast<std::uint32_t>(nodes_.size() - 1);
}

bool Unpickler::push_new(Node node) {
  const auto id = add_node(std::move(node));
  return id && push(*id);
}

bool Unpickler::push_scalar(Kind kind, double number) {
  Node node;
  node.kind = kind;
  node.number = number;
  return push_new(std::move(node));
}

// str or bytes: a length of `length_width` bytes, then the bytes.
bool Unpickler::push_slice(Kind kind, std::size_t length_width) {
  std::uint64_t length = 0;
  std::string_view bytes;
  if (!read_le(length_width, length) || !read(static_cast<std::size_t>(length), bytes)) return false;
  if (kind == Kind::text && !is_pickled_utf8(bytes)) return refuse("a str is not UTF-8");
  Node node;
  node.kind = kind;
  node.text = bytes;
  return push_new(std::move(node));
}

// An int of `length` bytes, little-endian two's complement. One past 64 bits
// is kept but is no number here (no index field holds one).
bool Unpickler::push_long(std::size_t length) {
  std::string_view bytes;
  if (!read(length, bytes)) return false;
  if (length > 8) return push_scalar(Kind::big_integer);
  std::uint64_t value = 0;
  for (std::size_t i = length; i-- > 0;) value = (value << 8) | static_cast<unsigned char>(bytes[i]);
  const bool negative = length > 0 && (static_cast<unsigned char>(bytes[length - 1]) & 0x80) != 0;
  if (negative && length < 8) value |= ~std::uint64_t{0} << (8 * length);
  return push_scalar(Kind::integer, static_cast<double>(std::bit_cast<std::int64_t>(value)));
}

// BINFLOAT: an IEEE double, big-endian.
bool Unpickler::push_float() {
  std::string_view bytes;
  if (!read(8, bytes)) return false;
  std::uint64_t bits = 0;
  for (char c : bytes) bits = (bits << 8) | static_cast<unsigned char>(c);
  return push_scalar(Kind::floating, std::bit_cast<double>(bits));
}

bool Unpickler::push_container(Kind kind) {
  Node node;
  node.kind = kind;
  node.depth = 1;
  node.hashable = kind == Kind::tuple;
  return push_new(std::move(node));
}

// A tuple or frozenset of the values from stack_[first] up, in their place.
bool Unpickler::pack(Kind kind, std::size_t first) {
  Node node;
  node.kind = kind;
  node.depth = 1;
  const auto id = add_node(std::move(node));
  if (!id) return false;
  for (std::size_t i = first; i < stack_.size(); ++i) {
    if (!nest(*id, stack_[i], kind == Kind::frozenset)) return false;
    nodes_[*id].hashable = nodes_[*id].hashable && nodes_[stack_[i]].hashable;
  }
  stack_.resize(first);
  return push(*id);
}

// SETITEM(S), APPEND(S), ADDITEMS: the values from stack_[first] up into the
// container at stack_[target], which must be of `kind`.
bool Unpickler::fill(std::size_t target, std::size_t first, Kind kind) {
  const std::uint32_t id = stack_[target];
  if (nodes_[id].kind != kind) {
    return refuse(opcode_name(static_cast<unsigned char>(input_[op_start_])) + " on a " +
                  kind_name(nodes_[id].kind));
  }
  if (nodes_[id].nested) return refuse("a container changes after it was nested");
  const bool is_dict = kind == Kind::dict;
  if (is_dict && (stack_.size() - first) % 2 != 0) return refuse("a key without a value");
  for (std::size_t i = first; i < stack_.size(); ++i) {
    const bool is_key = is_dict && (i - first) % 2 == 0;
    if (!nest(id, stack_[i], is_key || kind == Kind::set)) return false;
  }
  stack_.resize(first);
  return true;
}

bool Unpickler::nest(std::uint32_t container, std::uint32_t item, bool must_hash) {
  if (item == container) return refuse("a container holds itself");
  Node& inner = nodes_[item];
  if (must_hash && !inner.hashable) {
    return refuse(std::string("a ") + kind_name(inner.kind) + " as a dict key or set item");
  }
  inner.nested = true;
  Node& outer = nodes_[container];
  outer.depth = std::max<std::uint8_t>(outer.depth, static_cast<std::uint8_t>(inner.depth + 1));
  if (outer.depth > kMaxDepth) return refuse("nesting deeper than " + std::to_string(kMaxDepth));
  outer.items.push_back(item);
  return true;
}

// Python's pickler numbers memo entries 0, 1, 2...: an index past the next
// one (which would make Python size its memo after it) is refused.
bool Unpickler::put(std::uint64_t index) {
  if (!need(1)) return false;
  if (index < memo_.size()) {
    memo_[index] = stack_.back();
    return true;
  }
  if (index != memo_.size()) return refuse("memo index " + std::to_string(index) + " out of range");
  if (memo_.size() >= kMaxItems) return refuse("more than " + std::to_string(kMaxItems) + " memo entries");
  memo_.push_back(stack_.back());
  return true;
}

bool Unpickler::get(std::uint64_t index) {
  if (index >= memo_.size()) return refuse("memo index " + std::to_string(index) + " out of range");
  return push(memo_[index]);
}

bool Unpickler::step(unsigned char code) {
  std::uint64_t value = 0;
  std::size_t mark = 0;
  switch (code) {
    case op::kProto:
      if (!read_le(1, value)) return false;
      if (value < 2 || value > 5) return refuse("pickle protocol " + std::to_string(value));
      return true;
    case op::kFrame:
      if (!read_le(8, value)) return false;
      if (in_frame_ && pos_ != frame_end_) return refuse("a FRAME starts before the last one ends");
      if (value > input_.size() - pos_) return refuse("a FRAME runs past the end");
      in_frame_ = true;
      frame_end_ = pos_ + static_cast<std::size_t>(value);
      return true;
    case op::kMark:
      if (marks_.size() >= kMaxDepth) return refuse("nesting deeper than " + std::to_string(kMaxDepth));
      marks_.push_back(stack_.size());
      return true;
    case op::kEmptyDict: return push_container(Kind::dict);
    case op::kEmptyList: return push_container(Kind::list);
    case op::kEmptySet: return push_container(Kind::set);
    case op::kEmptyTuple: return push_container(Kind::tuple);
    case op::kTuple1:
    case op::kTuple2:
    case op::kTuple3: {
      const std::size_t count = code - op::kTuple1 + 1;
      return need(count) && pack(Kind::tuple, stack_.size() - count);
    }
    case op::kTuple: return pop_mark(mark) && pack(Kind::tuple, mark);
    case op::kFrozenSet: return pop_mark(mark) && pack(Kind::frozenset, mark);
    case op::kSetItem: return need(3) && fill(stack_.size() - 3, stack_.size() - 2, Kind::dict);
    case op::kAppend: return need(2) && fill(stack_.size() - 2, stack_.size() - 1, Kind::list);
    case op::kSetItems:
    case op::kAppends:
    case op::kAddItems: {
      if (!pop_mark(mark)) return false;
      // The container is the value below the MARK.
      if (mark == 0 || mark - 1 < fence()) return refuse("the stack underflows");
      const Kind kind = code == op::kSetItems ? Kind::dict : code == op::kAppends ? Kind::list : Kind::set;
      return fill(mark - 1, mark, kind);
    }
    case op::kShortBinUnicode: return push_slice(Kind::text, 1);
    case op::kBinUnicode: return push_slice(Kind::text, 4);
    case op::kBinUnicode8: return push_slice(Kind::text, 8);
    case op::kShortBinBytes: return push_slice(Kind::bytes, 1);
    case op::kBinBytes: return push_slice(Kind::bytes, 4);
    case op::kBinBytes8: return push_slice(Kind::bytes, 8);
    case op::kBinInt: return push_long(4);
    case op::kBinInt1:
      return read_le(1, value) && push_scalar(Kind::integer, static_cast<double>(value));
    case op::kBinInt2:
      return read_le(2, value) && push_scalar(Kind::integer, static_cast<double>(value));
    case op::kLong1: return read_le(1, value) && push_long(static_cast<std::size_t>(value));
    case op::kLong4:
      if (!read_le(4, value)) return false;
      if (value >= 0x80000000u) return refuse("LONG4 of a negative length");
      if (value > input_.size() - pos_) return refuse("LONG4 runs past the end");
      return push_long(static_cast<std::size_t>(value));
    case op::kBinFloat: return push_float();
    case op::kNewTrue: return push_scalar(Kind::boolean, 1);
    case op::kNewFalse: return push_scalar(Kind::boolean, 0);
    case op::kNone: return push_scalar(Kind::none);
    case op::kMemoize: return put(memo_.size());
    case op::kBinPut: return read_le(1, value) && put(value);
    case op::kLongBinPut: return read_le(4, value) && put(value);
    case op::kBinGet: return read_le(1, value) && get(value);
    case op::kLongBinGet: return read_le(4, value) && get(value);
    default:
      // GLOBAL, REDUCE, BUILD and the like import and call: never run.
      return refuse("opcode " + opcode_name(code) + " is not plain data");
  }
}

// The value of a dict's last `name` key (the one Python keeps), or nullptr.
const Node* field(const Unpickler& unpickler, const Node& dict, std::string_view name) {
  const Node* found = nullptr;
  for (std::size_t i = 0; i + 1 < dict.items.size(); i += 2) {
    const Node& key = unpickler.at(dict.items[i]);
    if (key.kind == Kind::text && key.text == name) found = &unpickler.at(dict.items[i + 1]);
  }
  return found;
}

double finite_or_zero(double time) { return std::isfinite(time) ? time : 0; }

std::optional<FsspecRecord> record_of(const Unpickler& unpickler, std::string_view key,
                                      const Node& details) {
  if (details.kind != Kind::dict) return std::nullopt;
  const Node* fn = field(unpickler, details, "fn");
  if (!fn || fn->kind != Kind::text) return std::nullopt;
  FsspecRecord record;
  record.key = key;
  record.fn = fn->text;
  const Node* original = field(unpickler, details, "original");
  record.original = original && original->kind == Kind::text ? original->text : key;
  const Node* time = field(unpickler, details, "time");
  if (time && (time->kind == Kind::floating || time->kind == Kind::integer)) {
    record.time = finite_or_zero(time->number);
  }
  return record;
}

std::optional<std::vector<FsspecRecord>> parse_pickle(std::string_view bytes, std::string& reason) {
  Unpickler unpickler(bytes);
  const auto root_id = unpickler.run();
  if (!root_id) {
    reason = unpickler.reason();
    return std::nullopt;
  }
  const Node& root = unpickler.at(*root_id);
  if (root.kind != Kind::dict) {
    reason = std::string("the pickle holds a ") + kind_name(root.kind) + ", not a dict";
    return std::nullopt;
  }
  // A key given twice keeps its first place and its last details, as a
  // Python dict does.
  std::vector<std::pair<std::string_view, const Node*>> entries;
  std::unordered_map<std::string_view, std::size_t> where;
  for (std::size_t i = 0; i + 1 < root.items.size(); i += 2) {
    const Node& key = unpickler.at(root.items[i]);
    if (key.kind != Kind::text) continue;
    const Node* details = &unpickler.at(root.items[i + 1]);
    const auto [it, added] = where.emplace(key.text, entries.size());
    if (added) {
      entries.emplace_back(key.text, details);
    } else {
      entries[it->second].second = details;
    }
  }
  std::vector<FsspecRecord> records;
  for (const auto& [key, details] : entries) {
    if (auto record = record_of(unpickler, key, *details)) records.push_back(std::move(*record));
  }
  return records;
}

using Json = nlohmann::ordered_json;  // keeps the index's order

// A first pass over a JSON index that only counts: the document is built
// only once it is known to be within bounds.
class JsonBounds : public nlohmann::json_sax<Json> {
 public:
  bool null() override { return item(); }
  bool boolean(bool) override { return item(); }
  bool number_integer(number_integer_t) override { return item(); }
  bool number_unsigned(number_unsigned_t) override { return item(); }
  bool number_float(number_float_t, const string_t&) override { return item(); }
  bool string(string_t&) override { return item(); }
  bool binary(binary_t&) override { return item(); }
  bool key(string_t&) override { return true; }
  bool start_object(std::size_t) override { return open(); }
  bool start_array(std::size_t) override { return open(); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }
  bool parse_error(std::size_t, const std::string&, const Json::exception& error) override {
    // The message quotes the input: escaped, and cut short.
    reason = "neither a pickle nor JSON: " + escaped(std::string_view(error.what()).substr(0, 200));
    return false;
  }

  std::string reason;

 private:
  bool item() {
    if (++items_ <= kMaxItems) return true;
    reason = "more than " + std::to_string(kMaxItems) + " JSON items";
    return false;
  }
  bool open() {
    if (++depth_ > kMaxDepth) {
      reason = "JSON nesting deeper than " + std::to_string(kMaxDepth);
      return false;
    }
    return item();
  }
  bool close() {
    --depth_;
    return true;
  }

  std::size_t items_ = 0;
  std::size_t depth_ = 0;
};

std::optional<std::vector<FsspecRecord>> parse_json(std::string_view bytes, std::string& reason) {
  // nlohmann-json takes a NUL byte for the end of its input; JSON has none.
  if (bytes.find('\0') != std::string_view::npos) {
    reason = "neither a pickle nor JSON: a NUL byte";
    return std::nullopt;
  }
  JsonBounds bounds;
  if (!Json::sax_parse(bytes.begin(), bytes.end(), &bounds)) {
    reason = bounds.reason.empty() ? "neither a pickle nor JSON" : bounds.reason;
    return std::nullopt;
  }
  const Json index = Json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (index.is_discarded()) {
    reason = "neither a pickle nor JSON";
    return std::nullopt;
  }
  if (!index.is_object()) {
    reason = std::string("the JSON is not an object (") + index.type_name() + ")";
    return std::nullopt;
  }
  std::vector<FsspecRecord> records;
  for (const auto& [key, details] : index.items()) {
    if (!details.is_object()) continue;
    const auto fn = details.find("fn");
    if (fn == details.end() || !fn->is_string()) continue;
    FsspecRecord record;
    record.key = key;
    record.fn = fn->get<std::string>();
    const auto original = details.find("original");
    record.original = original != details.end() && original->is_string() ? original->get<std::string>() : key;
    const auto time = details.find("time");
    if (time != details.end() && time->is_number()) record.time = finite_or_zero(time->get<double>());
    records.push_back(std::move(record));
  }
  return records;
}

}  // namespace

std::optional<std::vector<FsspecRecord>> parse_fsspec_index(std::string_view bytes, std::string* reason) {
  std::string why;
  std::optional<std::vector<FsspecRecord>> records;
  try {
    if (bytes.empty()) {
      why = "the index is empty";
    } else if (bytes.size() > kFsspecIndexMaxBytes) {
      why = "the index has " + std::to_string(bytes.size()) + " bytes, more than the " +
            human_bytes(kFsspecIndexMaxBytes) + " read";
    } else if (static_cast<unsigned char>(bytes[0]) == op::kProto) {
      records = parse_pickle(bytes, why);
    } else {
      records = parse_json(bytes, why);
    }
  } catch (const std::bad_alloc&) {
    records.reset();
    why = "not enough memory to read the index";
  }
  if (!records && reason) *reason = std::move(why);
  return records;
}

}  // namespace e2s::detail
