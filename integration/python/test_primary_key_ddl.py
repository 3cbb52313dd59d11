"""Primary-key table definitions over plain Flight: invalid combinations are refused with
INVALID_ARGUMENT naming the culprit and create nothing; a valid definition creates a table of
kind "primary_key" whose get_table echoes the key, bucket key and options."""

from __future__ import annotations

import pytest

from flight_helpers import action1, raises_grpc

COLUMNS = [
    {"name": "user_id", "type": "BIGINT"},
    {"name": "ds", "type": "STRING"},
    {"name": "order_id", "type": "BIGINT"},
    {"name": "amount", "type": "DOUBLE"},
    {"name": "uv", "type": "BYTES"},
    {"name": "ts", "type": "TIMESTAMP(3)"},
]


def table(name, **extra):
    body = {"table": name, "columns": COLUMNS, "primary_key": ["user_id", "ds", "order_id"]}
    body.update(extra)
    return body


@pytest.mark.parametrize(
    "extra, culprit",
    [
        ({"bucket_key": ["amount"]}, '"amount" is not part of the primary key'),
        ({"options": {"table.merge-engine": "aggregation", "fields.user_id.agg": "sum"}}, "primary key column"),
        ({"options": {"table.merge-engine": "aggregation", "fields.uv.agg": "sum"}}, '"uv"'),
        ({"options": {"table.merge-engine": "aggregation", "fields.amount.agg": "rbm32"}}, "rbm32"),
        ({"options": {"table.merge-engine": "versioned"}}, "table.merge-engine.versioned.ver-column"),
        ({"options": {"table.merge-engine": "versioned", "table.merge-engine.versioned.ver-column": "amount"}}, "not INT, BIGINT"),
        ({"options": {"table.delete.behavior": "SOMETIMES"}}, "table.delete.behavior"),
        ({"columns": [dict(COLUMNS[0], nullable=True)] + COLUMNS[1:]}, '"user_id" is declared nullable'),
        ({"options": {"table.merge-engine": "newest"}}, "table.merge-engine"),
        ({"options": {"table.changelog.image": "HALF"}}, "table.changelog.image"),
        ({"options": {"auto-increment.fields": "amount"}}, "auto-increment.fields"),
        ({"options": {"auto-increment.fields": "order_id"}}, "auto-increment.fields"),
        ({"primary_key": ["user_id", "nosuch"]}, "nosuch"),
    ],
)
def test_given_invalid_primary_key_definition_should_be_invalid_argument_naming_it(client, database, unique_name, extra, culprit):
    name = unique_name("pk")
    with raises_grpc("INVALID_ARGUMENT", culprit):
        action1(client, "create_table", dict(table(name, **extra), database=database))
    assert name not in action1(client, "list_tables", {"database": database})


def test_given_valid_primary_key_definition_should_create_a_primary_key_table(client, database, unique_name):
    name = unique_name("pk")
    options = {"table.merge-engine": "aggregation", "fields.amount.agg": "sum", "fields.uv.agg": "rbm64"}
    body = table(name, bucket_key=["user_id"], bucket_num=3, options=options)
    created = action1(client, "create_table", dict(body, database=database))
    info = action1(client, "get_table", {"database": database, "table": name})
    assert name in action1(client, "list_tables", {"database": database})
    for got in (created, info):
        assert got["kind"] == "primary_key", got
        assert got["primary_key"] == ["user_id", "ds", "order_id"]
        assert got["bucket_key"] == ["user_id"] and got["bucket_num"] == 3
        for option, value in options.items():
            assert got["options"][option] == value, (option, got["options"])
        # Key columns without "nullable" are NOT NULL; the others stay nullable.
        nullable = {c["name"]: c["nullable"] for c in got["columns"]}
        assert nullable == {"user_id": False, "ds": False, "order_id": False, "amount": True, "uv": True, "ts": True}
    assert info["table_id"] == created["table_id"]


def test_given_primary_key_without_bucket_key_should_bucket_by_the_whole_key(client, database, unique_name):
    name = unique_name("pk")
    info = action1(client, "create_table", dict(table(name), database=database))
    assert info["kind"] == "primary_key"
    assert info["bucket_key"] == ["user_id", "ds", "order_id"], info["bucket_key"]


@pytest.mark.parametrize("options", [
    {"table.merge-engine": "first_row"},
    {"table.merge-engine": "versioned", "table.merge-engine.versioned.ver-column": "ts"},
    {"table.delete.behavior": "IGNORE", "table.changelog.image": "WAL"},
    {"table.merge-engine": "aggregation", "fields.amount.agg": "max", "fields.uv.agg": "rbm32"},
], ids=["first_row", "versioned", "ignore-wal", "aggregation"])
def test_given_each_valid_engine_should_create_the_table_once(client, database, unique_name, options):
    name = unique_name("pk")
    body = dict(table(name, options=options), database=database)
    info = action1(client, "create_table", body)
    assert info["kind"] == "primary_key"
    assert {k: info["options"].get(k) for k in options} == options
    with raises_grpc("ALREADY_EXISTS", name):
        action1(client, "create_table", body)
    again = action1(client, "create_table", dict(body, if_not_exists=True))
    assert again["table_id"] == info["table_id"]


def test_given_primary_key_options_on_log_table_should_be_invalid_argument(client, database, unique_name):
    body = {"database": database, "table": unique_name("log"), "columns": COLUMNS, "options": {"table.merge-engine": "first_row"}}
    with raises_grpc("INVALID_ARGUMENT", "applies to primary-key tables"):
        action1(client, "create_table", body)
