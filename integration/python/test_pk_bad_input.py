"""Bad writes and reads of primary-key tables: each gets the gRPC status of protocol.md's error
table (checked by pyarrow exception class and message prefix), a message naming what is at
fault, and writes nothing: the change count and the snapshot stay as they were."""

from __future__ import annotations

import contextlib
import re

import pyarrow as pa
import pytest

from flight_helpers import (action1, arrow_schema, call_options, count_of, create_pk_table, decode_ack, exchange,
                            lookup, path, put, raises_grpc, record_batch, scan, snapshot, write_cmd)
from pk_model import PkModel, Rejected, assert_snapshot_matches

COLUMNS = [
    {"name": "id", "type": "BIGINT"},
    {"name": "region", "type": "STRING"},
    {"name": "name", "type": "STRING"},
    {"name": "qty", "type": "INT"},
]
KEY = ["id", "region"]
SCHEMA = arrow_schema(COLUMNS)
BASE = [{"id": i, "region": r, "name": f"n{i}{r}", "qty": i} for i in range(5) for r in ("eu", "us")]


@contextlib.contextmanager
def nothing_written(client, database, table):
    before = (count_of(client, database, table, "log"), snapshot(client, database, table).rows)
    yield
    after = (count_of(client, database, table, "log"), snapshot(client, database, table).rows)
    assert after == before, "a rejected request changed the table"


@pytest.fixture(scope="module")
def pk(client, database):
    """A last-row table keyed by (id, region), bucket key = the whole key (no prefix index)."""
    create_pk_table(client, database, "guarded", COLUMNS, KEY, bucket_num=2)
    put(client, path(database, "guarded"), [record_batch(SCHEMA, BASE)])
    return database, "guarded"


def table_with(client, database, name, columns, key, options, rows=()):
    create_pk_table(client, database, name, columns, key, bucket_num=2, options=options)
    if rows:
        put(client, path(database, name), [record_batch(arrow_schema(columns), list(rows))])
    return database, name


def row_named(message: str, row: int) -> bool:
    return re.search(rf"\brow\b\D{{0,12}}\b{row}\b", message) is not None


# ---------------------------------------------------------------- keys and columns of writes

@pytest.mark.parametrize("kind", ["upsert", "delete"])
def test_given_null_in_a_key_column_should_name_column_and_row_and_write_nothing(client, pk, kind):
    rows = [{"id": 100, "region": "eu", "name": "a", "qty": 1}, {"id": 101, "region": "eu", "name": "b", "qty": 2},
            {"id": 102, "region": None, "name": "c", "qty": 3}]
    schema = SCHEMA if kind == "upsert" else arrow_schema(COLUMNS, KEY)
    with nothing_written(client, *pk), raises_grpc("INVALID_ARGUMENT", "region") as err:
        put(client, write_cmd(kind, *pk), [record_batch(schema, rows)])
    assert row_named(err.message, 2), f"the message should name row 2: {err.message}"


def test_given_bad_second_batch_should_keep_the_acknowledged_first(client, database, unique_name):
    table = unique_name("two_batches")
    create_pk_table(client, database, table, COLUMNS, KEY, bucket_num=2)
    model = PkModel(COLUMNS, KEY)
    good = [{"id": 1, "region": "eu", "name": "ok", "qty": 1}]
    bad = [{"id": 2, "region": "eu", "name": "x", "qty": 2}, {"id": None, "region": "us", "name": "y", "qty": 3}]
    writer, reader = client.do_put(path(database, table), SCHEMA, options=call_options())
    with raises_grpc("INVALID_ARGUMENT", "id"):
        try:
            writer.write_batch(record_batch(SCHEMA, good))
            assert decode_ack(reader.read())["rows"] == 1
            writer.write_batch(record_batch(SCHEMA, bad))
            writer.done_writing()
            reader.read()
        finally:
            writer.close()
    model.upsert(good)
    assert_snapshot_matches(model, snapshot(client, database, table), 2)
    assert count_of(client, database, table, "log") == 1


@pytest.mark.parametrize("kind", ["upsert", "delete"])
def test_given_batch_without_a_key_column_should_name_it(client, pk, kind):
    batch = record_batch(arrow_schema(COLUMNS, ["id", "name", "qty"]), [{"id": 1, "name": "x", "qty": 1}])
    with nothing_written(client, *pk), raises_grpc("INVALID_ARGUMENT", "region"):
        put(client, write_cmd(kind, *pk), [batch])


