// ParallelFailure (sparsa/parallel.h): an exception inside an OpenMP parallel region, a failed
// allocation above all, comes out of the region as an error after it instead of std::terminate;
// and the library's parallel loops that allocate (perplexity's window loop, activation capture)
// report running out of memory as OutOfMemory saying what they were doing.
#include <gtest/gtest.h>

#include <omp.h>

#include <atomic>
#include <new>
#include <string>

#include "sparsa/activations.h"
#include "sparsa/error.h"
#include "sparsa/model.h"
#include "sparsa/parallel.h"
#include "test_support.h"

namespace sparsa {
namespace {

// A real allocation far beyond any machine's memory, where the allocator can report failure by
// throwing; under AddressSanitizer, whose allocator ends the program instead, the same
// std::bad_alloc is thrown directly.
// Volatile, so that the compiler can neither see the size nor elide the allocation.
volatile size_t g_far_too_many = size_t{1} << 60;  // floats: 4 EiB
float* volatile g_allocated = nullptr;

void allocate_far_too_much() {
#if defined(__SANITIZE_ADDRESS__)
  throw std::bad_alloc();
#else
  g_allocated = new float[g_far_too_many];
  delete[] g_allocated;
#endif
}

TEST(ParallelFailure, FailedAllocationInAParallelLoopBecomesOutOfMemoryAfterIt) {
  omp_set_num_threads(4);
  ParallelFailure failure;
  std::atomic<int> ran{0};
#pragma omp parallel for schedule(dynamic, 1)
  for (int i = 0; i < 64; ++i)
    failure.run([&] {
      ++ran;
      if (i == 3) allocate_far_too_much();
    });
  EXPECT_TRUE(failure.failed());
  try {
    failure.rethrow_if_any([] { return std::string("scoring [1048576, 1048576]"); });
    FAIL() << "nothing was rethrown";
  } catch (const OutOfMemory& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kRuntime);
    EXPECT_EQ(std::string(e.what()), "out of memory while scoring [1048576, 1048576]");
  }
}

TEST(ParallelFailure, FailedAllocationBeforeAWorksharingLoopEndsTheRegionCleanly) {
  omp_set_num_threads(4);
  ParallelFailure failure;
  std::atomic<int> ran{0};
#pragma omp parallel
  {
    failure.run([&] {
      if (omp_get_thread_num() == 0) allocate_far_too_much();
    });
#pragma omp for schedule(static)
    for (int i = 0; i < 100; ++i) failure.run([&] { ++ran; });
  }
  EXPECT_THROW(failure.rethrow_if_any([] { return std::string("x"); }), OutOfMemory);
}

TEST(ParallelFailure, OtherExceptionsKeepTheirTypeAndNothingFailingThrowsNothing) {
  ParallelFailure failure;
#pragma omp parallel for
  for (int i = 0; i < 16; ++i)
    failure.run([&] {
      if (i == 5) bad_input("value {} is wrong", i);
    });
  try {
    failure.rethrow_if_any([] { return std::string("unused"); });
    FAIL() << "nothing was rethrown";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
    EXPECT_EQ(std::string(e.what()), "value 5 is wrong");
  }
  ParallelFailure fine;
#pragma omp parallel for
  for (int i = 0; i < 16; ++i) fine.run([] {});
  EXPECT_FALSE(fine.failed());
  EXPECT_NO_THROW(fine.rethrow_if_any([] { return std::string("unused"); }));
}

TEST(ParallelFailure, DescribeOutOfMemoryWrapsSerialCode) {
  try {
    describe_out_of_memory([] { return std::string("reading a [2^40] table"); }, [] { allocate_far_too_much(); });
    FAIL() << "nothing was thrown";
  } catch (const OutOfMemory& e) {
    EXPECT_EQ(std::string(e.what()), "out of memory while reading a [2^40] table");
  }
}

// An observer that runs out of memory at window 2's first block, from whichever thread runs it.
class FailingObserver : public Observer {
 public:
  void observe(int64_t layer, ObsPoint point, float*, int64_t, int64_t) override {
    if (layer == 0 && point == ObsPoint::kAttnIn && calls_.fetch_add(1) == 2) allocate_far_too_much();
  }
  bool concurrent() const override { return true; }

 private:
  std::atomic<int> calls_{0};
};

TEST(ParallelFailure, PerplexityWindowLoopReportsOutOfMemoryWithItsSizes) {
  omp_set_num_threads(2);
  const Model m = load_model(test::repo_dir() / "models" / "tiny-llama-15m");
  TensorI32 windows({4, 16});
  for (size_t i = 0; i < windows.numel(); ++i) windows.data[i] = static_cast<int32_t>(i % 100 + 3);
  FailingObserver obs;
  try {
    perplexity(m, windows, &obs);
    FAIL() << "nothing was thrown";
  } catch (const OutOfMemory& e) {
    EXPECT_NE(std::string(e.what()).find("out of memory while computing the perplexity of 4 windows of 16 tokens"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace sparsa
