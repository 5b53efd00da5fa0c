// SHA-256 (FIPS 180-4) of a byte string: the identity of a tokenizer file (sparsa/tokenizer.h).
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace sparsa {

// The digest of `bytes` as 64 lowercase hex digits (Python: hashlib.sha256(bytes).hexdigest()).
std::string sha256_hex(std::span<const uint8_t> bytes);

}  // namespace sparsa
