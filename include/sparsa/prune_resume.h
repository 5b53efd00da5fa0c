// sparsa/prune_resume.h — PruneResume: the finished blocks of a pruning run into the folder <out>,
// kept in "<out>.partial/" so that a rerun of the same run continues after the last finished
// block instead of starting over (`sparsa prune`; PruneOptions::first_layer and on_block).
//
// Layout of "<out>.partial/":
//   run.json                  the arguments that determine the pruned weights (the run's identity)
//   block-NNNN.safetensors    one per finished block: "<linear>.weight" [out, in] (the pruned,
//                             for SparseGPT also updated, weights: BF16 or F16 when that holds every
//                             value exactly, as for Wanda and magnitude on a half-precision model,
//                             else F32) and "<linear>.mask" U8 packbits
// Every file is written atomically (temporary file + rename), so a kill at any instant leaves
// only complete files. Blocks are used in order from block 0 while their files exist; the
// calibration inputs of the first unfinished block are recomputed by running the restored
// blocks forward (see PruneOptions::first_layer), which reproduces them exactly.
//
// Errors: Error(kBadInput) for a progress folder that cannot be resumed (another run's, or a
// corrupt file), naming the folder or file; opening with `discard` = true always recovers from
// them. Error(kRuntime) when a file cannot be written. Not thread-safe: one object per run.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <vector>

#include <nlohmann/json.hpp>

#include "sparsa/model.h"
#include "sparsa/prune.h"

namespace sparsa {

// What determines the pruned weights of a run (the model folder, method, target, calibration,
// blocksize, percdamp, and the size and modification time of every file in the model folder, as
// "file <name>" keys); a rerun resumes only when this is unchanged, so a model changed in place
// since the interrupted run is never mixed with its checkpoints. `calibration` is the
// Calibration::description of the run's calibration set, or null for a method without one.
nlohmann::ordered_json prune_resume_identity(const std::filesystem::path& model_dir, const PruneOptions& opt,
                                             const nlohmann::ordered_json& calibration);

class PruneResume {
 public:
  // Opens or creates "<out>.partial/" for a run identified by `identity`. An existing folder
  // of another run (its run.json differs: other arguments or changed model files), or with an
  // unreadable run.json, is removed when `discard`, else Error(kBadInput) naming the first
  // differing key (the argument, or the model file that changed) with both values.
  PruneResume(const std::filesystem::path& out, const nlohmann::ordered_json& identity, bool discard);

  // The number of leading blocks with a checkpoint (0 for a fresh run).
  int64_t finished_blocks() const { return finished_; }

  // Writes the finished blocks' weights into `m` and returns their results (masks, layer-major).
  // Error(kBadInput) naming the file and the tensor when a checkpoint does not fit the model: a
  // tensor of the block missing, one of another dtype or shape, or one the block does not have.
  std::vector<LinearPruneResult> restore(Model& m) const;

  // Saves block `layer` (its weights in `m` are final) atomically.
  void save_block(const Model& m, int64_t layer, std::span<const LinearPruneResult> linears);

  // Deletes the folder once the output is in place.
  void remove() const;

  const std::filesystem::path& path() const { return dir_; }

 private:
  std::filesystem::path block_file(int64_t layer) const;
  [[noreturn]] void refuse_other_run(const std::string& key, const nlohmann::ordered_json& saved,
                                     const nlohmann::ordered_json& now) const;
  std::filesystem::path dir_;
  int64_t finished_ = 0;
};

}  // namespace sparsa
