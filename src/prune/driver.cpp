// The sequential calibration driver of the reference implementations (Wanda repository's
// prune_wanda / prune_sparsegpt), written once over a block backend (sparsa/prune_backend.h):
// block by block, statistics from the dense block on the outputs of the already-pruned
// previous blocks, prune, recompute the block's outputs.
#include <chrono>

#include "sparsa/error.h"
#include "sparsa/progress.h"
#include "sparsa/prune_backend.h"

namespace sparsa {
namespace {

using Clock = std::chrono::steady_clock;

// result.linears for blocks first..num_layers-1 with layer, role and name filled in; the
// backends fill in the rest in place (possibly from another thread), so it is never resized.
std::vector<LinearPruneResult> result_slots(const ModelConfig& c, int64_t first) {
  const std::vector<LinearRole>& roles = arch_info(c.arch).roles;
  std::vector<LinearPruneResult> linears;
  linears.reserve(static_cast<size_t>(c.num_layers - first) * roles.size());
  for (int64_t l = first; l < c.num_layers; ++l)
    for (LinearRole role : roles) {
      LinearPruneResult& lr = linears.emplace_back();
      lr.layer = l;
      lr.role = role;
      lr.name = hf_linear_name(c.arch, l, role);
    }
  return linears;
}

// Observe, prune and commit block l, then run it pruned (timings into `t`).
void prune_block(PruneBackend& backend, int64_t l, std::span<LinearPruneResult> linears, bool data, PruneTimings& t) {
  if (data) {
    const auto t0 = Clock::now();
    backend.observe(l);
    t.stats += seconds_since(t0);  // includes the dense forward the statistics ride on
  }
  const auto t_select = Clock::now();
  backend.prune_linears(l, linears);
  t.select += seconds_since(t_select);
  backend.commit_block(l, linears);
  if (data) {
    const auto t0 = Clock::now();
    backend.run_block(l);
    t.forward += seconds_since(t0);
  }
}

void run_blocks(const ModelConfig& c, const TensorI32& calib, const PruneOptions& opt, PruneBackend& backend,
                PruneResult& result, const std::function<void(int64_t, int64_t)>& progress) {
  const bool data = needs_calibration(opt.method);
  const size_t per_block = arch_info(c.arch).roles.size();
  if (data) {
    const auto t0 = Clock::now();
    backend.embed(calib);
    result.timings.forward += seconds_since(t0);
  }
  for (int64_t l = data ? 0 : opt.first_layer; l < c.num_layers; ++l) {
    if (data) {
      const auto t0 = Clock::now();
      backend.load_block(l);
      if (l < opt.first_layer) {  // already pruned (a resumed run): only its outputs are needed
        backend.run_block(l);
        result.timings.forward += seconds_since(t0);
        continue;
      }
      result.timings.stats += seconds_since(t0);
    }
    const std::span<LinearPruneResult> linears(result.linears.data() + static_cast<size_t>(l - opt.first_layer) * per_block,
                                               per_block);
    prune_block(backend, l, linears, data, result.timings);
    if (progress) progress(l + 1, c.num_layers);
  }
}

}  // namespace

void check_prune_inputs(const ModelConfig& c, const TensorI32& calib, const PruneOptions& opt) {
  const SparsityTarget& t = opt.target;
  if (t.is_nm() ? !(t.n > 0 && t.n < t.m) : !(t.ratio > 0.0 && t.ratio < 1.0))
    bad_input("sparsity target must be in (0, 1) or N:M with 0 < N < M");
  if (opt.method == PruneMethod::kSparseGPT) check_sparsegpt_blocksize(opt.blocksize, t);
  if (opt.first_layer < 0 || opt.first_layer > c.num_layers)
    bad_input("cannot resume at block {}: the model has {} blocks", opt.first_layer, c.num_layers);
  if (!needs_calibration(opt.method)) return;
  if (calib.rank() != 2 || calib.dim(0) == 0) bad_input("calibration tokens must be [n_samples, seqlen], got {}", shape_string(calib.shape));
  check_window_tokens(c, calib, "calibration ", "sample");
}

PruneOptions with_block_checks(const Model& m, const PruneOptions& opt) {
  PruneOptions checked = opt;
  checked.on_block = [&m, target = opt.target, hook = opt.on_block](int64_t layer,
                                                                     std::span<const LinearPruneResult> linears) {
    const Block& b = m.blocks[static_cast<size_t>(layer)];
    for (const LinearPruneResult& lr : linears) {
      check_mask_target(lr.mask, target, lr.name);
      if (const std::string where = non_finite_where(lr.name + ".weight", b.linear(lr.role).weight); !where.empty())
        runtime_failure("block {}: pruning left a non-finite weight: {}", layer, where);
    }
    if (hook) hook(layer, linears);
  };
  return checked;
}

PruneResult run_pruning(Model& m, const TensorI32& calib, const PruneOptions& opt, PruneBackend& backend,
                        const std::function<void(int64_t, int64_t)>& progress) {
  const auto start = Clock::now();
  check_prune_inputs(m.config, calib, opt);
  PruneResult result;
  result.linears = result_slots(m.config, opt.first_layer);
  try {
    run_blocks(m.config, calib, opt, backend, result, progress);
    backend.finish();
  } catch (...) {
    backend.abandon();  // its deferred work writes into `result`: wait for it before unwinding
    throw;
  }
  result.timings.total = seconds_since(start);
  return result;
}

}  // namespace sparsa
