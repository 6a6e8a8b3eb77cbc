#!/usr/bin/env bash
# Every performance figure beside its baseline: the micro-benchmark of the cached read (divan),
# then the end-to-end table (servers started by the testkit). Takes a few minutes.
#   bash scripts/bench.sh            the whole suite (N = 100, 1,000, 10,000)
#   bash scripts/bench.sh --smoke    N = 100, 2 runs a row (CI runs this in debug to keep it alive)
# Needs what the test command installs (redis-server, zookeeper, etcd-server, protobuf-compiler).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" != "--smoke" ]; then
  cargo bench -p confo --bench cached_get
fi
cargo run --release -p confo-bench -- "$@"
