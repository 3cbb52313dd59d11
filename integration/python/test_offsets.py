"""Offsets as a pyarrow user sees them: bounded scans, time-based offsets, and idempotent
retries with writer_id + sequence on the CMD descriptor."""

from __future__ import annotations

import threading
import time

import pyarrow as pa
import pyarrow.flight as flight

from flight_helpers import action1, append_cmd, assert_dense_offsets, count, path, put, raises_grpc, scan

COLUMNS = [{"name": "id", "type": "BIGINT", "nullable": False}, {"name": "v", "type": "STRING"}]
SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), ("v", pa.string())])


def rows(start: int, n: int) -> pa.RecordBatch:
    ids = list(range(start, start + n))
    return pa.record_batch([pa.array(ids, pa.int64()), pa.array([f"v{i}" for i in ids])], schema=SCHEMA)


def one_bucket_table(client, database, name):
    action1(client, "create_table", {"database": database, "table": name, "columns": COLUMNS, "bucket_num": 1})


def test_given_offsets_when_scanning_from_to_should_return_exactly_that_range(client, database, unique_name):
    table = unique_name("range")
    one_bucket_table(client, database, table)
    put(client, path(database, table), [rows(0, 10), rows(10, 10)])
    got = scan(client, database, table, **{"from": {"offset": 3}, "to": {"offset": 14}})
    assert got.column("id").to_pylist() == list(range(3, 14))
    got = scan(client, database, table, **{"from": "latest"})
    assert got.num_rows == 0
    assert got.schema.names == ["id", "v"]


def test_given_timestamps_when_listing_offsets_should_find_the_first_later_record(client, database, unique_name):
    table = unique_name("time")
    one_bucket_table(client, database, table)
    body = {"database": database, "table": table}
    put(client, path(database, table), [rows(0, 5)])
    # The next append commits at a later millisecond than every record of the first one.
    first = scan(client, database, table, metadata_columns=True)
    cut = max(first.column("_timestamp").cast(pa.int64()).to_pylist()) + 1
    while int(time.time() * 1000) <= cut:
        time.sleep(0.002)
    put(client, path(database, table), [rows(5, 5)])
    assert action1(client, "list_offsets", {**body, "spec": {"timestamp": 0}}) == [{"bucket": 0, "offset": 0}]
    assert action1(client, "list_offsets", {**body, "spec": {"timestamp": cut}}) == [{"bucket": 0, "offset": 5}]
    far = int(time.time() * 1000) + 3_600_000
    assert action1(client, "list_offsets", {**body, "spec": {"timestamp": far}}) == [{"bucket": 0, "offset": 10}]
    got = scan(client, database, table, **{"from": {"timestamp": cut}})
    assert got.column("id").to_pylist() == list(range(5, 10))


def test_given_writer_id_when_a_batch_is_retried_should_return_its_original_offsets(client, database, unique_name):
    table = unique_name("idem")
    one_bucket_table(client, database, table)
    acks = put(client, append_cmd(database, table, writer_id=42, sequence=0), [rows(0, 4), rows(4, 6)])
    assert [a.get("sequence") for a in acks] == [0, 1]
    assert not any(a.get("duplicate") for a in acks)

    # The second batch is sent again (the client never saw its ack): not written twice.
    retry = put(client, append_cmd(database, table, writer_id=42, sequence=1), [rows(4, 6)])
    assert retry[0].get("duplicate") is True, retry
    assert retry[0]["buckets"] == acks[1]["buckets"], (retry, acks)
    assert count(client, database, table) == 10

    # A gap in the sequence is refused and writes nothing.
    with raises_grpc("FAILED_PRECONDITION", "sequence"):
        put(client, append_cmd(database, table, writer_id=42, sequence=5), [rows(100, 1)])
    assert count(client, database, table) == 10

    # The next sequence is accepted; another writer has its own sequence.
    assert put(client, append_cmd(database, table, writer_id=42, sequence=2), [rows(10, 1)])[0]["rows"] == 1
    assert put(client, append_cmd(database, table, writer_id=7, sequence=0), [rows(11, 1)])[0]["rows"] == 1
    assert sorted(scan(client, database, table).column("id").to_pylist()) == list(range(12))


def test_given_concurrent_writers_when_appending_should_assign_dense_unique_offsets(strom, client, database, unique_name):
    table = unique_name("conc")
    action1(client, "create_table", {"database": database, "table": table, "columns": COLUMNS, "bucket_num": 3})
    acks, errors = [], []

    def writer(k: int):
        own = flight.FlightClient(strom.url)
        try:
            for i in range(10):
                start = k * 10_000 + i * 100
                acks.extend(put(own, path(database, table), [rows(start, 100)]))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            own.close()

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(acks) == 60
    assert_dense_offsets(acks)
    got = scan(client, database, table, metadata_columns=True)
    assert got.num_rows == 6_000
    assert len(set(got.column("id").to_pylist())) == 6_000
    assert count(client, database, table) == 6_000
