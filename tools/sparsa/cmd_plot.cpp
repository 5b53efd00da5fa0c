// sparsa plot: draw a figure from a file: any study figure held by a database (--db --figure,
// through the study's own figure functions, restyled by --title / labels / size), or the spy plot
// of one pruning mask (plot spy).
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "commands.h"
#include "sparsa/atomic_file.h"
#include "sparsa/error.h"
#include "sparsa/prune.h"
#include "sparsa/safetensors.h"
#include "sparsa/store.h"
#include "sparsa/study_figures.h"
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

struct FigureArgs {
  std::string db, figure, out;
  std::optional<std::string> title, x_label, y_label;
  int width = 1000, height = 800;
  bool list = false;
};

void list_figures(const Store& store) {
  std::printf("figures of %s:\n", store.path().string().c_str());
  for (const FigureName& f : drawable_figures(store)) std::printf("  %-32s %s\n", f.name.c_str(), f.what.c_str());
  std::printf("the study's other figures, not drawn from a database:\n");
  for (const FigureName& f : not_redrawable_figures()) std::printf("  %s: %s\n", f.name.c_str(), f.what.c_str());
}

void run_figure(const FigureArgs& a) {
  if (a.db.empty()) bad_input("plot: give --db FILE with --figure NAME or --list, or a subcommand (plot spy)");
  const auto store = Store::open(a.db, Store::Mode::kReadOnly);
  if (a.list) return list_figures(*store);
  if (a.figure.empty()) bad_input("--db {}: name a figure with --figure (--list shows them)", a.db);
  if (a.out.empty()) bad_input("--figure {}: give --out FILE.png or FILE.pdf", a.figure);
  const NamedPath inputs[] = {{"--db", a.db}};
  refuse_output_over_inputs({"--out", a.out}, inputs);
  const std::string ext = std::filesystem::path(a.out).extension().string();
  if (ext != ".png" && ext != ".pdf") bad_input("--out {}: the name must end in .png or .pdf", a.out);
  const FigureStyle style{a.width, a.height, a.title, a.x_label, a.y_label};
  draw_study_figure(*store, a.figure, style).save(a.out);
}

}  // namespace

void register_plot(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "plot",
      "Draw a figure as a PNG or PDF file: a study figure from a database (--db F --figure NAME; --list names them), "
      "or a mask's spy plot (plot spy).\n"
      "Example: sparsa plot --db study/study.duckdb --figure ppl_by_structure --title \"\" --out ppl.pdf");
  cmd->require_subcommand(0, 1);
  auto fig = std::make_shared<FigureArgs>();
  cmd->add_option("--db", fig->db, "the study database (read only)");
  cmd->add_option("--figure", fig->figure, "the figure's name, as the study's file stem (e.g. ppl_by_structure, "
                                           "act_hist_layer3_attn_in, tsne_activations)");
  cmd->add_flag("--list", fig->list, "list the figures the database can draw (and the study's others, with why not)");
  cmd->add_option("--out", fig->out, "the figure to write (atomically): .png or .pdf (vector)");
  cmd->add_option("--title", fig->title, "figure title (default: the study's; \"\" for none)");
  cmd->add_option("--x-label", fig->x_label, "x axis label (default: the study's)");
  cmd->add_option("--y-label", fig->y_label, "y axis label (default: the study's)");
  cmd->add_option("--width", fig->width, "image width in pixels")->check(CLI::Range(200, 8000));
  cmd->add_option("--height", fig->height, "image height in pixels")->check(CLI::Range(200, 8000));
  cmd->callback([cmd, fig] {
    if (cmd->get_subcommands().empty()) run_figure(*fig);
  });
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
