#!/usr/bin/env bash
# The load benchmark of idgate's hot paths (benches/loadbench.rs): builds it and idgate with the
# bench profile (release), then runs the generator on CPU 1 (it starts idgate pinned to CPU 0).
#   benches/run.sh [--postgres URL] [--database URL] [--tokens N] [--auth-seconds S] [--no-peer] [--perf FILE]
#                  [--binary PATH] [--durability MODE]... [--repeat N]
set -euo pipefail
cd "$(dirname "$0")/.."
# cargo names the benchmark's executable as it builds it ("Executable benches/loadbench.rs (PATH)").
exe=$(cargo bench --bench loadbench --no-run 2>&1 | tee /dev/stderr | sed -n 's/.*Executable benches\/loadbench.rs (\(.*\))$/\1/p' | tail -n 1)
[ -n "$exe" ] || { echo "benches/run.sh: cargo did not name the benchmark's executable" >&2; exit 1; }
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
  exec taskset -c 1 "$exe" --bench "$@"
fi
exec "$exe" --bench "$@"
