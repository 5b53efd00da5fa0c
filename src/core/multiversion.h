// SPARSA_MULTIVERSION: compile a hot function for the portable baseline (x86-64-v3, AVX2) and
// for x86-64-v4 (AVX-512); the loader picks the widest the CPU supports (GCC target_clones,
// resolved once from CPUID). Empty on other architectures, with -march=native builds and with
// SPARSA_AVX2_ONLY ones (both define SPARSA_NO_MULTIVERSION).
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(SPARSA_NO_MULTIVERSION)
#define SPARSA_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "default")))
#else
#define SPARSA_MULTIVERSION
#endif
