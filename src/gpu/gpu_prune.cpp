// The sequential calibration driver on the GPU (prune_model's procedure, sparsa/gpu.h): the
// calibration activations of every sample stay on the device; each block is uploaded, run
// densely over all samples with observers accumulating Wanda norms or SparseGPT Hessians, its
// linears pruned on the device in place (magnitude on the host), the masks and SparseGPT's
// updated weights copied back into the host model, and the pruned block run again to give the
// next block its inputs. In the half modes the linears are pruned from their half-precision
// values, as the reference prunes a half-precision model.
#ifdef SPARSA_WITH_CUDA

#include <array>
#include <chrono>
#include <cstring>
#include <future>

#include "cuda/cuda_check.h"
#include "gpu/gpu_forward.h"
#include "gpu/gpu_types.h"
#include "gpu/kernels.h"
#include "sparsa/error.h"
#include "sparsa/gpu.h"

namespace sparsa {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The statistics of one observation point over all samples.
struct PointStats {
  int64_t dim = 0;
  DeviceBuffer<double> sqsum;   // [dim] Σ over samples and tokens of x^2 (Wanda)
  DeviceBuffer<float> partial;  // scratch of launch_col_sqsum
  DeviceBuffer<float> xtx;      // [dim, dim] Σ XᵀX (SparseGPT; upper triangle)
};

class StatsObserver : public gpu::GpuObserver {
 public:
  StatsObserver(PruneMethod method, GpuPrecision p, const ModelConfig& c, int64_t chunk_tokens, int64_t seqlen)
      : method_(method), p_(p), seqlen_(seqlen) {
    const int64_t dims[kNumObsPoints] = {c.hidden_size, c.q_dim(), c.hidden_size, c.intermediate_size};
    for (int i = 0; i < kNumObsPoints; ++i) {
      PointStats& s = points_[static_cast<size_t>(i)];
      s.dim = dims[i];
      if (method == PruneMethod::kWanda) {
        s.sqsum = DeviceBuffer<double>(static_cast<size_t>(s.dim));
        s.partial = DeviceBuffer<float>(static_cast<size_t>(((chunk_tokens + gpu::kSqsumSlice - 1) / gpu::kSqsumSlice) * s.dim));
      } else {
        s.xtx = DeviceBuffer<float>(static_cast<size_t>(s.dim * s.dim));
      }
    }
  }
  void reset() {
    for (PointStats& s : points_) {
      if (s.sqsum.size()) SPARSA_CUDA_CHECK(cudaMemset(s.sqsum.data(), 0, s.sqsum.size() * sizeof(double)));
      if (s.xtx.size()) SPARSA_CUDA_CHECK(cudaMemset(s.xtx.data(), 0, s.xtx.size() * sizeof(float)));
    }
  }
  void observe(ObsPoint pt, const float* x32, const void* xh, int64_t n_tokens, int64_t dim) override {
    PointStats& s = points_[static_cast<size_t>(pt)];
    SPARSA_ASSERT(dim == s.dim);
    const bool half = gpu::is_half(p_);
    if (method_ == PruneMethod::kWanda)
      gpu::launch_col_sqsum(half ? nullptr : x32, half ? xh : nullptr, gpu::is_bf16(p_), s.sqsum.data(), s.partial.data(),
                            n_tokens, dim);
    else  // sample by sample, as the CPU path and the reference sum them
      for (int64_t t0 = 0; t0 < n_tokens; t0 += seqlen_) {
        const auto* h = static_cast<const uint8_t*>(xh);
        hessian_accumulate_cuda(s.xtx.data(), x32 ? x32 + t0 * dim : nullptr,
                                h ? h + t0 * dim * static_cast<int64_t>(gpu::element_bytes(p_)) : nullptr, p_,
                                std::min(seqlen_, n_tokens - t0), dim, 1.0f);
      }
  }
  PointStats& point(ObsPoint p) { return points_[static_cast<size_t>(p)]; }

