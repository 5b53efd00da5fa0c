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
#include <condition_variable>
#include <cstring>
#include <exception>
#include <future>
#include <mutex>
#include <span>
#include <thread>

#include "cuda/cuda_check.h"
#include "gpu/gpu_forward.h"
#include "gpu/gpu_types.h"
#include "gpu/kernels.h"
#include "gpu/nccl.h"
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
  std::shared_future<void> done;  // shared: the next block's task waits for it before on_block
};

// One GPU's share of the work: a contiguous share of the samples, their activations, a copy of
// the resident block, and its statistics.
struct Rank {
  int device = 0;
  int64_t first = 0, samples = 0;  // samples [first, first + samples)
  void* comm = nullptr;            // NCCL communicator (multi-GPU path)
  DeviceBuffer<float> xs;          // [samples, seqlen, d_model]: inputs of the current block
  DeviceBuffer<float> scratch;     // a chunk's copy for the statistics pass
  std::unique_ptr<gpu::GpuForward> fw;
  std::unique_ptr<StatsObserver> stats;
  gpu::GpuBlock block;
  LinearScratch linear;
  std::array<DeviceBuffer<uint8_t>, kNumLinearRoles> masks;  // this block's masks, by role order
};

// A reusable barrier for the rank threads that also carries the first failure: after wait(),
// every rank sees failed() and stops before the next collective (a rank that skipped one would
// leave the others waiting forever).
class RankBarrier {
 public:
  explicit RankBarrier(int n) : n_(n) {}
  void fail(std::exception_ptr e) {
    std::lock_guard<std::mutex> lock(m_);
    if (!error_) error_ = e;
  }
  // Waits for every rank; true when all of them got here without a failure.
  bool wait() {
    std::unique_lock<std::mutex> lock(m_);
    const int64_t gen = generation_;
    if (++arrived_ == n_) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return generation_ != gen; });
    }
    return !error_;
  }
  std::exception_ptr error() const { return error_; }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  int n_, arrived_ = 0;
  int64_t generation_ = 0;
  std::exception_ptr error_;
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
  const int64_t first = opt.first_layer;
  if (first < 0 || first > c.num_layers) bad_input("cannot resume at block {}: the model has {} blocks", first, c.num_layers);
  const std::vector<LinearRole>& roles = arch_info(c.arch).roles;
  PruneResult result;
  result.linears.reserve(static_cast<size_t>(c.num_layers - first) * roles.size());  // background tasks fill them in place
  for (int64_t l = first; l < c.num_layers; ++l)
    for (LinearRole role : roles) {
      LinearPruneResult& lr = result.linears.emplace_back();
      lr.layer = l;
      lr.role = role;
      lr.name = hf_linear_name(c.arch, l, role);
    }
  auto entry = [&](int64_t l, size_t i) -> LinearPruneResult& {
    return result.linears[static_cast<size_t>(l - first) * roles.size() + i];
  };
  auto block_results = [&](int64_t l) {
    return std::span<const LinearPruneResult>(&entry(l, 0), roles.size());
  };

  if (opt.method == PruneMethod::kMagnitude) {  // host selection, no forward pass
    for (int64_t l = first; l < c.num_layers; ++l) {
      const auto t0 = Clock::now();
      for (size_t i = 0; i < roles.size(); ++i) {
        Tensor& w = m.blocks[static_cast<size_t>(l)].linear(roles[i]).weight;
        entry(l, i).mask = magnitude_mask(w, t);
        apply_mask(w, entry(l, i).mask);
        entry(l, i).seconds = since(t0);
      }
      result.timings.select += since(t0);
      if (opt.on_block) opt.on_block(l, block_results(l));
      if (progress) progress(l + 1, c.num_layers);
    }
    result.timings.total = since(start);
    return result;
  }

  if (calib.rank() != 2 || calib.dim(0) == 0) bad_input("calibration tokens must be [n_samples, seqlen], got {}", shape_string(calib.shape));
  const int64_t n = calib.dim(0), L = calib.dim(1), d = c.hidden_size;
  if (L > c.max_position) bad_input("calibration seqlen {} is above the model's context length {}", L, c.max_position);
  for (size_t i = 0; i < calib.numel(); ++i)
    if (calib.data[i] < 0 || calib.data[i] >= c.vocab_size)
      bad_input("calibration token id {} at sample {}, position {} is outside the vocabulary (size {})", calib.data[i],
                static_cast<int64_t>(i) / L, static_cast<int64_t>(i) % L, c.vocab_size);
  const int G = gpu.devices;
  if (G < 1) bad_input("--gpus must be at least 1, got {}", G);
  if (G > cuda_device_count()) runtime_failure("--gpus {}: this machine has {} CUDA device(s)", G, cuda_device_count());
  if (G > n) bad_input("--gpus {} is more than the {} calibration samples", G, n);
  const bool collectives = G > 1 || gpu.force_nccl;
  const GpuPrecision p = gpu.precision;
  const int64_t per_chunk = std::max<int64_t>(1, std::min(gpu.chunk_tokens / L, (n + G - 1) / G));

  std::vector<Rank> ranks(static_cast<size_t>(G));
  for (int r = 0; r < G; ++r) {  // an even split of the samples, the first ranks taking the remainder
    Rank& k = ranks[static_cast<size_t>(r)];
    k.device = r;
    k.samples = n / G + (r < n % G ? 1 : 0);
    k.first = r == 0 ? 0 : ranks[static_cast<size_t>(r - 1)].first + ranks[static_cast<size_t>(r - 1)].samples;
  }
  if (collectives) {
    std::vector<void*> comms(static_cast<size_t>(G));
    std::vector<int> devs(static_cast<size_t>(G));
    for (int r = 0; r < G; ++r) devs[static_cast<size_t>(r)] = r;
    gpu::Nccl::get().init_all(comms.data(), G, devs.data());
    for (int r = 0; r < G; ++r) ranks[static_cast<size_t>(r)].comm = comms[static_cast<size_t>(r)];
  }

  // Block l + 1 is converted into page-locked memory while the GPUs work on block l.
  std::array<gpu::HostStaging, 2> packed;
  auto pack = [&](int64_t l) {
    const Block& b = m.blocks[static_cast<size_t>(l)];
    gpu::HostStaging& buf = packed[static_cast<size_t>(l % 2)];
    buf.reserve(gpu::GpuBlock::packed_bytes(b, p));
    return std::async(std::launch::async, [&b, &buf, p] { gpu::GpuBlock::pack(b, p, buf.data()); });
  };
  std::future<void> packing;
  std::array<BlockResults, 2> results;
  RankBarrier barrier(G);

  auto run_rank = [&](Rank& k) {
    const bool lead = k.device == 0;
    try {
      SPARSA_CUDA_CHECK(cudaSetDevice(k.device));
      const auto t_embed = Clock::now();
      k.xs = DeviceBuffer<float>(static_cast<size_t>(k.samples * L * d));
      {
        DeviceBuffer<float> embed(m.embed.data);
        DeviceBuffer<int32_t> tokens(std::vector<int32_t>(calib.ptr() + k.first * L, calib.ptr() + (k.first + k.samples) * L));
        gpu::launch_gather_rows(embed.data(), tokens.data(), k.xs.data(), k.samples * L, d);
        cuda_synchronize();
      }
      k.fw = std::make_unique<gpu::GpuForward>(c, p, per_chunk, L);
      k.stats = std::make_unique<StatsObserver>(opt.method, p, c, per_chunk * L, L);
      k.scratch = DeviceBuffer<float>(static_cast<size_t>(per_chunk * L * d));
      if (lead) result.timings.forward += since(t_embed);
    } catch (...) {
      barrier.fail(std::current_exception());
    }
    // Runs the resident block over this rank's samples: statistics on a copy, or in place.
    auto run_samples = [&](bool collect) {
      for (int64_t s0 = 0; s0 < k.samples; s0 += per_chunk) {
        const int64_t S = std::min(per_chunk, k.samples - s0);
        float* x = k.xs.data() + s0 * L * d;
        if (collect) {
          SPARSA_CUDA_CHECK(cudaMemcpy(k.scratch.data(), x, static_cast<size_t>(S * L * d) * sizeof(float), cudaMemcpyDeviceToDevice));
          k.fw->block(k.block, k.scratch.data(), S, k.stats.get(), /*stop_at_down_input=*/true);
        } else {
          k.fw->block(k.block, x, S, nullptr);
        }
      }
      cuda_synchronize();
    };
    const gpu::Nccl* nccl = collectives ? &gpu::Nccl::get() : nullptr;
    for (int64_t l = 0; l < c.num_layers; ++l) {
      if (lead) try {
          packing.get();
        } catch (...) {
          barrier.fail(std::current_exception());
        }
      if (!barrier.wait()) return;  // block l is packed
      try {
        Block& b = m.blocks[static_cast<size_t>(l)];
        const auto t0 = Clock::now();
        k.block.upload_packed(b, p, packed[static_cast<size_t>(l % 2)].data());
        if (lead && l + 1 < c.num_layers) packing = pack(l + 1);
        if (l < first) {  // already pruned (a resumed run): only its outputs are needed
          run_samples(/*collect=*/false);
          if (lead) result.timings.forward += since(t0);
        } else {
          k.stats->reset();
          run_samples(/*collect=*/true);
          if (lead) result.timings.stats += since(t0);
        }
      } catch (...) {
        barrier.fail(std::current_exception());
      }
      if (!barrier.wait()) return;
      if (l < first) continue;
      const auto t_select = Clock::now();
      try {
        if (nccl)  // every rank gets the statistics of all samples
          for (int i = 0; i < kNumObsPoints; ++i) {
            PointStats& ps = k.stats->point(static_cast<ObsPoint>(i));
            if (ps.sqsum.size()) nccl->all_reduce_sum(ps.sqsum.data(), ps.sqsum.data(), ps.sqsum.size(), gpu::kNcclFloat64, k.comm);
            if (ps.xtx.size()) nccl->all_reduce_sum(ps.xtx.data(), ps.xtx.data(), ps.xtx.size(), gpu::kNcclFloat32, k.comm);
          }
        for (size_t i = 0; i < roles.size(); ++i) {  // linear i is pruned by rank i mod G
          gpu::GpuLinear& lin = k.block.linears[static_cast<size_t>(roles[i])];
          uint8_t* mask = LinearScratch::at_least(k.masks[i], lin.weight.rows * lin.weight.cols);
          if (static_cast<int>(i % static_cast<size_t>(G)) != k.device) continue;
          const auto t_linear = Clock::now();
          prune_linear(lin, k.stats->point(role_info(roles[i]).input), n, opt, p, mask, k.linear);
          cuda_synchronize();
          entry(l, i).seconds = since(t_linear);
        }
      } catch (...) {
        barrier.fail(std::current_exception());
      }
      if (!barrier.wait()) return;
      try {
        if (nccl) {  // every rank gets every pruned linear and mask from the rank that pruned it
          for (size_t i = 0; i < roles.size(); ++i) {
            gpu::GpuLinear& lin = k.block.linears[static_cast<size_t>(roles[i])];
            const int owner = static_cast<int>(i % static_cast<size_t>(G));
            nccl->broadcast(lin.weight.bytes.data(), lin.weight.bytes.data(), lin.weight.bytes.size(), gpu::kNcclUint8, owner, k.comm);
            nccl->broadcast(k.masks[i].data(), k.masks[i].data(), static_cast<size_t>(lin.weight.rows * lin.weight.cols),
                            gpu::kNcclUint8, owner, k.comm);
          }
          cuda_synchronize();
        }
        if (lead) {  // hand the block's results to the host (waiting for the task that last used the buffer)
          Block& b = m.blocks[static_cast<size_t>(l)];
          BlockResults& out = results[static_cast<size_t>(l % 2)];
          if (out.done.valid()) out.done.get();
          size_t mask_bytes = 0, weight_bytes = 0;
          for (size_t i = 0; i < roles.size(); ++i) {
            const gpu::GpuLinear& lin = k.block.linears[static_cast<size_t>(roles[i])];
            mask_bytes += static_cast<size_t>(lin.weight.rows * lin.weight.cols);
            weight_bytes += lin.weight.bytes.size();
          }
          auto* mask_host = static_cast<uint8_t*>(out.masks.reserve(mask_bytes));
          auto* weight_host = opt.method == PruneMethod::kSparseGPT ? static_cast<uint8_t*>(out.weights.reserve(weight_bytes)) : nullptr;
          for (size_t i = 0, mo = 0, wo = 0; i < roles.size(); ++i) {
            const gpu::GpuLinear& lin = k.block.linears[static_cast<size_t>(roles[i])];
            const auto numel = static_cast<size_t>(lin.weight.rows * lin.weight.cols);
            copy_to_host(mask_host + mo, k.masks[i].data(), numel);
            mo += numel;
            if (weight_host) {
              copy_to_host(weight_host + wo, lin.weight.bytes.data(), lin.weight.bytes.size());
              wo += lin.weight.bytes.size();
            }
          }
          std::shared_future<void> previous = results[static_cast<size_t>((l + 1) % 2)].done;
          out.done = std::async(std::launch::async, [&, p, bp = &b, l, mask_host, weight_host, previous] {
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
            if (opt.on_block) {  // in block order, each once its weights in the model are final
              if (previous.valid()) previous.get();
              opt.on_block(l, block_results(l));
            }
          }).share();
          result.timings.select += since(t_select);
        }
        const auto t1 = Clock::now();
        run_samples(/*collect=*/false);  // the resident block now holds the pruned weights
        if (lead) {
          result.timings.forward += since(t1);
          if (progress) progress(l + 1, c.num_layers);
        }
      } catch (...) {
        barrier.fail(std::current_exception());
      }
    }
    barrier.wait();
  };

  try {
    packing = pack(0);
    std::vector<std::thread> threads;
    for (int r = 1; r < G; ++r) threads.emplace_back([&, r] { run_rank(ranks[static_cast<size_t>(r)]); });
    run_rank(ranks[0]);
    for (std::thread& th : threads) th.join();
  } catch (...) {
    barrier.fail(std::current_exception());
  }
  // Background tasks and device buffers refer to this frame: finish them before returning or throwing.
  if (packing.valid()) packing.wait();
  for (BlockResults& r : results)
    if (r.done.valid()) try {
        r.done.get();
      } catch (...) {
        barrier.fail(std::current_exception());
      }
  for (int r = 0; r < G; ++r) {
    Rank& k = ranks[static_cast<size_t>(r)];
    if (cudaSetDevice(k.device) != cudaSuccess) continue;
    void* comm = k.comm;
    k = Rank{};  // frees this rank's device memory on its device
    if (comm) gpu::Nccl::get().destroy(comm);
  }
  SPARSA_CUDA_CHECK(cudaSetDevice(0));
  if (barrier.error()) std::rethrow_exception(barrier.error());
  result.timings.total = since(start);
  return result;
}

}  // namespace sparsa

#endif  // SPARSA_WITH_CUDA
