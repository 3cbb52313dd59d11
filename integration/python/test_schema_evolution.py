"""ALTER TABLE ADD COLUMN over plain pyarrow.flight while a writer keeps writing: the open
DoPut stream goes on with the old schema, new writers send the column, scans return it (null
for the rows written before), and a primary-key table's partial updates may target it."""

from __future__ import annotations

import pyarrow as pa

from flight_helpers import (action1, call_options, create_pk_table, decode_ack, lookup, put, raises_grpc, scan,
                            write_cmd)

OLD = pa.schema([("id", pa.int64()), ("page", pa.string())])
NEW = pa.schema([("id", pa.int64()), ("page", pa.string()), ("city", pa.string())])


def test_given_a_writer_streaming_when_a_column_is_added_should_keep_writing_and_read_old_rows_as_null(client, database, unique_name):
    t = unique_name("events")
    action1(client, "create_table", {"database": database, "table": t, "bucket_num": 2,
                                     "columns": [{"name": "id", "type": "BIGINT"}, {"name": "page", "type": "STRING"}]})
    writer, reader = client.do_put(write_cmd("append", database, t), OLD, options=call_options())
    try:
        writer.write_batch(pa.RecordBatch.from_pylist([{"id": i, "page": "home"} for i in range(5)], schema=OLD))
        assert decode_ack(reader.read())["rows"] == 5
        info = action1(client, "alter_table", {"database": database, "table": t,
                                               "add_columns": [{"name": "city", "type": "STRING"}]})
        assert info["schema_id"] == 2
        assert (info["columns"][-1]["name"], info["columns"][-1]["type"], info["columns"][-1]["nullable"]) == ("city", "STRING", True)
        # The same stream, still without the column.
        writer.write_batch(pa.RecordBatch.from_pylist([{"id": i, "page": "cart"} for i in range(5, 8)], schema=OLD))
        assert decode_ack(reader.read())["rows"] == 3
        writer.done_writing()
    finally:
        writer.close()
    put(client, write_cmd("append", database, t),
        [pa.RecordBatch.from_pylist([{"id": 8, "page": "pay", "city": "Hangzhou"}], schema=NEW)])
    got = sorted(scan(client, database, t).to_pylist(), key=lambda r: r["id"])
    assert [r["city"] for r in got] == [None] * 8 + ["Hangzhou"]
    assert scan(client, database, t, columns=["city"]).column_names == ["city"]
    with raises_grpc("INVALID_ARGUMENT", "must be nullable"):
        action1(client, "alter_table", {"database": database, "table": t,
                                        "add_columns": [{"name": "zip", "type": "STRING", "nullable": False}]})


def test_given_a_pk_table_when_a_column_is_added_should_partially_update_it_and_keep_old_rows_null(client, database, unique_name):
    t = unique_name("users")
    create_pk_table(client, database, t, [{"name": "id", "type": "BIGINT", "nullable": False},
                                          {"name": "page", "type": "STRING"}], ["id"])
    put(client, write_cmd("upsert", database, t),
        [pa.RecordBatch.from_pylist([{"id": 1, "page": "a"}, {"id": 2, "page": "b"}], schema=OLD)])
    action1(client, "alter_table", {"database": database, "table": t, "add_columns": [{"name": "city", "type": "STRING"}]})
    city = pa.schema([("id", pa.int64()), ("city", pa.string())])
    put(client, write_cmd("upsert", database, t, target_columns=["city"]),
        [pa.RecordBatch.from_pylist([{"id": 1, "city": "Hangzhou"}], schema=city)])
    # A writer that does not know the column rewrites the row: the city it set stays.
    put(client, write_cmd("upsert", database, t), [pa.RecordBatch.from_pylist([{"id": 1, "page": "a2"}], schema=OLD)])
    got = lookup(client, database, t, [[1], [2]])
    assert got.to_pylist() == [{"id": 1, "page": "a2", "city": "Hangzhou"}, {"id": 2, "page": "b", "city": None}]
