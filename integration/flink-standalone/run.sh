#!/usr/bin/env bash
# The connector the way users run it: a real Flink 2.3 standalone cluster
# (bin/start-cluster.sh), the connector jar alone in its lib/, SQL files run with
# bin/sql-client.sh -f against a real strom node, and checks of what the node then holds.
#
# Usage: integration/flink-standalone/run.sh [STROM_BIN [STROM_CONNECTOR_JAR]]
#   (or set STROM_BIN / STROM_CONNECTOR_JAR; defaults: target/debug/strom and
#   java-connector/target/strom-flink-connector-0.1.0.jar)
#
# What it needs and installs (cached, so a second run only starts things):
#   - Flink 2.3.0 from PyPI (apache-flink + apache-flink-libraries, whose pyflink/ folder is a
#     complete FLINK_HOME) in its own venv, $FLINK_VENV (default <repo>/.venv-flink);
#   - opt/flink-sql-gateway-2.3.0.jar, which bin/sql-client.sh needs and the PyPI package
#     lacks, from Maven Central (mvn dependency:copy), kept in that venv;
#   - pyarrow for check.py: <repo>/.venv as scripts/test.sh makes it (made here if missing).
#   Java 17, Maven and python3 (with venv) must be there: scripts/prereqs.sh python java.
#
# Everything it starts listens on 127.0.0.1 at ports picked free; all of it is stopped on
# exit, and the scratch directory (FLINK_HOME copy, logs, node data) removed unless
# STROM_KEEP_WORK=1. On a failure Flink's and the node's logs are printed.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
FLINK_VERSION=2.3.0
STROM_BIN=${1:-${STROM_BIN:-$ROOT/target/debug/strom}}
STROM_CONNECTOR_JAR=${2:-${STROM_CONNECTOR_JAR:-$ROOT/java-connector/target/strom-flink-connector-0.1.0.jar}}
FLINK_VENV=${FLINK_VENV:-$ROOT/.venv-flink}
CHECK_VENV=${CHECK_VENV:-$ROOT/.venv}

say() { printf '\n[flink-standalone] %s\n' "$*"; }
die() { printf '[flink-standalone] error: %s\n' "$*" >&2; exit 1; }

[ -x "$STROM_BIN" ] || die "no strom binary at '$STROM_BIN' (cargo build -p strom-server, or set STROM_BIN)"
[ -f "$STROM_CONNECTOR_JAR" ] ||
  die "no connector jar at '$STROM_CONNECTOR_JAR' (mvn -f java-connector/pom.xml package, or set STROM_CONNECTOR_JAR)"
for tool in java mvn python3; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (scripts/prereqs.sh python java installs it)"
done
STROM_BIN=$(cd "$(dirname "$STROM_BIN")" && pwd)/$(basename "$STROM_BIN")
STROM_CONNECTOR_JAR=$(cd "$(dirname "$STROM_CONNECTOR_JAR")" && pwd)/$(basename "$STROM_CONNECTOR_JAR")
started=$SECONDS

# ------------------------------------------------------------------------------------------
# 1. Flink from PyPI, and the SQL gateway jar (both cached)
# ------------------------------------------------------------------------------------------
# --no-deps: only the packages' Java payload (bin/, lib/, opt/, conf/) is used; the Python
# API's own dependency tree (apache-beam, pandas, pinned numpy/pyarrow, ...) is large and not
# needed to run the cluster or the SQL client.
flink_installed() {
  "$FLINK_VENV/bin/python" - "$FLINK_VERSION" 2>/dev/null <<'EOF'
import sys, importlib.metadata as m
sys.exit(0 if all(m.version(p) == sys.argv[1] for p in ("apache-flink", "apache-flink-libraries")) else 1)
EOF
}
if ! flink_installed; then
  say "installing Flink $FLINK_VERSION from PyPI into $FLINK_VENV"
  [ -x "$FLINK_VENV/bin/python" ] || python3 -m venv "$FLINK_VENV"
  "$FLINK_VENV/bin/pip" install -q --disable-pip-version-check --no-deps \
    "apache-flink==$FLINK_VERSION" "apache-flink-libraries==$FLINK_VERSION"
