// The CPU-only build's stand-ins for the sparse GEMV kernel (sparsa/sparse_gemv.h): plans can be
// made (no validation), but running or tuning throws "built without CUDA".
#ifndef SPARSA_WITH_CUDA

#include "sparsa/error.h"
#include "sparsa/sparse_gemv.h"

#include <utility>

namespace sparsa {

SparseGemvCuda::SparseGemvCuda(const GemvShape& shape, const GemvConfig& config) : shape_(shape), config_(config) {}

SparseGemvCuda::SparseGemvCuda(const GemvShape& shape, float expected_sparsity, const GemvTuneTable& table)
    : SparseGemvCuda(shape, table.lookup({shape, gemv_sparsity_bin(expected_sparsity)})) {}

void SparseGemvCuda::run(const void*, const float*, float*, float, void*) const {
  runtime_failure("sparse_gemv_cuda: sparsa was built without CUDA");
}

SparseGemvFusedCuda::SparseGemvFusedCuda(GemvFusedShape shape, const GemvConfig& config)
    : shape_(std::move(shape)), config_(config) {}

SparseGemvFusedCuda::SparseGemvFusedCuda(GemvFusedShape shape, float expected_sparsity, const GemvTuneTable& table)
    : SparseGemvFusedCuda(shape, table.lookup(GemvFusedKey{shape, gemv_sparsity_bin(expected_sparsity)})) {}

void SparseGemvFusedCuda::run(std::span<const GemvPart>, const float*, void*) const {
  runtime_failure("sparse_gemv_cuda: sparsa was built without CUDA");
}

GemvConfig tune_sparse_gemv(const GemvShape&, float, GemvTuneTable&, int) {
  runtime_failure("tune_sparse_gemv: sparsa was built without CUDA");
}

GemvConfig tune_sparse_gemv_fused(const GemvFusedShape&, float, GemvTuneTable&, int) {
  runtime_failure("tune_sparse_gemv: sparsa was built without CUDA");
}

GemvSpeed time_sparse_vs_dense_gemv(const GemvShape&, std::span<const float>, float, float, int) {
  runtime_failure("time_sparse_vs_dense_gemv: sparsa was built without CUDA");
}

}  // namespace sparsa

#endif  // SPARSA_WITH_CUDA
