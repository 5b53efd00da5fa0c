#include "io/torch_zip.h"

#include <zip.h>

#include <algorithm>
#include <cstring>

#include "sparsa/error.h"
#include "sparsa/input_file.h"

namespace sparsa::detail {
namespace {

// Deflate cannot expand data by more than ~1032:1; a record claiming more is a zip bomb or corrupt.
constexpr uint64_t kMaxDeflateRatio = 1100;

// Checks the first bytes of a would-be archive: the legacy torch.save format is a bare pickle
// stream (it starts with the PROTO opcode 0x80), and every zip starts with "PK".
void check_signature(const uint8_t* head, size_t n, const std::string& name) {
  if (n >= 1 && head[0] == 0x80)
    bad_input("{}: legacy torch.save format (before PyTorch 1.6) is not supported; re-save it with a current "
              "PyTorch: torch.save(torch.load(path), path)", name);
  if (n < 4 || head[0] != 'P' || head[1] != 'K')
    bad_input("{}: not a torch.save file (no zip archive signature)", name);
}

std::string zip_message(zip_error_t* error) {
  std::string s = zip_error_strerror(error);
  zip_error_fini(error);
  return s;
}

}  // namespace

TorchZip::TorchZip(::zip* archive, std::string name, uint64_t archive_size)
    : archive_(archive), name_(std::move(name)), archive_size_(archive_size) {}

TorchZip::~TorchZip() { zip_discard(archive_); }

std::unique_ptr<TorchZip> TorchZip::open_file(const std::filesystem::path& path) {
  InputFile in(path);
  uint8_t head[4] = {};
  const size_t n = static_cast<size_t>(std::min<uint64_t>(in.size(), sizeof head));
  in.read_at(0, head, n);
  check_signature(head, n, path.string());
  int code = 0;
  ::zip* archive = zip_fdopen(in.fd(), ZIP_CHECKCONS, &code);  // reads through its own dup of the descriptor
  if (archive == nullptr) {
    zip_error_t error;
    zip_error_init_with_code(&error, code);
    bad_input("{}: not a readable zip archive: {}", path.string(), zip_message(&error));
  }
  in.release();  // zip_fdopen closed it on success
  std::unique_ptr<TorchZip> z(new TorchZip(archive, path.string(), in.size()));
  z->find_prefix();
  return z;
}

std::unique_ptr<TorchZip> TorchZip::open_bytes(const uint8_t* data, size_t size, const std::string& name) {
  check_signature(data, size, name);
  zip_error_t error;
  zip_error_init(&error);
  zip_source_t* source = zip_source_buffer_create(data, size, 0, &error);
  if (source == nullptr) runtime_failure("{}: {}", name, zip_message(&error));
  ::zip* archive = zip_open_from_source(source, ZIP_RDONLY | ZIP_CHECKCONS, &error);
  if (archive == nullptr) {
    zip_source_free(source);
    bad_input("{}: not a readable zip archive: {}", name, zip_message(&error));
  }
  zip_error_fini(&error);
  std::unique_ptr<TorchZip> z(new TorchZip(archive, name, size));
  z->find_prefix();
  return z;
}

// The archive folder is the first record's top folder, as torch's own reader takes it.
void TorchZip::find_prefix() {
  if (zip_get_num_entries(archive_, 0) < 1) bad_input("{}: empty zip archive, not a torch.save file", name_);
  const char* first = zip_get_name(archive_, 0, ZIP_FL_ENC_RAW);
  const char* slash = first != nullptr ? std::strchr(first, '/') : nullptr;
  if (slash == nullptr || slash == first)
    bad_input("{}: zip archive without a top folder, not a torch.save file", name_);
  prefix_.assign(first, static_cast<size_t>(slash - first) + 1);
  if (zip_name_locate(archive_, (prefix_ + "data.pkl").c_str(), ZIP_FL_ENC_RAW) < 0)
    bad_input("{}: zip archive without {}data.pkl, not a torch.save file", name_, prefix_);
}

std::optional<TorchZip::Entry> TorchZip::entry(const std::string& record) const {
  const std::string full = prefix_ + record;
  const zip_int64_t index = zip_name_locate(archive_, full.c_str(), ZIP_FL_ENC_RAW);
  if (index < 0) return std::nullopt;
  zip_stat_t st;
  zip_stat_init(&st);
  if (zip_stat_index(archive_, static_cast<zip_uint64_t>(index), 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE) ||
      !(st.valid & ZIP_STAT_COMP_SIZE) || !(st.valid & ZIP_STAT_COMP_METHOD))
    bad_input("{}: record {}: unreadable zip directory entry", name_, full);
  const bool stored = st.comp_method == ZIP_CM_STORE;
  const bool consistent = st.comp_size <= archive_size_ && (stored ? st.size == st.comp_size
                                                                   : st.size / kMaxDeflateRatio <= st.comp_size);
  if (!consistent)
    bad_input("{}: record {}: declared size {} is inconsistent with its compressed size {}", name_, full, st.size,
              st.comp_size);
  return Entry{static_cast<uint64_t>(index), st.size};
}

std::optional<uint64_t> TorchZip::record_size(const std::string& record) const {
  const std::optional<Entry> e = entry(record);
  return e ? std::optional<uint64_t>(e->size) : std::nullopt;
}

std::optional<std::vector<uint8_t>> TorchZip::read(const std::string& record, uint64_t max_bytes) const {
  const std::optional<Entry> e = entry(record);
  if (!e) return std::nullopt;
  const std::string full = prefix_ + record;
  const uint64_t size = e->size;
  if (size > max_bytes) bad_input("{}: record {}: {} bytes, more than the limit of {}", name_, full, size, max_bytes);

  zip_file_t* f = zip_fopen_index(archive_, e->index, 0);
  if (f == nullptr) bad_input("{}: record {}: {}", name_, full, zip_strerror(archive_));
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  uint64_t got = 0;
  while (got < size) {
    const zip_int64_t n = zip_fread(f, bytes.data() + got, size - got);
    if (n <= 0) break;
    got += static_cast<uint64_t>(n);
  }
  uint8_t extra = 0;  // reading past the end makes libzip verify the CRC
  const zip_int64_t tail = got == size ? zip_fread(f, &extra, 1) : 0;
  const bool failed = got != size || tail != 0;
  const std::string problem = failed ? zip_file_strerror(f) : std::string();
  zip_fclose(f);
  if (failed)
    bad_input("{}: record {}: corrupt data ({} of {} bytes read{}{})", name_, full, got, size,
              problem.empty() ? "" : ": ", problem);
  return bytes;
}

}  // namespace sparsa::detail
