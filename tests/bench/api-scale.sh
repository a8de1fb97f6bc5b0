#!/usr/bin/env bash
# The API's load test (tests/bench/api.sh: listing an account's 20 hooks, creating hooks, on
# PostgreSQL) on a database holding 100,000 accounts in trees five deep and 1,000,000 hooks
# (seeded by the storage crate's bench_attempts example with --hooks-only), beside the same test
# on an empty database: BENCH_RUNS runs of each (default 3), alternated so that both see the
# machine alike, each on a database of its own; then each figure's median and range, and the
# ratio of the medians of requests/s at scale to empty (goal at least 80%). The Kazoo-mode listing
# is left out. BENCH_DURATION=2s gives a quick try.
set -euo pipefail
cd "$(dirname "$0")/../.."

RUNS=${BENCH_RUNS:-3}
cargo build --release -p webhooks-storage --example bench_attempts --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for run in $(seq 1 "$RUNS"); do
  for kind in empty scale; do
    echo "== run $run, $kind database"
    if [ "$kind" = scale ]; then
      seed="target/release/examples/bench_attempts --hooks-only"
    else
      seed=""
    fi
    BENCH_KAZOO=0 BENCH_SEED="$seed" tests/bench/api.sh | tee "$work/$kind-$run"
  done
done

echo "== over $RUNS runs (load $(cut -d' ' -f1-3 /proc/loadavg)): median, range"
python3 - "$work" "$RUNS" <<'PY'
import pathlib, re, statistics, sys

work, runs = pathlib.Path(sys.argv[1]), int(sys.argv[2])
line = re.compile(r"requests/s (\d+)  p50 ([\d.]+) ms  p99 ([\d.]+) ms")
figures = {}
for kind in ("empty", "scale"):
    for run in range(1, runs + 1):
        found = line.findall((work / f"{kind}-{run}").read_text())
        for test, values in zip(("list", "create"), found):
            for name, value in zip(("requests/s", "p50 ms", "p99 ms"), values):
                figures.setdefault((test, name, kind), []).append(float(value))

def show(values, decimals):
    return f"{statistics.median(values):.{decimals}f} ({min(values):.{decimals}f}-{max(values):.{decimals}f})"

for test in ("list", "create"):
    print(f"{test} hooks:")
    for name, decimals in (("requests/s", 0), ("p50 ms", 2), ("p99 ms", 2)):
        empty, scale = figures[(test, name, "empty")], figures[(test, name, "scale")]
        print(f"  {name}: empty database {show(empty, decimals)}, 100,000 accounts and 1,000,000 hooks {show(scale, decimals)}")
    ratio = statistics.median(figures[(test, "requests/s", "scale")]) / statistics.median(figures[(test, "requests/s", "empty")])
    ratios = [s / e for s, e in zip(figures[(test, "requests/s", "scale")], figures[(test, "requests/s", "empty")])]
    verdict = "MET" if ratio >= 0.8 else "NOT MET"
    print(f"  requests/s at scale: {100 * ratio:.0f}% of empty (runs {min(ratios) * 100:.0f}-{max(ratios) * 100:.0f}%); goal at least 80%: {verdict}")
PY
