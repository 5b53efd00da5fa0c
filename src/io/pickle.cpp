#include "io/pickle.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <map>
#include <string_view>
#include <unordered_map>

#include "sparsa/error.h"
#include "io/utf8.h"

namespace sparsa::detail {
namespace {

// Limits that keep memory proportional to a hostile file (a real state dict uses a few hundred
// thousand objects at most).
constexpr size_t kMaxObjects = size_t{1} << 20;        // objects created while unpickling
constexpr size_t kMaxStack = size_t{1} << 20;          // stack entries
constexpr size_t kMaxMarks = size_t{1} << 16;          // open MARKs
constexpr size_t kMaxMemo = size_t{1} << 20;           // memo entries
constexpr size_t kMaxResultObjects = size_t{1} << 20;  // result objects, shared references expanded
constexpr int kMaxDepth = 64;                          // nesting of the result
constexpr size_t kMaxRank = 64;                        // dimensions of a tensor
constexpr size_t kMaxGlobalName = 256;                 // bytes of a GLOBAL module / name line

enum class Callable : uint8_t { kRebuildTensorV2, kRebuildTensor, kRebuildParameter, kOrderedDict, kStorage };

struct AllowedGlobal {
  std::string_view module, name;
  Callable callable;
  DType dtype;  // for storage classes
};

// The only globals a tensor file may name. Nothing is imported: REDUCE / BINPERSID reproduce them.
constexpr AllowedGlobal kAllowedGlobals[] = {
    {"torch._utils", "_rebuild_tensor_v2", Callable::kRebuildTensorV2, DType::F32},
    {"torch._utils", "_rebuild_tensor", Callable::kRebuildTensor, DType::F32},
    {"torch._utils", "_rebuild_parameter", Callable::kRebuildParameter, DType::F32},
    {"collections", "OrderedDict", Callable::kOrderedDict, DType::F32},
    {"torch", "DoubleStorage", Callable::kStorage, DType::F64},
    {"torch", "FloatStorage", Callable::kStorage, DType::F32},
    {"torch", "HalfStorage", Callable::kStorage, DType::F16},
    {"torch", "BFloat16Storage", Callable::kStorage, DType::BF16},
    {"torch", "LongStorage", Callable::kStorage, DType::I64},
    {"torch", "IntStorage", Callable::kStorage, DType::I32},
    {"torch", "ShortStorage", Callable::kStorage, DType::I16},
    {"torch", "CharStorage", Callable::kStorage, DType::I8},
    {"torch", "ByteStorage", Callable::kStorage, DType::U8},
    {"torch", "BoolStorage", Callable::kStorage, DType::BOOL},
};

// The opcodes of the pickle protocol that torch.save output uses.
enum Op : uint8_t {
  kProto = 0x80, kFrame = 0x95, kStop = '.', kEmptyDict = '}', kEmptyList = ']', kEmptyTuple = ')',
  kMark = '(', kBinInt = 'J', kBinInt1 = 'K', kBinInt2 = 'M', kLong1 = 0x8a, kLong4 = 0x8b,
  kBinFloat = 'G', kShortBinUnicode = 0x8c, kBinUnicode = 'X', kBinUnicode8 = 0x8d, kBinPut = 'q',
  kLongBinPut = 'r', kBinGet = 'h', kLongBinGet = 'j', kMemoize = 0x94, kTuple1 = 0x85, kTuple2 = 0x86,
  kTuple3 = 0x87, kTuple = 't', kSetItem = 's', kSetItems = 'u', kAppend = 'a', kAppends = 'e',
  kNewTrue = 0x88, kNewFalse = 0x89, kNone = 'N', kGlobal = 'c', kStackGlobal = 0x93, kReduce = 'R',
  kBinPersId = 'Q', kBuild = 'b',
};

enum class Kind : uint8_t { kNone, kBool, kInt, kFloat, kString, kList, kTuple, kDict, kGlobal, kStorage, kTensor };

std::string_view kind_name(Kind k) {
  switch (k) {
    case Kind::kNone: return "None";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return "str";
    case Kind::kList: return "list";
    case Kind::kTuple: return "tuple";
    case Kind::kDict: return "dict";
    case Kind::kGlobal: return "global";
    case Kind::kStorage: return "storage";
    case Kind::kTensor: return "tensor";
  }
  return "?";
}

// A storage named by data.pkl; its bytes are read when a tensor is built on it (never, for a
// storage no tensor uses).
struct Storage {
  DType dtype;
  int64_t numel;
  std::string key;
};

using ObjId = uint32_t;

// An object while unpickling; containers refer to other objects by id, so the memo shares them.
struct Obj {
  Kind kind = Kind::kNone;
  int64_t i = 0;                        // bool, int
  double f = 0;                         // float
  std::string s;                        // str
  const AllowedGlobal* global = nullptr;
  std::vector<ObjId> items;             // list / tuple items; dict: key, value, key, value, ...
  std::map<PtKey, size_t> index;        // dict: key -> pair number
  bool ordered = false;                 // dict: an OrderedDict
  std::shared_ptr<const Storage> storage;
  std::shared_ptr<const PtTensor> tensor;
};

class Unpickler {
 public:
  Unpickler(std::span<const uint8_t> bytes, const std::string& where, const StorageFetcher& fetch)
      : in_(bytes), where_(where), fetch_(fetch) {}

