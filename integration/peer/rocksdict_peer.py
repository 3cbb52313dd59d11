#!/usr/bin/env python3
"""A rocksdict Flight peer: the primary-key table server a user would hack together.

A pyarrow Flight server that keeps rows of primary-key tables in RocksDB through the
``rocksdict`` binding. The benchmark harness (``strom-bench --scenarios pk``) runs it next to
Strom and drives both with the same raw Arrow Flight client code, so it answers the subset of
the Strom contract (docs/protocol.md) that the primary-key benchmarks use, with the same
wire shapes:

* DoAction ``create_database``, ``create_table`` (with ``primary_key`` and ``bucket_key``),
  ``drop_table``, ``get_table``, ``list_tables``, ``health`` (JSON bodies);
* DoPut upserts: a PATH descriptor ``["db", "table"]`` or a CMD descriptor
  ``{"write": "upsert", "database", "table", "target_columns"?: [..]}``; each batch is written
  in one RocksDB write batch and acknowledged with ``{"rows": n, "buckets": [...]}``. A
  partial update (``target_columns``) reads the stored rows first and replaces only the target
  columns;
* DoGet lookup tickets ``{"lookup": "primary_key" | "prefix", "database", "table",
  "keys": [[..], ..], "columns"?: [..]}`` and ``{"count": "rows", ..}``;
* DoExchange lookups: CMD ``{"lookup": .., "database", "table", "columns"?}`` plus the schema
  of the key columns; each key batch is answered by one batch whose first column is
  ``_key_index`` (int32), then the requested columns. Point lookups use one ``multi_get`` per
  batch, prefix lookups one iterator seek per key.

Storage: one RocksDB database for the process. A row is stored under ``table id (u32 BE) |
key columns`` (integers as big-endian with the sign bit flipped, strings NUL-terminated, so
a prefix of the key columns is a seekable range) and its value is a pickled tuple of the
column values. The options are those of Strom's store (LZ4 at every level, Bloom
filter 10 bits/key, memtable whole-key Bloom filter, data-block hash index, 256 MiB
HyperClockCache with index and filter blocks in it, L0 filters pinned) with RocksDB's default
WAL (no fsync). Unlike Strom it does not flush its memtables when writes stop.
``--rocksdb-options default`` opens the database with rocksdict's defaults instead (what a
user hacking a lookup server together gets). There
is no changelog, no merge engine other than "last row", and no deletes.

CLI: ``python rocksdict_peer.py --port 0 --data-dir DIR`` prints
``rocksdict-peer: listening on grpc://HOST:PORT`` once it serves; SIGTERM/SIGINT stop it.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import signal
import struct
import sys
import tempfile
import threading
import time

import pyarrow as pa
import pyarrow.flight as flight
import rocksdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pyarrow_peer import sql_type_to_arrow  # noqa: E402  (same directory)

VERSION = f"rocksdict-peer {pa.__version__}"
KEY_INDEX = "_key_index"
_SIGN = 1 << 63
_PICKLE = pickle.HIGHEST_PROTOCOL


def _storage_type(t: pa.DataType) -> pa.DataType:
    """Timestamps and dates are stored as their integer value (fast to pickle)."""
    if pa.types.is_timestamp(t) or pa.types.is_date64(t):
        return pa.int64()
    if pa.types.is_date32(t):
        return pa.int32()
    return t


def _py_values(col: pa.Array) -> list:
    """A column as plain Python values (integers for temporal types)."""
    st = _storage_type(col.type)
    if st != col.type:
        col = col.view(st) if col.type.bit_width == st.bit_width else col.cast(st)
    return col.to_pylist()


class _Table:
    """One primary-key table: schema, key layout and its keyspace prefix."""

    def __init__(self, info: dict, schema: pa.Schema, table_id: int):
        self.info = info
        self.schema = schema
        self.prefix = struct.pack(">I", table_id)
        self.names = schema.names
        self.key_names = list(info["primary_key"])
        self.key_pos = [self.names.index(n) for n in self.key_names]
        self.bucket_key = list(info["bucket_key"])
        self.key_types = [schema.field(n).type for n in self.key_names]

    def encode_key(self, values) -> bytes:
        """``prefix | key columns``: order-preserving, so key prefixes are seekable ranges."""
        out = [self.prefix]
        for v in values:
            if isinstance(v, bool) or v is None:
                raise pa.ArrowInvalid(f"unsupported key value {v!r}")
            if isinstance(v, int):
                out.append(struct.pack(">Q", (v + _SIGN) & 0xFFFFFFFFFFFFFFFF))
            elif isinstance(v, str):
                out.append(v.encode() + b"\x00")
            else:
                raise pa.ArrowInvalid(f"unsupported key value {v!r}")
        return b"".join(out)

    def output(self, columns) -> list[str]:
        """The returned columns: the listed ones, then the key columns not listed."""
        if columns is None:
            return list(self.names)
        unknown = [c for c in columns if c not in self.names]
        if unknown:
            raise pa.ArrowInvalid(f"unknown columns {unknown}")
        return list(columns) + [k for k in self.key_names if k not in columns]


class RocksdictPeer(flight.FlightServerBase):
    def __init__(self, location: str, data_dir: str, rocksdb_options: str = "strom",
                 block_cache_bytes: int = 256 * 1024 * 1024, **kwargs):
        super().__init__(location, **kwargs)
        self._lock = threading.Lock()
        self._databases: set[str] = set()
        self._tables: dict[tuple[str, str], _Table] = {}
        self._next_id = 1
        self._started = time.monotonic()
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        if rocksdb_options == "default":
            # What a user hacking a lookup server together gets: rocksdict's defaults.
            self._db = rocksdict.Rdict(data_dir, options)
            return
        options.increase_parallelism(2)
        options.set_compression_type(rocksdict.DBCompressionType.lz4())
        options.set_bottommost_compression_type(rocksdict.DBCompressionType.lz4())
        options.set_memtable_prefix_bloom_ratio(0.05)
        options.set_memtable_whole_key_filtering(True)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(10, False)
        table.set_data_block_index_type(rocksdict.DataBlockIndexType.binary_and_hash())
        table.set_data_block_hash_ratio(0.75)
        table.set_block_cache(rocksdict.Cache.new_hyper_clock_cache(block_cache_bytes, 0))
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        options.set_block_based_table_factory(table)
        self._db = rocksdict.Rdict(data_dir, options)

    def close_db(self):
        self._db.close()

    # ---------------------------------------------------------------- helpers

    @staticmethod
    def _parse(body, what: str) -> dict:
        raw = bytes(body)
        try:
            value = json.loads(raw or b"{}")
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise pa.ArrowInvalid(f"{what} is not valid JSON: {e}") from None
        if not isinstance(value, dict):
            raise pa.ArrowInvalid(f"{what} must be a JSON object")
        return value

    def _table(self, database, table) -> _Table:
        with self._lock:
            t = self._tables.get((database, table))
        if t is None:
            raise KeyError(f"table {database}.{table} not found")
        return t

    def _rows(self, t: _Table, keys: list[bytes]) -> list:
        """Stored rows (tuples) of the found keys, as (request index, row)."""
        found = self._db.get(keys)
        return [(i, pickle.loads(v)) for i, v in enumerate(found) if v is not None]

    def _prefix_rows(self, t: _Table, prefixes: list[bytes]) -> list:
        out = []
        it = self._db.iter()
        for i, p in enumerate(prefixes):
            it.seek(p)
            while it.valid():
                k = it.key()
                if not k.startswith(p):
                    break
                out.append((i, pickle.loads(it.value())))
                it.next()
        return out

    def _to_batch(self, t: _Table, rows: list, names: list[str], with_index: bool) -> pa.RecordBatch:
        fields, arrays = [], []
        columns = list(zip(*(r for _, r in rows))) if rows else [()] * len(t.names)
        if with_index:
            fields.append(pa.field(KEY_INDEX, pa.int32(), nullable=False))
            arrays.append(pa.array([i for i, _ in rows], pa.int32()))
        for n in names:
            f = t.schema.field(n)
            values = columns[t.names.index(n)]
            st = _storage_type(f.type)
            arr = pa.array(values, type=st)
            if st != f.type:
                arr = arr.view(f.type) if f.type.bit_width == st.bit_width else arr.cast(f.type)
            fields.append(f)
            arrays.append(arr)
        return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))

    def _lookup(self, t: _Table, kind: str, key_columns: list[list]) -> list:
        if kind == "primary_key":
            keys = [t.encode_key(k) for k in zip(*key_columns)]
            return self._rows(t, keys)
        if kind == "prefix":
            if not t.bucket_key or len(t.bucket_key) >= len(t.key_names):
                raise pa.ArrowInvalid("prefix lookups need a bucket key that is a strict prefix of the primary key")
            return self._prefix_rows(t, [t.encode_key(k) for k in zip(*key_columns)])
        raise pa.ArrowInvalid(f"unknown lookup {kind!r}")

    # ---------------------------------------------------------------- actions

    def list_actions(self, context):
        return [("create_database", ""), ("create_table", ""), ("drop_table", ""), ("get_table", ""),
                ("list_tables", ""), ("health", "")]

    def do_action(self, context, action):
        body = action.body.to_pybytes() if action.body is not None else b""
        req = self._parse(body, f"body of action {action.type!r}")
        handler = getattr(self, "_action_" + action.type, None)
        if handler is None:
            raise pa.ArrowInvalid(f"unknown action {action.type!r}")
        return [flight.Result(pa.py_buffer(json.dumps(handler(req)).encode()))]

    def _action_health(self, req):
        return {"status": "ok", "version": VERSION, "uptime_ms": int((time.monotonic() - self._started) * 1000)}

    def _action_create_database(self, req):
        with self._lock:
            created = req["name"] not in self._databases
            self._databases.add(req["name"])
        return {"created": created}

    def _action_list_tables(self, req):
        with self._lock:
            return sorted(t for (d, t) in self._tables if d == req.get("database"))

    def _action_create_table(self, req):
        db, name, columns = req.get("database"), req.get("table"), req.get("columns") or []
        pk = list(req.get("primary_key") or [])
        if not pk:
            raise pa.ArrowInvalid("this peer serves primary-key tables only: primary_key is required")
        bucket_key = list(req.get("bucket_key") or pk)
        if bucket_key != pk[: len(bucket_key)]:
            raise pa.ArrowInvalid("bucket_key must be a prefix of the primary key")
        fields = [pa.field(c["name"], sql_type_to_arrow(c["type"]),
                           nullable=c.get("nullable", c["name"] not in pk)) for c in columns]
        with self._lock:
            if db not in self._databases:
                raise KeyError(f"database {db} not found")
            if (db, name) in self._tables:
                if req.get("if_not_exists"):
                    return self._tables[(db, name)].info
                raise pa.ArrowInvalid(f"table {db}.{name} already exists")
            info = {"database": db, "table": name, "table_id": self._next_id, "kind": "primary_key",
                    "columns": columns, "primary_key": pk, "bucket_key": bucket_key,
                    "bucket_num": 1, "options": dict(req.get("options") or {})}
            self._tables[(db, name)] = _Table(info, pa.schema(fields), self._next_id)
            self._next_id += 1
        return info

    def _action_drop_table(self, req):
        key = (req.get("database"), req.get("table"))
        with self._lock:
            t = self._tables.pop(key, None)
        if t is None:
            if req.get("if_exists"):
                return {"dropped": False}
            raise KeyError(f"table {key[0]}.{key[1]} not found")
        end = struct.pack(">I", struct.unpack(">I", t.prefix)[0] + 1)
        self._db.delete_range(t.prefix, end)
        return {"dropped": True}

    def _action_get_table(self, req):
        return self._table(req.get("database"), req.get("table")).info

    # ---------------------------------------------------------------- data path

    def do_put(self, context, descriptor, reader, writer):
        targets = None
        if descriptor.descriptor_type == flight.DescriptorType.PATH:
            path = [p.decode() if isinstance(p, bytes) else p for p in descriptor.path]
            t = self._table(path[0], path[1])
        else:
            cmd = self._parse(descriptor.command, "CMD descriptor")
            if cmd.get("write") != "upsert":
                raise pa.ArrowInvalid(f"unsupported write {cmd.get('write')!r}: this peer only upserts")
            t = self._table(cmd.get("database"), cmd.get("table"))
            targets = cmd.get("target_columns")
        written = t.names if targets is None else t.key_names + [c for c in targets if c not in t.key_names]
        positions = [t.names.index(c) for c in written]
        while True:
            try:
                chunk = reader.read_chunk()
            except StopIteration:
                break
            batch = chunk.data
            if batch is None:
                continue
            missing = [c for c in written if c not in batch.schema.names]
            if missing:
                raise pa.ArrowInvalid(f"batch misses columns {missing}")
            values = [_py_values(batch.column(c).cast(t.schema.field(c).type)) for c in written]
            key_cols = [values[written.index(k)] for k in t.key_names]
            keys = [t.encode_key(k) for k in zip(*key_cols)]
            wb = rocksdict.WriteBatch(raw_mode=True)
            if targets is None:
                for k, row in zip(keys, zip(*values)):
                    wb.put(k, pickle.dumps(row, _PICKLE))
            else:
                # Partial update: read, replace the target columns, write back.
                stored = self._db.get(keys)
                width = len(t.names)
                for r, (k, old) in enumerate(zip(keys, stored)):
                    row = list(pickle.loads(old)) if old is not None else [None] * width
                    for p, col in zip(positions, values):
                        row[p] = col[r]
                    wb.put(k, pickle.dumps(tuple(row), _PICKLE))
            self._db.write(wb)
            ack = {"rows": batch.num_rows, "buckets": [{"bucket": 0, "base_offset": 0, "count": batch.num_rows}]}
            writer.write(pa.py_buffer(json.dumps(ack).encode()))

    def do_get(self, context, ticket):
        req = self._parse(ticket.ticket, "ticket")
        t = self._table(req.get("database"), req.get("table"))
        if "count" in req:
            n = 0
            it = self._db.iter()
            it.seek(t.prefix)
            while it.valid() and it.key().startswith(t.prefix):
                n += 1
                it.next()
            return flight.RecordBatchStream(pa.table({"count": pa.array([n], pa.int64())}))
        if "lookup" not in req:
            raise pa.ArrowInvalid(f"unsupported ticket with keys {sorted(req)}: this peer serves lookups and counts")
        keys = req.get("keys") or []
        key_columns = [list(c) for c in zip(*keys)] if keys else []
        names = t.output(req.get("columns"))
        rows = self._lookup(t, req["lookup"], key_columns) if keys else []
        batch = self._to_batch(t, rows, names, with_index=False)
        return flight.RecordBatchStream(pa.Table.from_batches([batch]))

    def do_exchange(self, context, descriptor, reader, writer):
        cmd = self._parse(descriptor.command, "DoExchange CMD descriptor")
        t = self._table(cmd.get("database"), cmd.get("table"))
        kind = cmd.get("lookup")
        names = t.output(cmd.get("columns"))
        key_names = t.key_names if kind == "primary_key" else t.bucket_key
        started = False
        while True:
            try:
                chunk = reader.read_chunk()
            except StopIteration:
                break
            batch = chunk.data
            if batch is None:
                continue
            key_columns = [_py_values(batch.column(n)) for n in key_names]
            out = self._to_batch(t, self._lookup(t, kind, key_columns), names, with_index=True)
            if not started:
                writer.begin(out.schema)
                started = True
            writer.write_batch(out)
        if not started:
            writer.begin(self._to_batch(t, [], names, with_index=True).schema)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="rocksdict Flight peer for the Strom primary-key benchmarks")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data-dir", default=None, help="RocksDB directory (default: a temporary one, removed at exit)")
    parser.add_argument("--rocksdb-options", choices=["strom", "default"], default="strom",
                        help="strom: the options of Strom's store (like for like); default: rocksdict's defaults")
    parser.add_argument("--block-cache-bytes", type=int, default=256 * 1024 * 1024,
                        help="block cache of the strom options (strom-bench passes Strom's kv.block_cache_bytes)")
    args = parser.parse_args(argv)
    temp = None
    data_dir = args.data_dir
    if data_dir is None:
        temp = tempfile.mkdtemp(prefix="rocksdict-peer-")
        data_dir = temp
    stop_signals = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    server = RocksdictPeer(f"grpc://{args.host}:{args.port}", data_dir, rocksdb_options=args.rocksdb_options,
                          block_cache_bytes=args.block_cache_bytes)
    print(f"rocksdict-peer: listening on grpc://{args.host}:{server.port}", flush=True)
    signum = signal.sigwait(stop_signals)
    print(f"rocksdict-peer: got signal {signum}, shutting down", file=sys.stderr, flush=True)
    server.shutdown()
    server.wait()
    server.close_db()
    if temp is not None:
        shutil.rmtree(temp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
