# The dashboard's files (`sparsa serve`), embedded into the library at build time: the pages in
# web/ (served under /), the chart library that scripts/fetch-web.sh puts in third_party/web/
# (served under /vendor/) and the benchmark notes bench/RESULTS.md (/bench/RESULTS.md, shown on
# the benchmarks page unless `sparsa serve --bench-results FILE` names another file), so an
# installed binary needs none of the source tree. Regenerated when any of them changes.
set(SPARSA_WEB_VENDOR_DIR "${CMAKE_SOURCE_DIR}/third_party/web" CACHE PATH "Folder with vega.min.js, vega-lite.min.js, vega-embed.min.js")
set(SPARSA_WEB_VENDOR_FILES vega.min.js vega-lite.min.js vega-embed.min.js LICENSE.vega LICENSE.vega-lite LICENSE.vega-embed)
foreach(f ${SPARSA_WEB_VENDOR_FILES})
  if(NOT EXISTS "${SPARSA_WEB_VENDOR_DIR}/${f}")
    message(FATAL_ERROR "${SPARSA_WEB_VENDOR_DIR}/${f} not found: run scripts/fetch-web.sh (or scripts/setup.sh)")
  endif()
endforeach()

file(GLOB_RECURSE SPARSA_WEB_PAGES CONFIGURE_DEPENDS RELATIVE "${CMAKE_SOURCE_DIR}/web" "${CMAKE_SOURCE_DIR}/web/*")
set(entries "")
set(inputs "")
foreach(f ${SPARSA_WEB_PAGES})
  list(APPEND entries "/${f}=${CMAKE_SOURCE_DIR}/web/${f}")
  list(APPEND inputs "${CMAKE_SOURCE_DIR}/web/${f}")
endforeach()
foreach(f ${SPARSA_WEB_VENDOR_FILES})
  list(APPEND entries "/vendor/${f}=${SPARSA_WEB_VENDOR_DIR}/${f}")
  list(APPEND inputs "${SPARSA_WEB_VENDOR_DIR}/${f}")
endforeach()

list(APPEND entries "/bench/RESULTS.md=${CMAKE_SOURCE_DIR}/bench/RESULTS.md")
list(APPEND inputs "${CMAKE_SOURCE_DIR}/bench/RESULTS.md")

set(SPARSA_WEB_ASSETS_CPP "${CMAKE_BINARY_DIR}/generated/web_assets.cpp")
list(JOIN entries "|" entries_arg)
add_custom_command(OUTPUT "${SPARSA_WEB_ASSETS_CPP}"
  COMMAND ${CMAKE_COMMAND} "-DOUT=${SPARSA_WEB_ASSETS_CPP}" "-DFILES=${entries_arg}"
          -P "${CMAKE_SOURCE_DIR}/cmake/embed_files.cmake"
  DEPENDS ${inputs} "${CMAKE_SOURCE_DIR}/cmake/embed_files.cmake"
  COMMENT "Embedding the dashboard's web files"
  VERBATIM)
target_sources(sparsa_serve PRIVATE "${SPARSA_WEB_ASSETS_CPP}")
