#!/usr/bin/env bash
# Runs a Strom node with embedded defaults on a fresh Debian machine: installs the build
# prerequisites (scripts/prereqs.sh), builds the release binary (the first build compiles
# RocksDB's C++: ~15-25 minutes on 2 cores, then seconds), and starts
#   strom serve --data-dir ./strom-data --listen 127.0.0.1:9123
# Extra arguments go to `strom serve` (e.g. `./scripts/run.sh --listen 0.0.0.0:9123`).
# CARGO_TARGET_DIR is honoured. Stop the node with Ctrl-C (it drains, fsyncs and stops).
set -euo pipefail
cd "$(dirname "$0")/.."
source ./scripts/prereqs.sh node
cargo build --release --locked --bin strom
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
exec "$TARGET_DIR/release/strom" serve "$@"
