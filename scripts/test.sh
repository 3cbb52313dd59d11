#!/usr/bin/env bash
# Runs every test of the project on a fresh Debian machine, installing what it needs:
#   system packages (apt), a Python venv with the test requirements, then
#   cargo fmt/clippy, the Rust unit + engine + end-to-end tests, and the pyarrow suite.
# Usage: ./scripts/test.sh            (from anywhere; CARGO_TARGET_DIR is honoured)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

step() { printf '\n==> %s\n' "$*"; }

step "system packages and toolchain (scripts/prereqs.sh)"
source ./scripts/prereqs.sh python

step "python venv (.venv) with integration/python/requirements.txt"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -r integration/python/requirements.txt

step "cargo fmt --check"
cargo fmt --all -- --check

# Every cargo command takes the same package and feature selection (`--workspace
# --all-features`: the benches need `bench-internals`), so they share one build of each crate
# (RocksDB's C++ included) instead of one per feature set.
step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --all-features --quiet -- -D warnings

step "build the node and test binaries"
cargo build --workspace --all-targets --all-features --quiet
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
export STROM_BIN="$TARGET_DIR/debug/strom"

step "cargo test (unit, engine, end-to-end against the strom binary, crash test)"
cargo test --workspace --all-features --quiet

step "pytest: plain pyarrow.flight clients against the strom binary"
.venv/bin/python -m pytest -q integration/python

echo
echo "all tests passed"
