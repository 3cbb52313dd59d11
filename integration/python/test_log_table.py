"""A wide log table end to end with plain pyarrow.flight: create it, append 200k rows in
batches over DoPut, read them back through projected scans, GetFlightInfo endpoints,
GetSchema, list_offsets and count."""

from __future__ import annotations

import decimal
import json
from collections import defaultdict
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from flight_helpers import (action1, assert_dense_offsets, append_cmd, call_options, check_ack, count, decode_ack,
                            path, put, raises_grpc, scan, ticket)

ROWS = 200_000
BUCKETS = 4
BATCH_ROWS = 25_000          # 6 batches written one by one ...
TABLE_CHUNK_ROWS = 12_500    # ... then the last 50k rows as one write_table of 4 chunks

# SQL type -> Arrow type the contract maps it to (DESIGN.md, "SQL type names <-> Arrow").
SQL_TYPES = [
    ("BIGINT", pa.int64()),
    ("INT", pa.int32()),
    ("DOUBLE", pa.float64()),
    ("STRING", pa.string()),
    ("BOOLEAN", pa.bool_()),
    ("TIMESTAMP(3)", pa.timestamp("ms")),
    ("DECIMAL(10,2)", pa.decimal128(10, 2)),
    ("DATE", pa.date32()),
]
SHORT = {"BIGINT": "big", "INT": "int", "DOUBLE": "dbl", "STRING": "str", "BOOLEAN": "bool",
         "TIMESTAMP(3)": "ts", "DECIMAL(10,2)": "dec", "DATE": "date"}


def wide_columns() -> list[dict]:
    """id BIGINT NOT NULL plus 42 columns cycling through the 8 types; every 5th NOT NULL."""
    cols = [{"name": "id", "type": "BIGINT", "nullable": False}]
    for i in range(1, 43):
        sql, _ = SQL_TYPES[(i - 1) % len(SQL_TYPES)]
        cols.append({"name": f"c{i:02d}_{SHORT[sql]}", "type": sql, "nullable": i % 5 != 0})
    return cols


def wide_schema() -> pa.Schema:
    types = dict(SQL_TYPES)
    return pa.schema([pa.field(c["name"], types[c["type"]], nullable=c["nullable"]) for c in wide_columns()])


def _values(i: int, sql: str, ids: pa.Array) -> pa.Array:
    if sql == "BIGINT":
        return pc.subtract(pc.multiply(ids, i), 5)
    if sql == "INT":
        return pc.cast(pc.subtract(pc.bit_wise_and(pc.multiply(ids, i), 0xFFFFFF), 0x7FFFFF), pa.int32())
    if sql == "DOUBLE":
        return pc.divide(pc.cast(pc.multiply(ids, i), pa.float64()), 7.0)
    if sql == "STRING":
        return pc.binary_join_element_wise(f"v{i}-", pc.cast(ids, pa.string()), "")
    if sql == "BOOLEAN":
        return pc.equal(pc.bit_wise_and(pc.add(ids, i), 3), 0)
    if sql == "TIMESTAMP(3)":
        return pc.cast(pc.add(pc.multiply(ids, 1000), 1_700_000_000_000 + i), pa.timestamp("ms"))
    if sql == "DECIMAL(10,2)":
        cents = pc.cast(pc.subtract(pc.multiply(ids, i), 77), pa.decimal128(21, 0))
        return pc.cast(pc.divide(cents, pa.scalar(decimal.Decimal(100), pa.decimal128(3, 0))),
                       pa.decimal128(10, 2))
    if sql == "DATE":
        return pc.cast(pc.cast(pc.add(18_000, pc.bit_wise_and(pc.add(ids, i), 0x3FFF)), pa.int32()), pa.date32())
    raise AssertionError(sql)


def make_rows(start: int, n: int) -> pa.Table:
    """Deterministic rows with ids start..start+n; nullable columns hold some nulls."""
    schema = wide_schema()
    ids = pa.array(range(start, start + n), pa.int64())
    arrays = [ids]
    for i, col in enumerate(wide_columns()[1:], start=1):
        values = _values(i, col["type"], ids)
        if col["nullable"]:
            is_null = pc.equal(pc.bit_wise_and(pc.add(ids, i), 15), 0)
            values = pc.if_else(is_null, pa.scalar(None, values.type), values)
        arrays.append(values)
    return pa.Table.from_arrays(arrays, schema=schema)


