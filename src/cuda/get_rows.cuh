// src/cuda/get_rows.cuh — embedding lookups (op: get_rows.cu): rows of a table picked by token
// ids, for the forward pass (many tokens, fp32 table) and the decoder (the token at a device
// position, table in the weights' precision). CPU reference: sparsa's embedding lookup in the CPU
// forward (a row copy, widened to fp32; the learned positions added).
#pragma once

#include <cstdint>

#include "cuda/elem.h"

namespace sparsa::cuda {

// x[t, :] = table[tokens[t], :]. table: [vocab, dim] fp32, tokens: [n] (validated ids), x: [n, dim].
// Default stream.
void launch_gather_rows(const float* table, const int32_t* tokens, float* x, int64_t n, int64_t dim);

// Learned positions: x[t, :] += table[t % seqlen + offset, :] (each of the n / seqlen windows
// starts at position 0). table: [positions, dim] fp32 with positions >= seqlen + offset, x: [n, dim].
// Default stream.
void launch_add_position_rows(const float* table, int64_t offset, int64_t seqlen, float* x, int64_t n, int64_t dim);
// x [dim] = table[tokens[*pos], :] widened to fp32. table: [vocab, dim] of `e`; pos and tokens are
// device memory (a captured graph reads them at replay). Enqueues on `stream` (a cudaStream_t).
void launch_embed_row(const void* table, Elem e, const int32_t* tokens, const int32_t* pos, float* x, int64_t dim,
                      void* stream);

}  // namespace sparsa::cuda
