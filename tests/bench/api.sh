#!/usr/bin/env bash
# Load test of the REST API on PostgreSQL: requests/s and latency percentiles of listing and
# creating hooks, measured with wrk against a release build of `webhooks api` on 127.0.0.1
# (with RabbitMQ, which a separate API process announces its changes on); then the same listing
# in Kazoo mode, with a Kazoo token verified against a Crossbar stand-in, and its ratio to the
# standalone figure. BENCH_DURATION=2s gives a quick try.
#
# BENCH_SEED names a command run with the database URL once the API has created the master
# account, before any measurement: it fills the database (tests/bench/api-scale.sh seeds 100,000
# accounts and 1,000,000 hooks). BENCH_KAZOO=0 leaves out the Kazoo-mode listing, whose account
# reconciliation would remove accounts Crossbar does not know.
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${BENCH_DURATION:-10s}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-1}
PORT=${BENCH_PORT:-18080}
KEY=bench-master-key
DB=webhooks_bench_$$
BASE=http://127.0.0.1:$PORT

command -v wrk >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
command -v curl >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null; }
cargo build --release -p webhooks --quiet
cargo build --release -p webhooks-test-support --example crossbar_stand_in --quiet

psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $DB" postgres
work=$(mktemp -d)
# Stops process $1, if any, and waits for it.
stop() { if [ -n "${1:-}" ]; then kill "$1" 2>/dev/null && wait "$1" 2>/dev/null || true; fi; }
cleanup() {
  stop "${server:-}"
  stop "${crossbar:-}"
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" postgres || true
  rm -rf "$work"
}
trap cleanup EXIT

export WEBHOOKS_DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB"
# Starts `webhooks api` (with any extra settings given as VAR=value arguments), waits until it answers.
serve() {
  env WEBHOOKS_LISTEN="127.0.0.1:$PORT" WEBHOOKS_MASTER_API_KEY=$KEY RUST_LOG=warn WEBHOOKS_DATABASE_POOL_SIZE=16 \
    WEBHOOKS_AMQP_URL=${WEBHOOKS_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f} WEBHOOKS_BUS__PREFIX=bench-api-$$ \
    WEBHOOKS_BUS__QUEUE_EXPIRES_SECONDS=60 "$@" target/release/webhooks api &
  server=$!
  for _ in $(seq 1 100); do curl -sf "$BASE/v2/webhooks" >/dev/null && break; sleep 0.1; done
}
# Creates 20 hooks in account $1 with token $2.
seed() {
  for i in $(seq 1 20); do
    curl -sf -X PUT "$BASE/v2/accounts/$1/webhooks" -H "X-Auth-Token: $2" \
      -d "{\"data\":{\"name\":\"seed $i\",\"uri\":\"https://hooks.example.com/$i\",\"hook\":\"channel_create\"}}" >/dev/null
  done
}
serve

auth=$(curl -sf -X PUT "$BASE/v2/api_auth" -d "{\"data\":{\"api_key\":\"$KEY\"}}")
token=$(echo "$auth" | python3 -c 'import json,sys; print(json.load(sys.stdin)["auth_token"])')
account=$(echo "$auth" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["account_id"])')
hooks="$BASE/v2/accounts/$account/webhooks"
if [ -n "${BENCH_SEED:-}" ]; then
  echo "== seeding: $BENCH_SEED"
  $BENCH_SEED "$WEBHOOKS_DATABASE_URL"
fi
seed "$account" "$token"

cat > "$work/create.lua" <<LUA
wrk.method = "PUT"
wrk.headers["X-Auth-Token"] = "$token"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"data":{"name":"bench","uri":"https://hooks.example.com/bench","hook":"channel_answer","format":"json"}}'
LUA
cat > "$work/report.lua" <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format("requests/s %.0f  p50 %.2f ms  p99 %.2f ms  errors %d non-2xx %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, summary.errors.status))
end
LUA

[ -n "${BENCH_PROFILE:-}" ] && { (sleep 2; perf record -F 499 -g -p "$server" -o "$BENCH_PROFILE" -- sleep 5 >/dev/null 2>&1) & }
echo "== list hooks (GET, 20 hooks, page of 50), $CONNECTIONS connections, $DURATION"
cat "$work/report.lua" > "$work/list.lua"
standalone=$(wrk -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" -H "X-Auth-Token: $token" -s "$work/list.lua" "$hooks" | tail -n 1)
echo "$standalone"
echo "== create hooks (PUT), $CONNECTIONS connections, $DURATION"
cat "$work/report.lua" >> "$work/create.lua"
wrk -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" -s "$work/create.lua" "$hooks" | tail -n 1

[ "${BENCH_KAZOO:-1}" = 0 ] && exit 0

# Kazoo mode: the stand-in writes Kazoo's account tree into the database and serves the signing
# key, which the API reads at start; the token is verified once, then found in the cache.
stop "$server"
target/release/examples/crossbar_stand_in > "$work/crossbar" &
crossbar=$!
for _ in $(seq 1 100); do [ -s "$work/crossbar" ] && break; sleep 0.1; done
read -r crossbar_url crossbar_key kazoo_account kazoo_token < "$work/crossbar"
serve WEBHOOKS_KAZOO__CROSSBAR_URL="$crossbar_url" WEBHOOKS_KAZOO__API_KEY="$crossbar_key"
seed "$kazoo_account" "$kazoo_token"
echo "== Kazoo mode: list hooks (GET, 20 hooks, page of 50) with a Kazoo token, $CONNECTIONS connections, $DURATION"
kazoo=$(wrk -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" -H "X-Auth-Token: $kazoo_token" -s "$work/list.lua" \
  "$BASE/v2/accounts/$kazoo_account/webhooks" | tail -n 1)
echo "$kazoo"
awk -v a="$(echo "$standalone" | awk '{print $2}')" -v b="$(echo "$kazoo" | awk '{print $2}')" \
  'BEGIN { if (a > 0) printf("== Kazoo-mode listing: %.0f%% of the standalone requests/s\n", 100 * b / a) }'
