#!/usr/bin/env bash
# The main job: install what is missing, build, benchmark simdbn against oneDNN and a copy of the
# same bytes, and write the report (markdown + PNG) next to the raw JSON.
#
# Usage: tools/bench.sh [--quick] [--build-dir DIR] [--out DIR] [-- simdbn_bench flags...]
#   --quick       smoke test for CI: 4 shapes, 1 round, tiny min time (well under a minute)
#   --build-dir   CMake build directory (default: build)
#   --out         results directory (default: bench-results, bench-results/quick with --quick)
# Relative paths are relative to the repository root. Environment: SIMDBN_CMAKE_ARGS (extra
# configure arguments); for the full run BENCH_BUDGET (seconds of benchmarking to aim for,
# default 660), BENCH_ROUNDS (default 5, down to 3 when round 1 shows the budget cannot hold 5)
# and BENCH_MIN_TIME (seconds per case, default: from the budget). Fewer cases: tools/bench.sh -- --benchmark_filter='^(Copy|Inference)/'.
# Other shapes than the fixed list, named as the cases name them (the report labels them "custom"):
#   tools/bench.sh -- --simdbn_shapes=N8_C300_S17x17,N64_C1000_S1,N2_C64_S8x28x28
#
# Noise control: the binary runs once per round, each round in a freshly shuffled case order
# (--benchmark_enable_random_interleaving), so simdbn, oneDNN and the copy of one shape see the
# same machine conditions; the report takes the median over rounds. Separate rounds also give
# progress that Google Benchmark's in-process repetitions (reported only when all are done) do not.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
quick=0
build_dir=build
out_dir=
extra=()
while (($#)); do
  case "$1" in
    --quick) quick=1 ;;
    --build-dir) build_dir="$2"; shift ;;
    --out) out_dir="$2"; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0"; exit 0 ;;  # the header comment, whole
    *) echo "bench.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if ((quick)); then
  out_dir="${out_dir:-bench-results/quick}"
  rounds=1; shape_flags=(--simdbn_shapes=quick)
else
  out_dir="${out_dir:-bench-results}"
  rounds="${BENCH_ROUNDS:-5}"; shape_flags=()
fi
cd "$root"
start=$SECONDS

# --- Dependencies (Debian 12): the project's one list, installed only where missing. ---
bash tools/install_deps.sh

# --- Build (Release; only the benchmark and what it links). ---
echo "==> Building simdbn_bench in $build_dir"
# A fresh build directory gets the benchmark only (no GoogleTest needed, and a test tree in flux
# cannot block the main job); an existing one keeps the options its owner chose.
configure_args=(-DCMAKE_BUILD_TYPE=Release -DSIMDBN_BUILD_BENCHMARKS=ON)
[[ -f "$build_dir/CMakeCache.txt" ]] || configure_args+=(-DSIMDBN_BUILD_TESTS=OFF)
mkdir -p "$build_dir"
# shellcheck disable=SC2086  # SIMDBN_CMAKE_ARGS is a list of arguments
cmake -S . -B "$build_dir" "${configure_args[@]}" \
  ${SIMDBN_CMAKE_ARGS:-} > "$build_dir/configure.log" 2>&1 ||
  { cat "$build_dir/configure.log" >&2; exit 1; }
cmake --build "$build_dir" --target simdbn_bench -j "$(nproc)"
bin="$build_dir/bench/simdbn_bench"

# --- Run. ---
mkdir -p "$out_dir"
rm -f "$out_dir"/round*.json "$out_dir"/round*.log
flags=("${shape_flags[@]}" "${extra[@]}")
cases=$("$bin" "${flags[@]}" --benchmark_list_tests=true | wc -l)
budget="${BENCH_BUDGET:-660}"
# Measured on the 2-core EPYC: a case costs ~1.8 x min_time (iteration estimate + measurement)
# plus ~0.04 s of setup, so 792 cases x 5 rounds fit 11 minutes at min_time 0.07 s.
if ((quick)); then
  min_time=0.01
else
  min_time="${BENCH_MIN_TIME:-$(awk -v n="$((cases * rounds))" -v b="$budget" \
    'BEGIN { t = (b / n - 0.04) / 1.8; printf "%.3f", (t > 0.1 ? 0.1 : (t < 0.01 ? 0.01 : t)) }')}"
fi
estimate=$(awk -v n="$((cases * rounds))" -v t="$min_time" 'BEGIN { printf "%d", n * (1.8 * t + 0.04) }')
echo "==> $cases cases x $rounds round(s), min time ${min_time}s each, ~${estimate}s;" \
  "results in $out_dir"
run_start=$SECONDS
done_cases=0
step=$(((cases + 9) / 10))
for ((r = 1; r <= rounds; r++)); do
  n=0
  "$bin" "${flags[@]}" --benchmark_min_time="$min_time" \
    --benchmark_enable_random_interleaving=true \
    --benchmark_out="$out_dir/round$r.json" --benchmark_out_format=json 2>&1 |
    tee "$out_dir/round$r.log" |
    while IFS= read -r line; do
      [[ "$line" == *"ERROR OCCURRED"* ]] && echo "$line"
      [[ "$line" == *threads:* ]] || continue
      n=$((n + 1))
      if ((n % step == 0 || n == cases)); then
        total_done=$((done_cases + n))
        elapsed=$((SECONDS - run_start))
        left=$((elapsed * (cases * rounds - total_done) / total_done))
        printf '    round %d/%d: %4d/%d cases, %3ds elapsed, ~%ds left\n' \
          "$r" "$rounds" "$n" "$cases" "$elapsed" "$left"
      fi
    done
  done_cases=$((done_cases + cases))
  # Ops with costly setup make rounds longer than the model says; keep the run near its budget
  # with fewer rounds, but never fewer than 3 (a median needs them).
  if ((r == 1 && !quick && rounds > 3)) && [[ -z "${BENCH_ROUNDS:-}" ]]; then
    fit=$((budget / (SECONDS - run_start + 1)))
    if ((fit < rounds)); then
      rounds=$((fit < 3 ? 3 : fit))
      echo "==> Round 1 took $((SECONDS - run_start))s; running $rounds rounds to stay near" \
        "the ${budget}s budget (BENCH_ROUNDS=5 forces 5)"
    fi
  fi
done
echo "==> Benchmark took $((SECONDS - run_start))s"

# --- Report. ---
/usr/bin/python3 tools/bench_report.py --md "$out_dir/report.md" --png "$out_dir/speedup.png" \
  "$out_dir"/round*.json
echo "==> Report: $out_dir/report.md, chart: $out_dir/speedup.png, raw: $out_dir/round*.json"
echo "==> Total $((SECONDS - start))s"
# A case that failed its run or its spot check of the results (listed above as they happened)
# fails the job, the CI smoke run included: a wrong answer is not a benchmark result.
errors=$(cat "$out_dir"/round*.log | grep -c "ERROR OCCURRED" || true)
if ((errors)); then
  echo "==> $errors case run(s) reported an error" >&2
  exit 1
fi
