# The library, one static target per subsystem (src/<name>/), linked in the order of the layers:
#
#   core -> io -> model -> prune -> analysis, viz -> store -> runs, report -> cuda -> gpu -> study -> serve
#
# A subsystem may use the public headers (include/sparsa/) and the internal headers (src/<dep>/)
# of the subsystems it names in DEPS, directly or through them, and nothing above it. test-layers
# holds every #include in src/ to that (it reads the table this file writes, layers.txt).
# Sources: src/<name>/*.cpp, plus *.cu when the CUDA backend is built; files named *_stub.cpp are
# the CPU-only build's stand-ins and are compiled only without CUDA.

# SPARSA_UNITY compiles each subsystem as a few unity files (one compile per 16 sources: the
# headers and templates they share are compiled once), as CI's builds do. These files keep their
# own compile: their file-local helpers share names with a neighbour's.
option(SPARSA_UNITY "Unity builds of the library subsystems (faster clean builds)" OFF)
set(SPARSA_UNITY_SKIP "^(sparse_gemv_[a-z0-9]+_plan|sparse_gemv_tune|[a-z_]+_stub)\\.cpp$")
set(CMAKE_UNITY_BUILD_BATCH_SIZE 16)

function(sparsa_subsystem name)
  cmake_parse_arguments(S "" "" "DEPS;HEADERS;LIBS;CUDA_LIBS" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS "${CMAKE_SOURCE_DIR}/src/${name}/*.cpp")
  file(GLOB stubs CONFIGURE_DEPENDS "${CMAKE_SOURCE_DIR}/src/${name}/*_stub.cpp")
  if(SPARSA_WITH_CUDA)
    if(stubs)
      list(REMOVE_ITEM srcs ${stubs})
    endif()
    file(GLOB cu CONFIGURE_DEPENDS "${CMAKE_SOURCE_DIR}/src/${name}/*.cu")
    list(APPEND srcs ${cu})
  endif()
  add_library(sparsa_${name} STATIC ${srcs})
  set_target_properties(sparsa_${name} PROPERTIES POSITION_INDEPENDENT_CODE ON UNITY_BUILD ${SPARSA_UNITY})
  if(SPARSA_UNITY)
    foreach(f ${srcs})
      get_filename_component(base "${f}" NAME)
      if(base MATCHES "${SPARSA_UNITY_SKIP}")
        set_source_files_properties("${f}" PROPERTIES SKIP_UNITY_BUILD_INCLUSION ON)
      endif()
    endforeach()
  endif()
  target_include_directories(sparsa_${name} PUBLIC "${CMAKE_SOURCE_DIR}/include" PRIVATE "${CMAKE_SOURCE_DIR}/src")
  target_compile_options(sparsa_${name} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:${SPARSA_ARCH_FLAGS} -Wall -Wextra -Wno-unused-parameter>)
  target_compile_definitions(sparsa_${name} PUBLIC SPARSA_VERSION="${PROJECT_VERSION}"
    $<$<BOOL:${SPARSA_WITH_CUDA}>:SPARSA_WITH_CUDA=1>)
  set(deps "")
  foreach(d ${S_DEPS})
    list(APPEND deps sparsa_${d})
  endforeach()
  target_link_libraries(sparsa_${name} PUBLIC ${deps} ${S_LIBS})
  if(SPARSA_WITH_CUDA AND S_CUDA_LIBS)
    target_link_libraries(sparsa_${name} PUBLIC ${S_CUDA_LIBS})
  endif()
  list(JOIN S_DEPS "," deps_text)
  list(JOIN S_HEADERS "," headers_text)
  set_property(GLOBAL APPEND_STRING PROPERTY SPARSA_LAYERS_TABLE "${name}:${deps_text}:${headers_text}\n")
  set_property(GLOBAL APPEND PROPERTY SPARSA_SUBSYSTEMS sparsa_${name})
endfunction()

# HEADERS: the public headers (include/sparsa/<h>.h) whose contract the subsystem implements.
sparsa_subsystem(core HEADERS error progress tensor device parallel input_file json_file
  LIBS OpenMP::OpenMP_CXX fmt::fmt nlohmann_json::nlohmann_json Threads::Threads)
sparsa_subsystem(io DEPS core HEADERS atomic_file safetensors tokenizer torch_pt
  LIBS sparsa::pcre2 sparsa::utf8proc sparsa::zip)
sparsa_subsystem(model DEPS io HEADERS model checkpoint ops generate synth eval_set tasks
  LIBS sparsa::blas)
sparsa_subsystem(prune DEPS model HEADERS prune calibration prune_resume prune_backend)
sparsa_subsystem(analysis DEPS prune HEADERS activations bitmatrix bytes_model coactivation mask_compare)
sparsa_subsystem(viz DEPS io HEADERS viz LIBS sparsa::cairo)
# libduckdb.so exports its own copies of some libstdc++ symbols (std::stringstream's constructors):
# stdc++ goes first on the link line so that the C++ runtime's symbols bind to the C++ runtime, and
# programs that use no DuckDB function do not depend on libduckdb.so (--as-needed drops it).
sparsa_subsystem(store DEPS analysis HEADERS store LIBS stdc++ sparsa::duckdb)
sparsa_subsystem(cuda DEPS io HEADERS cuda sparse_gemv sparse_gemv_blocks sparse_gemv_2to4 sparse_gemv_masked
  CUDA_LIBS CUDA::cudart CUDA::cublas)
sparsa_subsystem(gpu DEPS cuda analysis HEADERS gpu decode
  CUDA_LIBS CUDA::cudart CUDA::cublas CUDA::cusolver ${CMAKE_DL_LIBS})
sparsa_subsystem(runs DEPS store HEADERS runs)
sparsa_subsystem(report DEPS store HEADERS report)
sparsa_subsystem(study DEPS runs gpu viz report HEADERS study study_figures)
sparsa_subsystem(serve DEPS runs viz HEADERS serve LIBS sparsa::httplib)

get_property(table GLOBAL PROPERTY SPARSA_LAYERS_TABLE)
file(WRITE "${CMAKE_BINARY_DIR}/layers.txt" "${table}")

# Everything, for the CLI, the tests and the benchmarks.
get_property(SPARSA_ALL_SUBSYSTEMS GLOBAL PROPERTY SPARSA_SUBSYSTEMS)
add_library(sparsa_lib INTERFACE)
target_link_libraries(sparsa_lib INTERFACE ${SPARSA_ALL_SUBSYSTEMS})
