// The CPU-only build's stand-in for the GPU decoder (sparsa/decode.h): the constructors throw,
// so no other member can be reached; they exist for the linker.
#ifndef SPARSA_WITH_CUDA

#include "sparsa/decode.h"
#include "sparsa/error.h"

namespace sparsa {
namespace {

[[noreturn]] void no_cuda(const char* what) { runtime_failure("{}: sparsa was built without CUDA", what); }

}  // namespace

struct GpuDecoder::Impl {};

GpuDecoder::GpuDecoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GpuDecoder::GpuDecoder(const Model&, const DecodeOptions&) { no_cuda("GpuDecoder"); }
GpuDecoder GpuDecoder::synthetic(const ModelConfig&, uint64_t, float, const DecodeOptions&) {
  no_cuda("GpuDecoder::synthetic");
}
GpuDecoder::~GpuDecoder() = default;
GpuDecoder::GpuDecoder(GpuDecoder&&) noexcept = default;
GpuDecoder& GpuDecoder::operator=(GpuDecoder&&) noexcept = default;
const ModelConfig& GpuDecoder::config() const { no_cuda("GpuDecoder::config"); }
const DecodeOptions& GpuDecoder::options() const { no_cuda("GpuDecoder::options"); }
void GpuDecoder::set_thresholds(const ActivationThresholds&) { no_cuda("GpuDecoder::set_thresholds"); }
const ActivationThresholds& GpuDecoder::thresholds() const { no_cuda("GpuDecoder::thresholds"); }
void GpuDecoder::set_linears(DecodeLinears) { no_cuda("GpuDecoder::set_linears"); }
void GpuDecoder::reset(const std::vector<int32_t>&) { no_cuda("GpuDecoder::reset"); }
void GpuDecoder::step() { no_cuda("GpuDecoder::step"); }
void GpuDecoder::step_eager() { no_cuda("GpuDecoder::step_eager"); }
std::vector<double> GpuDecoder::timed_steps(int64_t) { no_cuda("GpuDecoder::timed_steps"); }
int64_t GpuDecoder::position() const { no_cuda("GpuDecoder::position"); }
std::vector<float> GpuDecoder::logits() { no_cuda("GpuDecoder::logits"); }
std::vector<int32_t> GpuDecoder::tokens() { no_cuda("GpuDecoder::tokens"); }
void GpuDecoder::synchronize() { no_cuda("GpuDecoder::synchronize"); }
void* GpuDecoder::stream() const { no_cuda("GpuDecoder::stream"); }
void GpuDecoder::run_recorded(int64_t, const RecordFn&, int64_t) { no_cuda("GpuDecoder::run_recorded"); }

}  // namespace sparsa

#endif  // !SPARSA_WITH_CUDA
