// The CUDA block backend of the pruning driver (sparsa/prune_backend.h): the calibration
// activations of every sample stay on the device(s); each block is uploaded, run densely over
// all samples with observers accumulating Wanda norms or SparseGPT Hessians, its linears pruned
// on the device in place, the masks and SparseGPT's updated weights copied back into the host
// model (host_write_back.h), and the pruned block run again to give the next block its inputs.
// With several GPUs (rank_group.h) each holds a share of the samples, the statistics are
// all-reduced and the linears of a block are pruned across the GPUs and broadcast. In the half
// modes the linears are pruned from their half-precision values, as the reference prunes a
// half-precision model.
#ifdef SPARSA_WITH_CUDA

#include <algorithm>
#include <array>
#include <chrono>
#include <future>
#include <memory>
#include <span>

#include "cuda/cuda_check.h"
#include "gpu/gpu_backends.h"
#include "gpu/gpu_forward.h"
#include "gpu/gpu_types.h"
#include "gpu/host_write_back.h"
#include "gpu/kernels.h"
#include "gpu/nccl.h"
#include "gpu/rank_group.h"
#include "sparsa/error.h"
#include "sparsa/progress.h"
#include "sparsa/gpu.h"

namespace sparsa {
namespace {

using Clock = std::chrono::steady_clock;

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
    for (int i = 0; i < kNumObsPoints; ++i) {
      PointStats& s = points_[static_cast<size_t>(i)];
      s.dim = obs_point_dim(c, static_cast<ObsPoint>(i));
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
  // Sums every rank's statistics in place: each then holds those of all samples.
  void all_reduce(const gpu::Nccl& nccl, void* comm) {
    for (PointStats& ps : points_) {
      if (ps.sqsum.size()) nccl.all_reduce_sum(ps.sqsum.data(), ps.sqsum.data(), ps.sqsum.size(), gpu::kNcclFloat64, comm);
      if (ps.xtx.size()) nccl.all_reduce_sum(ps.xtx.data(), ps.xtx.data(), ps.xtx.size(), gpu::kNcclFloat32, comm);
    }
  }

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

// One GPU's state: its samples' activations, a copy of the resident block, its statistics.
struct RankState {
  DeviceBuffer<float> xs;          // [samples, seqlen, d_model]: inputs of the current block
  DeviceBuffer<float> scratch;     // [per_chunk, seqlen, d_model]: a chunk's copy for the statistics pass
  std::unique_ptr<gpu::GpuForward> fw;
  std::unique_ptr<StatsObserver> stats;
  gpu::GpuBlock block;
  LinearScratch linear;
  std::array<DeviceBuffer<uint8_t>, kNumLinearRoles> masks;  // this block's masks [rows, cols], by role order
};

class CudaPruneBackend final : public PruneBackend {
 public:
  CudaPruneBackend(Model& m, const PruneOptions& opt, const DeviceOptions& device)
      : m_(m), opt_(opt), device_(device), roles_(arch_info(m.config.arch).roles), p_(device.precision),
        write_back_(device.precision, opt.method == PruneMethod::kSparseGPT) {
    if (opt.method == PruneMethod::kSparseGPT && (opt.blocksize < 1 || opt.blocksize > gpu::kSparseGptMaxBlock))
      bad_input("--blocksize {} is outside 1..{} on the GPU", opt.blocksize, gpu::kSparseGptMaxBlock);
  }
  ~CudaPruneBackend() override { release(); }

  void embed(const TensorI32& calib) override;
  void load_block(int64_t layer) override;
  void run_block(int64_t) override {
    group_->for_each([&](int r) { run_samples(r, /*collect=*/false); });
  }
  void observe(int64_t) override {
    group_->for_each([&](int r) {
      ranks_[static_cast<size_t>(r)].stats->reset();
      run_samples(r, /*collect=*/true);
    });
  }
  void prune_linears(int64_t layer, std::span<LinearPruneResult> linears) override;
  void commit_block(int64_t layer, std::span<LinearPruneResult> linears) override {
    write_back_.start(layer, m_.blocks[static_cast<size_t>(layer)], linears, opt_.on_block);
  }
  void finish() override {
    if (packing_.valid()) packing_.get();
    write_back_.finish();
  }
  void abandon() noexcept override {
    if (packing_.valid()) packing_.wait();
    write_back_.abandon();
  }

 private:
  void setup_rank(int r, const TensorI32& calib);
  void run_samples(int r, bool collect);
  void prune_own_linears(int r, std::span<LinearPruneResult> linears);
  void broadcast_pruned_linears(int r);
  std::future<void> pack(int64_t layer);
  void release() noexcept;

  Model& m_;
  const PruneOptions& opt_;
  DeviceOptions device_;
  const std::vector<LinearRole>& roles_;
  GpuPrecision p_;
  int64_t samples_ = 0, seqlen_ = 0, per_chunk_ = 0;  // all samples; samples per forward chunk
  std::unique_ptr<gpu::RankGroup> group_;
  std::vector<RankState> ranks_;            // by rank
  std::array<gpu::HostStaging, 2> packed_;  // block l + 1 is packed into page-locked memory while the GPUs work on l
  std::future<void> packing_;
  gpu::HostWriteBack write_back_;
};

void CudaPruneBackend::embed(const TensorI32& calib) {
  samples_ = calib.dim(0);
  seqlen_ = calib.dim(1);
  const int G = device_.devices;
  group_ = std::make_unique<gpu::RankGroup>(G, samples_, G > 1 || device_.force_nccl);
  per_chunk_ = std::max<int64_t>(1, std::min(device_.chunk_tokens / seqlen_, (samples_ + G - 1) / G));
  ranks_.resize(static_cast<size_t>(G));
  packing_ = pack(0);
  group_->for_each([&](int r) { setup_rank(r, calib); });
}

void CudaPruneBackend::setup_rank(int r, const TensorI32& calib) {
  const gpu::RankShare& share = group_->rank(r);
  RankState& k = ranks_[static_cast<size_t>(r)];
  const ModelConfig& c = m_.config;
  const int64_t L = seqlen_, d = c.hidden_size;
  k.xs = DeviceBuffer<float>(static_cast<size_t>(share.samples * L * d));
  {
    gpu::HostStaging staging;
    gpu::GpuEmbedding embedding(m_, staging);
    DeviceBuffer<int32_t> tokens(std::vector<int32_t>(calib.ptr() + share.first * L, calib.ptr() + (share.first + share.samples) * L));
    embedding.embed(tokens.data(), share.samples * L, L, k.xs.data());
    cuda_synchronize();
  }
  k.fw = std::make_unique<gpu::GpuForward>(c, p_, per_chunk_, L);
  k.stats = std::make_unique<StatsObserver>(opt_.method, p_, c, per_chunk_ * L, L);
  k.scratch = DeviceBuffer<float>(static_cast<size_t>(per_chunk_ * L * d));
}

std::future<void> CudaPruneBackend::pack(int64_t layer) {
  const Block& b = m_.blocks[static_cast<size_t>(layer)];
  gpu::HostStaging& buf = packed_[static_cast<size_t>(layer % 2)];
  buf.reserve(gpu::GpuBlock::packed_bytes(b, p_));
  return std::async(std::launch::async, [&b, &buf, p = p_] { gpu::GpuBlock::pack(b, p, buf.data()); });
}

void CudaPruneBackend::load_block(int64_t layer) {
  packing_.get();
  const void* packed = packed_[static_cast<size_t>(layer % 2)].data();
  group_->for_each([&](int r) { ranks_[static_cast<size_t>(r)].block.upload_packed(m_, layer, p_, packed); });
  if (layer + 1 < m_.config.num_layers) packing_ = pack(layer + 1);
}

// Runs the resident block over rank r's samples: statistics on a copy, or in place.
void CudaPruneBackend::run_samples(int r, bool collect) {
  RankState& k = ranks_[static_cast<size_t>(r)];
  const int64_t samples = group_->rank(r).samples, L = seqlen_, d = m_.config.hidden_size;
  for (int64_t s0 = 0; s0 < samples; s0 += per_chunk_) {
    const int64_t S = std::min(per_chunk_, samples - s0);
    float* x = k.xs.data() + s0 * L * d;
    if (collect) {
      SPARSA_CUDA_CHECK(cudaMemcpy(k.scratch.data(), x, static_cast<size_t>(S * L * d) * sizeof(float), cudaMemcpyDeviceToDevice));
      k.fw->block(k.block, k.scratch.data(), S, k.stats.get(), /*stop_at_down_input=*/true);
    } else {
      k.fw->block(k.block, x, S, nullptr);
    }
  }
  cuda_synchronize();
}

// Every rank gets the statistics of all samples; linear i is pruned by rank i mod G.
void CudaPruneBackend::prune_own_linears(int r, std::span<LinearPruneResult> linears) {
  RankState& k = ranks_[static_cast<size_t>(r)];
  if (const gpu::Nccl* nccl = group_->nccl()) k.stats->all_reduce(*nccl, group_->rank(r).comm);
  const auto G = static_cast<size_t>(group_->size());
  for (size_t i = 0; i < roles_.size(); ++i) {
    gpu::GpuLinear& lin = k.block.linears[static_cast<size_t>(roles_[i])];
    uint8_t* mask = LinearScratch::at_least(k.masks[i], lin.weight.rows * lin.weight.cols);
    if (static_cast<int>(i % G) != r) continue;
    const auto t0 = Clock::now();
    prune_linear(lin, k.stats->point(role_info(roles_[i]).input), samples_, opt_, p_, mask, k.linear);
    cuda_synchronize();
    linears[i].seconds = seconds_since(t0);
  }
}

// Every rank gets every pruned linear and mask from the rank that pruned it.
void CudaPruneBackend::broadcast_pruned_linears(int r) {
  const gpu::Nccl* nccl = group_->nccl();
  if (!nccl) return;
  RankState& k = ranks_[static_cast<size_t>(r)];
  void* comm = group_->rank(r).comm;
  const auto G = static_cast<size_t>(group_->size());
  for (size_t i = 0; i < roles_.size(); ++i) {
    gpu::GpuLinear& lin = k.block.linears[static_cast<size_t>(roles_[i])];
    const int owner = static_cast<int>(i % G);
    nccl->broadcast(lin.weight.bytes.data(), lin.weight.bytes.data(), lin.weight.bytes.size(), gpu::kNcclUint8, owner, comm);
    nccl->broadcast(k.masks[i].data(), k.masks[i].data(), static_cast<size_t>(lin.weight.rows * lin.weight.cols),
                    gpu::kNcclUint8, owner, comm);
  }
  cuda_synchronize();
}

void CudaPruneBackend::prune_linears(int64_t layer, std::span<LinearPruneResult> linears) {
  group_->for_each([&](int r) { prune_own_linears(r, linears); });
  group_->for_each([&](int r) {
    broadcast_pruned_linears(r);
    if (r == 0)  // the block's results into page-locked memory, for commit_block's host task
      write_back_.stage(layer, ranks_[0].block, roles_, std::span<const DeviceBuffer<uint8_t>>(ranks_[0].masks.data(), roles_.size()));
  });
}

// Background work and device buffers refer to this object: finish them, then free each rank's
// device memory on its device and the communicators.
void CudaPruneBackend::release() noexcept {
  abandon();
  if (!group_) return;
  for (int r = 0; r < group_->size(); ++r) {
    if (cudaSetDevice(group_->rank(r).device) != cudaSuccess) continue;
    ranks_[static_cast<size_t>(r)] = RankState{};
  }
  group_.reset();
  cudaSetDevice(0);
}

}  // namespace

std::unique_ptr<PruneBackend> make_cuda_prune_backend(Model& m, const PruneOptions& opt, const DeviceOptions& device) {
  return std::make_unique<CudaPruneBackend>(m, opt, device);
}

}  // namespace sparsa

#endif  // SPARSA_WITH_CUDA
