# The commands a developer and CI use. `make test` runs everything; `make lint` checks style.
CARGO ?= cargo
# Benchmarks run on their own RabbitMQ vhost (created when missing), away from test leftovers.
BENCH_VHOST ?= webhooks-bench
BENCH_AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/$(BENCH_VHOST)

.PHONY: run test lint audit fmt faults bench-cluster soak bench-api bench-router bench-e2e bench-import bench-scale bench deploy-check

run:
	$(CARGO) run

test: deploy-check
	tests/support/ensure-services.sh postgres rabbitmq vhost:webhooks-quorum promtool couchdb
	python3 -m pip install --quiet --disable-pip-version-check standardwebhooks
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast -- --skip faults::
	# The fault scenarios load this machine as far as their figures mean anything: each runs
	# alone, after the rest, in a process of its own, the one with the tightest latency goal first.
	for scenario in receivers kill broker database rabbit_cluster; do \
		$(CARGO) test -p webhooks-e2e --test e2e faults::$$scenario:: -- --test-threads=1 || exit 1; \
	done
	tests/fuzz/run.sh

# The fault suite of tests/e2e/faults at full size, on the release build that is deployed: each
# scenario publishes FAULTS_EVENTS events (`make test` runs it with 2,000, on the debug build) and
# prints its figures. One scenario at a time: each loads this machine as far as its figures mean
# anything.
FAULTS_EVENTS ?= 20000
faults:
	tests/support/ensure-services.sh postgres rabbitmq
	$(CARGO) build --release -p webhooks
	WEBHOOKS_FAULTS_EVENTS=$(FAULTS_EVENTS) $(CARGO) test --release -p webhooks-e2e --test e2e faults -- --nocapture --test-threads=1

# The leader of the queues stopped and restarted in a RabbitMQ cluster of the test's own (three
# nodes on this machine; the machine's RabbitMQ serves only the other tests) at full size, on the
# release build: FAULTS_EVENTS events, what was lost, duplicated, and how soon deliveries resumed.
bench-cluster:
	tests/support/ensure-services.sh postgres rabbitmq
	$(CARGO) build --release -p webhooks
	WEBHOOKS_FAULTS_EVENTS=$(FAULTS_EVENTS) $(CARGO) test --release -p webhooks-e2e --test e2e faults::rabbit_cluster:: -- --nocapture --test-threads=1

# A long run of the release build at a steady rate with 5% failing receivers: throughput, p99
# latency, every process's memory over time, and any loss. SOAK_SECONDS=60 tries it for a minute;
# SOAK_RATE sets the rate (events/s), else it is half the maximum measured first.
SOAK_SECONDS ?= 1800
soak:
	tests/support/ensure-services.sh postgres rabbitmq
	$(CARGO) build --release -p webhooks
	WEBHOOKS_SOAK_SECONDS=$(SOAK_SECONDS) $(if $(SOAK_RATE),WEBHOOKS_SOAK_RATE=$(SOAK_RATE)) \
		$(CARGO) test --release -p webhooks-e2e --test e2e faults::soak -- --ignored --nocapture

# Renders the Kubernetes manifests and validates them offline; no cluster or Docker needed.
deploy-check:
	deploy/validate.sh

# Cargo.lock against an offline copy of the RustSec advisory database (ADVISORY_DB): fails on
# any vulnerability. The copy is the one beside the project, else the workplace's.
ADVISORY_DB ?= $(firstword $(wildcard ../shared/advisory-db /work/shared/advisory-db))
audit:
	@test -n "$(ADVISORY_DB)" || { echo "audit: no advisory database: set ADVISORY_DB to a copy of RustSec's advisory-db" >&2; exit 1; }
	command -v cargo-audit >/dev/null || $(CARGO) install cargo-audit --locked
	$(CARGO) audit --db $(ADVISORY_DB) --no-fetch --stale

lint:
	tests/support/check-references.sh
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	command -v cargo-machete >/dev/null || $(CARGO) install cargo-machete --locked
	$(CARGO) machete --skip-target-dir
	CARGO=$(CARGO) tests/support/check-model-pure.sh

fmt:
	$(CARGO) fmt --all

# Requests/s and p50/p99 latency of listing and creating hooks against PostgreSQL.
bench-api:
	tests/support/ensure-services.sh postgres vhost:$(BENCH_VHOST)
	WEBHOOKS_AMQP_URL=$(BENCH_AMQP_URL) tests/bench/api.sh

# The router alone: in-process matching, the RabbitMQ one-hop ceiling, router throughput, memory.
bench-router:
	tests/support/ensure-services.sh postgres vhost:$(BENCH_VHOST)
	WEBHOOKS_TEST_AMQP_URL=$(BENCH_AMQP_URL) $(CARGO) run --release -p webhooks-router --example bench_router

# Events to HTTP receipts through a router and a dispatcher on RabbitMQ, and through
# `webhooks serve`, beside the RabbitMQ ceiling; builds the release binary it starts.
bench-e2e:
	tests/support/ensure-services.sh postgres vhost:$(BENCH_VHOST)
	$(CARGO) build --release -p webhooks
	WEBHOOKS_TEST_AMQP_URL=$(BENCH_AMQP_URL) $(CARGO) run --release -p webhooks-e2e --example bench_e2e

# `webhooks import` from a CouchDB stand-in into PostgreSQL: hooks/s, attempts/s, peak memory.
bench-import:
	tests/support/ensure-services.sh postgres couchdb
	$(CARGO) build --release -p webhooks
	$(CARGO) run --release -p webhooks-e2e --example bench_import

# The router's hook index at 1,000,000 hooks over 100,000 accounts five deep: memory, a reload
# with routing going on, matching rate on one core, change-notice latency; three runs, each in a
# process of its own, then medians and ranges beside the goals. Then the attempt log on PostgreSQL
# at 10,000,000 records (newest pages, descendants, a prune of a million with inserts alongside;
# seeded once, three runs), and the API's load test on 100,000 accounts and 1,000,000 hooks beside
# the same on an empty database (three runs of each).
bench-scale:
	tests/support/ensure-services.sh postgres vhost:$(BENCH_VHOST)
	$(CARGO) run --release -p webhooks-router --example bench_scale
	$(CARGO) run --release -p webhooks-storage --example bench_attempts
	WEBHOOKS_AMQP_URL=$(BENCH_AMQP_URL) tests/bench/api-scale.sh

bench: bench-api bench-router bench-e2e bench-import bench-scale