  PtValue run() {
    while (pos_ < in_.size()) {
      op_pos_ = pos_;
      op_ = in_[pos_++];
      if (op_ == kStop) {
        const ObjId result = pop();
        return convert(result, 0);
      }
      step();
    }
    op_pos_ = in_.size();
    op_ = 0;
    fail("the pickle ends without a STOP opcode");
  }

 private:
  template <typename... Args>
  [[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) const {
    const std::string op =
        op_ >= 0x20 && op_ < 0x7f ? fmt::format("'{}'", static_cast<char>(op_)) : fmt::format("{:#04x}", op_);
    bad_input("{}: data.pkl: {} (opcode {} at offset {})", where_, fmt::format(f, std::forward<Args>(args)...), op,
              op_pos_);
  }

  // ---- reading the stream ----
  std::span<const uint8_t> take(uint64_t n) {
    if (n > in_.size() - pos_) fail("truncated: {} more bytes needed, {} remain", n, in_.size() - pos_);
    const auto s = in_.subspan(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }
  uint64_t little_endian(size_t n) {
    const auto b = take(n);
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= static_cast<uint64_t>(b[k]) << (8 * k);
    return v;
  }
  std::string text(uint64_t n) {
    const auto b = take(n);
    std::string s(reinterpret_cast<const char*>(b.data()), b.size());
    if (utf8::first_invalid(s) != std::string::npos) fail("string is not valid UTF-8");
    return s;
  }
  std::string line() {  // a GLOBAL operand, up to '\n'
    const size_t limit = std::min(in_.size() - pos_, kMaxGlobalName + 1);
    const auto* begin = in_.data() + pos_;
    const auto* nl = static_cast<const uint8_t*>(std::memchr(begin, '\n', limit));
    if (nl == nullptr) fail("GLOBAL operand without a newline within {} bytes", kMaxGlobalName);
    std::string s(reinterpret_cast<const char*>(begin), static_cast<size_t>(nl - begin));
    pos_ += s.size() + 1;
    return s;
  }
  // Two's complement little-endian integer of n bytes (LONG1 / LONG4).
  int64_t long_int(uint64_t n) {
    if (n > 8) fail("integer of {} bytes does not fit in 64 bits", n);
    if (n == 0) return 0;
    uint64_t v = little_endian(static_cast<size_t>(n));
    if (n < 8 && (v >> (8 * n - 1)) != 0) v |= ~uint64_t{0} << (8 * n);
    return static_cast<int64_t>(v);
  }

  // ---- objects and the stack ----
  ObjId make(Obj o) {
    if (objs_.size() >= kMaxObjects) fail("more than {} objects", kMaxObjects);
    objs_.push_back(std::move(o));
    return static_cast<ObjId>(objs_.size() - 1);
  }
  ObjId make(Kind k) {
    Obj o;
    o.kind = k;
    return make(std::move(o));
  }
  void push(ObjId id) {
    if (stack_.size() >= kMaxStack) fail("stack deeper than {} entries", kMaxStack);
    stack_.push_back(id);
  }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  ObjId top() const {
    if (stack_.size() <= floor()) fail("stack underflow");
    return stack_.back();
  }
  ObjId pop() {
    const ObjId id = top();
    stack_.pop_back();
    return id;
  }
  std::vector<ObjId> pop_mark() {
    if (marks_.empty()) fail("no MARK to pop to");
    std::vector<ObjId> items(stack_.begin() + static_cast<ptrdiff_t>(marks_.back()), stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }
  Obj& expect(ObjId id, Kind k, std::string_view what) {
    if (objs_[id].kind != k) fail("{} must be a {}, got a {}", what, kind_name(k), kind_name(objs_[id].kind));
    return objs_[id];
  }
  void memo_put(uint64_t key) {
    if (memo_.size() >= kMaxMemo && memo_.find(key) == memo_.end()) fail("memo larger than {} entries", kMaxMemo);
    memo_[key] = top();
  }
  void memo_get(uint64_t key) {
    const auto it = memo_.find(key);
    if (it == memo_.end()) fail("memo key {} was never stored", key);
    push(it->second);
  }

  void make_tuple(std::vector<ObjId> items) {
    Obj o;
    o.kind = Kind::kTuple;
    o.items = std::move(items);
    push(make(std::move(o)));
  }
  void tuple_of(size_t n) {
    std::vector<ObjId> items(n);
    for (size_t k = n; k-- > 0;) items[k] = pop();
    make_tuple(std::move(items));
  }
  void set_items(const std::vector<ObjId>& kv) {
    if (kv.size() % 2 != 0) fail("SETITEMS with an odd number of keys and values");
    Obj& dict = expect(top(), Kind::kDict, "the target of SETITEM(S)");
    for (size_t k = 0; k < kv.size(); k += 2) {
      const Obj& key = objs_[kv[k]];
      PtKey pk;
      if (key.kind == Kind::kString) pk = key.s;
      else if (key.kind == Kind::kInt) pk = key.i;
      else fail("dict keys must be str or int, got a {}", kind_name(key.kind));
      const auto [it, inserted] = dict.index.emplace(std::move(pk), dict.items.size() / 2);
      if (inserted) {
        dict.items.push_back(kv[k]);
        dict.items.push_back(kv[k + 1]);
      } else {
        dict.items[2 * it->second + 1] = kv[k + 1];
      }
    }
  }
  void append_items(const std::vector<ObjId>& values) {
    Obj& list = expect(top(), Kind::kList, "the target of APPEND(S)");
    list.items.insert(list.items.end(), values.begin(), values.end());
  }

  // ---- globals and calls ----
  void global(const std::string& module, const std::string& name) {
    for (const auto& g : kAllowedGlobals) {
      if (g.module == module && g.name == name) {
        Obj o;
        o.kind = Kind::kGlobal;
        o.global = &g;
        push(make(std::move(o)));
        return;
      }
    }
    fail("global {:?} is not on the allow-list of tensor files; refused, nothing was executed", module + "." + name);
  }
  std::string global_name(const AllowedGlobal& g) const { return fmt::format("{}.{}", g.module, g.name); }

  std::vector<int64_t> int_tuple(ObjId id, std::string_view what) {
    const Obj& t = expect(id, Kind::kTuple, what);
    if (t.items.size() > kMaxRank) fail("{} has {} entries, more than {}", what, t.items.size(), kMaxRank);
    std::vector<int64_t> v;
    for (const ObjId e : t.items) v.push_back(expect(e, Kind::kInt, what).i);
    return v;
  }

  // _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, backward_hooks[, metadata])
  // and _rebuild_tensor(storage, offset, size, stride).
  ObjId rebuild_tensor(const std::vector<ObjId>& args, bool v2) {
    const bool arity_ok = v2 ? (args.size() == 6 || args.size() == 7) : args.size() == 4;
    if (!arity_ok) fail("tensor rebuild with {} arguments", args.size());
    const Obj& storage = expect(args[0], Kind::kStorage, "a tensor's storage");
    const int64_t offset = expect(args[1], Kind::kInt, "a tensor's storage offset").i;
    std::vector<int64_t> shape = int_tuple(args[2], "a tensor's size");
    std::vector<int64_t> strides = int_tuple(args[3], "a tensor's stride");
    if (v2) {
      expect(args[4], Kind::kBool, "requires_grad");
      expect(args[5], Kind::kDict, "backward_hooks");
    }
    Obj o;
    o.kind = Kind::kTensor;
    const Storage& s = *storage.storage;
    o.tensor = std::make_shared<const PtTensor>(make_pt_tensor(
        s.dtype, fetch_(s.key, static_cast<uint64_t>(s.numel) * dtype_size(s.dtype)), s.numel, offset, std::move(shape),
        std::move(strides), fmt::format("{}: data.pkl: tensor at offset {}", where_, op_pos_)));
    return make(std::move(o));
  }

  void reduce() {
    const ObjId args_id = pop();
    const Obj& callee = expect(pop(), Kind::kGlobal, "the callable of REDUCE");
    const std::vector<ObjId> args = expect(args_id, Kind::kTuple, "the arguments of REDUCE").items;
    switch (callee.global->callable) {
      case Callable::kOrderedDict: {
        if (!args.empty()) fail("collections.OrderedDict called with arguments");
        Obj o;
        o.kind = Kind::kDict;
        o.ordered = true;
        push(make(std::move(o)));
        return;
      }
      case Callable::kRebuildTensorV2: push(rebuild_tensor(args, true)); return;
      case Callable::kRebuildTensor: push(rebuild_tensor(args, false)); return;
      case Callable::kRebuildParameter:  // (data, requires_grad, backward_hooks): the tensor itself
        if (args.size() != 3) fail("_rebuild_parameter with {} arguments", args.size());
        expect(args[0], Kind::kTensor, "a parameter's data");
        push(args[0]);
        return;
      case Callable::kStorage: fail("storage class {} called as a function", global_name(*callee.global));
    }
  }

  // BINPERSID of ('storage', <storage class>, key, location, numel).
  void persistent_load() {
    const Obj& pid = expect(pop(), Kind::kTuple, "a persistent id");
    if (pid.items.size() != 5 || objs_[pid.items[0]].kind != Kind::kString || objs_[pid.items[0]].s != "storage")
      fail("persistent id is not ('storage', class, key, location, numel)");
    const Obj& cls = expect(pid.items[1], Kind::kGlobal, "a storage class");
    if (cls.global->callable != Callable::kStorage) fail("{} is not a storage class", global_name(*cls.global));
    const std::string& key = expect(pid.items[2], Kind::kString, "a storage key").s;
    expect(pid.items[3], Kind::kString, "a storage location");
    const int64_t numel = expect(pid.items[4], Kind::kInt, "a storage size").i;
    if (numel < 0) fail("storage {:?} has a negative size {}", key, numel);
    uint64_t bytes = 0;
    if (__builtin_mul_overflow(static_cast<uint64_t>(numel), dtype_size(cls.global->dtype), &bytes))
      fail("storage {:?} declares {} elements, more bytes than 64 bits can count", key, numel);
    Obj o;
    o.kind = Kind::kStorage;
    o.storage = std::make_shared<const Storage>(Storage{cls.global->dtype, numel, key});
    push(make(std::move(o)));
  }

  // BUILD: only the attribute dict an OrderedDict may carry (a state dict's _metadata); dropped.
  void build() {
    const Kind state = objs_[pop()].kind;
    const Kind target = objs_[top()].kind;
    if (target != Kind::kDict) fail("BUILD on a {} is not supported", kind_name(target));
    if (state != Kind::kNone && state != Kind::kDict && state != Kind::kTuple)
      fail("BUILD state must be None, a dict or a tuple, got a {}", kind_name(state));
  }

  void step() {
    switch (op_) {
      case kProto: {
        const uint8_t version = take(1)[0];
        if (version > 5) fail("pickle protocol {} is not supported", version);
        return;
      }
      case kFrame: take(8); return;
      case kEmptyDict: push(make(Kind::kDict)); return;
      case kEmptyList: push(make(Kind::kList)); return;
      case kEmptyTuple: push(make(Kind::kTuple)); return;
      case kMark:
        if (marks_.size() >= kMaxMarks) fail("more than {} open MARKs", kMaxMarks);
        marks_.push_back(stack_.size());
        return;
      case kBinInt: push_int(static_cast<int32_t>(little_endian(4))); return;
      case kBinInt1: push_int(static_cast<int64_t>(little_endian(1))); return;
      case kBinInt2: push_int(static_cast<int64_t>(little_endian(2))); return;
      case kLong1: push_int(long_int(little_endian(1))); return;
      case kLong4: push_int(long_int(little_endian(4))); return;
      case kBinFloat: {
        const auto b = take(8);
        uint64_t bits = 0;
        for (const uint8_t c : b) bits = bits << 8 | c;  // big-endian
        Obj o;
        o.kind = Kind::kFloat;
        o.f = std::bit_cast<double>(bits);
        push(make(std::move(o)));
        return;
      }
      case kShortBinUnicode: push_string(little_endian(1)); return;
      case kBinUnicode: push_string(little_endian(4)); return;
      case kBinUnicode8: push_string(little_endian(8)); return;
      case kBinPut: memo_put(little_endian(1)); return;
      case kLongBinPut: memo_put(little_endian(4)); return;
      case kMemoize: memo_put(memo_.size()); return;
      case kBinGet: memo_get(little_endian(1)); return;
      case kLongBinGet: memo_get(little_endian(4)); return;
      case kTuple1: tuple_of(1); return;
      case kTuple2: tuple_of(2); return;
      case kTuple3: tuple_of(3); return;
      case kTuple: make_tuple(pop_mark()); return;
      case kSetItem: {
        const ObjId value = pop();
        const ObjId key = pop();
        set_items({key, value});
        return;
      }
      case kSetItems: set_items(pop_mark()); return;
      case kAppend: append_items({pop()}); return;
      case kAppends: append_items(pop_mark()); return;
      case kNewTrue: push_bool(true); return;
      case kNewFalse: push_bool(false); return;
      case kNone: push(make(Kind::kNone)); return;
      case kGlobal: {
        const std::string module = line();
        global(module, line());
        return;
      }
      case kStackGlobal: {
        const std::string name = expect(pop(), Kind::kString, "a STACK_GLOBAL name").s;
        const std::string module = expect(pop(), Kind::kString, "a STACK_GLOBAL module").s;
        global(module, name);
        return;
      }
      case kReduce: reduce(); return;
      case kBinPersId: persistent_load(); return;
      case kBuild: build(); return;
      default: fail("unknown or unsupported pickle opcode");
    }
  }
  void push_int(int64_t v) {
    Obj o;
    o.kind = Kind::kInt;
    o.i = v;
    push(make(std::move(o)));
  }
  void push_bool(bool v) {
    Obj o;
    o.kind = Kind::kBool;
    o.i = v ? 1 : 0;
    push(make(std::move(o)));
  }
  void push_string(uint64_t n) {
    Obj o;
    o.kind = Kind::kString;
    o.s = text(n);
    push(make(std::move(o)));
  }

  // ---- the result ----
  std::vector<PtValue> convert_items(const std::vector<ObjId>& items, int depth) {
    std::vector<PtValue> out;
    out.reserve(items.size());
    for (const ObjId id : items) out.push_back(convert(id, depth + 1));
    return out;
  }
  PtValue convert(ObjId id, int depth) {
    if (depth > kMaxDepth) fail("objects nested deeper than {} levels (or a recursive structure)", kMaxDepth);
    if (++converted_ > kMaxResultObjects) fail("shared references expand to more than {} objects", kMaxResultObjects);
    const Obj& o = objs_[id];
    switch (o.kind) {
      case Kind::kNone: return PtValue{};
      case Kind::kBool: return PtValue{o.i != 0};
      case Kind::kInt: return PtValue{o.i};
      case Kind::kFloat: return PtValue{o.f};
      case Kind::kString: return PtValue{o.s};
      case Kind::kList: return PtValue{PtList{convert_items(o.items, depth)}};
      case Kind::kTuple: return PtValue{PtTuple{convert_items(o.items, depth)}};
      case Kind::kDict: {
        PtDict d;
        d.ordered = o.ordered;
        for (size_t k = 0; k < o.items.size(); k += 2) {
          const Obj& key = objs_[o.items[k]];
          d.set(key.kind == Kind::kString ? PtKey{key.s} : PtKey{key.i}, convert(o.items[k + 1], depth + 1));
        }
        return PtValue{std::move(d)};
      }
      case Kind::kTensor: return PtValue{*o.tensor};
      case Kind::kGlobal: fail("global {} appears as a value", global_name(*o.global));
      case Kind::kStorage: fail("a bare storage is not supported (save tensors)");
    }
    fail("internal: unknown object kind");
  }

  std::span<const uint8_t> in_;
  const std::string& where_;
  const StorageFetcher& fetch_;
  size_t pos_ = 0, op_pos_ = 0;
  uint8_t op_ = 0;
  std::vector<Obj> objs_;
  std::vector<ObjId> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, ObjId> memo_;
  size_t converted_ = 0;
};

}  // namespace

PtValue unpickle_torch(std::span<const uint8_t> pickle, const std::string& where, const StorageFetcher& fetch) {
  return Unpickler(pickle, where, fetch).run();
}

}  // namespace sparsa::detail
