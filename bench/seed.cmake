# The benchmarks against the earlier service and against Redis / webdis
# (bench/README.md): bench_seed, bench_memory; run_memory.sh, run_http.sh
# and plot.sh drive them. Included from bench/CMakeLists.txt.

add_library(bench_seed_common STATIC bench_env.c bench_cluster.c)
target_link_libraries(bench_seed_common PUBLIC cart_core)
target_compile_definitions(bench_seed_common PUBLIC _GNU_SOURCE
    BENCH_BUILD_TYPE="${CMAKE_BUILD_TYPE}"
    BENCH_SOURCE_DIR="${CMAKE_CURRENT_SOURCE_DIR}")

add_executable(bench_seed bench_seed.c)
target_link_libraries(bench_seed PRIVATE bench_seed_common)

add_executable(bench_memory bench_memory.c)
target_link_libraries(bench_memory PRIVATE bench_seed_common)