 private:
  PruneMethod method_;
  GpuPrecision p_;
  int64_t seqlen_;
  std::array<PointStats, kNumObsPoints> points_;
};

// Device scratch of prune_linear, grown to the largest linear and reused.
struct LinearScratch {
  DeviceBuffer<float> w;         // [rows, cols] fp32
  DeviceBuffer<uint8_t> mask;    // [rows, cols]
  DeviceBuffer<float> norm;      // [cols]
  DeviceBuffer<float> hessian;   // [cols, cols]
  template <typename T>
  static T* at_least(DeviceBuffer<T>& b, int64_t n) {
    if (b.size() < static_cast<size_t>(n)) b = DeviceBuffer<T>(static_cast<size_t>(n));
    return b.data();
  }
};

// Prunes one linear on the device, from and into the resident block's weights (in the run's
// precision); the mask is left in mask_dev [rows, cols].
void prune_linear(gpu::GpuLinear& dev, PointStats& stats, int64_t samples, const PruneOptions& opt, GpuPrecision p,
                  uint8_t* mask_dev, LinearScratch& s) {
  const int64_t rows = dev.weight.rows, cols = dev.weight.cols, n = rows * cols;
  void* wd = dev.weight.bytes.data();
  float* w = LinearScratch::at_least(s.w, n);  // fp32 [rows, cols]: what the linear multiplies
  if (gpu::is_half(p))
    gpu::launch_from_half(wd, w, n, gpu::is_bf16(p));
  else
    SPARSA_CUDA_CHECK(cudaMemcpy(w, wd, static_cast<size_t>(n) * sizeof(float), cudaMemcpyDeviceToDevice));
  if (opt.method == PruneMethod::kWanda) {
    float* norm = LinearScratch::at_least(s.norm, cols);
    gpu::launch_mean_sqrt(stats.sqsum.data(), norm, cols, samples);
    wanda_mask_cuda(w, norm, mask_dev, rows, cols, opt.target);
    gpu::launch_apply_mask(wd, mask_dev, n, static_cast<int>(gpu::element_bytes(p)));
    return;
  }
  float* h = LinearScratch::at_least(s.hessian, cols * cols);  // (2 / samples) Σ XᵀX, consumed
  gpu::launch_scale(h, stats.xtx.data(), 2.0f / static_cast<float>(samples), cols * cols);
  sparsegpt_prune_cuda(w, h, mask_dev, rows, cols, opt.target, opt.blocksize, opt.percdamp);
  if (gpu::is_half(p))
    gpu::launch_to_half(w, wd, n, gpu::is_bf16(p));
  else
    SPARSA_CUDA_CHECK(cudaMemcpy(wd, w, static_cast<size_t>(n) * sizeof(float), cudaMemcpyDeviceToDevice));
}

// A block's results on their way to the host: its masks (and SparseGPT's weights, in the run's
// precision) in page-locked memory, applied to the host model by a background task while the
// GPU goes on. Two of these alternate.
struct BlockResults {
  gpu::HostStaging masks, weights;
  std::future<void> done;
};

}  // namespace

