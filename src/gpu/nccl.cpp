// NCCL loaded at run time (src/gpu/nccl.h).
#ifdef SPARSA_WITH_CUDA

#include "gpu/nccl.h"

#include <dlfcn.h>

#include <cstdlib>
#include <string>

#include "sparsa/error.h"

namespace sparsa::gpu {
namespace {

template <typename F>
void bind(void* lib, const char* name, F& fn) {
  fn = reinterpret_cast<F>(dlsym(lib, name));
  if (fn == nullptr) runtime_failure("NCCL: the loaded library has no {}", name);
}

}  // namespace

Nccl::Nccl() {
  const char* env = std::getenv("SPARSA_NCCL_LIBRARY");
  const std::string name = env && *env ? env : "libnccl.so.2";
  void* lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr)
    runtime_failure("more than one GPU needs NCCL: cannot load {} ({}); install NCCL or set SPARSA_NCCL_LIBRARY", name,
                    dlerror());
  bind(lib, "ncclCommInitAll", init_all_);
  bind(lib, "ncclCommDestroy", destroy_);
  bind(lib, "ncclAllReduce", all_reduce_);
  bind(lib, "ncclBroadcast", broadcast_);
  bind(lib, "ncclGetErrorString", error_string_);
}

const Nccl& Nccl::get() {
  static const Nccl nccl;
  return nccl;
}

void Nccl::check(int result, const char* what) const {
  if (result != 0) runtime_failure("NCCL {} failed: {} (code {})", what, error_string_(result), result);
}

void Nccl::init_all(void** comms, int n, const int* devices) const { check(init_all_(comms, n, devices), "init"); }
void Nccl::destroy(void* comm) const { destroy_(comm); }

void Nccl::all_reduce_sum(const void* send, void* recv, size_t count, NcclType t, void* comm) const {
  check(all_reduce_(send, recv, count, t, /*ncclSum=*/0, comm, nullptr), "all-reduce");
}

void Nccl::broadcast(const void* send, void* recv, size_t count, NcclType t, int root, void* comm) const {
  check(broadcast_(send, recv, count, t, root, comm, nullptr), "broadcast");
}

}  // namespace sparsa::gpu

namespace sparsa {

bool gpu_nccl_available() {
  try {
    gpu::Nccl::get();
    return true;
  } catch (const Error&) {
    return false;
  }
}

}  // namespace sparsa

#endif  // SPARSA_WITH_CUDA
