#include "sparsa/atomic_file.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "io/utf8.h"
#include "sparsa/error.h"
#include "sparsa/input_file.h"

namespace sparsa {

namespace {

// Why `path` cannot be written, in the user's terms (never the temporary file's name).
[[noreturn]] void fail_create(const std::filesystem::path& path, int err) {
  const std::filesystem::path parent = path.parent_path().empty() ? "." : path.parent_path();
  std::error_code ec;
  if (err == ENOENT && !std::filesystem::is_directory(parent, ec))
    runtime_failure("{}: cannot write: the folder {} does not exist", path.string(), parent.string());
  if (err == ENOTDIR) runtime_failure("{}: cannot write: {} is not a folder", path.string(), parent.string());
  runtime_failure("{}: cannot write: {}", path.string(), std::strerror(err));
}

}  // namespace

AtomicFile::AtomicFile(std::filesystem::path path) : path_(std::move(path)) {
  std::error_code ec;
  const std::filesystem::file_status st = std::filesystem::status(path_, ec);
  if (std::filesystem::is_directory(st)) bad_input("{}: is a folder; name a file to write", path_.string());
  // The rename would replace it: a device such as /dev/null, a FIFO or a socket is never a target.
  if (std::filesystem::exists(st) && !std::filesystem::is_regular_file(st))
    bad_input("{}: exists and is not a regular file (a device, FIFO or socket); name a file to write", path_.string());
  tmp_ = path_;
  tmp_ += ".tmp-" + std::to_string(getpid());
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_) fail_create(path_, errno);
}

AtomicFile::~AtomicFile() {
  if (f_) {
    std::fclose(f_);
    std::remove(tmp_.c_str());
  }
}

void AtomicFile::write(const void* data, size_t n) {
  if (n && std::fwrite(data, 1, n, f_) != n) runtime_failure("{}: write failed: {}", path_.string(), std::strerror(errno));
}

void AtomicFile::commit() {
  const bool ok = std::fflush(f_) == 0 && fsync(fileno(f_)) == 0;
  const int err = errno;
  std::fclose(f_);
  f_ = nullptr;
  if (!ok) {
    std::remove(tmp_.c_str());
    runtime_failure("{}: write failed: {}", path_.string(), std::strerror(err));
  }
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int e = errno;
    std::remove(tmp_.c_str());
    runtime_failure("{}: cannot rename the finished file into place: {}", path_.string(), std::strerror(e));
  }
}

namespace {

namespace fs = std::filesystem;

// Removes "<dir>.tmp-<pid>" folders left by runs that were killed (their pid no longer exists).
void remove_stale_staging(const fs::path& dir) {
  const std::string prefix = dir.filename().string() + ".tmp-";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir.parent_path(), ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) != 0 || !e.is_directory()) continue;
    const std::string pid = name.substr(prefix.size());
    if (pid.empty() || pid.size() > 9 || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (kill(static_cast<pid_t>(std::stol(pid)), 0) != 0 && errno == ESRCH) {
      std::error_code rm;
      fs::remove_all(e.path(), rm);
    }
  }
}

}  // namespace

StagingDir::StagingDir(fs::path dir) : dir_(std::move(dir)) {
  tmp_ = dir_;
  tmp_ += ".tmp-" + std::to_string(getpid());
  std::error_code ec;
  fs::create_directories(dir_.parent_path(), ec);
  remove_stale_staging(dir_);
  fs::remove_all(tmp_, ec);
  fs::create_directories(tmp_, ec);
  if (ec) runtime_failure("{}: cannot create the folder: {}", dir_.string(), ec.message());
}

StagingDir::~StagingDir() {
  if (keep_) return;
  std::error_code ec;
  fs::remove_all(tmp_, ec);
}

