#!/usr/bin/env bash
# Runs every test of the project on a fresh Debian machine, installing what it needs:
#   system packages (apt), a Python venv with the test requirements, then
#   cargo fmt/clippy, the Rust unit + engine + end-to-end tests, the pyarrow suite, and the
#   Java connector (JUnit unit tests, the connector jar, integration tests against the node) and
#   the plain Arrow Java Flight example of docs/java.md.
# Usage: ./scripts/test.sh            (from anywhere; CARGO_TARGET_DIR is honoured)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

step() { printf '\n==> %s\n' "$*"; }

# Surefire/failsafe run quietly under -q; their XML reports give the totals to print.
java_test_summary() {
  local project=${1:-java-connector}
  cat "$project"/target/surefire-reports/TEST-*.xml "$project"/target/failsafe-reports/TEST-*.xml 2>/dev/null |
    grep -o '<testsuite [^>]*' |
    awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); gsub(/"/, "", kv[2]);
             if (kv[1] == "tests") t += kv[2]; if (kv[1] == "failures" || kv[1] == "errors") f += kv[2];
             if (kv[1] == "skipped") s += kv[2] } }
         END { printf "%d passed, %d failed, %d skipped\n", t - f - s, f, s }'
}

step "system packages and toolchain (scripts/prereqs.sh)"
source ./scripts/prereqs.sh python java

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

# The connector jar bundles the libstrom_jni.so that the cargo build above already made (a
# debug build, stripped when bundled), so the native library is not compiled a second time.
step "Java connector: unit tests, the connector jar, integration tests against the strom binary"
# -z nodelete keeps the library mapped when Flink drops a class loader (docs/jni-bridge.md).
readelf -d "$TARGET_DIR/debug/libstrom_jni.so" | grep -q NODELETE ||
  { echo "error: libstrom_jni.so is not linked with -z nodelete (jni-bridge/build.rs)" >&2; exit 1; }
mvn -B -q -f java-connector/pom.xml verify -Dstrom.jni.lib="$TARGET_DIR/debug/libstrom_jni.so"
echo "java-connector: $(java_test_summary)"

# docs/java.md's example: a plain Arrow Java Flight client (no Strom code) that writes, reads back
# and compares; its test also checks the doc's excerpts and the ZSTD-without-codec error.
step "Java Flight example (plain Arrow Java 19) against the strom binary"
mvn -B -q -f integration/java-flight-example/pom.xml test
echo "java-flight-example: $(java_test_summary integration/java-flight-example)"

# ------------------------------------------------------------------------------------------
# The way users run it: a Flink 2.3 standalone cluster (from PyPI, into .venv-flink) with the
# connector jar built above in lib/, SQL files run by bin/sql-client.sh -f, the node checked.
step "Flink standalone cluster: sql-client.sh -f against the connector jar"
STROM_BIN="$STROM_BIN" STROM_CONNECTOR_JAR="$ROOT/java-connector/target/strom-flink-connector-0.1.0.jar" \
  ./integration/flink-standalone/run.sh
# ------------------------------------------------------------------------------------------

echo
echo "all tests passed"