fi
PYFLINK=$("$FLINK_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/pyflink
{ [ -f "$PYFLINK/lib/flink-dist-$FLINK_VERSION.jar" ] && [ -x "$PYFLINK/bin/start-cluster.sh" ]; } ||
  die "$PYFLINK is not a Flink $FLINK_VERSION distribution (remove $FLINK_VENV and run again)"

GATEWAY_JAR=$FLINK_VENV/flink-jars/flink-sql-gateway-$FLINK_VERSION.jar
if [ ! -s "$GATEWAY_JAR" ]; then
  say "fetching org.apache.flink:flink-sql-gateway:$FLINK_VERSION (bin/sql-client.sh needs it)"
  mkdir -p "$FLINK_VENV/flink-jars/.download"
  mvn -B -q dependency:copy -Dartifact="org.apache.flink:flink-sql-gateway:$FLINK_VERSION" \
    -DoutputDirectory="$FLINK_VENV/flink-jars/.download" >"$FLINK_VENV/flink-jars/.download/mvn.log" 2>&1 ||
    { cat "$FLINK_VENV/flink-jars/.download/mvn.log"; die "could not fetch flink-sql-gateway-$FLINK_VERSION.jar"; }
  mv "$FLINK_VENV/flink-jars/.download/flink-sql-gateway-$FLINK_VERSION.jar" "$GATEWAY_JAR"
fi

# check.py reads the node with pyarrow; <repo>/.venv is the test venv of scripts/test.sh.
if ! "$CHECK_VENV/bin/python" -c 'import pyarrow.flight, pytest' 2>/dev/null; then
  say "installing integration/python/requirements.txt into $CHECK_VENV"
  [ -x "$CHECK_VENV/bin/python" ] || python3 -m venv "$CHECK_VENV"
  "$CHECK_VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/integration/python/requirements.txt"
fi
say "downloads and installs ready after $((SECONDS - started))s"

# ------------------------------------------------------------------------------------------
# 2. A scratch FLINK_HOME: the venv stays untouched (lib/ gets our jar, log/ fills up)
# ------------------------------------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/strom-flink-standalone.XXXXXX")
FLINK_HOME_DIR=$WORK/flink
STROM_PID=""
CHECKS=$WORK/checks.out

# Only for the cluster we start: a FLINK_* variable of the caller's shell would point
# bin/config.sh at another installation.
unset FLINK_HOME FLINK_CONF_DIR FLINK_BIN_DIR FLINK_LIB_DIR FLINK_OPT_DIR FLINK_PLUGINS_DIR \
  FLINK_LOG_DIR FLINK_PID_DIR FLINK_ENV_JAVA_OPTS HADOOP_CLASSPATH
# flink-daemon.sh names its log and pid files after $USER, unset in some containers.
export USER=${USER:-$(id -un)}

print_logs() {
  say "logs (the run failed)"
  for f in "$FLINK_HOME_DIR"/log/*.log; do
    [ -f "$f" ] && { echo "----- tail -n 150 $f"; tail -n 150 "$f"; }
  done
  for f in "$FLINK_HOME_DIR"/log/*.out "$WORK"/strom.out "$WORK"/strom.err; do
    [ -s "$f" ] && { echo "----- tail -n 60 $f"; tail -n 60 "$f"; }
  done
  return 0
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  [ "$rc" -ne 0 ] && print_logs
  if compgen -G "$FLINK_HOME_DIR/pid/*.pid" >/dev/null; then
    say "stopping the Flink cluster"
    # stop-cluster.sh kills each daemon of the pid files (SIGKILL after a timeout); wait until
    # they are gone so that nothing of this run outlives it.
    local pids
    pids=$(cat "$FLINK_HOME_DIR"/pid/*.pid 2>/dev/null)
    "$FLINK_HOME_DIR/bin/stop-cluster.sh"
    for pid in $pids; do
      for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -9 "$pid" 2>/dev/null
    done
  fi
  if [ -n "$STROM_PID" ] && kill -0 "$STROM_PID" 2>/dev/null; then
    say "stopping the strom node"
    kill -TERM "$STROM_PID"
    for _ in $(seq 40); do kill -0 "$STROM_PID" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$STROM_PID" 2>/dev/null
    wait "$STROM_PID" 2>/dev/null
  fi
  if [ "${STROM_KEEP_WORK:-0}" = 1 ]; then
    say "kept $WORK"
  else
    rm -rf "$WORK"
  fi
  [ "$rc" -ne 0 ] && say "FAILED (exit $rc) after $((SECONDS - started))s"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "FLINK_HOME $FLINK_HOME_DIR (from $PYFLINK)"
mkdir -p "$FLINK_HOME_DIR"/{lib,opt,log,pid,tmp}
cp -r "$PYFLINK/bin" "$PYFLINK/conf" "$FLINK_HOME_DIR/"
# The distribution's jars are linked, not copied (280 MB); bin/config.sh finds links too.
for jar in "$PYFLINK"/lib/*.jar; do ln -s "$jar" "$FLINK_HOME_DIR/lib/"; done
for jar in "$PYFLINK"/opt/*.jar "$GATEWAY_JAR"; do ln -s "$jar" "$FLINK_HOME_DIR/opt/"; done
ln -s "$PYFLINK/plugins" "$FLINK_HOME_DIR/plugins"
# The one thing a user adds (docs/flink.md, "Install").
cp "$STROM_CONNECTOR_JAR" "$FLINK_HOME_DIR/lib/"

# Two ports for the JobManager (REST, RPC) that are free now; every other port (TaskManager
# RPC and data, blob server) is 0 = picked by the OS.
read -r REST_PORT RPC_PORT < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)
REST=http://127.0.0.1:$REST_PORT

# bin/config-parser-utils.sh is Flink's own tool to set keys of conf/config.yaml (it splits
# values at spaces: only one-word values here). The memory sizes keep the cluster small
# (JobManager 1 GB, one TaskManager 1.7 GB with 2 slots: the streaming job of step 3 keeps one
# while the jobs of step 4 use the other).
"$FLINK_HOME_DIR/bin/config-parser-utils.sh" "$FLINK_HOME_DIR/conf" "$FLINK_HOME_DIR/bin" "$FLINK_HOME_DIR/lib" \
  -D env.pid.dir="$FLINK_HOME_DIR/pid" -D io.tmp.dirs="$FLINK_HOME_DIR/tmp" -D web.tmpdir="$FLINK_HOME_DIR/tmp" \
  -D jobmanager.rpc.address=localhost -D jobmanager.bind-host=localhost -D jobmanager.rpc.port="$RPC_PORT" \
  -D rest.address=127.0.0.1 -D rest.bind-address=127.0.0.1 -D rest.port="$REST_PORT" \
  -D taskmanager.host=localhost -D taskmanager.bind-host=localhost \
  -D jobmanager.memory.process.size=1024m -D taskmanager.memory.process.size=1728m \
  -D taskmanager.numberOfTaskSlots=2 -D parallelism.default=1 >/dev/null
# Arrow (inside the connector) needs java.nio opened on JDK 17 (docs/flink.md, "Install"):
# Flink 2.3's shipped env.java.opts.all already lists it among its own --add-opens.
NIO_OPENS=--add-opens=java.base/java.nio=ALL-UNNAMED
grep -Eq -- "^ *all: .*$NIO_OPENS" "$FLINK_HOME_DIR/conf/config.yaml" ||
  die "env.java.opts.all of $FLINK_HOME_DIR/conf/config.yaml lacks $NIO_OPENS"

# ------------------------------------------------------------------------------------------
# 3. The node, the cluster
# ------------------------------------------------------------------------------------------
say "starting strom ($STROM_BIN)"
# Port 0: the node binds a free port itself and prints "strom: listening on grpc://..."
# (as the Java and Python suites start it), so no port is guessed.
"$STROM_BIN" serve --data-dir "$WORK/strom-data" --listen 127.0.0.1:0 >"$WORK/strom.out" 2>"$WORK/strom.err" &
STROM_PID=$!
ENDPOINT=""
for _ in $(seq 120); do
  ENDPOINT=$(grep -o -m1 'listening on grpc://127\.0\.0\.1:[0-9]*' "$WORK/strom.out" | sed 's/^listening on //') || true
  [ -n "$ENDPOINT" ] && break
  kill -0 "$STROM_PID" 2>/dev/null || die "strom exited before listening"
  sleep 0.5
done
[ -n "$ENDPOINT" ] || die "strom did not print its listening line within 60s"
echo "strom listens on $ENDPOINT"

check() { "$CHECK_VENV/bin/python" "$HERE/check.py" --endpoint "$ENDPOINT" --rest "$REST" "$@" | tee -a "$CHECKS"; }

say "starting the Flink cluster (REST $REST, JobManager RPC port $RPC_PORT)"
"$FLINK_HOME_DIR/bin/start-cluster.sh"
check flink-ready

# ------------------------------------------------------------------------------------------
# 4. The SQL files, each in its own sql-client.sh session, and the checks of the node
# ------------------------------------------------------------------------------------------
sed "s|\${STROM_ENDPOINT}|$ENDPOINT|" "$HERE/init.sql" >"$WORK/init.sql"

# sql-client.sh stops at the first failing statement but still exits 0 (Flink 2.3.0), so its
# output is searched for what it prints then: "[ERROR] ..." for a statement of the -f file,
# "Failed to initialize from sql script" for one of the -i file. A file takes seconds; the
# timeout only keeps a job that hangs (dml-sync waits for it) from hanging the run.
SQL_TIMEOUT_S=300
run_sql() {
  local file=$1 out=$WORK/$1.out
  say "sql-client.sh -i init.sql -f $file"
  local rc=0
  timeout --kill-after=10 "$SQL_TIMEOUT_S" \
    "$FLINK_HOME_DIR/bin/sql-client.sh" --history "$WORK/sql-history" -i "$WORK/init.sql" -f "$HERE/$file" \
    </dev/null >"$out" 2>&1 || rc=$?
  # Strip the terminal colours for the CI log.
  sed 's/\x1b\[[0-9;]*m//g' "$out"
  [ "$rc" -ne 124 ] || die "sql-client.sh -f $file did not finish within ${SQL_TIMEOUT_S}s"
  [ "$rc" -eq 0 ] || die "sql-client.sh -f $file exited with $rc"
  if grep -Eq '\[ERROR\]|Failed to initialize from sql script' "$out"; then
    die "a statement of $file (or init.sql) failed: see above, and the sql-client log below"
  fi
}

run_sql 01_write.sql
check written

run_sql 02_batch.sql
check batch
# The printed COUNT(*) of 02_batch.sql: a tableau row "| 1003 |".
grep -Eq '^\| +1003 \|' "$WORK/02_batch.sql.out" || die "02_batch.sql did not print order_count 1003"
echo "ok: SELECT COUNT(*) FROM orders printed 1003" | tee -a "$CHECKS"

run_sql 03_stream.sql
check stream-job
STREAM_JOB_ID=$(sed -n 's/^ok: the streaming job .* runs: job \([0-9a-f]*\)$/\1/p' "$CHECKS")
check stream-initial

run_sql 04_more.sql
check stream-more
check cancel "$STREAM_JOB_ID"
check jobs-ok

say "done in $((SECONDS - started))s"
echo "flink-standalone: $(grep -c '^ok:' "$CHECKS") passed, 0 failed"
