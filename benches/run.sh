#!/usr/bin/env bash
# The load benchmark of idgate's hot paths: builds idgate and the load generator in release
# mode, then runs the generator on CPU 1 (it starts idgate pinned to CPU 0).
#   bench/run.sh [--database postgres://USER@HOST/DB] [--tokens N] [--auth-seconds S] [--perf FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin idgate --example loadbench
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
  exec taskset -c 1 target/release/examples/loadbench "$@"
fi
exec target/release/examples/loadbench "$@"
