#!/usr/bin/env bash
# Fuzzes the REST API against its description, proto-schemas/openapi.json, with schemathesis:
# every operation, a fixed seed and number of cases, and the checks below. The API runs alone
# (`webhooks api`, no router or dispatcher, so no generated hook URI is ever resolved or called) on
# the local RabbitMQ, under a bus prefix of its own whose queues (and exchanges) the broker deletes
# once unused for longer than a run lasts (nothing consumes them here), and on a fresh PostgreSQL
# database, dropped afterwards. Fails when schemathesis finds anything.
#
# Usage: tests/fuzz/run.sh [schemathesis options]   (after `cargo build --workspace --bins`)
# FUZZ_SEED and FUZZ_CASES change the seed and the cases per operation.
set -euo pipefail

# The schemathesis release these checks were written against.
SCHEMATHESIS_VERSION=4.32.5
SEED=${FUZZ_SEED:-20250401}
CASES=${FUZZ_CASES:-25}
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
CHECKS=$CHECKS,positive_data_acceptance,negative_data_rejection

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
binary=${CARGO_TARGET_DIR:-$root/target}/debug/webhooks
[ -x "$binary" ] || { echo "fuzz: $binary is missing: run cargo build --workspace --bins" >&2; exit 1; }

installed=$(python3 -c 'import importlib.metadata as m; print(m.version("schemathesis"))' 2>/dev/null || true)
if [ "$installed" != "$SCHEMATHESIS_VERSION" ]; then
  python3 -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
schemathesis=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/schemathesis

hex() { python3 -c 'import secrets, sys; print(secrets.token_hex(int(sys.argv[1])))' "$1"; }
run_id=$(hex 6)
database=webhooks_fuzz_$run_id
key=$(hex 16)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
log=$(mktemp)
psql_admin() { psql -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d postgres -c "$1"; }

api=
cleanup() {
  if [ -n "$api" ]; then
    kill -TERM "$api" 2>/dev/null || true
    wait "$api" 2>/dev/null || true
  fi
  psql_admin "DROP DATABASE IF EXISTS $database WITH (FORCE)" || true
  rm -f "$log"
}
trap cleanup EXIT

psql_admin "CREATE DATABASE $database"
WEBHOOKS_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$database \
WEBHOOKS_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f \
WEBHOOKS_BUS__PREFIX=fuzz-$run_id \
WEBHOOKS_BUS__QUEUE_EXPIRES_SECONDS=600 \
WEBHOOKS_MASTER_API_KEY=$key \
WEBHOOKS_LISTEN=127.0.0.1:$port \
WEBHOOKS_API__TEST_WAIT_SECONDS=1 \
RUST_LOG=warn \
  "$binary" api >"$log" 2>&1 &
api=$!

ready=
for _ in $(seq 1 300); do
  if curl -sf -o /dev/null "$base/readyz"; then ready=1; break; fi
  kill -0 "$api" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$ready" ]; then
  echo "fuzz: webhooks api did not become ready" >&2
  cat "$log" >&2
  exit 1
fi

field() { python3 -c 'import json, sys; value = json.load(sys.stdin)
for key in sys.argv[1:]: value = value[key]
print(value)' "$@"; }
auth=$(curl -sf -X PUT "$base/v2/api_auth" -d "{\"data\":{\"api_key\":\"$key\"}}")
token=$(field auth_token <<<"$auth")
account=$(field data account_id <<<"$auth")
# The hooks path parameters name, so that requests reach the handlers and not only their 404s.
hook() {
  curl -sf -X PUT "$base/v2/accounts/$account/webhooks" -H "X-Auth-Token: $token" \
    -d "{\"data\":{\"name\":\"fuzz $1\",\"uri\":\"https://hooks.example.com/$1\",\"hook\":\"channel_create\"}}" |
    field data id
}
export FUZZ_ACCOUNT=$account
FUZZ_HOOK=$(hook shared) FUZZ_DELETED_HOOK=$(hook deleted) FUZZ_REPLACED_HOOK=$(hook replaced)
export FUZZ_HOOK FUZZ_DELETED_HOOK FUZZ_REPLACED_HOOK

cd "$here"
status=0
"$schemathesis" run "$root/proto-schemas/openapi.json" --url "$base" \
  --seed "$SEED" --max-examples "$CASES" --checks "$CHECKS" \
  -H "X-Auth-Token: $token" --no-color "$@" || status=$?
if ! kill -0 "$api" 2>/dev/null; then
  echo "fuzz: webhooks api exited during the run" >&2
  status=1
fi
if [ "$status" != 0 ]; then
  echo "fuzz: the API log follows" >&2
  cat "$log" >&2
fi
exit "$status"