def assert_same_rows(got: pa.Table, expected: pa.Table, key: str = "id") -> None:
    """Equal schema (names, types, nullability) and equal rows, compared in key order."""
    assert got.schema.names == expected.schema.names
    for g, e in zip(got.schema, expected.schema):
        assert g.type == e.type, f"column {g.name}: served {g.type}, expected {e.type}"
        assert g.nullable == e.nullable, f"column {g.name}: nullable {g.nullable}, expected {e.nullable}"
    assert got.num_rows == expected.num_rows
    got = got.sort_by(key).combine_chunks()
    expected = expected.sort_by(key).combine_chunks()
    for name in expected.column_names:
        g, e = got.column(name), expected.column(name)
        if not g.equals(e):
            diff = pc.indices_nonzero(pc.fill_null(pc.not_equal(g, e), True))
            first = diff[0].as_py() if len(diff) else None
            raise AssertionError(f"column {name} differs at sorted row {first}: "
                                 f"{g[first] if first is not None else '?'} != "
                                 f"{e[first] if first is not None else '?'}")


@dataclass
class Wide:
    database: str
    table: str
    data: pa.Table
    acks: list[dict]
    info: dict

    def bucket_rows(self) -> dict[int, int]:
        rows: dict[int, int] = defaultdict(int)
        for ack in self.acks:
            for b in ack["buckets"]:
                rows[b["bucket"]] += b["count"]
        return dict(rows)


@pytest.fixture(scope="module")
def wide(client, database) -> Wide:
    table = "wide"
    info = action1(client, "create_table", {
        "database": database, "table": table, "columns": wide_columns(), "bucket_num": BUCKETS,
        "comment": "43 columns, 4 buckets, no bucket key"})
    data = make_rows(0, ROWS)
    head = data.slice(0, ROWS - 4 * TABLE_CHUNK_ROWS)
    tail = data.slice(ROWS - 4 * TABLE_CHUNK_ROWS)

    writer, reader = client.do_put(path(database, table), data.schema, options=call_options(120))
    acks = []
    try:
        # One batch at a time, each acknowledged before the next is sent.
        for batch in head.to_batches(max_chunksize=BATCH_ROWS):
            writer.write_batch(batch)
            acks.append(decode_ack(reader.read()))
            check_ack(acks[-1], batch.num_rows, BUCKETS)
        # A whole table at once: one ack per chunk, read after the stream is half-closed.
        writer.write_table(tail, max_chunksize=TABLE_CHUNK_ROWS)
        writer.done_writing()
        while (buf := reader.read()) is not None:
            acks.append(decode_ack(buf))
    finally:
        writer.close()
    return Wide(database, table, data, acks, info)


def test_given_wide_table_when_created_should_report_its_columns_and_buckets(client, wide):
    info = action1(client, "get_table", {"database": wide.database, "table": wide.table})
    assert info["kind"] == "log"
    assert info["bucket_num"] == BUCKETS
    assert info["bucket_key"] == [] and info["primary_key"] == []
    assert [(c["name"], c["nullable"]) for c in info["columns"]] == \
        [(c["name"], c["nullable"]) for c in wide_columns()]
    assert info["table_id"] == wide.info["table_id"]
    assert wide.table in action1(client, "list_tables", {"database": wide.database})


def test_given_200k_rows_in_batches_when_appended_should_ack_every_row(wide):
    expected_batches = (ROWS - 4 * TABLE_CHUNK_ROWS) // BATCH_ROWS + 4
    assert len(wide.acks) == expected_batches, [a["rows"] for a in wide.acks]
    assert sum(a["rows"] for a in wide.acks) == ROWS
    for ack in wide.acks:
        check_ack(ack, ack["rows"], BUCKETS)
    # With a single writer, each bucket's offsets are dense and never overlap.
    ranges = assert_dense_offsets(wide.acks)
    # No bucket key: rows are spread over the buckets, not all in one.
    assert len(ranges) > 1, f"all rows went to buckets {sorted(ranges)}"


