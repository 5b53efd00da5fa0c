// SparseGPT (Frantar & Alistarh 2023), following the reference `fasterprune` step by step:
// dead inputs, dampening, the upper Cholesky factor of H^-1, lazy updates over column blocks.
#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "prune/select.h"
#include "sparsa/error.h"
#include "sparsa/prune.h"

extern "C" {
// LAPACK (shipped inside OpenBLAS), Fortran calling convention, column-major.
void spotrf_(const char* uplo, const int* n, float* a, const int* lda, int* info);
void spotri_(const char* uplo, const int* n, float* a, const int* lda, int* info);
}

namespace sparsa {
namespace {

// Row-major h [n, n], symmetric positive definite -> its upper triangle holds U with
// H^-1 = Uᵀ U (torch: cholesky(cholesky_inverse(cholesky(H)), upper=True)); the lower
// triangle is zeroed. Column-major 'L' on a row-major buffer works on the row-major upper
// triangle, and a column-major L is a row-major Lᵀ = U.
void upper_cholesky_of_inverse(float* h, int n) {
  int info = 0;
  const char lower = 'L';
  spotrf_(&lower, &n, h, &n, &info);
  if (info != 0) runtime_failure("SparseGPT: the dampened Hessian is not positive definite (Cholesky failed at column {}); raise the dampening (percdamp)", info);
  spotri_(&lower, &n, h, &n, &info);
  if (info != 0) runtime_failure("SparseGPT: inverting the Hessian failed (LAPACK info {})", info);
  spotrf_(&lower, &n, h, &n, &info);
  if (info != 0) runtime_failure("SparseGPT: the inverse Hessian is not positive definite (Cholesky failed at column {}); raise the dampening (percdamp)", info);
  for (int i = 0; i < n; ++i) std::fill(h + static_cast<int64_t>(i) * n, h + static_cast<int64_t>(i) * n + i, 0.0f);
}

}  // namespace

Mask sparsegpt_prune(Tensor& w, Tensor& hessian, const SparsityTarget& t, int64_t blocksize, double percdamp) {
  const int64_t rows = w.dim(0), cols = w.dim(1);
  SPARSA_ASSERT(hessian.dim(0) == cols && hessian.dim(1) == cols);
  check_sparsegpt_blocksize(blocksize, t);
  check_finite_scores(w.ptr(), w.numel(), cols, "SparseGPT: the weight");
  if (const int64_t i = first_non_finite(hessian.ptr(), hessian.numel()); i >= 0)
    runtime_failure("SparseGPT: the Hessian of the calibration inputs holds {} at [{}, {}]: the activations overflow",
                    hessian.data[static_cast<size_t>(i)], i / cols, i % cols);
  float* H = hessian.ptr();  // [cols, cols]
  float* W = w.ptr();        // [rows, cols]

  // Inputs that never fire: H_jj = 1 and their weights are zeroed.
  for (int64_t j = 0; j < cols; ++j)
    if (H[j * cols + j] == 0.0f) {
      H[j * cols + j] = 1.0f;
      for (int64_t r = 0; r < rows; ++r) W[r * cols + j] = 0.0f;
    }
  float diag_sum = 0.0f;
  for (int64_t j = 0; j < cols; ++j) diag_sum += H[j * cols + j];
  const float damp = static_cast<float>(percdamp) * (diag_sum / static_cast<float>(cols));
  for (int64_t j = 0; j < cols; ++j) H[j * cols + j] += damp;
  upper_cholesky_of_inverse(H, static_cast<int>(cols));
  const float* Hinv = H;  // upper triangular [cols, cols]

  Mask mask(rows, cols);
  std::vector<float> W1, Q1, Err1, score;  // [rows, count] each
  std::vector<int32_t> scratch;
  for (int64_t i1 = 0; i1 < cols; i1 += blocksize) {
    const int64_t i2 = std::min(i1 + blocksize, cols), count = i2 - i1;
    W1.assign(static_cast<size_t>(rows * count), 0.0f);
    Q1.assign(W1.size(), 0.0f);
    Err1.assign(W1.size(), 0.0f);
    for (int64_t r = 0; r < rows; ++r) std::copy_n(W + r * cols + i1, count, W1.data() + r * count);
    auto hinv = [&](int64_t a, int64_t b) { return Hinv[(i1 + a) * cols + i1 + b]; };  // Hinv1[a, b]
    std::vector<uint8_t> mask1(static_cast<size_t>(rows * count), 0);  // [rows, count]

    if (!t.is_nm()) {  // one threshold on w^2 / d^2 over the whole block
      score.resize(W1.size());
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < count; ++c) {
          const float d = hinv(c, c);
          score[r * count + c] = W1[r * count + c] * W1[r * count + c] / (d * d);
        }
      const float thresh = kth_smallest(score, ratio_count(static_cast<int64_t>(score.size()), t.ratio));
      for (size_t k = 0; k < score.size(); ++k) mask1[k] = score[k] <= thresh;
    }

    for (int64_t i = 0; i < count; ++i) {
      const float d = hinv(i, i);
      if (t.is_nm() && i % t.m == 0) {  // each row prunes its N lowest of the next M (updated) weights
        const int64_t width = std::min<int64_t>(t.m, count - i);
        score.resize(static_cast<size_t>(width));
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t c = 0; c < width; ++c) {
            const float dc = hinv(i + c, i + c);
            score[c] = W1[r * count + i + c] * W1[r * count + i + c] / (dc * dc);
          }
          mark_lowest(score.data(), width, std::min<int64_t>(t.n, width), mask1.data() + r * count + i, scratch);
        }
      }
      const float* hrow = Hinv + (i1 + i) * cols + i1;  // Hinv1[i, :]
#pragma omp parallel for schedule(static) if (rows * (count - i) > 32768)
      for (int64_t r = 0; r < rows; ++r) {
        float* wr = W1.data() + r * count;
        const float wv = wr[i];
        const float q = mask1[r * count + i] ? 0.0f : wv;
        Q1[r * count + i] = q;
        const float err = (wv - q) / d;
        Err1[r * count + i] = err;
        for (int64_t c = i; c < count; ++c) wr[c] -= err * hrow[c];
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      std::copy_n(Q1.data() + r * count, count, W + r * cols + i1);
      std::copy_n(mask1.data() + r * count, count, mask.pruned.data() + r * cols + i1);
    }
    // W[:, i2:] -= Err1 · Hinv[i1:i2, i2:]
    if (i2 < cols)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows), static_cast<int>(cols - i2),
                  static_cast<int>(count), -1.0f, Err1.data(), static_cast<int>(count), Hinv + i1 * cols + i2,
                  static_cast<int>(cols), 1.0f, W + i2, static_cast<int>(cols));
  }
  return mask;
}

}  // namespace sparsa
