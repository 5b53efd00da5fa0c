// src/cuda/read_bandwidth.cuh — a streaming read of device memory (op: read_bandwidth.cu), the
// probe behind sparsa::read_bandwidth_cuda: what a kernel that only reads can pull from this
// card's memory, the bound a GEMV's weight reads are measured against. CPU reference: none (the
// kernel's result is an XOR of the words it read, checked against the host's in test-gpu-ops).
#pragma once

#include <cstdint>

namespace sparsa::cuda {

// *out = XOR of the 16-byte words data[0 .. words - 1] (as four uint32 lanes folded into one),
// read once each, cache-streaming, by a grid sized to fill the device. `out` is device memory;
// enqueues on `stream` (a cudaStream_t; nullptr: the default stream).
void launch_read_xor(const void* data, int64_t words, uint32_t* out, void* stream);

}  // namespace sparsa::cuda
