#!/usr/bin/env bash
# Whole-process timing of the CLI's point operations (get, set FIELD=VALUE, rm FIELD) on one
# configuration, in a namespace of 1 and of 10,000 configurations, on every backend, with
# hyperfine. Servers come from the testkit (confo-servers), on loopback. Usage:
#   bash scripts/point-ops.sh [CONFO_BINARY] [RUNS]
# Prints a markdown table: backend, operation, N=1, N=10,000, ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
confo=${1:-target/release/confo}
runs=${2:-10}
command -v hyperfine >/dev/null || { echo "needs hyperfine (apt-get install hyperfine)" >&2; exit 1; }
[ -x target/release/confo-servers ] || cargo build --release -q -p confo-testkit --bin confo-servers
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

start() { # kind: starts a server that lives while its fifo stays open; sets $address
  mkfifo "$work/$1.in"
  target/release/confo-servers "$1" < "$work/$1.in" > "$work/$1.out" &
  pids+=($!)
  exec {fd}>"$work/$1.in"
  for _ in $(seq 1 300); do grep -q READY "$work/$1.out" 2>/dev/null && break; sleep 0.1; done
  address=$(awk '/READY/ {print $2}' "$work/$1.out")
}
mkdir "$work/files"
python3 - "$work/doc.json" <<'PY'
import json, sys
doc = {"big": {f"c{i:05}": {"host": "db.internal", "port": i, "pad": "x" * 200} for i in range(10000)},
       "one": {"c00001": {"host": "db.internal", "port": 1, "pad": "x" * 200}}}
json.dump(doc, open(sys.argv[1], "w"))
PY
specs=("files=file:$work/files")
start redis; specs+=("redis=$address")
start zookeeper; specs+=("zookeeper=zk://$address")
start etcd; specs+=("etcd=etcd://${address#http://}")
echo "| backend | command | N = 1 | N = 10,000 | ratio |"
echo "| --- | --- | --- | --- | --- |"
for entry in "${specs[@]}"; do
  name=${entry%%=*}; spec=${entry#*=}
  "$confo" -b "$spec" import "$work/doc.json" >/dev/null 2>&1
  for op in get set rm; do
    times=()
    for ns in one big; do
      case $op in
        get) cmd="$confo -b $spec get $ns/c00001"; prep="true" ;;
        set) cmd="$confo -b $spec set $ns/c00001 port=2"; prep="true" ;;
        rm)  cmd="$confo -b $spec rm $ns/c00001 port"; prep="$confo -b $spec set $ns/c00001 port=1" ;;
      esac
      hyperfine -N --warmup 2 -r "$runs" --prepare "$prep" --export-json "$work/h.json" "$cmd" >/dev/null 2>&1
      times+=("$(python3 -c "import json;print(round(json.load(open('$work/h.json'))['results'][0]['mean']*1000,1))")")
    done
    ratio=$(python3 -c "print(round(${times[1]}/${times[0]},2))")
    echo "| $name | $op | ${times[0]} ms | ${times[1]} ms | ${ratio}× |"
  done
done
