// A small structure-aware mutator for the service fuzzers' record inputs (fuzz_records.h):
// libprotobuf-mutator is not packaged in Debian 12, so this does the part we need through
// protobuf reflection. Each call either
//   - parses one record's payload as the request message of its method, changes one field
//     (integers near their boundaries, floats to special values, strings grown, cut or replaced,
//     enums to known and unknown values, repeated fields grown or shrunk, a oneof switched to
//     another member, a nested message recursed into) and serialises it back, or
//   - duplicates, drops or adds a whole record (a new call of a random method),
// and falls back to libFuzzer's own byte-level mutator (LLVMFuzzerMutate) a quarter of the time,
// when the input has no record, when a payload does not parse, or when the result would not fit.
//
// KVPOOL_FUZZ_PROTO_MUTATOR=0 in the environment turns it off (every call goes to
// LLVMFuzzerMutate): the same binary then fuzzes as before, for comparisons (docs/fuzzing.md).
#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "fuzz_records.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace kvpool::fuzz {

/// The request message of a record's method (`method` already reduced modulo the method count),
/// or nullptr when the method takes none.
using RequestPrototype = const google::protobuf::Message* (*)(uint8_t method);

namespace proto_mutator_internal {

namespace pb = google::protobuf;
using Rng = std::minstd_rand;

inline uint64_t Below(Rng& rng, uint64_t n) { return n == 0 ? 0 : rng() % n; }

// A new integer for a field of `bits` bits: a boundary of its range, a small number, a power of
// two and its neighbours, or the old value nudged.
inline uint64_t NewUnsigned(Rng& rng, uint64_t old, int bits) {
  const uint64_t max = bits == 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
  switch (Below(rng, 8)) {
    case 0: return 0;
    case 1: return max - Below(rng, 2);
    case 2: return Below(rng, 17);
    case 3: {
      const uint64_t p = uint64_t{1} << Below(rng, static_cast<uint64_t>(bits));
      return (p + Below(rng, 3) - 1) & max;
    }
    case 4: return (old + 1 + Below(rng, 4)) & max;
    case 5: return (old - 1 - Below(rng, 4)) & max;
    case 6: return (max >> 1) + Below(rng, 3) - 1;  // the signed boundary
    default: return ((uint64_t{rng()} << 32) ^ rng()) & max;
  }
}
inline int64_t NewSigned(Rng& rng, int64_t old, int bits) {
  const uint64_t mask = bits == 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
  uint64_t u = NewUnsigned(rng, static_cast<uint64_t>(old) & mask, bits);
  if (Below(rng, 4) == 0) u = (~u + 1) & mask;  // the negative
  if (bits < 64 && (u >> (bits - 1)) != 0) u |= ~mask;  // sign-extend
  return static_cast<int64_t>(u);
}
inline double NewDouble(Rng& rng, double old) {
  switch (Below(rng, 10)) {
    case 0: return 0.0;
    case 1: return -0.0;
    case 2: return std::numeric_limits<double>::infinity();
    case 3: return -std::numeric_limits<double>::infinity();
    case 4: return std::numeric_limits<double>::quiet_NaN();
    case 5: return std::numeric_limits<double>::max();
    case 6: return std::numeric_limits<double>::denorm_min();
    case 7: return -old;
    case 8: return old * 2 + 1;
    default: return static_cast<double>(rng()) / 1000.0;
  }
}
inline std::string NewString(Rng& rng, const std::string& old, bool utf8) {
  std::string s = old;
  const auto random_char = [&] {
    // Printable ASCII keeps proto3 strings valid UTF-8 (an invalid one would not parse back).
    return utf8 ? static_cast<char>(' ' + Below(rng, 95)) : static_cast<char>(rng());
  };
  switch (Below(rng, 7)) {
    case 0: return {};
    case 1: s.resize(Below(rng, s.size() + 1)); return s;
    case 2: {
      const size_t n = 1 + Below(rng, 8);
      for (size_t i = 0; i < n; ++i) s.push_back(random_char());
      return s;
    }
    case 3:
      if (!s.empty()) s[Below(rng, s.size())] = random_char();
      return s;
    case 4: return s + s;
    case 5: return std::string(Below(rng, 2) == 0 ? 255 : 256 + Below(rng, 4096), 'a');
    default: {
      static const char* const kWords[] = {"default", "ns", "node-0", "127.0.0.1:1", "",
                                           "prefill", "decode", "cost", "prefix", "a/b",
                                           "..", "\t", "0"};
      return kWords[Below(rng, sizeof(kWords) / sizeof(kWords[0]))];
    }
  }
}

// Sets element `index` of a repeated field, or the singular field when index < 0, to a new value
// derived from the old one. Message fields are handled by the caller.
inline void SetScalar(pb::Message* m, const pb::FieldDescriptor* f, int index, Rng& rng) {
  const pb::Reflection* r = m->GetReflection();
  const bool rep = index >= 0;
  switch (f->cpp_type()) {
#define KVPOOL_FUZZ_SET(Name, type, expr)                                   \
  {                                                                         \
    const type old = rep ? r->GetRepeated##Name(*m, f, index) : r->Get##Name(*m, f); \
    const type v = (expr);                                                  \
    if (rep) {                                                              \
      r->SetRepeated##Name(m, f, index, v);                                 \
    } else {                                                                \
      r->Set##Name(m, f, v);                                                \
    }                                                                       \
    break;                                                                  \
  }
    case pb::FieldDescriptor::CPPTYPE_INT32:
      KVPOOL_FUZZ_SET(Int32, int32_t, static_cast<int32_t>(NewSigned(rng, old, 32)))
    case pb::FieldDescriptor::CPPTYPE_INT64:
      KVPOOL_FUZZ_SET(Int64, int64_t, NewSigned(rng, old, 64))
    case pb::FieldDescriptor::CPPTYPE_UINT32:
      KVPOOL_FUZZ_SET(UInt32, uint32_t, static_cast<uint32_t>(NewUnsigned(rng, old, 32)))
    case pb::FieldDescriptor::CPPTYPE_UINT64:
      KVPOOL_FUZZ_SET(UInt64, uint64_t, NewUnsigned(rng, old, 64))
    case pb::FieldDescriptor::CPPTYPE_DOUBLE:
      KVPOOL_FUZZ_SET(Double, double, NewDouble(rng, old))
    case pb::FieldDescriptor::CPPTYPE_FLOAT:
      KVPOOL_FUZZ_SET(Float, float, static_cast<float>(NewDouble(rng, old)))
    case pb::FieldDescriptor::CPPTYPE_BOOL:
      KVPOOL_FUZZ_SET(Bool, bool, !old)
    case pb::FieldDescriptor::CPPTYPE_ENUM: {
      const pb::EnumDescriptor* e = f->enum_type();
      // A known value mostly; sometimes one the schema does not know (proto3 keeps it).
      const int v = Below(rng, 4) == 0 ? static_cast<int>(e->value_count() + Below(rng, 3))
                                      : e->value(static_cast<int>(Below(rng, e->value_count())))
                                            ->number();
      if (rep) {
        r->SetRepeatedEnumValue(m, f, index, v);
      } else {
        r->SetEnumValue(m, f, v);
      }
      break;
    }
    case pb::FieldDescriptor::CPPTYPE_STRING:
      KVPOOL_FUZZ_SET(String, std::string,
                      NewString(rng, old, f->type() == pb::FieldDescriptor::TYPE_STRING))
    case pb::FieldDescriptor::CPPTYPE_MESSAGE:
      break;
#undef KVPOOL_FUZZ_SET
  }
}

inline void MutateMessage(pb::Message* m, Rng& rng, int depth);

// Appends one element to a repeated field: a copy of an existing one, changed, or a new one.
inline void AddElement(pb::Message* m, const pb::FieldDescriptor* f, Rng& rng, int depth) {
  const pb::Reflection* r = m->GetReflection();
  const int n = r->FieldSize(*m, f);
  if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
    pb::Message* added = r->AddMessage(m, f);
    if (n > 0) added->CopyFrom(r->GetRepeatedMessage(*m, f, static_cast<int>(Below(rng, n))));
    if (depth > 0) MutateMessage(added, rng, depth - 1);
    return;
  }
  // A copy of an existing element (a neighbouring id, a repeated token...), then changed or
  // not; or a new default element, changed.
  const int from = n > 0 && Below(rng, 2) == 0 ? static_cast<int>(Below(rng, n)) : -1;
  switch (f->cpp_type()) {
#define KVPOOL_FUZZ_ADD(Name, zero)                                           \
  r->Add##Name(m, f, from >= 0 ? r->GetRepeated##Name(*m, f, from) : (zero)); \
  break;
    case pb::FieldDescriptor::CPPTYPE_INT32: KVPOOL_FUZZ_ADD(Int32, 0)
    case pb::FieldDescriptor::CPPTYPE_INT64: KVPOOL_FUZZ_ADD(Int64, 0)
    case pb::FieldDescriptor::CPPTYPE_UINT32: KVPOOL_FUZZ_ADD(UInt32, 0)
    case pb::FieldDescriptor::CPPTYPE_UINT64: KVPOOL_FUZZ_ADD(UInt64, 0)
    case pb::FieldDescriptor::CPPTYPE_DOUBLE: KVPOOL_FUZZ_ADD(Double, 0)
    case pb::FieldDescriptor::CPPTYPE_FLOAT: KVPOOL_FUZZ_ADD(Float, 0)
    case pb::FieldDescriptor::CPPTYPE_BOOL: KVPOOL_FUZZ_ADD(Bool, false)
    case pb::FieldDescriptor::CPPTYPE_ENUM: KVPOOL_FUZZ_ADD(EnumValue, 0)
    case pb::FieldDescriptor::CPPTYPE_STRING: KVPOOL_FUZZ_ADD(String, std::string())
    case pb::FieldDescriptor::CPPTYPE_MESSAGE: break;
#undef KVPOOL_FUZZ_ADD
  }
  if (from >= 0 && Below(rng, 2) == 0) return;
  SetScalar(m, f, r->FieldSize(*m, f) - 1, rng);
}

