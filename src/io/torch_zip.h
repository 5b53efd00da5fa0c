// torch_zip.h — the zip archive of a torch.save file, read through libzip (private to src/io).
//
// A torch.save archive holds its records under one top folder "<archive>/": data.pkl, data/<key>,
// byteorder, version. TorchZip finds that folder and reads records by their name below it.
// Every read is bounded: a record's declared size must be consistent with its compressed size
// and with a caller-given maximum before anything is allocated.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct zip;

namespace sparsa::detail {

class TorchZip {
 public:
  // Opens the archive at `path`. Error(kBadInput) for the legacy (pre-1.6) format, a file that is
  // not a zip, or a zip without "<archive>/data.pkl"; Error(kRuntime) when it cannot be read.
  static std::unique_ptr<TorchZip> open_file(const std::filesystem::path& path);
  // The same for `size` bytes at `data` (not copied: they must outlive the TorchZip).
  static std::unique_ptr<TorchZip> open_bytes(const uint8_t* data, size_t size, const std::string& name);
  ~TorchZip();
  TorchZip(const TorchZip&) = delete;
  TorchZip& operator=(const TorchZip&) = delete;

  const std::string& name() const { return name_; }  // the file, for messages
  // The bytes of "<archive>/<record>", or nullopt when absent. Error(kBadInput) when the record
  // is longer than `max_bytes`, inconsistent with its compressed size, or fails its CRC.
  std::optional<std::vector<uint8_t>> read(const std::string& record, uint64_t max_bytes) const;
  // The uncompressed size "<archive>/<record>" declares (checked against its compressed size as
  // read() does), or nullopt when absent. Reads no data.
  std::optional<uint64_t> record_size(const std::string& record) const;

 private:
  struct Entry {
    uint64_t index;  // in the zip directory
    uint64_t size;   // uncompressed bytes, consistent with the compressed size
  };
  std::optional<Entry> entry(const std::string& record) const;
  TorchZip(::zip* archive, std::string name, uint64_t archive_size);
  void find_prefix();
  ::zip* archive_;
  std::string name_;
  uint64_t archive_size_;  // bytes of the whole archive: no record can be stored in more
  std::string prefix_;  // "<archive>/"
};

}  // namespace sparsa::detail
