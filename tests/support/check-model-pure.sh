#!/usr/bin/env bash
# Fails when crates/model depends, directly or through others, on a crate that does I/O: an
# async runtime or sockets, a broker, database or HTTP client or server, TLS, or file-based
# configuration. The model stays types and pure functions that every crate shares and tests
# without services.
# Usage: check-model-pure.sh (CARGO names the cargo to run, `cargo` by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo=${CARGO:-cargo}

io_crates='^(tokio|tokio-.+|mio|socket2|polling|async-io|async-std|smol|lapin|amq-protocol.*|diesel|diesel_.+|pq-sys|libsqlite3-sys|r2d2|sqlx|sqlx-.+|postgres|hyper|hyper-.+|h2|actix|actix-.+|reqwest|ureq|tonic|rustls|native-tls|openssl|config)$'

dependencies=$("$cargo" tree -p webhooks-model -e normal --prefix none --format '{p}')
found=$(awk '{print $1}' <<<"$dependencies" | sort -u | grep -E "$io_crates" || true)
if [ -n "$found" ]; then
  echo "check-model-pure: crates/model must do no I/O, but depends on:" >&2
  for name in $found; do
    "$cargo" tree -p webhooks-model -e normal --invert "$name" >&2
  done
  exit 1
fi
echo "check-model-pure: crates/model depends on no I/O crate"
