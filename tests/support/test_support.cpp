#include "test_support.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <stdexcept>

namespace sparsa::test {

std::filesystem::path repo_dir() { return SPARSA_SOURCE_DIR; }

std::filesystem::path shared_dir() {
  return std::filesystem::weakly_canonical(repo_dir() / ".." / "shared");
}

bool shared_available() { return std::filesystem::exists(shared_dir() / "golden" / "README.md"); }

bool quick_scope() {
  const char* scope = std::getenv("SPARSA_TEST_SCOPE");
  return scope && std::string(scope) == "quick";
}

bool one_line(const std::string& s) { return !s.empty() && s.find('\n') == s.size() - 1; }

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::filesystem::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + p.string());
}

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  std::random_device rd;
  path_ = std::filesystem::temp_directory_path() /
          ("sparsa-test-" + std::to_string(getpid()) + "-" + std::to_string(counter++) + "-" +
           std::to_string(rd()));
  std::filesystem::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

namespace {

std::vector<std::string> sparsa_argv(const std::vector<std::string>& args) {
  std::vector<std::string> argv{SPARSA_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

// Forks and execs sparsa with stdin from /dev/null and stdout / stderr into the given files;
// `limits` applies to the child only.
pid_t spawn_sparsa(const std::vector<std::string>& args, const char* out_path, const char* err_path,
                   const ProcessLimits& limits) {
  std::vector<std::string> argv_s = sparsa_argv(args);
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("cannot fork");
  if (pid == 0) {
    const int in = open("/dev/null", O_RDONLY);
    const int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0 || err < 0) _exit(126);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    if (limits.max_file_bytes > 0) {
      signal(SIGXFSZ, SIG_IGN);  // stays ignored across exec: writes past the limit fail with EFBIG
      const rlimit lim{limits.max_file_bytes, limits.max_file_bytes};
      if (setrlimit(RLIMIT_FSIZE, &lim) != 0) _exit(126);
    }
    if (limits.timeout_seconds > 0) alarm(limits.timeout_seconds);  // a pending alarm survives exec
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

CommandResult wait_and_collect(pid_t pid, const std::filesystem::path& out_path, const std::filesystem::path& err_path) {
  int status = 0;
  waitpid(pid, &status, 0);
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_file(out_path);
  r.err = read_file(err_path);
  return r;
}

}  // namespace

CommandResult run_sparsa_limited(const std::vector<std::string>& args, const ProcessLimits& limits) {
  // The captured output lives outside the limit's reach only in size: keep it small.
  TempDir tmp;
  const auto out_path = tmp / "stdout";
  const auto err_path = tmp / "stderr";
  return wait_and_collect(spawn_sparsa(args, out_path.c_str(), err_path.c_str(), limits), out_path, err_path);
}

CommandResult run_sparsa(const std::vector<std::string>& args) { return run_sparsa_limited(args, ProcessLimits{}); }

pid_t start_sparsa(const std::vector<std::string>& args) {
  return spawn_sparsa(args, "/dev/null", "/dev/null", ProcessLimits{});
}

double relative_l2_error(const std::vector<float>& want, const std::vector<float>& got) {
  SPARSA_ASSERT(want.size() == got.size());
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = static_cast<double>(got[i]) - want[i];
    num += d * d;
    den += static_cast<double>(want[i]) * want[i];
  }
  if (std::isnan(num)) return std::numeric_limits<double>::infinity();
  return den == 0.0 ? (num == 0.0 ? 0.0 : std::numeric_limits<double>::infinity()) : std::sqrt(num / den);
}

}  // namespace sparsa::test