// Changes one field of `m` (see the file comment). `depth` bounds the recursion into messages.
inline void MutateMessage(pb::Message* m, Rng& rng, int depth) {
  const pb::Descriptor* d = m->GetDescriptor();
  const pb::Reflection* r = m->GetReflection();
  if (d->field_count() == 0) return;
  const pb::FieldDescriptor* f = d->field(static_cast<int>(Below(rng, d->field_count())));
  // Prefer fields already set (their neighbours in a oneof stay reachable through the switch).
  if (!f->is_repeated() && !r->HasField(*m, f) && Below(rng, 2) == 0) {
    std::vector<const pb::FieldDescriptor*> set;
    r->ListFields(*m, &set);
    if (!set.empty()) f = set[Below(rng, set.size())];
  }
  if (const pb::OneofDescriptor* o = f->containing_oneof(); o != nullptr && Below(rng, 3) == 0) {
    // Switch the oneof to another member (setting it clears the one that was set).
    f = o->field(static_cast<int>(Below(rng, o->field_count())));
    if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
      pb::Message* sub = r->MutableMessage(m, f);
      if (depth > 0) MutateMessage(sub, rng, depth - 1);
    } else {
      SetScalar(m, f, -1, rng);
    }
    return;
  }
  if (f->is_repeated()) {
    const int n = r->FieldSize(*m, f);
    switch (n == 0 ? 0 : Below(rng, 6)) {
      case 0: AddElement(m, f, rng, depth); break;
      case 1: r->RemoveLast(m, f); break;
      case 2: {  // drop one from the middle
        const int i = static_cast<int>(Below(rng, n));
        r->SwapElements(m, f, i, n - 1);
        r->RemoveLast(m, f);
        break;
      }
      case 3:  // grow to about twice the size, capped
        for (int i = 0; i < n && i < 512; ++i) AddElement(m, f, rng, 0);
        break;
      case 4: {
        const int i = static_cast<int>(Below(rng, n));
        if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
          if (depth > 0) MutateMessage(r->MutableRepeatedMessage(m, f, i), rng, depth - 1);
        } else {
          SetScalar(m, f, i, rng);
        }
        break;
      }
      default:
        if (Below(rng, 2) == 0) {
          r->ClearField(m, f);
        } else {
          r->SwapElements(m, f, static_cast<int>(Below(rng, n)), static_cast<int>(Below(rng, n)));
        }
        break;
    }
    return;
  }
  if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
    if (r->HasField(*m, f) && Below(rng, 5) == 0) {
      r->ClearField(m, f);
    } else if (depth > 0) {
      MutateMessage(r->MutableMessage(m, f), rng, depth - 1);
    }
    return;
  }
  if (Below(rng, 10) == 0) {
    r->ClearField(m, f);
  } else {
    SetScalar(m, f, -1, rng);
  }
}

