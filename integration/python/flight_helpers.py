"""Helpers for the end-to-end pyarrow tests: process control and thin wrappers over plain
``pyarrow.flight`` calls. Nothing here is a Strom client library: every request is the JSON
of the public contract (docs/protocol.md), written the way a pyarrow user writes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.flight as flight
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PEER_SCRIPT = REPO_ROOT / "integration" / "peer" / "pyarrow_peer.py"

# Deadline of every call made by these helpers: a server that never answers fails the
# test with FlightTimedOutError instead of hanging the suite.
CALL_TIMEOUT_S = 60.0
START_TIMEOUT_S = 30.0


def call_options(timeout: float = CALL_TIMEOUT_S) -> flight.FlightCallOptions:
    return flight.FlightCallOptions(timeout=timeout)


# ------------------------------------------------------------------------------------------
# gRPC status code -> what pyarrow raises.
#
# Verified empirically with pyarrow 26.0.1 against a plain grpcio server answering every
# Flight method with each code (test_pyarrow_status_mapping.py re-checks it when grpcio is
# installed). DoAction, DoGet and DoPut behave the same:
#
#   gRPC code            pyarrow exception (exact class)    message starts with
#   INVALID_ARGUMENT     pyarrow.lib.ArrowInvalid           "Flight returned invalid argument error"
#   NOT_FOUND            pyarrow.lib.ArrowKeyError          "Flight returned not found error"
#   ALREADY_EXISTS       pyarrow.lib.ArrowException (base)  "Unknown: Flight returned already exists error"
#   FAILED_PRECONDITION  pyarrow.lib.ArrowInvalid           "gRPC returned precondition failed error"
#   RESOURCE_EXHAUSTED   pyarrow.lib.ArrowInvalid           "gRPC returned resource exhausted error"
#   OUT_OF_RANGE         pyarrow.lib.ArrowInvalid           "gRPC returned out-of-range error"
#   UNIMPLEMENTED        ArrowNotImplementedError           "Flight returned unimplemented error"
#   UNAUTHENTICATED      flight.FlightUnauthenticatedError  "Flight returned unauthenticated error"
#   PERMISSION_DENIED    flight.FlightUnauthorizedError     "Flight returned unauthorized error"
#   UNAVAILABLE          flight.FlightUnavailableError      "Flight returned unavailable error"
#   DEADLINE_EXCEEDED    flight.FlightTimedOutError         "Flight returned timeout error"
#   CANCELLED            flight.FlightCancelledError        "Flight cancelled call"
#   INTERNAL             flight.FlightInternalError         "Flight returned internal error"
#   DATA_LOSS            flight.FlightInternalError         "gRPC returned data loss error"
#   ABORTED              flight.FlightInternalError         "gRPC returned aborted error"
#   UNKNOWN              flight.FlightServerError           "Flight RPC failed"
#
# So the class alone cannot tell INVALID_ARGUMENT from FAILED_PRECONDITION or
# RESOURCE_EXHAUSTED (all ArrowInvalid): the tests check the class AND the message prefix.
# ------------------------------------------------------------------------------------------
GRPC_TO_PYARROW = {
    "INVALID_ARGUMENT": (pa.ArrowInvalid, "Flight returned invalid argument error"),
    "NOT_FOUND": (pa.ArrowKeyError, "Flight returned not found error"),
    "ALREADY_EXISTS": (pa.ArrowException, "Unknown: Flight returned already exists error"),
    "FAILED_PRECONDITION": (pa.ArrowInvalid, "gRPC returned precondition failed error"),
    "RESOURCE_EXHAUSTED": (pa.ArrowInvalid, "gRPC returned resource exhausted error"),
    "OUT_OF_RANGE": (pa.ArrowInvalid, "gRPC returned out-of-range error"),
    "UNIMPLEMENTED": (pa.ArrowNotImplementedError, "Flight returned unimplemented error"),
    "UNAUTHENTICATED": (flight.FlightUnauthenticatedError, "Flight returned unauthenticated error"),
    "PERMISSION_DENIED": (flight.FlightUnauthorizedError, "Flight returned unauthorized error"),
    "UNAVAILABLE": (flight.FlightUnavailableError, "Flight returned unavailable error"),
    "DEADLINE_EXCEEDED": (flight.FlightTimedOutError, "Flight returned timeout error"),
    "CANCELLED": (flight.FlightCancelledError, "Flight cancelled call"),
    "INTERNAL": (flight.FlightInternalError, "Flight returned internal error"),
    "DATA_LOSS": (flight.FlightInternalError, "gRPC returned data loss error"),
    "ABORTED": (flight.FlightInternalError, "gRPC returned aborted error"),
    "UNKNOWN": (flight.FlightServerError, "Flight RPC failed"),
}


def grpc_code_of(exc: BaseException) -> str | None:
    """The gRPC code a pyarrow exception stands for (by exact class and message prefix).

    A C++/pyarrow Flight server also sends the original Arrow status in trailers, and the
    client then rebuilds that status without the prefix: for those the code is read from
    gRPC's "debug context: CODE:" suffix instead (present on streaming calls).
    """
    text = str(exc)
    for code, (cls, prefix) in GRPC_TO_PYARROW.items():
        if type(exc) is cls and text.startswith(prefix):
            return code
    m = re.search(r"gRPC client debug context: ([A-Z_]+):", text)
    if m and m.group(1) in GRPC_TO_PYARROW and isinstance(exc, GRPC_TO_PYARROW[m.group(1)][0]):
        return m.group(1)
    # Unary calls to such servers carry no debug context: trust the class where only one
    # code maps to it.
    codes = [code for code, (cls, _) in GRPC_TO_PYARROW.items() if type(exc) is cls]
    return codes[0] if len(codes) == 1 else None


class _Raised:
    def __init__(self):
        self.value: BaseException | None = None

    @property
    def message(self) -> str:
        return str(self.value)


@contextlib.contextmanager
def raises_grpc(code: str, *contains: str):
    """Asserts that the block fails with the pyarrow exception for gRPC `code`, and that the
    message contains every string of `contains` (case-insensitive)."""
    expected_cls, _ = GRPC_TO_PYARROW[code]
    raised = _Raised()
    try:
        yield raised
    except pa.ArrowException as e:  # every Flight error derives from it
        raised.value = e
        actual = grpc_code_of(e)
        assert actual == code, (
            f"expected gRPC {code} ({expected_cls.__name__}), got {actual or 'unmapped'} "
            f"({type(e).__name__}): {e}")
        lowered = str(e).lower()
        for needle in contains:
            assert needle.lower() in lowered, f"error message should name {needle!r}: {e}"
    else:
        pytest.fail(f"expected gRPC {code} ({expected_cls.__name__}), but the call succeeded")


# ------------------------------------------------------------------------------------------
# Processes
# ------------------------------------------------------------------------------------------
class ServerProcess:
    """A server child process that announces its address with one stdout line."""

    def __init__(self, argv: list[str], line_pattern: str, log_path: Path, env=None,
                 timeout: float = START_TIMEOUT_S):
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._log,
                                     stdin=subprocess.DEVNULL, env=env)
        self._lines: "queue.Queue[str | None]" = queue.Queue()
        self.stdout_lines: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        self.url = self._await_line(re.compile(line_pattern), timeout)

    def _pump(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.stdout_lines.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def _await_line(self, pattern, timeout):
        import time
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop()
                raise RuntimeError(f"{self.argv[0]} did not print its listening line within "
                                   f"{timeout:.0f}s; stdout={self.stdout_lines!r}\n{self.log_tail()}")
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                code = self.proc.wait()
                raise RuntimeError(f"{self.argv} exited with {code} before listening; "
                                   f"stdout={self.stdout_lines!r}\n{self.log_tail()}")
            m = pattern.fullmatch(line)
            if m:
                return m.group(1)

    def log_tail(self, lines: int = 40) -> str:
        try:
            if not self._log.closed:
                self._log.flush()
            text = self.log_path.read_text("utf-8", "replace").splitlines()
        except OSError:
            return ""
        return "stderr tail:\n" + "\n".join(text[-lines:])

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then wait; SIGKILL only if the graceful shutdown hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._log.close()
                raise RuntimeError(f"{self.argv[0]} ignored SIGTERM for {timeout}s\n{self.log_tail()}")
        self._log.close()
        return self.proc.returncode


def strom_bin() -> Path:
    return Path(os.environ.get("STROM_BIN", REPO_ROOT / "target" / "debug" / "strom"))


def start_strom(data_dir: Path, log_path: Path, *extra: str) -> ServerProcess:
    binary = strom_bin()
    if not binary.exists():
        pytest.fail(f"strom binary not found at {binary}: run `cargo build -p strom-server` "
                    "or set STROM_BIN", pytrace=False)
    argv = [str(binary), "serve", "--data-dir", str(data_dir), "--listen", "127.0.0.1:0", *extra]
    return ServerProcess(argv, r"strom: listening on (grpc://127\.0\.0\.1:\d+)", log_path)


def start_peer(log_path: Path, *extra: str) -> ServerProcess:
    argv = [sys.executable, str(PEER_SCRIPT), "--port", "0", *extra]
    return ServerProcess(argv, r"peer: listening on (grpc://127\.0\.0\.1:\d+)", log_path)


# ------------------------------------------------------------------------------------------
# Flight calls, as a pyarrow user writes them
# ------------------------------------------------------------------------------------------
def action(client: flight.FlightClient, kind: str, body: dict | None = None) -> list:
    """Runs one DoAction and JSON-decodes every result body."""
    results = list(client.do_action(flight.Action(kind, json.dumps(body or {}).encode()),
                                    options=call_options()))
    return [json.loads(r.body.to_pybytes()) for r in results]


def action1(client: flight.FlightClient, kind: str, body: dict | None = None):
    """Runs one DoAction that answers exactly one result, and returns it decoded."""
    results = action(client, kind, body)
    assert len(results) == 1, f"{kind} should answer one result, got {results!r}"
    return results[0]


def ticket(**fields) -> flight.Ticket:
    return flight.Ticket(json.dumps(fields).encode())


def scan(client, database: str, table: str, **fields) -> pa.Table:
    return client.do_get(ticket(scan="log", database=database, table=table, **fields),
                         options=call_options()).read_all()


def count(client, database: str, table: str) -> int:
    result = client.do_get(ticket(count="log", database=database, table=table),
                           options=call_options()).read_all()
    assert result.num_rows == 1, f"count answers one row, got {result}"
    assert result.num_columns >= 1, f"count answers a column, got {result.schema}"
    return result.column(0)[0].as_py()


def path(database: str, table: str) -> flight.FlightDescriptor:
    return flight.FlightDescriptor.for_path(database, table)


def append_cmd(database: str, table: str, **extra) -> flight.FlightDescriptor:
    return flight.FlightDescriptor.for_command(
        json.dumps({"write": "append", "database": database, "table": table, **extra}))


def decode_ack(buf) -> dict:
    assert buf is not None, "the server ended the DoPut stream without acknowledging a batch"
    return json.loads(buf.to_pybytes())


def put(client, descriptor, batches, schema: pa.Schema | None = None) -> list[dict]:
    """Writes record batches in one DoPut, reading one ack after each batch. Returns the acks."""
    batches = list(batches)
    schema = schema or batches[0].schema
    writer, reader = client.do_put(descriptor, schema, options=call_options())
    acks = []
    try:
        for batch in batches:
            writer.write_batch(batch)
            acks.append(decode_ack(reader.read()))
        writer.done_writing()
        extra = reader.read()
        assert extra is None, f"one ack per batch expected, got an extra one: {extra.to_pybytes()!r}"
    finally:
        writer.close()
    return acks


def check_ack(ack: dict, rows: int, bucket_num: int | None = None) -> None:
    assert ack["rows"] == rows, ack
    buckets = ack["buckets"]
    assert sum(b["count"] for b in buckets) == rows, ack
    for b in buckets:
        assert set(b) >= {"bucket", "base_offset", "count"}, ack
        assert b["count"] > 0 and b["base_offset"] >= 0, ack
        if bucket_num is not None:
            assert 0 <= b["bucket"] < bucket_num, ack


def assert_dense_offsets(acks: list[dict]) -> dict[int, list[tuple[int, int]]]:
    """Checks that the acked (base_offset, count) spans of each bucket tile 0..n without gaps
    or overlaps; returns the spans per bucket."""
    spans: dict[int, list[tuple[int, int]]] = {}
    for ack in acks:
        for b in ack["buckets"]:
            spans.setdefault(b["bucket"], []).append((b["base_offset"], b["count"]))
    for bucket, items in spans.items():
        items.sort()
        expected_next = 0
        for base, n in items:
            assert base == expected_next, f"bucket {bucket}: offsets overlap or leave a gap: {items}"
            expected_next = base + n
    return spans


# ------------------------------------------------------------------------------------------
# Primary-key tables (docs/protocol.md: upserts and deletes, snapshot scans, lookups)
# ------------------------------------------------------------------------------------------
_SQL_ARROW = {
    "BOOLEAN": pa.bool_(), "TINYINT": pa.int8(), "SMALLINT": pa.int16(), "INT": pa.int32(),
    "BIGINT": pa.int64(), "FLOAT": pa.float32(), "DOUBLE": pa.float64(), "STRING": pa.string(),
    "BYTES": pa.binary(), "DATE": pa.date32(),
}


def arrow_type(sql: str) -> pa.DataType:
    """The Arrow type protocol.md maps a (scalar) SQL type to."""
    sql = sql.upper().replace(" ", "")
    if sql in _SQL_ARROW:
        return _SQL_ARROW[sql]
    if m := re.fullmatch(r"DECIMAL\((\d+),(\d+)\)", sql):
        return pa.decimal128(int(m.group(1)), int(m.group(2)))
    if m := re.fullmatch(r"TIMESTAMP(_LTZ)?\((\d)\)", sql):
        p = int(m.group(2))
        unit = "s" if p == 0 else "ms" if p <= 3 else "us" if p <= 6 else "ns"
        return pa.timestamp(unit, tz="UTC" if m.group(1) else None)
    raise AssertionError(f"no Arrow mapping in the test helpers for {sql}")


def arrow_schema(columns: list[dict], only: list[str] | None = None) -> pa.Schema:
    """The Arrow schema of (some of) a create_table column list, every field nullable as a
    pyarrow user writes it (the server accepts that for NOT NULL columns without nulls)."""
    by_name = {c["name"]: c for c in columns}
    names = only if only is not None else [c["name"] for c in columns]
    return pa.schema([pa.field(n, arrow_type(by_name[n]["type"])) for n in names])


def record_batch(schema: pa.Schema, rows: list[dict]) -> pa.RecordBatch:
    """A record batch of `schema` from row dicts (only the schema's columns are taken)."""
    return pa.RecordBatch.from_pylist([{n: r.get(n) for n in schema.names} for r in rows], schema=schema)


def create_pk_table(client, database: str, table: str, columns: list[dict], primary_key: list[str],
                    **extra) -> dict:
    info = action1(client, "create_table", {"database": database, "table": table, "columns": columns,
                                            "primary_key": primary_key, **extra})
    assert info["kind"] == "primary_key", info
    return info


def write_cmd(kind: str, database: str, table: str, **extra) -> flight.FlightDescriptor:
    """The CMD descriptor of a DoPut: kind is "append", "upsert" or "delete"."""
    return flight.FlightDescriptor.for_command(
        json.dumps({"write": kind, "database": database, "table": table, **extra}))


def check_pk_ack(ack: dict, rows: int, changes: int, bucket_num: int | None = None) -> None:
    """An upsert/delete ack: `rows` of the batch, `changes` change records over its buckets."""
    assert ack["rows"] == rows, ack
    assert not ack.get("duplicate", False), ack
    for b in ack["buckets"]:
        assert set(b) >= {"bucket", "base_offset", "count"}, ack
        assert b["count"] >= 0 and b["base_offset"] >= 0, ack
        if bucket_num is not None:
            assert 0 <= b["bucket"] < bucket_num, ack
    assert sum(b["count"] for b in ack["buckets"]) == changes, (
        f"the model predicts {changes} change records for this batch, the ack says {ack}")


def read_chunks(client, tkt: flight.Ticket) -> tuple[pa.Schema, list[tuple[pa.RecordBatch, dict | None]]]:
    """Every record batch of a DoGet with its decoded app_metadata."""
    reader = client.do_get(tkt, options=call_options())
    chunks = []
    while True:
        try:
            chunk = reader.read_chunk()
        except StopIteration:
            break
        meta = json.loads(chunk.app_metadata.to_pybytes()) if chunk.app_metadata is not None else None
        if chunk.data is not None:
            chunks.append((chunk.data, meta))
    return reader.schema, chunks


class Snapshot:
    """A snapshot scan: the rows, and per bucket its rows (in served order) and log_offset (keyed
    by bucket, or by (partition, bucket) for partitioned tables)."""

    def __init__(self, schema: pa.Schema, chunks):
        self.table = pa.Table.from_batches([b for b, _ in chunks], schema=schema)
        self.rows = self.table.to_pylist()
        self.log_offsets: dict[int, int] = {}
        self.bucket_rows: dict[int, list[dict]] = {}
        self.bucket_order: list[int] = []
        for batch, meta in chunks:
            assert meta is not None and set(meta) >= {"bucket", "log_offset"}, \
                f"every snapshot batch carries {{bucket, log_offset}}, got {meta!r}"
            # A bucket of a partitioned table is (partition, bucket).
            b = meta["bucket"] if meta.get("partition") is None else (meta["partition"], meta["bucket"])
            if b in self.log_offsets:
                assert self.log_offsets[b] == meta["log_offset"], f"bucket {b}: two log offsets in one snapshot"
                assert self.bucket_order[-1] == b, f"buckets are sent one after another: {self.bucket_order} then {b}"
            else:
                self.bucket_order.append(b)
            self.log_offsets[b] = meta["log_offset"]
            self.bucket_rows.setdefault(b, []).extend(batch.to_pylist())


def snapshot(client, database: str, table: str, **fields) -> Snapshot:
    return Snapshot(*read_chunks(client, ticket(scan="snapshot", database=database, table=table, **fields)))


def changelog(client, database: str, table: str, **fields) -> pa.Table:
    """The changelog of a primary-key table (a log scan), with _bucket/_offset by default,
    sorted by bucket then offset."""
    fields.setdefault("metadata_columns", True)
    got = scan(client, database, table, **fields)
    if fields["metadata_columns"]:
        got = got.sort_by([("_bucket", "ascending"), ("_offset", "ascending")])
    return got


def lookup(client, database: str, table: str, keys: list[list], kind: str = "primary_key", **fields) -> pa.Table:
    return client.do_get(ticket(lookup=kind, database=database, table=table, keys=keys, **fields),
                         options=call_options()).read_all()


def count_of(client, database: str, table: str, kind: str = "log", **fields) -> int:
    result = client.do_get(ticket(count=kind, database=database, table=table, **fields),
                           options=call_options()).read_all()
    assert result.num_rows == 1 and result.column_names == ["count"], result
    assert result.schema.field("count").type == pa.int64(), result.schema
    return result.column(0)[0].as_py()


def exchange(client, request: dict, batches: list[pa.RecordBatch]) -> list[pa.RecordBatch]:
    """A DoExchange lookup: sends each key batch and reads its answer before the next."""
    descriptor = flight.FlightDescriptor.for_command(json.dumps(request))
    writer, reader = client.do_exchange(descriptor, options=call_options())
    answers = []
    try:
        writer.begin(batches[0].schema)
        for batch in batches:
            writer.write_batch(batch)
            answers.append(reader.read_chunk().data)
        writer.done_writing()
        try:
            extra = reader.read_chunk()
        except StopIteration:
            pass
        else:
            pytest.fail(f"one answer per key batch expected, got an extra message: {extra.data}")
    finally:
        writer.close()
    return answers