def test_given_full_row_upsert_without_a_column_should_name_it(client, pk):
    batch = record_batch(arrow_schema(COLUMNS, ["id", "region", "name"]), [{"id": 1, "region": "eu", "name": "x"}])
    with nothing_written(client, *pk), raises_grpc("INVALID_ARGUMENT", "qty"):
        put(client, path(*pk), [batch])


def test_given_unknown_target_column_should_name_it(client, pk):
    batch = pa.RecordBatch.from_pylist([{"id": 1, "region": "eu", "colour": "red"}])
    with nothing_written(client, *pk), raises_grpc("INVALID_ARGUMENT", "colour"):
        put(client, write_cmd("upsert", *pk, target_columns=["colour"]), [batch])


@pytest.mark.parametrize("columns, culprit", [(["id", "region"], "qty"), (["id", "region", "qty", "name"], "name")],
                         ids=["target-missing", "extra-column"])
def test_given_partial_batch_not_holding_exactly_key_and_targets_should_name_the_column(client, pk, columns, culprit):
    batch = record_batch(arrow_schema(COLUMNS, columns), [{"id": 1, "region": "eu", "name": "x", "qty": 7}])
    with nothing_written(client, *pk), raises_grpc("INVALID_ARGUMENT", culprit):
        put(client, write_cmd("upsert", *pk, target_columns=["qty"]), [batch])


def test_given_partial_update_of_a_new_key_with_a_not_null_column_left_out_should_name_it(client, database, unique_name):
    columns = [{"name": "id", "type": "BIGINT"}, {"name": "label", "type": "STRING", "nullable": False},
               {"name": "qty", "type": "INT"}]
    t = table_with(client, database, unique_name("strict"), columns, ["id"], {},
                   [{"id": 1, "label": "one", "qty": 1}])
    # The stored key may be updated partially; a new key would need a null label: the batch fails.
    rows = [{"id": 1, "qty": 10}, {"id": 2, "qty": 20}]
    with nothing_written(client, *t), raises_grpc("INVALID_ARGUMENT", "label"):
        put(client, write_cmd("upsert", *t, target_columns=["qty"]), [record_batch(arrow_schema(columns, ["id", "qty"]), rows)])


@pytest.mark.parametrize("options", [{"table.merge-engine": "first_row"},
                                     {"table.merge-engine": "versioned", "table.merge-engine.versioned.ver-column": "qty"}],
                         ids=["first_row", "versioned"])
def test_given_partial_update_on_first_row_or_versioned_should_be_refused(client, database, unique_name, options):
    t = table_with(client, database, unique_name("nopartial"), COLUMNS, KEY, options, BASE)
    with pytest.raises(Rejected):
        PkModel(COLUMNS, KEY, options).upsert([{"id": 1, "region": "eu", "qty": 9}], targets=["qty"])
    batch = record_batch(arrow_schema(COLUMNS, ["id", "region", "qty"]), [{"id": 1, "region": "eu", "qty": 9}])
    with nothing_written(client, *t), raises_grpc("INVALID_ARGUMENT", "partial"):
        put(client, write_cmd("upsert", *t, target_columns=["qty"]), [batch])


# ---------------------------------------------------------------- write kinds

def test_given_append_on_a_pk_table_should_be_failed_precondition(client, pk):
    with nothing_written(client, *pk), raises_grpc("FAILED_PRECONDITION", "guarded"):
        put(client, write_cmd("append", *pk), [record_batch(SCHEMA, [{"id": 9, "region": "eu", "name": "x", "qty": 1}])])


@pytest.mark.parametrize("kind", ["upsert", "delete"])
def test_given_upsert_or_delete_on_a_log_table_should_be_failed_precondition(client, database, unique_name, kind):
    table = unique_name("log")
    action1(client, "create_table", {"database": database, "table": table, "columns": COLUMNS})
    with raises_grpc("FAILED_PRECONDITION", table):
        put(client, write_cmd(kind, database, table), [record_batch(SCHEMA, BASE[:2])])
    assert count_of(client, database, table, "log") == 0


