#!/usr/bin/env bash
# Compile time and future size of N-point workflows: see BENCHMARKS.md ("Compile time").
#
#   bench/compile-time/run.sh [POINTS...]        (default: 10 50 100 200)
#
# SHAPES (default "total kept") picks the shapes, WORK (default /tmp/durable-compile-time) where
# the generated crates and their shared target directory go. Each crate is checked and built
# The dependencies are built once (a 1-point crate); then for each crate `cargo check` and
# `cargo build` (debug) are timed, each stopped after TIMEOUT seconds (default 600); the binary
# prints the future's size and runs the workflow on a 2 MiB stack.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="${WORK:-/tmp/durable-compile-time}"
shapes="${SHAPES:-total kept}"
points=("$@")
[ ${#points[@]} -eq 0 ] && points=(10 50 100 200)
export CARGO_TARGET_DIR="$work/target"
mkdir -p "$work"
limit="${TIMEOUT:-600}"
seconds() {
  local start end
  start=$(date +%s.%N)
  if ! timeout "$limit" "$@" >/dev/null 2>"$work/last.err"; then
    grep -m3 -E '^error' "$work/last.err" >&2 || true
    echo ">$limit"
    return
  fi
  end=$(date +%s.%N)
  printf '%.1f' "$(echo "$end - $start" | bc)"
}
python3 "$here/gen.py" "$work/warm" 1 total
cp "$root/Cargo.lock" "$work/warm/Cargo.lock"
(cd "$work/warm" && cargo build -q && cargo check -q)
printf '%-6s %-6s %10s %10s  %s\n' shape points check_s build_s run
for shape in $shapes; do
  for n in "${points[@]}"; do
    dir="$work/wf-$shape-$n"
    python3 "$here/gen.py" "$dir" "$n" "$shape"
    cp "$root/Cargo.lock" "$dir/Cargo.lock"
    check=$(cd "$dir" && seconds cargo check)
    touch "$dir/src/main.rs"
    build=$(cd "$dir" && seconds cargo build)
    run=$("$CARGO_TARGET_DIR/debug/wf-$shape-$n" 2>&1 | tr '\n' ' ' || true)
    printf '%-6s %-6s %10s %10s  %s\n' "$shape" "$n" "$check" "$build" "$run"
  done
done
