"""Partitioned tables over plain pyarrow.flight: rows land in the partition their `ds` names,
partitions are created on first write (or refused when dynamic creation is off), each has its
own buckets, and scans, counts, offsets, lookups and GetFlightInfo take a partition or span
them all."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.flight as flight

from flight_helpers import (action1, call_options, count_of, lookup, put, raises_grpc, read_chunks, snapshot,
                            ticket, write_cmd)

LOG_COLUMNS = [
    {"name": "page", "type": "STRING"},
    {"name": "user_id", "type": "BIGINT"},
    {"name": "ds", "type": "STRING"},
]
LOG_SCHEMA = pa.schema([("page", pa.string()), ("user_id", pa.int64()), ("ds", pa.string())])


def create_log_table(client, database, table, **extra):
    return action1(client, "create_table", {"database": database, "table": table, "columns": LOG_COLUMNS,
                                            "partition_keys": ["ds"], "bucket_num": 2, **extra})


def log_batch(rows):
    return pa.RecordBatch.from_pylist([{"page": p, "user_id": u, "ds": d} for p, u, d in rows], schema=LOG_SCHEMA)


def partitions(client, database, table):
    return [p["name"] for p in action1(client, "list_partitions", {"database": database, "table": table})]


def test_given_rows_of_two_days_when_appended_should_land_in_their_day_partitions(client, database, unique_name):
    t = unique_name("log_page_ri")
    info = create_log_table(client, database, t)
    assert info["partition_keys"] == ["ds"] and info["partitions"] == []
    rows = [("home", 1, "20261120"), ("cart", 2, "20261121"), ("home", 3, "20261120"), ("pay", 4, "20261121"),
            ("home", 5, "20261121")]
    [ack] = put(client, write_cmd("append", database, t), [log_batch(rows)])
    assert ack["rows"] == 5
    per_partition = {}
    for b in ack["buckets"]:
        per_partition[b["partition"]] = per_partition.get(b["partition"], 0) + b["count"]
    assert per_partition == {"20261120": 2, "20261121": 3}, ack
    assert partitions(client, database, t) == ["20261120", "20261121"], "created on first write"
    listed = action1(client, "list_partitions", {"database": database, "table": t})
    assert listed[0]["values"] == {"ds": "20261120"} and listed[0]["partition_id"] != listed[1]["partition_id"]

    day = client.do_get(ticket(scan="log", database=database, table=t, partition="20261121"),
                        options=call_options()).read_all()
    assert sorted(day.column("user_id").to_pylist()) == [2, 4, 5]
    assert set(day.column("ds").to_pylist()) == {"20261121"}

    _, chunks = read_chunks(client, ticket(scan="log", database=database, table=t))
    seen = {(m["partition"], r["user_id"]) for batch, m in chunks for r in batch.to_pylist()}
    assert seen == {(d, u) for _, u, d in rows}, "a scan without a partition spans all of them, each batch naming its partition"

    assert count_of(client, database, t, partition="20261120") == 2
    assert count_of(client, database, t) == 5
    offsets = action1(client, "list_offsets", {"database": database, "table": t, "spec": "latest"})
    assert {(o["partition"], o["bucket"]) for o in offsets} == {(p, b) for p in ["20261120", "20261121"] for b in [0, 1]}
    assert sum(o["offset"] for o in offsets) == 5

    info = client.get_flight_info(flight.FlightDescriptor.for_path(database, t), options=call_options())
    assert len(info.endpoints) == 4, "one endpoint per partition-bucket"
    assert info.total_records == 5
    got = sum(client.do_get(e.ticket, options=call_options()).read_all().num_rows for e in info.endpoints)
    assert got == 5


def test_given_dynamic_creation_off_when_writing_a_new_day_should_be_not_found_until_created(client, database, unique_name):
    t = unique_name("order_ri")
    create_log_table(client, database, t, options={"client.writer.dynamic-create-partition.enabled": "false"})
    with raises_grpc("NOT_FOUND", "20261122", "create_partition"):
        put(client, write_cmd("append", database, t), [log_batch([("home", 1, "20261122")])])
    assert partitions(client, database, t) == [], "nothing created, nothing written"
    assert action1(client, "create_partition", {"database": database, "table": t, "partition": "20261122"}) == {"created": True}
    assert action1(client, "create_partition", {"database": database, "table": t, "partition": "20261122",
                                                "if_not_exists": True}) == {"created": False}
    with raises_grpc("ALREADY_EXISTS", "20261122"):
        action1(client, "create_partition", {"database": database, "table": t, "partition": "20261122"})
    [ack] = put(client, write_cmd("append", database, t, partition="20261122"), [log_batch([("home", 1, "20261122")])])
    assert ack["rows"] == 1 and {b["partition"] for b in ack["buckets"]} == {"20261122"}

    assert action1(client, "drop_partition", {"database": database, "table": t, "partition": "20261122"}) == {"dropped": True}
    assert partitions(client, database, t) == []
    with raises_grpc("NOT_FOUND", "20261122"):
        client.do_get(ticket(scan="log", database=database, table=t, partition="20261122"), options=call_options()).read_all()
    assert action1(client, "drop_partition", {"database": database, "table": t, "partition": "20261122",
                                              "if_exists": True}) == {"dropped": False}


def test_given_bad_partitioned_writes_and_definitions_should_be_rejected_naming_the_culprit(client, database, unique_name):
    t = unique_name("bad")
    create_log_table(client, database, t)
    with raises_grpc("INVALID_ARGUMENT", "row 1", "20261121"):
        put(client, write_cmd("append", database, t, partition="20261120"),
            [log_batch([("a", 1, "20261120"), ("b", 2, "20261121")])])
    with raises_grpc("INVALID_ARGUMENT", "row 0", "\"ds\"", "null"):
        put(client, write_cmd("append", database, t), [pa.RecordBatch.from_pylist(
            [{"page": "a", "user_id": 1, "ds": None}], schema=LOG_SCHEMA)])
    with raises_grpc("INVALID_ARGUMENT", "2026/11/21"):
        put(client, write_cmd("append", database, t), [log_batch([("a", 1, "2026/11/21")])])
    plain = _plain_table(client, database, unique_name)
    with raises_grpc("INVALID_ARGUMENT", "not partitioned"):
        action1(client, "list_partitions", {"database": database, "table": plain})
    with raises_grpc("INVALID_ARGUMENT", "not partitioned"):
        client.do_get(ticket(scan="log", database=database, table=plain, partition="20261121"), options=call_options()).read_all()
    assert partitions(client, database, t) == [], "rejected batches create no partition"
    for columns, extra, culprit in [
        (LOG_COLUMNS[:2] + [{"name": "ds", "type": "INT"}], {}, "must be STRING"),
        (LOG_COLUMNS, {"bucket_key": ["ds"]}, "is a partition key"),
        (LOG_COLUMNS, {"partition_keys": ["dt"]}, "\"dt\""),
    ]:
        body = {"database": database, "table": unique_name("bad_def"), "columns": columns, "partition_keys": ["ds"], **extra}
        with raises_grpc("INVALID_ARGUMENT", culprit):
            action1(client, "create_table", body)
    with raises_grpc("INVALID_ARGUMENT", "is not part of the primary key"):
        action1(client, "create_table", {"database": database, "table": unique_name("bad_pk"), "columns": LOG_COLUMNS,
                                         "primary_key": ["user_id"], "partition_keys": ["ds"]})


def _plain_table(client, database, unique_name):
    t = unique_name("plain")
    action1(client, "create_table", {"database": database, "table": t, "columns": LOG_COLUMNS})
    return t


ORDER_COLUMNS = [
    {"name": "user_id", "type": "BIGINT"},
    {"name": "ds", "type": "STRING"},
    {"name": "order_id", "type": "BIGINT"},
    {"name": "amount", "type": "DOUBLE"},
]
ORDER_SCHEMA = pa.schema([("user_id", pa.int64()), ("ds", pa.string()), ("order_id", pa.int64()), ("amount", pa.float64())])


def test_given_a_partitioned_pk_table_should_upsert_and_look_up_by_key_and_prefix_within_partitions(client, database, unique_name):
    t = unique_name("order_dtm")
    info = action1(client, "create_table", {"database": database, "table": t, "columns": ORDER_COLUMNS,
                                            "primary_key": ["user_id", "ds", "order_id"], "partition_keys": ["ds"],
                                            "bucket_key": ["user_id"], "bucket_num": 3})
    assert info["bucket_key"] == ["user_id"]
    rows = [(1, "20261120", 10, 1.0), (1, "20261121", 11, 2.0), (1, "20261121", 12, 3.0), (2, "20261121", 13, 4.0),
            (1, "20261121", 11, 5.0)]
    batch = pa.RecordBatch.from_pylist([dict(zip(ORDER_SCHEMA.names, r)) for r in rows], schema=ORDER_SCHEMA)
    [ack] = put(client, write_cmd("upsert", database, t), [batch])
    assert ack["rows"] == 5
    assert sum(b["count"] for b in ack["buckets"]) == 6, "4 inserts, then -U/+U for order 11"

    got = lookup(client, database, t, [[1, "20261121", 11], [1, "20261120", 10], [1, "20261119", 10], [2, "20261121", 99]])
    assert got.to_pylist() == [
        {"user_id": 1, "ds": "20261121", "order_id": 11, "amount": 5.0},
        {"user_id": 1, "ds": "20261120", "order_id": 10, "amount": 1.0},
    ], "request order; a missing partition or key answers nothing"

    prefix = lookup(client, database, t, [[1, "20261121"]], kind="prefix")
    assert sorted(prefix.column("order_id").to_pylist()) == [11, 12]
    with raises_grpc("INVALID_ARGUMENT", "partition \"20261120\"", "key 0"):
        lookup(client, database, t, [[1, "20261121", 11]], partition="20261120")

    snap = snapshot(client, database, t, partition="20261121")
    assert sorted((r["user_id"], r["order_id"], r["amount"]) for r in snap.rows) == [(1, 11, 5.0), (1, 12, 3.0), (2, 13, 4.0)]
    everything = snapshot(client, database, t)
    assert len(everything.rows) == 4
    assert count_of(client, database, t, kind="rows") == 4
    assert count_of(client, database, t, kind="rows", partition="20261120") == 1

    delete = pa.RecordBatch.from_pylist([{"user_id": 1, "ds": "20261121", "order_id": 12}],
                                        schema=pa.schema([("user_id", pa.int64()), ("ds", pa.string()), ("order_id", pa.int64())]))
    put(client, write_cmd("delete", database, t), [delete])
    assert lookup(client, database, t, [[1, "20261121", 12]]).num_rows == 0
    partial = pa.RecordBatch.from_pylist([{"user_id": 2, "ds": "20261121", "order_id": 13, "amount": 9.0}], schema=ORDER_SCHEMA)
    put(client, write_cmd("upsert", database, t, target_columns=["amount"]), [partial])
    assert lookup(client, database, t, [[2, "20261121", 13]]).column("amount").to_pylist() == [9.0]