def test_given_delete_on_a_disable_table_should_refuse_the_batch_and_keep_earlier_ones(client, database, unique_name):
    options = {"table.delete.behavior": "DISABLE"}
    t = table_with(client, database, unique_name("nodelete"), COLUMNS, KEY, options, BASE)
    keys = record_batch(arrow_schema(COLUMNS, KEY), [{"id": 0, "region": "eu"}, {"id": 77, "region": "eu"}])
    with nothing_written(client, *t), raises_grpc("INVALID_ARGUMENT", "table.delete.behavior"):
        put(client, write_cmd("delete", *t), [keys])
    # Upserts still work on that table.
    model = PkModel(COLUMNS, KEY, options)
    model.upsert(BASE)
    more = [{"id": 0, "region": "eu", "name": "changed", "qty": 0}]
    model.upsert(more)
    put(client, write_cmd("upsert", *t), [record_batch(SCHEMA, more)])
    assert_snapshot_matches(model, snapshot(client, *t), 2)


# ---------------------------------------------------------------- aggregation overflow

AGG_COLUMNS = [{"name": "k", "type": "BIGINT"}, {"name": "total", "type": "BIGINT"}, {"name": "hits", "type": "INT"}]
AGG_OPTIONS = {"table.merge-engine": "aggregation", "fields.total.agg": "sum", "fields.hits.agg": "sum"}


@pytest.mark.parametrize("column, near_max", [("total", 2**63 - 10), ("hits", 2**31 - 10)])
def test_given_sum_that_would_overflow_should_reject_the_whole_batch(client, database, unique_name, column, near_max):
    base = [{"k": 1, "total": 1, "hits": 1}, {"k": 2, "total": 1, "hits": 1}]
    base[1][column] = near_max
    t = table_with(client, database, unique_name(f"overflow_{column}"), AGG_COLUMNS, ["k"], AGG_OPTIONS, base)
    model = PkModel(AGG_COLUMNS, ["k"], AGG_OPTIONS)
    model.upsert(base)
    # Row 0 alone would be fine and row 2 is a new key: the batch is all or nothing.
    rows = [{"k": 1, "total": 5, "hits": 5}, {"k": 2, "total": 1, "hits": 1}, {"k": 3, "total": 1, "hits": 1}]
    rows[1][column] = 20
    with pytest.raises(Rejected):
        model.upsert(rows)
    with nothing_written(client, *t), raises_grpc("INVALID_ARGUMENT", column, "overflow"):
        put(client, write_cmd("upsert", *t), [record_batch(arrow_schema(AGG_COLUMNS), rows)])
    assert_snapshot_matches(model, snapshot(client, *t), 2)


# ---------------------------------------------------------------- auto-increment column

AI_COLUMNS = [{"name": "user_id", "type": "BIGINT"}, {"name": "uid", "type": "BIGINT"}, {"name": "tag", "type": "STRING"}]


def test_given_value_for_the_auto_increment_column_should_be_refused(client, database, unique_name):
    t = table_with(client, database, unique_name("ai"), AI_COLUMNS, ["user_id"], {"auto-increment.fields": "uid"})
    put(client, path(*t), [record_batch(arrow_schema(AI_COLUMNS, ["user_id", "tag"]), [{"user_id": 1, "tag": "a"}])])
    rows = [{"user_id": 2, "uid": None, "tag": "b"}, {"user_id": 3, "uid": 5, "tag": "c"}]
    with nothing_written(client, *t), raises_grpc("INVALID_ARGUMENT", "uid"):
        put(client, path(*t), [record_batch(arrow_schema(AI_COLUMNS), rows)])
    # Nulls there are the same as leaving it out: the node assigns the ids.
    put(client, path(*t), [record_batch(arrow_schema(AI_COLUMNS), [{"user_id": 2, "uid": None, "tag": "b"}])])
    ids = {r["user_id"]: r["uid"] for r in snapshot(client, *t).rows}
    assert set(ids) == {1, 2} and None not in ids.values() and ids[2] > ids[1], ids


def test_given_insert_if_not_exists_on_a_table_with_not_null_columns_should_be_invalid(client, database, unique_name):
    columns = [{"name": "id", "type": "BIGINT"}, {"name": "label", "type": "STRING", "nullable": False}]
    t = table_with(client, database, unique_name("noinsert"), columns, ["id"], {}, [{"id": 1, "label": "x"}])
    with nothing_written(client, *t), raises_grpc("INVALID_ARGUMENT") as err:
        lookup(client, *t, [[1], [2]], insert_if_not_exists=True)
    assert "label" in err.message or "insert_if_not_exists" in err.message, err.message


