// Importing the Python study's per-matrix .pt files (layer{N}-{component}-{i}-{j}-{sparsity}.pt).
#include <algorithm>
#include <charconv>
#include <cmath>
#include <tuple>

#include "sparsa/error.h"
#include "sparsa/progress.h"
#include "sparsa/torch_pt.h"

namespace sparsa {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kPattern = "layer{N}-{component}-{i}-{j}-{sparsity}.pt";

template <typename T>
bool parse_number(std::string_view s, T& out) {
  if (s.empty()) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

bool valid_component(std::string_view c) {
  if (c.empty() || c.front() == '.' || c.back() == '.') return false;
  return std::all_of(c.begin(), c.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.';
  });
}

// f() materialising the file's tensor; its errors (running out of memory too) name the file.
template <typename F>
auto materialise(const ImportedMatrix& m, F&& f) {
  return naming_out_of_memory([&] { return fmt::format("reading the tensor of {}", m.file.string()); }, [&] {
    try {
      return f();
    } catch (const Error& e) {
      throw Error(e.kind(), fmt::format("{}: {}", m.file.string(), e.what()));
    }
  });
}

// The mask of a file's tensor: a bool / 0-1 uint8 mask as it is, floating weights by their zeros.
void read_matrix(ImportedMatrix& m) {
  const PtValue v = load_torch_file(m.file);
  if (!v.is<PtTensor>()) bad_input("{}: holds a {}, expected a mask or weight tensor", m.file.string(), v.type_name());
  const PtTensor& t = v.as<PtTensor>();
  if (t.shape.size() != 2)
    bad_input("{}: tensor of shape {}, expected a matrix [out, in]", m.file.string(), shape_string(t.shape));
  // The tensor is materialised (which bounds a broadcast view) before the mask is allocated.
  switch (t.dtype) {
    case DType::BOOL: case DType::U8: {
      std::vector<uint8_t> pruned = materialise(m, [&] { return t.to_u8().data; });
      if (std::any_of(pruned.begin(), pruned.end(), [](uint8_t b) { return b > 1; }))
        bad_input("{}: uint8 tensor holds values other than 0 and 1, so it is not a mask", m.file.string());
      m.mask.rows = t.shape[0];
      m.mask.cols = t.shape[1];
      m.mask.pruned = std::move(pruned);
      return;
    }
    case DType::F64: case DType::F32: case DType::F16: case DType::BF16: {
      m.from_weights = true;
      m.weights = materialise(m, [&] { return t.to_f32(); });
      m.mask = Mask(t.shape[0], t.shape[1]);
      for (size_t k = 0; k < m.weights.data.size(); ++k) m.mask.pruned[k] = m.weights.data[k] == 0.0f ? 1 : 0;
      return;
    }
    default:
      bad_input("{}: a {} tensor is neither a mask (bool / uint8) nor weights (floating point)", m.file.string(),
                dtype_name(t.dtype));
  }
}

}  // namespace

ImportedMatrix parse_study_file_name(const std::string& file_name) {
  const auto fail = [&] { bad_input("{}: file name does not match {}", file_name, kPattern); };
  std::string_view s = file_name;
  if (!s.ends_with(".pt")) fail();
  s.remove_suffix(3);
  std::string_view parts[3];  // sparsity, j, i: the last three '-' separated fields
  for (auto& part : parts) {
    const size_t dash = s.rfind('-');
    if (dash == std::string_view::npos) fail();
    part = s.substr(dash + 1);
    s = s.substr(0, dash);
  }
  ImportedMatrix m;
  if (!s.starts_with("layer")) fail();
  s.remove_prefix(5);
  const size_t dash = s.find('-');
  if (dash == std::string_view::npos || !parse_number(s.substr(0, dash), m.layer) || m.layer < 0) fail();
  const std::string_view component = s.substr(dash + 1);
  if (!valid_component(component)) fail();
  if (!parse_number(parts[2], m.i) || !parse_number(parts[1], m.j) || m.i < 0 || m.j < 0) fail();
  if (!parse_number(parts[0], m.sparsity_value) || !(m.sparsity_value >= 0.0 && m.sparsity_value <= 1.0)) fail();
  m.component = component;
  m.sparsity = parts[0];
  m.hf_name = "model.layers." + std::to_string(m.layer) + "." + m.component;
  return m;
}

std::vector<ImportedMatrix> import_pt_folder(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) bad_input("{}: not a folder", dir.string());
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".pt" && e.is_regular_file()) files.push_back(e.path());
  if (ec) runtime_failure("{}: cannot list the folder: {}", dir.string(), ec.message());
  if (files.empty()) bad_input("{}: no .pt files (expected files named {})", dir.string(), kPattern);
  std::sort(files.begin(), files.end());

  std::vector<ImportedMatrix> out;
  Progress bar("import", static_cast<int64_t>(files.size()));
  for (const auto& f : files) {
    ImportedMatrix m = parse_study_file_name(f.filename().string());
    m.file = f;
    read_matrix(m);
    out.push_back(std::move(m));
    bar.update(static_cast<int64_t>(out.size()));
  }
  bar.finish();
  std::sort(out.begin(), out.end(), [](const ImportedMatrix& a, const ImportedMatrix& b) {
    return std::tie(a.sparsity_value, a.layer, a.component, a.i, a.j) <
           std::tie(b.sparsity_value, b.layer, b.component, b.i, b.j);
  });
  return out;
}

}  // namespace sparsa