PruneResult prune_model_cuda(Model& m, const TensorI32& calib, const PruneOptions& opt, const GpuOptions& gpu,
                             const std::function<void(int64_t, int64_t)>& progress) {
  const auto start = Clock::now();
  const ModelConfig& c = m.config;
  check_gpu_supported(c);
  const SparsityTarget& t = opt.target;
  if (t.is_nm() ? !(t.n > 0 && t.n < t.m) : !(t.ratio > 0.0 && t.ratio < 1.0))
    bad_input("sparsity target must be in (0, 1) or N:M with 0 < N < M");
  if (opt.method == PruneMethod::kSparseGPT && (opt.blocksize < 1 || opt.blocksize > gpu::kSparseGptMaxBlock))
    bad_input("--blocksize {} is outside 1..{} on the GPU", opt.blocksize, gpu::kSparseGptMaxBlock);
  const bool needs_data = opt.method != PruneMethod::kMagnitude;
  const GpuPrecision p = gpu.precision;
  const int64_t n = needs_data ? calib.dim(0) : 0, L = needs_data ? calib.dim(1) : 1, d = c.hidden_size;

  PruneResult result;
  DeviceBuffer<float> xs;  // [n, L, d_model]: every sample's input to the current block
  if (needs_data) {
    if (calib.rank() != 2 || calib.dim(0) == 0) bad_input("calibration tokens must be [n_samples, seqlen], got {}", shape_string(calib.shape));
    if (L > c.max_position) bad_input("calibration seqlen {} is above the model's context length {}", L, c.max_position);
    for (size_t i = 0; i < calib.numel(); ++i)
      if (calib.data[i] < 0 || calib.data[i] >= c.vocab_size)
        bad_input("calibration token id {} at sample {}, position {} is outside the vocabulary (size {})", calib.data[i],
                  static_cast<int64_t>(i) / L, static_cast<int64_t>(i) % L, c.vocab_size);
    const auto t0 = Clock::now();
    xs = DeviceBuffer<float>(static_cast<size_t>(n * L * d));
    DeviceBuffer<float> embed(m.embed.data);
    DeviceBuffer<int32_t> tokens(calib.data);
    gpu::launch_gather_rows(embed.data(), tokens.data(), xs.data(), n * L, d);
    cuda_synchronize();
    result.timings.forward += since(t0);
  }

  const int64_t per_chunk = needs_data ? std::max<int64_t>(1, std::min(gpu.chunk_tokens / L, n)) : 1;
  std::unique_ptr<gpu::GpuForward> fw;
  std::unique_ptr<StatsObserver> stats;
  DeviceBuffer<float> scratch;  // a chunk's copy for the statistics pass
  if (needs_data) {
    fw = std::make_unique<gpu::GpuForward>(c, p, per_chunk, L);
    stats = std::make_unique<StatsObserver>(opt.method, p, c, per_chunk * L, L);
    scratch = DeviceBuffer<float>(static_cast<size_t>(per_chunk * L * d));
  }
  // Runs the resident block over every sample: statistics on a copy, or in place.
  gpu::GpuBlock block;
  LinearScratch linear_scratch;
  auto run_samples = [&](bool collect) {
    for (int64_t s0 = 0; s0 < n; s0 += per_chunk) {
      const int64_t S = std::min(per_chunk, n - s0);
      float* x = xs.data() + s0 * L * d;
      if (collect) {
        SPARSA_CUDA_CHECK(cudaMemcpy(scratch.data(), x, static_cast<size_t>(S * L * d) * sizeof(float), cudaMemcpyDeviceToDevice));
        fw->block(block, scratch.data(), S, stats.get(), /*stop_at_down_input=*/true);
      } else {
        fw->block(block, x, S, nullptr);
      }
    }
    cuda_synchronize();
  };

  const std::vector<LinearRole>& roles = arch_info(c.arch).roles;
  result.linears.reserve(static_cast<size_t>(c.num_layers) * roles.size());  // background tasks fill them in place
  for (int64_t l = 0; l < c.num_layers; ++l)
    for (LinearRole role : roles) {
      LinearPruneResult& lr = result.linears.emplace_back();
      lr.layer = l;
      lr.role = role;
      lr.name = hf_linear_name(c.arch, l, role);
    }
  auto entry = [&](int64_t l, size_t i) -> LinearPruneResult& { return result.linears[static_cast<size_t>(l) * roles.size() + i]; };

  if (!needs_data) {  // magnitude: host selection, no forward pass
    for (int64_t l = 0; l < c.num_layers; ++l) {
      const auto t0 = Clock::now();
      for (size_t i = 0; i < roles.size(); ++i) {
        Tensor& w = m.blocks[static_cast<size_t>(l)].linear(roles[i]).weight;
        entry(l, i).mask = magnitude_mask(w, t);
        apply_mask(w, entry(l, i).mask);
        entry(l, i).seconds = since(t0);
      }
      result.timings.select += since(t0);
      if (progress) progress(l + 1, c.num_layers);
    }
    result.timings.total = since(start);
    return result;
  }

  // Block l + 1 is converted into page-locked memory while the GPU works on block l.
  std::array<gpu::HostStaging, 2> packed;
  auto pack = [&](int64_t l) {
    const Block& b = m.blocks[static_cast<size_t>(l)];
    gpu::HostStaging& buf = packed[static_cast<size_t>(l % 2)];
    buf.reserve(gpu::GpuBlock::packed_bytes(b, p));
    return std::async(std::launch::async, [&b, &buf, p] { gpu::GpuBlock::pack(b, p, buf.data()); });
  };
  std::future<void> packing = pack(0);
  std::array<BlockResults, 2> results;
  std::array<DeviceBuffer<uint8_t>, kNumLinearRoles> masks_dev;  // this block's masks, by role order
  try {
    for (int64_t l = 0; l < c.num_layers; ++l) {
      Block& b = m.blocks[static_cast<size_t>(l)];
      const auto t0 = Clock::now();
      packing.get();
      block.upload_packed(b, p, packed[static_cast<size_t>(l % 2)].data());
      if (l + 1 < c.num_layers) packing = pack(l + 1);
      stats->reset();
      run_samples(/*collect=*/true);
      result.timings.stats += since(t0);

      const auto t_select = Clock::now();
      size_t mask_bytes = 0, weight_bytes = 0;
      for (size_t i = 0; i < roles.size(); ++i) {
        const auto t_linear = Clock::now();
        gpu::GpuLinear& lin = block.linears[static_cast<size_t>(roles[i])];
        const int64_t numel = lin.weight.rows * lin.weight.cols;
        uint8_t* mask = LinearScratch::at_least(masks_dev[i], numel);
        prune_linear(lin, stats->point(role_info(roles[i]).input), n, opt, p, mask, linear_scratch);
        cuda_synchronize();
        entry(l, i).seconds = since(t_linear);
        mask_bytes += static_cast<size_t>(numel);
        weight_bytes += lin.weight.bytes.size();
      }
      // Hand the block's results to the host side (waiting for the task that last used this buffer).
      BlockResults& out = results[static_cast<size_t>(l % 2)];
      if (out.done.valid()) out.done.get();
      auto* mask_host = static_cast<uint8_t*>(out.masks.reserve(mask_bytes));
      auto* weight_host = opt.method == PruneMethod::kSparseGPT ? static_cast<uint8_t*>(out.weights.reserve(weight_bytes)) : nullptr;
      for (size_t i = 0, mo = 0, wo = 0; i < roles.size(); ++i) {
        const gpu::GpuLinear& lin = block.linears[static_cast<size_t>(roles[i])];
        const auto numel = static_cast<size_t>(lin.weight.rows * lin.weight.cols);
        copy_to_host(mask_host + mo, masks_dev[i].data(), numel);
        mo += numel;
        if (weight_host) {
          copy_to_host(weight_host + wo, lin.weight.bytes.data(), lin.weight.bytes.size());
          wo += lin.weight.bytes.size();
        }
      }
      out.done = std::async(std::launch::async, [&entry, &roles, p, bp = &b, l, mask_host, weight_host] {
        for (size_t i = 0, mo = 0, wo = 0; i < roles.size(); ++i) {
          Tensor& w = bp->linear(roles[i]).weight;
          Mask& mask = entry(l, i).mask;
          mask = Mask(w.dim(0), w.dim(1));
          std::memcpy(mask.pruned.data(), mask_host + mo, mask.pruned.size());
          mo += mask.pruned.size();
          if (weight_host) {  // SparseGPT's updated weights (in the half modes, as the half model holds them)
            gpu::convert_to_f32(weight_host + wo, static_cast<int64_t>(w.numel()), w.ptr(), p);
            wo += w.numel() * gpu::element_bytes(p);
          } else {
            apply_mask(w, mask);
          }
        }
      });
      result.timings.select += since(t_select);

      const auto t1 = Clock::now();
      run_samples(/*collect=*/false);  // the resident block now holds the pruned weights
      result.timings.forward += since(t1);
      if (progress) progress(l + 1, c.num_layers);
    }
    for (BlockResults& r : results)
      if (r.done.valid()) r.done.get();
  } catch (...) {  // background tasks refer to this frame: let them finish before unwinding
    if (packing.valid()) packing.wait();
    for (BlockResults& r : results)
      if (r.done.valid()) r.done.wait();
    throw;
  }
  result.timings.total = since(start);
  return result;
}

}  // namespace sparsa

#endif  // SPARSA_WITH_CUDA