def test_given_wide_table_when_counted_should_answer_all_rows(client, wide):
    assert count(client, wide.database, wide.table) == ROWS


def test_given_wide_table_when_scanned_with_13_columns_should_return_them_in_order(client, wide):
    names = wide.data.schema.names
    columns = [names[i] for i in (17, 0, 3, 4, 5, 42, 6, 7, 8, 11, 2, 30, 25)]
    assert len(set(columns)) == 13
    got = scan(client, wide.database, wide.table, columns=columns)
    assert got.column_names == columns
    assert_same_rows(got, wide.data.select(columns))


def test_given_wide_table_when_scanned_fully_should_return_every_column_and_row(client, wide):
    got = scan(client, wide.database, wide.table)
    assert_same_rows(got, wide.data)


def test_given_wide_table_when_get_schema_should_match_the_sql_types(client, wide):
    served = client.get_schema(path(wide.database, wide.table), options=call_options()).schema
    assert served.equals(wide_schema()), f"{served}\n!=\n{wide_schema()}"


def test_given_wide_table_when_get_flight_info_should_have_one_endpoint_per_bucket(client, wide):
    info = client.get_flight_info(path(wide.database, wide.table), options=call_options())
    assert info.schema.equals(wide_schema())
    assert info.total_records == ROWS
    assert len(info.endpoints) == BUCKETS
    parts, buckets_seen = [], []
    for endpoint in info.endpoints:
        # Tickets are plain JSON a user can read; locations are empty (same node) or this node.
        request = json.loads(endpoint.ticket.ticket)
        assert request["scan"] == "log" and len(request["buckets"]) == 1, request
        buckets_seen.append(request["buckets"][0])
        parts.append(client.do_get(endpoint.ticket, options=call_options()).read_all())
    assert sorted(buckets_seen) == list(range(BUCKETS))
    per_bucket = wide.bucket_rows()
    assert [p.num_rows for p in parts] == [per_bucket.get(b, 0) for b in buckets_seen]
    assert_same_rows(pa.concat_tables(parts), wide.data)


def test_given_wide_table_when_listing_offsets_should_match_the_acks(client, wide):
    body = {"database": wide.database, "table": wide.table}
    earliest = action1(client, "list_offsets", {**body, "spec": "earliest"})
    latest = action1(client, "list_offsets", {**body, "spec": "latest"})
    assert sorted(o["bucket"] for o in earliest) == list(range(BUCKETS))
    assert all(o["offset"] == 0 for o in earliest), earliest
    per_bucket = wide.bucket_rows()
    assert {o["bucket"]: o["offset"] for o in latest} == {b: per_bucket.get(b, 0) for b in range(BUCKETS)}
    one = action1(client, "list_offsets", {**body, "spec": "latest", "buckets": [2]})
    assert one == [o for o in latest if o["bucket"] == 2]


def test_given_cmd_descriptor_when_appending_should_write_like_a_path(client, database, unique_name):
    table = unique_name("cmd")
    action1(client, "create_table", {"database": database, "table": table,
                                     "columns": wide_columns()[:5], "bucket_num": 2})
    rows = make_rows(1_000, 3_000).select([c["name"] for c in wide_columns()[:5]])
    acks = put(client, append_cmd(database, table), rows.to_batches(max_chunksize=1_000))
    assert [a["rows"] for a in acks] == [1_000, 1_000, 1_000]
    for ack in acks:
        check_ack(ack, 1_000, 2)
    assert count(client, database, table) == 3_000
    assert_same_rows(scan(client, database, table), rows)


def test_given_scan_with_limit_and_bucket_when_read_should_honour_them(client, wide):
    one_bucket = scan(client, wide.database, wide.table, columns=["id"], buckets=[1])
    assert one_bucket.num_rows == wide.bucket_rows().get(1, 0)
    limited = scan(client, wide.database, wide.table, columns=["id"], limit=10)
    assert limited.num_rows == 10
    from_offset = scan(client, wide.database, wide.table, columns=["id"], buckets=[1], **{"from": {"offset": 100}})
    assert from_offset.num_rows == one_bucket.num_rows - 100


