#!/usr/bin/env bash
# The main job on the embedded file backend: confo's sales/analytics story through the library
# (staged edits, persist at three scopes), then the same store through the `confo` CLI.
# Needs only the Rust toolchain (the CLI is built with the file and memory backends only, so no
# protoc is needed). Writes under target/walkthrough/.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet -p confo-cli --no-default-features
cargo run --quiet -p confo --no-default-features --example walkthrough -- target/walkthrough/Configurations

confo=target/debug/confo
export CONFO_BACKEND=file:target/walkthrough/Configurations
run() { printf '\n$ confo %s\n' "$*"; "$confo" "$@"; }
run ns ls
run ls sales
run get sales/database
run set sales/database port=6432 'replicas=[1,2]'
run get sales/database port
run ns create scratch
run set scratch/feature_flags --json '{"dark_mode": true}'
run rm scratch/feature_flags dark_mode
run get scratch/feature_flags
run ns rm scratch --force
run ns ls
