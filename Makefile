# Hotline: the two commands a fresh Debian/Ubuntu machine with only rustup needs.
#   make run    build (release) and start `hotline serve` on its defaults
#   make test   everything CI checks: generated code, fmt, clippy, tests, the browser test,
#               fuzz target build, docs links (docs/check.py)
#   make bench  the end-to-end load scenarios (scripts/bench): results/*.json, README table, plots
SHELL := /bin/bash
.DEFAULT_GOAL := test

# One persistent build directory outside the clone: a fresh clone (CI) reuses RocksDB's
# 13-minute C++ build from earlier runs; a fresh machine simply starts it empty.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/hotline/target

.PHONY: run test test-browser deps test-deps flatc generated fuzz-build bench-wire bench

deps:
	@scripts/ensure-deps

# nats-server, mosquitto, loop-device tools for the tests that need them (as root).
test-deps:
	@scripts/ensure-test-deps

flatc:
	@scripts/ensure-flatc

run: deps
	cargo run --release -p hotline-engine --bin hotline -- serve

# Fails when wire/src/generated is stale against wire/schema/hotline.fbs.
generated: flatc
	scripts/gen-wire --check

# Builds the fuzz targets with the stable toolchain (no sanitizers) so they cannot rot;
# scripts/fuzz runs them under cargo-fuzz for real. engine_frames links the RocksDB the
# workspace build already compiled (scripts/rocksdb-lib-dir), never a second copy; its
# own build directory keeps the workspace's librocksdb-sys build untouched.
fuzz-build:
	lib="$$(scripts/rocksdb-lib-dir)" && ROCKSDB_LIB_DIR="$$lib" ROCKSDB_STATIC=1 \
	  CARGO_TARGET_DIR="$(CARGO_TARGET_DIR)/fuzz" cargo build --manifest-path fuzz/Cargo.toml

test: deps test-deps generated
	# Links, anchors and the tests docs/guarantees.md cites all exist.
	python3 docs/check.py
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	# The end-to-end tests run the real binaries; `cargo test` builds a package's binaries
	# only for that package's own integration tests, so build them all first.
	cargo build --workspace --bins
	# cargo test, then the #[ignore]d tests where they can run; prints the count.
	scripts/test-workspace
	$(MAKE) test-browser
	$(MAKE) fuzz-build

# Headless Chromium (Debian's, via playwright-core) chats through the web page as two
# users; installs chromium/nodejs/npm when missing (as root). Screenshots: web/test-results/.
test-browser: deps
	scripts/test-browser

bench-wire: deps
	cargo bench -p hotline-benches --bench wire

# The standard end-to-end scenarios with the release binaries: idle memory per connection,
# pairs capacity (sync and async), fan-out. Writes results/*.json, results/README.md, SVGs.
bench: deps
	scripts/bench
