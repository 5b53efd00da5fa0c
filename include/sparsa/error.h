// sparsa/error.h — the one error type of the library, and how it maps to exit codes.
//
// Contract: expected failures (a bad file, an unsupported dtype, a bad flag value, a DuckDB
// error) throw sparsa::Error; the CLI catches it at its boundary, prints what() as one line
// on stderr and exits with exit_code(). Programmer errors use SPARSA_ASSERT (file:line, abort).
// Messages name the file / field at fault and say what is wrong, on a single line.
#pragma once

#include <fmt/format.h>

#include <new>
#include <stdexcept>
#include <string>

namespace sparsa {

enum class ErrorKind {
  kBadInput,  // the user's input is wrong (file, flag, field): exit code 2
  kRuntime,   // the input is fine but the work failed (I/O, out of memory, GPU): exit code 1
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, std::string message) : std::runtime_error(std::move(message)), kind_(kind) {}
  ErrorKind kind() const { return kind_; }
  int exit_code() const { return kind_ == ErrorKind::kBadInput ? 2 : 1; }

 private:
  ErrorKind kind_;
};

// Throws Error(kBadInput, formatted message).
template <typename... Args>
[[noreturn]] void bad_input(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(ErrorKind::kBadInput, fmt::format(f, std::forward<Args>(args)...));
}

// Throws Error(kRuntime, formatted message).
template <typename... Args>
[[noreturn]] void runtime_failure(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(ErrorKind::kRuntime, fmt::format(f, std::forward<Args>(args)...));
}

// Runs f() and returns what it returns; a std::bad_alloc thrown inside becomes
// Error(kRuntime, "out of memory while <what>"), so the message names the file / tensor / field
// being loaded. `what` is built only on failure: pass a callable returning the description.
template <typename Describe, typename F>
decltype(auto) naming_out_of_memory(Describe&& describe, F&& f) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    runtime_failure("out of memory while {}", describe());
  }
}

[[noreturn]] void assert_fail(const char* expr, const char* file, int line);

}  // namespace sparsa

// Checks an invariant of the program itself (never user input). Active in every build type.
#define SPARSA_ASSERT(expr) \
  ((expr) ? (void)0 : ::sparsa::assert_fail(#expr, __FILE__, __LINE__))
