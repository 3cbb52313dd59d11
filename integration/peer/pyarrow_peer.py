#!/usr/bin/env python3
"""A pyarrow Flight peer: the in-memory table server a user would hack together.

The benchmark harness runs it next to Strom in the same run, driven by the same client
code, so it speaks the subset of the Strom Flight contract (docs/protocol.md) that the
benchmarks use:

* DoAction ``create_database``, ``create_table``, ``drop_table``, ``get_table``,
  ``list_databases``, ``list_tables``, ``list_offsets``, ``health`` (JSON bodies);
* DoPut with a PATH descriptor ``["db", "table"]`` or a CMD descriptor
  ``{"write": "append", "database", "table"}``; every batch is acknowledged with a
  PutResult whose app_metadata is ``{"rows": n, "buckets": [{"bucket": 0,
  "base_offset": o, "count": n}]}``;
* DoGet ``{"scan": "log", "database", "table", "columns"?: [..]}`` (served from memory by
  pyarrow's C++ ``RecordBatchStream``, no Python per batch) and ``{"count": "log", ..}``;
* GetFlightInfo / GetSchema / ListFlights for PATH descriptors (one endpoint: bucket 0).

Everything lives in memory, in one bucket; there is no durability and no ``follow``.
Errors use the same gRPC codes as Strom where pyarrow can express them: InvalidArgument
(``ArrowInvalid``/``ValueError``), NotFound (``KeyError``), AlreadyExists (reported as
InvalidArgument here: a Python server cannot send ALREADY_EXISTS).

CLI: ``python pyarrow_peer.py --port 0`` prints ``peer: listening on grpc://HOST:PORT`` on
stdout once it serves, and shuts down gracefully on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
import time

import pyarrow as pa
import pyarrow.flight as flight

VERSION = "pyarrow-peer " + pa.__version__

_SIMPLE_TYPES = {
    "BOOLEAN": pa.bool_(),
    "TINYINT": pa.int8(),
    "SMALLINT": pa.int16(),
    "INT": pa.int32(),
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "FLOAT": pa.float32(),
    "DOUBLE": pa.float64(),
    "STRING": pa.string(),
    "BYTES": pa.binary(),
    "VARBINARY": pa.binary(),
    "DATE": pa.date32(),
}
_TS_UNITS = {0: "s", 1: "ms", 2: "ms", 3: "ms", 4: "us", 5: "us", 6: "us", 7: "ns", 8: "ns", 9: "ns"}


def sql_type_to_arrow(sql: str) -> pa.DataType:
    """Maps the SQL type names of the contract to Arrow types (the subset benchmarks use)."""
    text = " ".join(sql.strip().upper().split())
    if text in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[text]
    m = re.fullmatch(r"(VARCHAR|CHAR)\s*\(\s*\d+\s*\)", text)
    if m:
        return pa.string()
    m = re.fullmatch(r"DECIMAL\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)", text)
    if m:
        return pa.decimal128(int(m.group(1)), int(m.group(2) or 0))
    m = re.fullmatch(r"(TIMESTAMP|TIMESTAMP_LTZ)\s*(?:\(\s*(\d)\s*\))?", text)
    if m:
        unit = _TS_UNITS[int(m.group(2)) if m.group(2) is not None else 6]
        return pa.timestamp(unit, tz="UTC" if m.group(1) == "TIMESTAMP_LTZ" else None)
    raise ValueError(f"unsupported SQL type {sql!r}")


class _Table:
    """One in-memory log table: its schema and the batches appended so far."""

    def __init__(self, info: dict, schema: pa.Schema):
        self.info = info
        self.schema = schema
        self.batches: list[pa.RecordBatch] = []
        self.rows = 0
        self.nbytes = 0


class PyarrowPeer(flight.FlightServerBase):
    def __init__(self, location: str = "grpc://127.0.0.1:0", **kwargs):
        super().__init__(location, **kwargs)
        self._lock = threading.Lock()
        self._databases: set[str] = set()
        self._tables: dict[tuple[str, str], _Table] = {}
        self._started = time.monotonic()
        self._next_table_id = 1

    # ---------------------------------------------------------------- helpers

    @staticmethod
    def _parse(body, what: str) -> dict:
        raw = bytes(body)
        if not raw:
            raise pa.ArrowInvalid(f"empty {what}: expected a JSON object")
        try:
            value = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise pa.ArrowInvalid(f"{what} is not valid JSON: {e}") from None
        if not isinstance(value, dict):
            raise pa.ArrowInvalid(f"{what} must be a JSON object")
        return value

    def _table(self, database: str, table: str) -> _Table:
        with self._lock:
            t = self._tables.get((database, table))
        if t is None:
            raise KeyError(f"table {database}.{table} not found")
        return t

    def _table_of_descriptor(self, descriptor: flight.FlightDescriptor) -> _Table:
        if descriptor.descriptor_type == flight.DescriptorType.PATH:
            path = [p.decode() if isinstance(p, bytes) else p for p in descriptor.path]
            if len(path) != 2:
                raise pa.ArrowInvalid(f"a PATH descriptor names a table as [database, table], got {path}")
            return self._table(path[0], path[1])
        cmd = self._parse(descriptor.command, "CMD descriptor")
        write = cmd.get("write")
        if write != "append":
            raise pa.ArrowInvalid(f"unsupported write {write!r}: this peer only appends")
        return self._table(cmd.get("database", ""), cmd.get("table", ""))

    def _conform(self, t: _Table, batch: pa.RecordBatch) -> pa.RecordBatch:
        if batch.schema.equals(t.schema):
            for field, col in zip(t.schema, batch.columns):
                if not field.nullable and col.null_count:
                    raise pa.ArrowInvalid(f"column {field.name!r} is NOT NULL but holds a null")
            return batch
        names = batch.schema.names
        expected = t.schema.names
        missing = [n for n in expected if n not in names]
        extra = [n for n in names if n not in expected]
        if missing or extra:
            raise pa.ArrowInvalid(
                f"batch does not match table {t.info['database']}.{t.info['table']}: "
                f"missing columns {missing}, unknown columns {extra}")
        columns = []
        for field in t.schema:
            col = batch.column(field.name)
            if not col.type.equals(field.type):
                try:
                    col = col.cast(field.type, safe=True)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                    raise pa.ArrowInvalid(f"column {field.name!r}: cannot convert {col.type} to {field.type}: {e}") from None
            if not field.nullable and col.null_count:
                raise pa.ArrowInvalid(f"column {field.name!r} is NOT NULL but holds a null")
            columns.append(col)
        return pa.RecordBatch.from_arrays(columns, schema=t.schema)

    # ---------------------------------------------------------------- actions

    def list_actions(self, context):
        return [
            ("create_database", "{name, if_not_exists?} -> {created}"),
            ("create_table", "{database, table, columns, ...} -> table info"),
            ("drop_table", "{database, table, if_exists?} -> {dropped}"),
            ("get_table", "{database, table} -> table info"),
            ("list_databases", "{} -> [name]"),
            ("list_tables", "{database} -> [name]"),
            ("list_offsets", "{database, table, spec} -> [{bucket, offset}]"),
            ("health", "{} -> {status, version, uptime_ms}"),
        ]

    def do_action(self, context, action):
        kind = action.type
        body = action.body.to_pybytes() if action.body is not None else b""
        req = self._parse(body or b"{}", f"body of action {kind!r}")
        handler = getattr(self, "_action_" + kind, None)
        if handler is None:
            raise pa.ArrowInvalid(f"unknown action {kind!r}")
        result = handler(req)
        return [flight.Result(pa.py_buffer(json.dumps(result).encode()))]

    def _action_health(self, req):
        return {"status": "ok", "version": VERSION,
                "uptime_ms": int((time.monotonic() - self._started) * 1000)}

    def _action_create_database(self, req):
        name = req.get("name")
        if not name:
            raise pa.ArrowInvalid("create_database needs a name")
        with self._lock:
            if name in self._databases:
                if req.get("if_not_exists"):
                    return {"created": False}
                raise pa.ArrowInvalid(f"database {name} already exists")
            self._databases.add(name)
        return {"created": True}

    def _action_list_databases(self, req):
        with self._lock:
            return sorted(self._databases)

    def _action_list_tables(self, req):
        db = req.get("database")
        with self._lock:
            if db not in self._databases:
                raise KeyError(f"database {db} not found")
            return sorted(t for (d, t) in self._tables if d == db)

    def _action_create_table(self, req):
        db, name = req.get("database"), req.get("table")
        columns = req.get("columns") or []
        if not db or not name or not columns:
            raise pa.ArrowInvalid("create_table needs database, table and columns")
        if req.get("primary_key"):
            raise pa.ArrowInvalid("this peer serves log tables only: primary_key is not supported")
        fields = []
        for c in columns:
            nullable = c.get("nullable", True)
            fields.append(pa.field(c["name"], sql_type_to_arrow(c["type"]), nullable=nullable))
        schema = pa.schema(fields)
        with self._lock:
            if db not in self._databases:
                raise KeyError(f"database {db} not found")
            existing = self._tables.get((db, name))
            if existing is not None:
                if req.get("if_not_exists"):
                    return existing.info
                raise pa.ArrowInvalid(f"table {db}.{name} already exists")
            info = {
                "database": db, "table": name, "table_id": self._next_table_id, "schema_id": 0,
                "kind": "log",
                "columns": [{"name": c["name"], "type": c["type"], "nullable": c.get("nullable", True)}
                            for c in columns],
                "primary_key": [], "partition_keys": [], "bucket_key": [],
                "bucket_num": 1, "options": dict(req.get("options") or {}), "partitions": [],
                "created_at_ms": int(time.time() * 1000),
            }
            self._next_table_id += 1
            self._tables[(db, name)] = _Table(info, schema)
        return info

    def _action_drop_table(self, req):
        key = (req.get("database"), req.get("table"))
        with self._lock:
            if key not in self._tables:
                if req.get("if_exists"):
                    return {"dropped": False}
                raise KeyError(f"table {key[0]}.{key[1]} not found")
            del self._tables[key]
        return {"dropped": True}

    def _action_get_table(self, req):
        return self._table(req.get("database"), req.get("table")).info

    def _action_list_offsets(self, req):
        t = self._table(req.get("database"), req.get("table"))
        spec = req.get("spec", "latest")
        offset = 0 if spec == "earliest" else t.rows
        return [{"bucket": 0, "offset": offset}]

    # ---------------------------------------------------------------- data path

    def do_put(self, context, descriptor, reader, writer):
        t = self._table_of_descriptor(descriptor)
        while True:
            try:
                chunk = reader.read_chunk()
            except StopIteration:
                break
            batch = chunk.data
            if batch is None:
                continue
            batch = self._conform(t, batch)
            with self._lock:
                base = t.rows
                t.batches.append(batch)
                t.rows += batch.num_rows
                t.nbytes += batch.nbytes
            ack = {"rows": batch.num_rows,
                   "buckets": [{"bucket": 0, "base_offset": base, "count": batch.num_rows}]}
            writer.write(pa.py_buffer(json.dumps(ack).encode()))

    def _snapshot(self, t: _Table) -> pa.Table:
        with self._lock:
            batches = list(t.batches)
        return pa.Table.from_batches(batches, schema=t.schema)

    def do_get(self, context, ticket):
        req = self._parse(ticket.ticket, "ticket")
        if "count" in req:
            t = self._table(req.get("database"), req.get("table"))
            with self._lock:
                rows = t.rows
            return flight.RecordBatchStream(pa.table({"count": pa.array([rows], pa.int64())}))
        if req.get("scan") != "log":
            raise pa.ArrowInvalid(f"unsupported ticket: expected {{\"scan\": \"log\"}} or {{\"count\": ..}}, got keys {sorted(req)}")
        if req.get("follow"):
            raise pa.ArrowInvalid("this peer does not support follow")
        t = self._table(req.get("database"), req.get("table"))
        table = self._snapshot(t)
        columns = req.get("columns")
        if columns is not None:
            unknown = [c for c in columns if c not in t.schema.names]
            if unknown:
                raise pa.ArrowInvalid(f"unknown columns {unknown} in table {t.info['database']}.{t.info['table']}")
            # Table.select only drops/reorders column references: zero-copy.
            table = table.select(columns)
        limit = req.get("limit")
        if limit is not None:
            table = table.slice(0, int(limit))
        # A table created with "table.log.arrow.compression.type" = ZSTD / LZ4_FRAME is served
        # as compressed IPC, as the node serves it (checked on the loopback interface: pyarrow
        # 26 compresses 16 MB of batches to 2 MB on the wire). pyarrow cannot send IPC messages
        # it did not encode, so it compresses the batches it holds on every request: this
        # peer pays the compression per scan, where the node sends what it stored.
        codec = (t.info["options"].get("table.log.arrow.compression.type") or "NONE").upper()
        if codec in ("ZSTD", "LZ4_FRAME"):
            options = pa.ipc.IpcWriteOptions(compression="zstd" if codec == "ZSTD" else "lz4")
            return flight.RecordBatchStream(table, options=options)
        return flight.RecordBatchStream(table)

    def get_schema(self, context, descriptor):
        return flight.SchemaResult(self._table_of_descriptor(descriptor).schema)

    def _flight_info(self, t: _Table, descriptor):
        ticket = json.dumps({"scan": "log", "database": t.info["database"],
                             "table": t.info["table"], "buckets": [0]}).encode()
        with self._lock:
            rows, nbytes = t.rows, t.nbytes
        return flight.FlightInfo(t.schema, descriptor, [flight.FlightEndpoint(ticket, [])], rows, nbytes)

    def get_flight_info(self, context, descriptor):
        return self._flight_info(self._table_of_descriptor(descriptor), descriptor)

    def list_flights(self, context, criteria):
        with self._lock:
            tables = list(self._tables.items())
        for (db, name), t in tables:
            yield self._flight_info(t, flight.FlightDescriptor.for_path(db, name))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="In-memory pyarrow Flight peer for the Strom benchmarks")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    # Block the stop signals before gRPC starts its threads (they inherit the mask), then
    # wait for them synchronously in the main thread: no signal can kill a worker thread
    # mid-request, and shutdown runs outside any signal handler.
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    server = PyarrowPeer(f"grpc://{args.host}:{args.port}")
    print(f"peer: listening on grpc://{args.host}:{server.port}", flush=True)
    signum = signal.sigwait(stop_signals)
    print(f"peer: got signal {signum}, shutting down", file=sys.stderr, flush=True)
    server.shutdown()
    server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