# ---------------------------------------------------------------- lookups and scans

@pytest.mark.parametrize("key, culprit", [
    (["one", "eu"], "id"),           # a string for BIGINT
    ([1.5, "eu"], "id"),             # a fraction for BIGINT
    ([1, 7], "region"),              # a number for STRING
    ([1], "key"),                    # too few values
    ([1, "eu", 3], "key"),           # too many
], ids=["string-for-bigint", "fraction", "number-for-string", "arity-1", "arity-3"])
def test_given_lookup_key_of_wrong_type_or_arity_should_be_invalid_argument(client, pk, key, culprit):
    with nothing_written(client, *pk), raises_grpc("INVALID_ARGUMENT", culprit):
        lookup(client, *pk, [[0, "eu"], key])


def test_given_prefix_lookup_on_a_table_without_prefix_index_should_be_invalid_argument(client, pk):
    with raises_grpc("INVALID_ARGUMENT", "prefix"):
        lookup(client, *pk, [[1]], kind="prefix")
    request = {"lookup": "prefix", "database": pk[0], "table": pk[1]}
    with raises_grpc("INVALID_ARGUMENT", "prefix"):
        exchange(client, request, [pa.RecordBatch.from_pylist([{"id": 1}])])


def test_given_exchange_keys_without_a_key_column_should_name_it(client, pk):
    request = {"lookup": "primary_key", "database": pk[0], "table": pk[1]}
    with raises_grpc("INVALID_ARGUMENT", "region"):
        exchange(client, request, [pa.RecordBatch.from_pylist([{"id": 1}])])


def test_given_lookup_of_unknown_column_should_name_it(client, pk):
    with raises_grpc("INVALID_ARGUMENT", "colour"):
        lookup(client, *pk, [[0, "eu"]], columns=["colour"])


@pytest.mark.parametrize("predicate, culprit", [
    ({"column": "colour", "op": "=", "value": 1}, "colour"),
    ({"column": "qty", "op": "~", "value": 1}, "~"),
    ({"column": "qty", "op": "in", "value": 3}, "qty"),
    ({"column": "qty", "op": "=", "value": "three"}, "qty"),
    ({"column": "qty", "op": "<"}, "qty"),
], ids=["unknown-column", "unknown-op", "in-without-array", "wrong-type", "missing-value"])
def test_given_bad_snapshot_filter_should_be_invalid_argument(client, pk, predicate, culprit):
    with raises_grpc("INVALID_ARGUMENT", culprit):
        snapshot(client, *pk, filter=[predicate])


def test_given_snapshot_of_unknown_bucket_or_column_should_name_it(client, pk):
    with raises_grpc("INVALID_ARGUMENT", "7"):
        snapshot(client, *pk, buckets=[7])
    with raises_grpc("INVALID_ARGUMENT", "colour"):
        snapshot(client, *pk, columns=["colour"])


def test_given_filter_on_a_changelog_scan_should_be_unimplemented(client, pk):
    with raises_grpc("UNIMPLEMENTED", "filter"):
        scan(client, *pk, filter=[{"column": "qty", "op": "=", "value": 1}])


def test_given_unknown_pk_table_should_be_not_found_for_every_pk_request(client, database):
    with raises_grpc("NOT_FOUND", "nosuchpk"):
        snapshot(client, database, "nosuchpk")
    with raises_grpc("NOT_FOUND", "nosuchpk"):
        lookup(client, database, "nosuchpk", [[1]])
    with raises_grpc("NOT_FOUND", "nosuchpk"):
        put(client, write_cmd("upsert", database, "nosuchpk"), [record_batch(SCHEMA, BASE[:1])])
    with raises_grpc("NOT_FOUND", "nosuchpk"):
        exchange(client, {"lookup": "primary_key", "database": database, "table": "nosuchpk"},
                 [pa.RecordBatch.from_pylist([{"id": 1}])])
    with raises_grpc("NOT_FOUND", "nosuchpk"):
        count_of(client, database, "nosuchpk", "rows")