void StagingDir::commit(bool replace, std::string_view marker) {
  if (is_nonempty_folder(dir_) && !replace) keep_and_fail("the folder was filled by another process meanwhile");
  if (is_nonempty_folder(dir_) && !marker.empty() && !is_regular_file_path(dir_ / marker))
    keep_and_fail(fmt::format("the folder holds files but no {}, so it is not replaced", marker));
  std::error_code ec;
  fs::remove_all(dir_, ec);
  if (!ec) fs::rename(tmp_, dir_, ec);
  if (ec) keep_and_fail(fmt::format("cannot move the finished folder into place: {}", ec.message()));
  keep_ = true;
}

void StagingDir::keep_and_fail(const std::string& why) {
  keep_ = true;
  runtime_failure("{}: {}; the result is left in {}", dir_.string(), why, tmp_.string());
}

bool path_within(const fs::path& inner, const fs::path& outer) {
  std::error_code ec;
  fs::path a = fs::weakly_canonical(fs::absolute(inner), ec);
  if (ec) a = fs::absolute(inner).lexically_normal();
  fs::path b = fs::weakly_canonical(fs::absolute(outer), ec);
  if (ec) b = fs::absolute(outer).lexically_normal();
  if (!b.has_filename()) b = b.parent_path();  // "dir/" -> "dir"
  if (!a.has_filename()) a = a.parent_path();
  return std::mismatch(b.begin(), b.end(), a.begin(), a.end()).first == b.end();
}

namespace {

// Whether `input` lies inside a sibling of `output` written on the way to it.
bool within_output_siblings(const fs::path& input, const fs::path& output) {
  std::error_code ec;
  const fs::path out = fs::weakly_canonical(fs::absolute(output), ec);
  if (ec || !out.has_filename() || !path_within(input, out.parent_path())) return false;
  const fs::path in = fs::weakly_canonical(fs::absolute(input), ec);
  if (ec) return false;
  const std::string first = in.lexically_relative(out.parent_path()).begin()->string();
  const std::string name = out.filename().string();
  return first == name + ".partial" || first.starts_with(name + ".tmp-") || first.starts_with(name + ".old-");
}

}  // namespace

void refuse_output_over_inputs(const NamedPath& output, std::span<const NamedPath> inputs) {
  for (const NamedPath& in : inputs) {
    if (in.path.empty()) continue;
    if (path_within(in.path, output.path) || within_output_siblings(in.path, output.path))
      bad_input("{} {}: would delete or overwrite {} {}, an input of this command; choose another {} or move the input",
                output.what, output.path.string(), in.what, in.path.string(), output.what);
  }
}

void check_folder_replaceable(const NamedPath& dir, std::string_view marker) {
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(dir.path, ec);
  if (ec || !fs::exists(st)) return;
  if (!fs::is_directory(fs::status(dir.path, ec)))
    bad_input("{} {}: exists and is not a folder", dir.what, dir.path.string());
  if (fs::is_empty(dir.path, ec)) return;
  if (!fs::is_regular_file(dir.path / marker, ec))
    bad_input("{} {}: holds files but no {}, so it is not an output of this command and is not deleted; choose a new "
              "or empty folder", dir.what, dir.path.string(), marker);
}

void create_output_folder(const fs::path& dir) {
  std::error_code ec;
  for (fs::path p = dir; !p.empty(); p = p.parent_path()) {
    const fs::file_status st = fs::status(p, ec);
    if (fs::exists(st) && !fs::is_directory(st)) bad_input("{}: exists and is not a folder", p.string());
    if (fs::exists(st) || p == p.parent_path()) break;
  }
  fs::create_directories(dir, ec);
  if (ec) runtime_failure("{}: cannot create the folder: {}", dir.string(), ec.message());
}

void write_file_atomic(const std::filesystem::path& path, std::string_view contents) {
  AtomicFile f(path);
  f.write(contents);
  f.commit();
}

std::string read_file_contents(const std::filesystem::path& path) {
  return InputFile(path).read_all();
}

std::string read_utf8_file(const std::filesystem::path& path) {
  std::string text = read_file_contents(path);
  if (const size_t bad = utf8::first_invalid(text); bad != std::string::npos)
    bad_input("{}: not valid UTF-8 at byte offset {}", path.string(), bad);
  return text;
}

}  // namespace sparsa
