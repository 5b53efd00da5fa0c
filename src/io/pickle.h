// pickle.h — the restricted unpickler for torch.save's data.pkl (private to src/io).
//
// It interprets only the opcodes torch.save emits (protocol 2, plus FRAME / STACK_GLOBAL /
// MEMOIZE / BINUNICODE8 of later protocols) and resolves only the allow-listed globals of
// sparsa/torch_pt.h; the globals are never imported, their effect is reproduced here
// (REDUCE of _rebuild_tensor_v2 builds a PtTensor through make_pt_tensor, BINPERSID of a
// ('storage', <storage class>, key, location, numel) id fetches the storage bytes).
// Objects live in an arena while unpickling, so shared references (memo) and containers filled
// after being memoised behave as in Python; the result is converted to a PtValue tree at STOP,
// depth- and size-limited (a cycle is an error).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "sparsa/torch_pt.h"

namespace sparsa::detail {

// The raw bytes of storage `key` ("<archive>/data/<key>"), which data.pkl declares to hold
// `declared_bytes` (its element count times the element size, which cannot overflow). Called
// when the first tensor on the storage is built. Error(kBadInput) when the record is absent or
// its size differs from `declared_bytes` (checked before anything is allocated).
using StorageFetcher =
    std::function<std::shared_ptr<const std::vector<uint8_t>>(const std::string& key, uint64_t declared_bytes)>;

// Runs the unpickler over `pickle`. `where` names the file in messages. Error(kBadInput) for any
// unknown opcode (naming the byte and offset), a global off the allow-list (naming it), a
// malformed or truncated stream, or an exceeded limit.
PtValue unpickle_torch(std::span<const uint8_t> pickle, const std::string& where, const StorageFetcher& fetch);

}  // namespace sparsa::detail
