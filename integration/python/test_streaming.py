"""Tailing a log table with `follow`, and the per-chunk metadata of scans."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import defaultdict

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.flight as flight

from flight_helpers import action1, call_options, put, scan, ticket

COLUMNS = [
    {"name": "id", "type": "BIGINT", "nullable": False},
    {"name": "name", "type": "STRING"},
    {"name": "price", "type": "DOUBLE"},
]
SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), ("name", pa.string()), ("price", pa.float64())])


def rows(start: int, n: int) -> pa.RecordBatch:
    ids = list(range(start, start + n))
    return pa.record_batch([pa.array(ids, pa.int64()), pa.array([f"n{i}" for i in ids]),
                            pa.array([i * 0.5 for i in ids])], schema=SCHEMA)


def make_table(client, database, name, buckets):
    action1(client, "create_table", {"database": database, "table": name, "columns": COLUMNS,
                                     "bucket_num": buckets})


class Follower(threading.Thread):
    """Reads a follow scan in the background, chunk by chunk, until cancelled."""

    def __init__(self, client, request: dict, want_rows: int):
        super().__init__(daemon=True)
        self.client, self.request, self.want_rows = client, request, want_rows
        self.opened = threading.Event()    # do_get returned: the schema arrived
        self.received = threading.Event()  # want_rows rows arrived
        self.reader = None
        self.batches: list[pa.RecordBatch] = []
        self.metadata: list[dict] = []
        self.error: BaseException | None = None

    def run(self):
        try:
            # No deadline: a follow scan lasts until cancelled.
            self.reader = self.client.do_get(ticket(**self.request))
            self.opened.set()
            total = 0
            while True:
                chunk = self.reader.read_chunk()  # raises StopIteration at end of stream
                if chunk.app_metadata is not None:
                    self.metadata.append(json.loads(chunk.app_metadata.to_pybytes()))
                if chunk.data is not None and chunk.data.num_rows:
                    self.batches.append(chunk.data)
                    total += chunk.data.num_rows
                    if total >= self.want_rows:
                        self.received.set()
        except BaseException as e:  # noqa: BLE001 - reported to the test thread
            self.error = e
        finally:
            self.opened.set()


def test_given_follow_from_latest_when_a_batch_is_appended_should_receive_it(client, database, unique_name):
    table = unique_name("tail")
    make_table(client, database, table, buckets=2)
    put(client, flight.FlightDescriptor.for_path(database, table), [rows(0, 100)])

    follower = Follower(client, {"scan": "log", "database": database, "table": table,
                                 "follow": True, "from": "latest"}, want_rows=50)
    follower.start()
    assert follower.opened.wait(15), "a follow scan should send its schema without waiting for data"
    assert follower.error is None, f"follow scan failed: {follower.error!r}"

    acks = put(client, flight.FlightDescriptor.for_path(database, table), [rows(1_000, 50)])
    assert acks[0]["rows"] == 50
    assert follower.received.wait(15), f"the follower got {sum(b.num_rows for b in follower.batches)} of 50 rows"

    follower.reader.cancel()
    follower.join(10)
    assert not follower.is_alive(), "the follow reader should stop once cancelled"

    got = pa.Table.from_batches(follower.batches)
    # From "latest": the 100 rows written before the scan started are not replayed.
    assert sorted(got.column("id").to_pylist()) == list(range(1_000, 1_050))
    assert got.schema.names == SCHEMA.names
    for meta in follower.metadata:
        assert {"bucket", "base_offset", "high_watermark"} <= set(meta), meta


def test_given_follow_with_projection_when_two_appends_should_stream_both(client, database, unique_name):
    table = unique_name("tail2")
    make_table(client, database, table, buckets=1)
    follower = Follower(client, {"scan": "log", "database": database, "table": table, "follow": True,
                                 "from": "earliest", "columns": ["name"]}, want_rows=30)
    follower.start()
    assert follower.opened.wait(15) and follower.error is None, repr(follower.error)
    put(client, flight.FlightDescriptor.for_path(database, table), [rows(0, 10)])
    put(client, flight.FlightDescriptor.for_path(database, table), [rows(10, 20)])
    assert follower.received.wait(15), f"got {sum(b.num_rows for b in follower.batches)} of 30 rows"
    follower.reader.cancel()
    follower.join(10)
    assert not follower.is_alive()
    got = pa.Table.from_batches(follower.batches)
    assert got.column_names == ["name"]
    assert got.column("name").to_pylist() == [f"n{i}" for i in range(30)]


def test_given_metadata_columns_when_scanned_should_add_bucket_offset_and_timestamp(client, database, unique_name):
    table = unique_name("meta")
    make_table(client, database, table, buckets=4)
    before = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(minutes=1)
    acks = []
    for start in (0, 300, 600):
        acks += put(client, flight.FlightDescriptor.for_path(database, table), [rows(start, 300)])
    after = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(minutes=1)
    per_bucket: dict[int, int] = defaultdict(int)
    for ack in acks:
        for b in ack["buckets"]:
            per_bucket[b["bucket"]] += b["count"]

    reader = client.do_get(ticket(scan="log", database=database, table=table, metadata_columns=True),
                           options=call_options())
    chunks = []
    while True:
        try:
            chunk = reader.read_chunk()
        except StopIteration:
            break
        if chunk.data is None:
            continue
        assert chunk.app_metadata is not None, "every record batch of a scan carries app_metadata"
        chunks.append((chunk.data, json.loads(chunk.app_metadata.to_pybytes())))

    assert chunks, "the scan returned no data"
    names = chunks[0][0].schema.names
    assert names == SCHEMA.names + ["_bucket", "_offset", "_timestamp"], names
    seen = defaultdict(list)
    for batch, meta in chunks:
        assert {"bucket", "base_offset", "high_watermark"} <= set(meta), meta
        bucket, base = meta["bucket"], meta["base_offset"]
        assert pc.all(pc.equal(batch.column("_bucket"), bucket)).as_py(), f"_bucket != {bucket} in {meta}"
        offsets = batch.column("_offset").to_pylist()
        assert offsets == list(range(base, base + batch.num_rows)), meta
        assert meta["high_watermark"] == per_bucket[bucket], (meta, dict(per_bucket))
        ts = batch.column("_timestamp")
        assert pa.types.is_timestamp(ts.type), ts.type
        assert ts.null_count == 0
        lo, hi = pc.min_max(ts.cast(pa.timestamp("ms", tz=ts.type.tz))).values()
        assert before <= lo.as_py().replace(tzinfo=None) and hi.as_py().replace(tzinfo=None) <= after, (lo, hi)
        seen[bucket].extend(offsets)
    # Every record of every bucket exactly once, offsets dense from 0.
    assert {b: sorted(o) for b, o in seen.items()} == {b: list(range(n)) for b, n in per_bucket.items()}
    assert sum(batch.num_rows for batch, _ in chunks) == 900

    # Projection and metadata columns together.
    projected = scan(client, database, table, columns=["price"], metadata_columns=True)
    assert projected.column_names == ["price", "_bucket", "_offset", "_timestamp"]
    assert projected.num_rows == 900
