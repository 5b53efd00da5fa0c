// sparsa plot: draw a figure from a file, e.g. the spy plot of one pruning mask.
#include <memory>
#include <string>

#include "commands.h"
#include "sparsa/atomic_file.h"
#include "sparsa/error.h"
#include "sparsa/prune.h"
#include "sparsa/safetensors.h"
#include "sparsa/viz.h"

namespace sparsa::cli {
namespace {

struct SpyArgs {
  std::string mask, key, out, title;
  int64_t cols = 0;
  int width = 1000, height = 800;
};

void run_spy(const SpyArgs& a) {
  const NamedPath inputs[] = {{"--mask", a.mask}};
  refuse_output_over_inputs({"--out", a.out}, inputs);
  const auto store = TensorStore::open(a.mask);
  const TensorInfo& info = store->info(a.key);
  if (info.dtype != DType::U8 || info.shape.size() != 2)
    bad_input("{}: tensor '{}' has dtype {} and shape {}, expected a packed U8 mask [rows, ceil(cols/8)]", a.mask,
              a.key, dtype_name(info.dtype), shape_string(info.shape));
  const int64_t rows = info.shape[0], packed = info.shape[1];
  const int64_t cols = a.cols > 0 ? a.cols : packed * 8;
  if (cols > packed * 8 || cols <= packed * 8 - 8)  // (cols + 7) / 8 != packed, without overflowing at 2^63 - 1
    bad_input("--cols {}: tensor '{}' packs {} bytes per row, which holds {} to {} columns", cols, a.key, packed,
              packed * 8 - 7, packed * 8);
  const Mask m = unpack_mask(info.data, rows, cols);
  viz::SpyOptions opt;
  opt.frame = {a.width, a.height, a.title.empty() ? a.key : a.title, "input column", "output row"};
  opt.set_label = "pruned";
  opt.clear_label = "kept";
  viz::spy_plot(viz::BoolMatrixView(m.pruned.data(), m.rows, m.cols), opt).save(a.out);
}

}  // namespace

void register_plot(CLI::App& app) {
  auto* cmd = app.add_subcommand("plot", "Draw a figure as a PNG file.");
  cmd->require_subcommand(1);
  auto args = std::make_shared<SpyArgs>();
  auto* spy = cmd->add_subcommand(
      "spy",
      "Spy plot of one pruning mask (black = pruned; a density raster with a colour bar when the\n"
      "matrix has more rows or columns than the plot has pixels).\n"
      "Example: sparsa plot spy --mask ../shared/golden/wanda_u50.safetensors "
      "--key model.layers.0.mlp.down_proj.mask --out spy.png");
  spy->add_option("--mask", args->mask, "masks.safetensors written by `sparsa prune` (or a golden mask file)")
      ->required();
  spy->add_option("--key", args->key, "the mask's tensor name, e.g. model.layers.0.mlp.down_proj.mask")->required();
  spy->add_option("--out", args->out, "the figure to write (atomically), in the format its extension names: .pdf (vector), else PNG")->required();
  spy->add_option("--cols", args->cols, "number of input columns (default: 8 x the packed width)")
      ->check(CLI::PositiveNumber);
  spy->add_option("--title", args->title, "figure title (default: the key)");
  spy->add_option("--width", args->width, "image width in pixels")->check(CLI::Range(200, 8000));
  spy->add_option("--height", args->height, "image height in pixels")->check(CLI::Range(200, 8000));
  spy->callback([args] { run_spy(*args); });
}
SPARSA_COMMAND(90, register_plot);

}  // namespace sparsa::cli
