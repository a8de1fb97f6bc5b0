# The commands a developer and CI use. `make test` runs everything; `make lint` checks style.
CARGO ?= cargo

.PHONY: run test lint fmt bench-api bench deploy-check

run:
	$(CARGO) run

test: deploy-check
	tests/support/ensure-services.sh postgres rabbitmq
	python3 -m pip install --quiet --disable-pip-version-check standardwebhooks
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast

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
	tests/support/ensure-services.sh postgres
	tests/bench/api.sh

bench: bench-api
