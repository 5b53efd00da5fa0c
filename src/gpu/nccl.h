// src/gpu/nccl.h — NCCL, loaded at run time (private to src/gpu, host-only).
//
// sparsa links no NCCL: the multi-GPU path dlopen()s libnccl.so.2 (or SPARSA_NCCL_LIBRARY) the
// first time it is used, so builds and single-GPU runs need no NCCL at all. The few types and
// constants below are NCCL's stable ABI (nccl.h: ncclComm_t is a pointer; the enum values).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace sparsa::gpu {

enum NcclType : int { kNcclUint8 = 1, kNcclFloat32 = 7, kNcclFloat64 = 8 };

class Nccl {
 public:
  // The loaded library; Error(kRuntime) saying what to install when it cannot be loaded.
  static const Nccl& get();

  // One communicator per device of `devices` (single process, ncclCommInitAll).
  void init_all(void** comms, int n, const int* devices) const;
  void destroy(void* comm) const;
  // In place when send == recv; on the given device's default stream.
  void all_reduce_sum(const void* send, void* recv, size_t count, NcclType t, void* comm) const;
  void broadcast(const void* send, void* recv, size_t count, NcclType t, int root, void* comm) const;

 private:
  Nccl();
  void check(int result, const char* what) const;
  int (*init_all_)(void**, int, const int*) = nullptr;
  int (*destroy_)(void*) = nullptr;
  int (*all_reduce_)(const void*, void*, size_t, int, int, void*, cudaStream_t) = nullptr;
  int (*broadcast_)(const void*, void*, size_t, int, int, void*, cudaStream_t) = nullptr;
  const char* (*error_string_)(int) = nullptr;
};

}  // namespace sparsa::gpu
