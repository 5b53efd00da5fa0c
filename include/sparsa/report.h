// sparsa/report.h — REPORT.md, the findings of a study written from its database.
//
// Contract: reads the database only (the newest run of each kind and setting is reported);
// writes the report atomically (temp file + rename). Not thread-safe on the same output path.
#pragma once

#include <filesystem>

#include "sparsa/store.h"

namespace sparsa {

// Writes `report_path` (REPORT.md) from the study database: perplexity tables, mask overlap
// between methods, activation sparsity, clustering and coherence findings, with sentences
// generated from the numbers. Figures in `figures_dir` are shown (relative links from the
// report's folder) where they exist. Error(kBadInput) when the database holds no study (no
// dense run).
void write_study_report(const Store& store, const std::filesystem::path& figures_dir,
                        const std::filesystem::path& report_path);

}  // namespace sparsa
