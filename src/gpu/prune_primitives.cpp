// The device-level pruning primitives of sparsa/gpu.h: Hessian accumulation, Wanda's
// selection, and SparseGPT (cuSOLVER Cholesky chain, fused column blocks, cuBLAS lazy updates).
#ifdef SPARSA_WITH_CUDA

#include <algorithm>

#include "cuda/cuda_check.h"
#include "gpu/gpu_context.h"
#include "gpu/gpu_types.h"
#include "gpu/kernels.h"
#include "prune/select.h"
#include "sparsa/cuda.h"
#include "sparsa/error.h"
#include "sparsa/gpu.h"

namespace sparsa {
namespace {

// Row-major h [n, n] -> its upper triangle holds U with H^-1 = Uᵀ U and the lower triangle is
// zero (torch: cholesky(cholesky_inverse(cholesky(H)), upper=True)). Column-major 'lower' on
// a row-major buffer works on the row-major upper triangle, as the CPU path does with LAPACK.
void upper_cholesky_of_inverse_cuda(float* h, int64_t n64) {
  cusolverDnHandle_t s = gpu::cusolver();
  const int n = static_cast<int>(n64);
  const cublasFillMode_t lower = CUBLAS_FILL_MODE_LOWER;
  int lwork_f = 0, lwork_i = 0;
  SPARSA_CUSOLVER_CHECK(cusolverDnSpotrf_bufferSize(s, lower, n, h, n, &lwork_f));
  SPARSA_CUSOLVER_CHECK(cusolverDnSpotri_bufferSize(s, lower, n, h, n, &lwork_i));
  DeviceBuffer<float> work(static_cast<size_t>(std::max({lwork_f, lwork_i, 1})));
  DeviceBuffer<int> info_dev(1);
  auto info = [&] {
    int v = 0;
    copy_to_host(&v, info_dev.data(), sizeof(int));
    return v;
  };
  SPARSA_CUSOLVER_CHECK(cusolverDnSpotrf(s, lower, n, h, n, work.data(), lwork_f, info_dev.data()));
  if (int i = info(); i != 0)
    runtime_failure("SparseGPT: the dampened Hessian is not positive definite (Cholesky failed at column {}); raise --percdamp", i);
  SPARSA_CUSOLVER_CHECK(cusolverDnSpotri(s, lower, n, h, n, work.data(), lwork_i, info_dev.data()));
  if (int i = info(); i != 0) runtime_failure("SparseGPT: inverting the Hessian failed (cuSOLVER info {})", i);
  SPARSA_CUSOLVER_CHECK(cusolverDnSpotrf(s, lower, n, h, n, work.data(), lwork_f, info_dev.data()));
  if (int i = info(); i != 0)
    runtime_failure("SparseGPT: the inverse Hessian is not positive definite (Cholesky failed at column {}); raise --percdamp", i);
  gpu::launch_zero_lower(h, n64);
}

}  // namespace

void hessian_accumulate_cuda(float* hessian, const float* x32, const void* xh, GpuPrecision p, int64_t n_tokens,
                             int64_t cols, float scale) {
  if (n_tokens == 0 || cols == 0) return;
  const float one = 1.0f;
  const int c = static_cast<int>(cols), k = static_cast<int>(n_tokens);
  if (!gpu::is_half(p)) {
    // Column-major C = A Aᵀ with A = Xᵀ [cols, n_tokens]: its lower triangle is the row-major upper.
    SPARSA_CUBLAS_CHECK(cublasSsyrk(gpu::cublas(), CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, c, k, &scale, x32, c, &one,
                                    hessian, c));
    return;
  }
  SPARSA_CUBLAS_CHECK(cublasGemmEx(gpu::cublas(), CUBLAS_OP_N, CUBLAS_OP_T, c, c, k, &scale, xh, gpu::cuda_type(p), c,
                                   xh, gpu::cuda_type(p), c, &one, hessian, CUDA_R_32F, c, CUBLAS_COMPUTE_32F,
                                   CUBLAS_GEMM_DEFAULT));
}

void wanda_mask_cuda(const float* w, const float* norm, uint8_t* mask, int64_t rows, int64_t cols,
                     const SparsityTarget& t) {
  if (rows == 0 || cols == 0) return;
  if (t.is_nm())
    gpu::launch_nm_lowest(w, norm, mask, rows, cols, t.n, t.m);
  else
    gpu::launch_row_lowest(w, norm, mask, rows, cols, ratio_count(cols, t.ratio));
}

void sparsegpt_prune_cuda(float* w, float* hessian, uint8_t* mask, int64_t rows, int64_t cols,
                          const SparsityTarget& t, int64_t blocksize, double percdamp) {
  if (blocksize < 1 || blocksize > gpu::kSparseGptMaxBlock)
    bad_input("--blocksize {} is outside 1..{} on the GPU", blocksize, gpu::kSparseGptMaxBlock);
  check_sparsegpt_blocksize(blocksize, t);
  if (rows == 0 || cols == 0) return;
  gpu::launch_sparsegpt_prepare(hessian, w, rows, cols, static_cast<float>(percdamp));
  upper_cholesky_of_inverse_cuda(hessian, cols);
  const float* hinv = hessian;  // upper triangular [cols, cols]

  const int64_t block_elems = rows * std::min(blocksize, cols);
  DeviceBuffer<float> err(static_cast<size_t>(block_elems));  // [rows, count]
  DeviceBuffer<float> score, sorted;
  DeviceBuffer<uint8_t> temp;
  if (!t.is_nm()) {
    score = DeviceBuffer<float>(static_cast<size_t>(block_elems));
    sorted = DeviceBuffer<float>(static_cast<size_t>(block_elems));
    temp = DeviceBuffer<uint8_t>(gpu::kth_smallest_temp_bytes(block_elems));
  }
  const float minus_one = -1.0f, one = 1.0f;
  for (int64_t i1 = 0; i1 < cols; i1 += blocksize) {
    const int64_t i2 = std::min(i1 + blocksize, cols), count = i2 - i1;
    float thresh = 0.0f;
    if (!t.is_nm()) {  // one threshold on w^2 / d^2 over the whole block
      gpu::launch_block_scores(w, hinv, score.data(), rows, cols, i1, count);
      thresh = gpu::kth_smallest_device(score.data(), sorted.data(), temp.data(), temp.size(), rows * count,
                                        ratio_count(rows * count, t.ratio));
    }
    gpu::launch_sparsegpt_block(w, hinv, mask, err.data(), rows, cols, i1, count, thresh, t.n, t.m);
    if (i2 < cols)  // W[:, i2:] -= Err1 · Hinv[i1:i2, i2:]  (row-major, as column-major transposes)
      SPARSA_CUBLAS_CHECK(cublasSgemm(gpu::cublas(), CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(cols - i2),
                                      static_cast<int>(rows), static_cast<int>(count), &minus_one,
                                      hinv + i1 * cols + i2, static_cast<int>(cols), err.data(),
                                      static_cast<int>(count), &one, w + i2, static_cast<int>(cols)));
  }
}

}  // namespace sparsa

#endif  // SPARSA_WITH_CUDA
