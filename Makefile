# The commands a developer and CI use. `make test` runs everything; `make lint` checks style.
CARGO ?= cargo
# Benchmarks run on their own RabbitMQ vhost (created when missing), away from test leftovers.
BENCH_VHOST ?= webhooks-bench
BENCH_AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672/$(BENCH_VHOST)

.PHONY: run test lint fmt bench-api bench-router bench-e2e bench deploy-check

run:
	$(CARGO) run

test: deploy-check
	tests/support/ensure-services.sh postgres rabbitmq promtool
	python3 -m pip install --quiet --disable-pip-version-check standardwebhooks
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast
	tests/fuzz/run.sh

# Renders the Kubernetes manifests and validates them offline; no cluster or Docker needed.
deploy-check:
	deploy/validate.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

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

bench: bench-api bench-router bench-e2e
