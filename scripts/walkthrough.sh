#!/usr/bin/env bash
# The main job, a newcomer's tour on the embedded file backend: confo's sales/analytics story
# through the library (staged edits, persist at three scopes), the same store through the
# `confo` CLI, then history and a rollback, a schema refusing a bad value, a sealed secret, and
# `confo serve` answering one API call. Needs only the Rust toolchain (the CLI is built with the
# file and memory backends only, so no protoc is needed). Writes under target/walkthrough/.
set -euo pipefail
cd "$(dirname "$0")/.."

rm -rf target/walkthrough
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

# What confo adds to the story.
section() { printf '\n# %s\n' "$*"; }
fails() { printf '\n$ confo %s\n' "$*"; if "$confo" "$@"; then echo "expected a refusal" >&2; exit 1; else echo "(exit $?)"; fi; }

section "History: every write is recorded, with who and why; a rollback is a write too"
run set sales/database port=7432 --message "try the new pooler"
run history sales/database
run rollback sales/database --to 2 --message "back to 6432"
run get sales/database port

section "Schemas: a value that breaks one is refused before anything is written"
printf '%s' '{"properties": {"port": {"type": "integer", "minimum": 1, "maximum": 65535}}}' \
  > target/walkthrough/sales.schema.json
run schema set sales target/walkthrough/sales.schema.json
fails set sales/database port=70000
run get sales/database port

section "Secrets: sealed before they leave the process, shown only with --reveal"
export CONFO_KEYS=target/walkthrough/keys.toml
run keys new
printf '\n$ printf s3cret | confo secret set sales/database password\n'
printf s3cret | "$confo" secret set sales/database password
run get sales/database
run get sales/database password --reveal
printf '\n$ grep -A 1 password target/walkthrough/Configurations/sales/database.json\n'
grep -A 1 password target/walkthrough/Configurations/sales/database.json

section "confo serve: the HTTP API (and the console) over the same store"
tokens=target/walkthrough/tokens.json
token=$("$confo" token add tour --role read --tokens "$tokens")
printf '\n$ confo serve --listen 127.0.0.1:0 --tokens %s &\n' "$tokens"
"$confo" serve --listen 127.0.0.1:0 --tokens "$tokens" > target/walkthrough/serve.out 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  grep -q '^listening on' target/walkthrough/serve.out && break
  sleep 0.1
done
head -n 1 target/walkthrough/serve.out
port=$(sed -n 's|^listening on http://127.0.0.1:\([0-9]*\).*|\1|p' target/walkthrough/serve.out)
[ -n "$port" ] || { echo "confo serve did not start:" >&2; cat target/walkthrough/serve.out >&2; exit 1; }
printf '\n$ curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:%s/api/v1/namespaces/sales/configurations/database\n' "$port"
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET /api/v1/namespaces/sales/configurations/database HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n' "$token" >&3
answer=$(cat <&3)
exec 3<&-
printf '%s\n' "${answer#*$'\r\n\r\n'}"
case "$answer" in
  "HTTP/1.1 200"*) ;;
  *) echo "confo serve answered: ${answer%%$'\r'*}" >&2; exit 1 ;;
esac
kill -TERM "$server"
wait "$server"
trap - EXIT