struct OwnedRecord {
  uint8_t method = 0, flags = 0;
  std::string payload;
};

inline bool Enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("KVPOOL_FUZZ_PROTO_MUTATOR");
    return v == nullptr || std::strcmp(v, "0") != 0;
  }();
  return enabled;
}

}  // namespace proto_mutator_internal

/// LLVMFuzzerCustomMutator's body for a record input whose methods run modulo `method_count`.
inline size_t MutateRecordInput(uint8_t* data, size_t size, size_t max_size, unsigned seed,
                                uint8_t method_count, RequestPrototype prototype) {
  namespace in = proto_mutator_internal;
  in::Rng rng(seed == 0 ? 1 : seed);
  if (!in::Enabled() || in::Below(rng, 4) == 0) return LLVMFuzzerMutate(data, size, max_size);
  std::vector<in::OwnedRecord> records;
  RecordReader reader(data, size);
  Record record;
  while (reader.Next(&record)) {
    records.push_back({record.method, record.flags, std::string(record.payload)});
  }
  const uint64_t action = in::Below(rng, 16);
  if (records.empty() || action == 0) {
    // A new call of a random method with an empty request, changed once.
    in::OwnedRecord added{static_cast<uint8_t>(in::Below(rng, method_count)),
                          static_cast<uint8_t>(in::Below(rng, 4) == 0 ? rng() : 0), ""};
    if (const google::protobuf::Message* proto = prototype(added.method); proto != nullptr) {
      std::unique_ptr<google::protobuf::Message> m(proto->New());
      in::MutateMessage(m.get(), rng, 2);
      m->SerializePartialToString(&added.payload);
    }
    records.insert(records.begin() + static_cast<ptrdiff_t>(in::Below(rng, records.size() + 1)),
                   std::move(added));
  } else if (action == 1) {
    const size_t i = in::Below(rng, records.size());
    records.insert(records.begin() + static_cast<ptrdiff_t>(i), records[i]);
  } else if (action == 2 && records.size() > 1) {
    records.erase(records.begin() + static_cast<ptrdiff_t>(in::Below(rng, records.size())));
  } else {
    in::OwnedRecord& r = records[in::Below(rng, records.size())];
    const google::protobuf::Message* proto = prototype(r.method % method_count);
    if (proto == nullptr) return LLVMFuzzerMutate(data, size, max_size);
    std::unique_ptr<google::protobuf::Message> m(proto->New());
    if (!m->ParsePartialFromString(r.payload)) return LLVMFuzzerMutate(data, size, max_size);
    const int changes = 1 + static_cast<int>(in::Below(rng, 2));
    for (int i = 0; i < changes; ++i) in::MutateMessage(m.get(), rng, 3);
    r.payload.clear();
    m->SerializePartialToString(&r.payload);
  }
  std::string out;
  for (const in::OwnedRecord& r : records) AppendRecord(&out, r.method, r.flags, r.payload);
  if (out.size() > max_size) return LLVMFuzzerMutate(data, size, max_size);
  std::memcpy(data, out.data(), out.size());
  return out.size();
}

}  // namespace kvpool::fuzz
