#!/usr/bin/env bash
# Installs what the tests need (Debian packages for the servers the tests start themselves,
# Python confo 0.1.6.2 in a private venv for the compatibility test), then runs every check and
# test. Run as root on a fresh Debian machine, or anywhere the packages are already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
# No incremental caches: this is a run from scratch, and they would double what the builds of
# every feature set leave on disk (a CI run once ran out of disk).
export CARGO_INCREMENTAL=0
df -h . | awk 'NR==2 {print "disk before the tests: " $4 " free"}'
# The conformance suite appends what it skipped, and why, here (printed at the end).
mkdir -p target && rm -f target/conformance-skips.txt

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
{ command -v java >/dev/null && [ -f /usr/share/java/zookeeper.jar ]; } || missing+=(zookeeper)
command -v etcd >/dev/null || missing+=(etcd-server)
command -v etcdctl >/dev/null || missing+=(etcd-client)
command -v protoc >/dev/null || missing+=(protobuf-compiler)
# The console's end-to-end tests drive Debian's Chromium through its ChromeDriver; the TLS
# tests make a test CA with openssl.
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v openssl >/dev/null || missing+=(openssl)
# Idle tests count what a process opens with strace.
command -v strace >/dev/null || missing+=(strace)
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Python confo itself, to prove that it reads the folders we write (no dependencies of its
# own are needed for its file backend beyond these).
venv=target/confo-py-compat
if ! "$venv/bin/python" -c 'import confo.Confo, pytest' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps \
    confo==0.1.6.2 kazoo==2.8.0 singleton-decorator==1.0.0 six==1.16.0
  # pytest, to run the drop-in tests (crates/confo-py/tests/test_confo_compat.py) on confo itself.
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'pytest>=7'
fi
export CONFO_PY_COMPAT="$PWD/$venv/bin/python"

cargo fmt --all -- --check
# The import graph between the workspace's files may only get better (docs/ARCHITECTURE.md).
python3 scripts/import-graph.py --check | tail -n 1
cargo clippy --workspace --all-targets --all-features -- -D warnings
# The library with each engine alone, and with none (the file and memory engines only).
for features in "" redis zookeeper etcd; do
  cargo clippy --quiet -p confo --all-targets --no-default-features ${features:+--features "$features"} -- -D warnings
done
# The libraries' API docs: every intra-doc link resolves, none to a private item.
RUSTDOCFLAGS="-D warnings" cargo doc --quiet --no-deps --all-features -p confo -p confo-serve -p confo-testkit -p confo-bench
# The Python package (crates/confo-py), built with maturin into a private venv, and its
# pytest suite against servers started by the Rust harness (confo-servers). ziglang links the
# wheel against glibc 2.17 (manylinux2014: Ubuntu 20.04, Debian 11, RHEL 8, Amazon Linux 2 and
# newer) with no container; auditwheel checks the tag; kazoo writes ZooKeeper nodes as confo did.
pyvenv="$PWD/target/py-venv"
if ! "$pyvenv/bin/python" -c 'import maturin, pytest, ziglang, auditwheel, kazoo' 2>/dev/null; then
  python3 -m venv "$pyvenv"
  "$pyvenv/bin/pip" install --quiet --disable-pip-version-check 'maturin>=1.16,<2' 'pytest>=7' \
    'ziglang>=0.13' 'auditwheel>=6' kazoo==2.8.0 six==1.16.0
fi
cargo build --quiet -p confo-testkit --bin confo-servers
# The suite runs against the wheel users get: built once (release, abi3, manylinux2014),
# installed by pip with no Rust toolchain on PATH into a folder of its own, which the tests
# check they import.
rm -rf target/wheels-ci target/py-wheel-site
(cd crates/confo-py && VIRTUAL_ENV="$pyvenv" PATH="$pyvenv/bin:$PATH" maturin build --release --quiet \
  --zig --compatibility manylinux2014 --out "$PWD/../../target/wheels-ci")
wheel=$(ls target/wheels-ci/confo-*-abi3-manylinux2014_x86_64.manylinux_2_17_x86_64.whl)
"$pyvenv/bin/auditwheel" show "$wheel" | tr '\n' ' ' | grep -q 'consistent with the following platform tag: "manylinux_2_17_x86_64"' \
  || { echo "the wheel is not manylinux_2_17_x86_64:"; "$pyvenv/bin/auditwheel" show "$wheel"; exit 1; }
env PATH=/usr/bin:/bin "$pyvenv/bin/pip" install --quiet --disable-pip-version-check --no-deps \
  --target target/py-wheel-site "$wheel"
# The wheel's release build is not needed again: its folder goes, to spare the disk.
rm -rf target/x86_64-unknown-linux-gnu target/release
CONFO_PY_SITE="$PWD/target/py-wheel-site" PYTHONPATH="$PWD/target/py-wheel-site" \
  "$pyvenv/bin/pytest" -q -rs crates/confo-py/tests
# The drop-in tests again, on confo 0.1.6.2 itself: each is something confo did.
CONFO_UNDER_TEST=confo-0.1.6.2 "$venv/bin/python" -m pytest -q -p no:cacheprovider crates/confo-py/tests/test_confo_compat.py
# The side-by-side benchmark against confo 0.1.6.2, small, so that it cannot rot.
"$pyvenv/bin/python" crates/confo-py/bench/side_by_side.py "$pyvenv/bin/python" "$venv/bin/python" 200 \
  "$PWD/target/py-wheel-site" > /dev/null

# The benchmarks, in quick smoke modes, so that they cannot rot.
cargo run --quiet -p confo --example propagation -- 20
# The figment and config-rs examples: a service that reloads live (private Redis, 2 seconds each).
cargo run --quiet -p confo --features redis,figment --example figment_service > /dev/null
cargo run --quiet -p confo --features redis,config-rs --example config_service > /dev/null
cargo run --quiet -p confo-bench -- --smoke
cargo run --quiet -p confo-bench --bin redis_parts -- 200 > /dev/null
cargo run --quiet -p confo-bench --bin files_floor -- 200 > /dev/null
cargo test --workspace --all-features
# The HTTP load benchmark (docs/PERFORMANCE.md, "confo serve under load"), a second of each
# part against the CLI's debug build: it fails on any error or missed event.
cargo run --quiet -p confo-bench --bin serve_load -- --smoke target/debug/confo > /dev/null
# The whole-process comparison with confo 0.1.6.2 (docs/PERFORMANCE.md), small, so that it
# cannot rot (the CLI and confo-servers debug builds are there after the tests).
python3 crates/confo-bench/whole_process.py target/debug/confo target/debug/confo-servers "$venv/bin/python" 200 1 > /dev/null
# The library in its other feature sets: defaults (files, Redis, ZooKeeper) and files alone.
cargo test --quiet -p confo
cargo test --quiet -p confo --no-default-features
du -sh target | awk '{print "the build folder after the tests: " $1}'
echo "conformance functions skipped, by engine (runs; the capability missing):"
if [ -s target/conformance-skips.txt ]; then sort target/conformance-skips.txt | uniq -c; else echo "  none"; fi
