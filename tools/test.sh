#!/usr/bin/env bash
# Builds simdbn and runs its test suite with ctest.
#   tools/test.sh              Release build in build/
#   tools/test.sh --sanitize   ASan + UBSan build in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
extra=()
if [ "${1:-}" = "--sanitize" ]; then
  build=build-asan
  extra=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DSIMDBN_SANITIZE=ON -DSIMDBN_BUILD_BENCHMARKS=OFF)
fi

# In CI a warning fails the build.
if [ "${CI:-}" = true ]; then extra+=(-DSIMDBN_WERROR=ON); fi

bash tools/install_deps.sh
cmake -S . -B "$build" -DSIMDBN_BUILD_TESTS=ON "${extra[@]}"
cmake --build "$build" -j "$(nproc)"
# oneDNN's OpenMP runtime and ours share the cores: keep them from oversubscribing under ctest -j.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)"