def test_given_list_databases_and_health_should_answer(client, wide):
    assert wide.database in action1(client, "list_databases")
    health = action1(client, "health")
    assert health["status"] == "ok" and health["version"]
    assert {a.type for a in client.list_actions()} >= {"create_table", "list_offsets", "health"}
    flights = {tuple(p.decode() for p in f.descriptor.path) for f in client.list_flights()}
    assert (wide.database, wide.table) in flights


def test_given_full_and_projected_scans_when_table_stats_asked_should_count_what_was_sent(client, wide):
    def stats():
        return action1(client, "table_stats", {"database": wide.database, "table": wide.table})

    before = stats()
    full = scan(client, wide.database, wide.table)
    after_full = stats()
    columns = [c["name"] for c in wide_columns()[:5]]
    projected = scan(client, wide.database, wide.table, columns=columns)
    after_projected = stats()

    assert after_full["log_scans"] == before["log_scans"] + 1
    assert after_full["rows_sent"] - before["rows_sent"] == full.num_rows == ROWS
    full_bytes = after_full["bytes_sent"] - before["bytes_sent"]
    projected_bytes = after_projected["bytes_sent"] - after_full["bytes_sent"]
    # A full scan sends the stored (compressed) batches as they are: about what the table stores.
    stored = client.get_flight_info(path(wide.database, wide.table)).total_bytes
    assert 0.9 * stored <= full_bytes <= 1.1 * stored, (full_bytes, stored)
    # 5 of 43 columns: the node sent a fraction of the full scan's bytes, not all of it.
    assert projected_bytes < full_bytes * 0.25, (projected_bytes, full_bytes)
    assert after_projected["messages_sent"] > after_full["messages_sent"]


def test_given_unknown_table_when_table_stats_asked_should_be_not_found(client, database):
    with raises_grpc("NOT_FOUND", "no_such_table"):
        action1(client, "table_stats", {"database": database, "table": "no_such_table"})


def test_given_a_ticket_asking_for_small_messages_when_scanned_should_get_consecutive_row_ranges(client, database):
    table = "cut_into_messages"
    action1(client, "create_table", {
        "database": database, "table": table, "bucket_num": 1,
        "columns": [{"name": "id", "type": "BIGINT", "nullable": False}, {"name": "name", "type": "STRING"}],
        "options": {"table.log.arrow.compression.type": "NONE"}})
    rows = 50_000
    data = pa.table({"id": pa.array(range(rows), pa.int64()), "name": [f"name-{i}" for i in range(rows)]})
    writer, reader = client.do_put(path(database, table), data.schema, options=call_options())
    writer.write_table(data, max_chunksize=rows)  # one stored batch of ~1.2 MB
    writer.done_writing()
    check_ack(decode_ack(reader.read()), rows, 1)
    writer.close()

    stream = client.do_get(ticket(scan="log", database=database, table=table, message_bytes=65536), options=call_options())
    next_offset, batches = 0, []
    for chunk in stream:
        meta = json.loads(chunk.app_metadata.to_pybytes())
        assert meta["base_offset"] == next_offset, "each message starts where the previous one ended"
        assert chunk.data.nbytes <= 65536 * 11 // 10
        next_offset += chunk.data.num_rows
        batches.append(chunk.data)
    assert len(batches) > 10 and next_offset == rows
    got = pa.Table.from_batches(batches)
    for name in ("id", "name"):
        assert got.column(name).combine_chunks().equals(data.column(name).combine_chunks()), name
    whole = client.do_get(ticket(scan="log", database=database, table=table), options=call_options()).read_all()
    assert whole.column("id").num_chunks == 1, "without message_bytes the node sends the stored batch whole"

    with pytest.raises(pa.ArrowInvalid, match="message_bytes"):
        scan(client, database, table, message_bytes=1000)
