// src/gpu/kernels.h — the src/cuda ops the GPU pruning driver calls, named into sparsa::gpu
// (private to src/gpu). The ops themselves, their contracts and their CPU references are in
// src/cuda/<op>.cuh; new code calls cuda::launch_<op> there directly.
#pragma once

#include "cuda/convert.cuh"
#include "cuda/elementwise.cuh"
#include "cuda/get_rows.cuh"
#include "cuda/sparsegpt.cuh"
#include "cuda/sqsum.cuh"
#include "cuda/wanda_select.cuh"

namespace sparsa::gpu {

using cuda::kSparseGptMaxBlock;
using cuda::kSqsumSlice;
using cuda::kth_smallest_device;
using cuda::kth_smallest_temp_bytes;
using cuda::launch_apply_mask;
using cuda::launch_block_scores;
using cuda::launch_col_sqsum;
using cuda::launch_from_half;
using cuda::launch_gather_rows;
using cuda::launch_mean_sqrt;
using cuda::launch_nm_lowest;
using cuda::launch_row_lowest;
using cuda::launch_scale;
using cuda::launch_sparsegpt_block;
using cuda::launch_sparsegpt_prepare;
using cuda::launch_to_half;
using cuda::launch_zero_lower;

}  // namespace sparsa::gpu
