# CUDA backend: AUTO turns it on when a CUDA toolkit with nvcc is found (default /usr/local/cuda).
set(SPARSA_WITH_CUDA OFF)
if(NOT SPARSA_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(SPARSA_WITH_CUDA ON)
    # Hopper (H100/H200) by default; nvcc's own default (75 for nvcc 13) lacks thread-block
    # clusters. The normal variable shadows the cache entry that enable_language() created.
    set(SPARSA_CUDA_ARCHITECTURES "90" CACHE STRING "CUDA architectures to build for (CMAKE_CUDA_ARCHITECTURES syntax)")
    set(CMAKE_CUDA_ARCHITECTURES ${SPARSA_CUDA_ARCHITECTURES})
    # CMake < 3.26 does not know nvcc's C++20 flag.
    if(NOT CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
      set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
      set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
    endif()
    set(CMAKE_CUDA_RUNTIME_LIBRARY Shared)  # one runtime: the libcudart.so of CUDA::cudart
    set(CMAKE_CUDA_STANDARD 20)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  elseif(SPARSA_CUDA STREQUAL "ON")
    message(FATAL_ERROR "SPARSA_CUDA=ON but no CUDA compiler was found")
  endif()
endif()
message(STATUS "sparsa: CUDA backend ${SPARSA_WITH_CUDA}")
