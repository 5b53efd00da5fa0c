#include "sparsa/error.h"

#include <cstdio>
#include <cstdlib>

namespace sparsa {

void assert_fail(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "sparsa: internal error: assertion `%s` failed at %s:%d\n", expr, file, line);
  std::abort();
}

}  // namespace sparsa
