// sparsa/study_figures.h — the study's figures that are drawn from the rows of its database,
// by name: what `sparsa study` writes into figures/ and what `sparsa plot --db F --figure NAME`
// redraws (restyled) without rerunning anything. One drawing code path: the study calls these
// same functions.
//
// Names (the file stem the study writes):
//   ppl_by_structure             perplexity per structure, a bar per method, the dense line
//   ppl_vs_sparsity              perplexity against unstructured sparsity (>= 2 sparsities)
//   ppl_vs_act_sparsity          perplexity against activation sparsity (an acts run)
//   jaccard_<a>_<b>              Jaccard of the kept weights of methods a and b per block and
//                                component, at their lowest compared unstructured sparsity
//   act_hist_layer<L>_<point>    the activations at point (attn_in, o_in, mlp_in, down_in) of
//                                block L, with the stored thresholds marked
//   tsne_<label>                 the t-SNE embedding of a source of the co-activation analysis
//                                (label: the source's first word), coloured by its k = 8 clusters
// Figures the study draws from data the database does not hold (spy plots of masks and
// activation bitsets, the Hamming histogram) and the co-activation summaries are listed by
// not_redrawable_figures() with the reason.
//
// Errors: an unknown name → Error(kBadInput) listing the names; a known name whose rows are not
// in the database → Error(kBadInput) saying what is missing; a collapsed t-SNE embedding →
// Error(kBadInput) (tsne_collapsed). Thread safety: as Store::query_json (concurrent calls are
// fine).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sparsa/store.h"
#include "sparsa/viz.h"

namespace sparsa {

// Overrides of a figure's defaults; unset = the default.
struct FigureStyle {
  int width = 1000, height = 800;  // pixels
  std::optional<std::string> title, x_label, y_label;
};

// The runs a figure is drawn from; unset / empty = the newest complete ones in the database.
struct FigureRuns {
  std::optional<int64_t> dense_run, acts_run, analysis_run;
  std::vector<int64_t> prune_runs;  // empty: the newest evaluated prune run per (method, structure)
};

struct FigureName {
  std::string name;  // e.g. "act_hist_layer3_attn_in"
  std::string what;  // one line
};

// The figures this database can draw (in the order above), each with its description.
std::vector<FigureName> drawable_figures(const Store& store, const FigureRuns& runs = {});
// Name patterns of the study's other figures, each with why the database cannot redraw it.
std::vector<FigureName> not_redrawable_figures();

// Figure `name` from the rows of `store`.
viz::Image draw_study_figure(const Store& store, const std::string& name, const FigureStyle& style = {},
                             const FigureRuns& runs = {});

// The t-SNE figure of one source (also drawn by the study from the embedding it just computed).
// x, y, cluster: [n]; Error(kBadInput) when the embedding is collapsed (tsne_collapsed).
struct TsneFigure {
  std::string label;  // e.g. "wanda", "activations"
  int k = 0;          // the clustering's k
  std::vector<double> x, y;
  std::vector<int> cluster;
};
viz::Image tsne_figure(const TsneFigure& t, const FigureStyle& style = {});

}  // namespace sparsa
