# The same checks CI runs, for humans.
.PHONY: build test test-postgres lint fmt run ci

build:
	cargo build --release

test:
	cargo test

# Needs a PostgreSQL server; each test creates and drops its own database there.
test-postgres:
	IDGATE_TEST_POSTGRES_URL=$${IDGATE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test} cargo test

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

run:
	cargo run --release -- serve

ci:
	bash .ci/run
