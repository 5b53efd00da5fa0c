#include "sparsa/input_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "sparsa/error.h"

namespace sparsa {
namespace fs = std::filesystem;

namespace {

// What a non-regular file is, for "<path>: <kind>, not a regular file".
const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "a special file";
}

[[noreturn]] void fail_open(const fs::path& path, int err) {
  if (err == ENOENT) bad_input("{}: no such file", path.string());
  struct stat st {};
  if (stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))  // a socket cannot be opened at all
    bad_input("{}: {}, not a regular file", path.string(), file_kind(st.st_mode));
  bad_input("{}: cannot open: {}", path.string(), std::strerror(err));
}

int open_regular(const fs::path& path, uint64_t& size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) fail_open(path, errno);
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    bad_input("{}: cannot read its status: {}", path.string(), std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    bad_input("{}: {}, not a regular file", path.string(), file_kind(st.st_mode));
  }
  // Regular files never block; clear the flag so reads behave as usual.
  const int flags = fcntl(fd, F_GETFL);
  if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  size = static_cast<uint64_t>(st.st_size);
  return fd;
}

}  // namespace

InputFile::InputFile(fs::path path) : path_(std::move(path)) { fd_ = open_regular(path_, size_); }

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

int InputFile::release() {
  const int fd = fd_;
  fd_ = -1;
  return fd;
}

void InputFile::read_at(uint64_t offset, void* dst, size_t n) const {
  auto* out = static_cast<char*>(dst);
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::pread(fd_, out + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) runtime_failure("{}: read failed: {}", path_.string(), std::strerror(errno));
    if (r == 0)
      runtime_failure("{}: the file ended after {} bytes while reading {} at offset {} (did it change meanwhile?)",
                      path_.string(), offset + got, n, offset);
    got += static_cast<size_t>(r);
  }
}

std::string InputFile::read_all(uint64_t max_bytes, std::string_view what) const {
  if (size_ > max_bytes)
    bad_input("{}: {} bytes, more than the limit of {} for a {}", path_.string(), size_, max_bytes, what);
  std::string out = naming_out_of_memory([&] { return fmt::format("reading {} ({} bytes)", path_.string(), size_); },
                                        [&] { return std::string(static_cast<size_t>(size_), '\0'); });
  read_at(0, out.data(), out.size());
  return out;
}

void check_regular_if_exists(const fs::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return;
  uint64_t size = 0;
  ::close(open_regular(path, size));
}

namespace {

// stat(2) of `path`: false when the path names nothing (see path_exists), else fills `st`.
bool stat_path(const fs::path& path, struct stat& st) {
  if (::stat(path.c_str(), &st) == 0) return true;
  const int err = errno;
  if (err == ENOENT || err == ENOTDIR || err == ENAMETOOLONG || err == ELOOP) return false;
  bad_input("{}: cannot check it: {}", path.string(), std::strerror(err));
}

}  // namespace

bool path_exists(const fs::path& path) {
  struct stat st {};
  return stat_path(path, st);
}

bool is_folder(const fs::path& path) {
  struct stat st {};
  return stat_path(path, st) && S_ISDIR(st.st_mode);
}

bool is_regular_file_path(const fs::path& path) {
  struct stat st {};
  return stat_path(path, st) && S_ISREG(st.st_mode);
}

bool is_nonempty_folder(const fs::path& path) {
  if (!is_folder(path)) return false;
  std::error_code ec;
  const bool empty = fs::is_empty(path, ec);
  if (ec) bad_input("{}: cannot list the folder: {}", path.string(), ec.message());
  return !empty;
}

}  // namespace sparsa
