"""Primary-key table definitions over plain Flight: invalid combinations are refused with
INVALID_ARGUMENT naming the culprit; a valid definition is answered UNIMPLEMENTED (the KV engine
is not served yet) and nothing is created."""

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
    ],
)
def test_given_invalid_primary_key_definition_should_be_invalid_argument_naming_it(client, database, unique_name, extra, culprit):
    name = unique_name("pk")
    with raises_grpc("INVALID_ARGUMENT", culprit):
        action1(client, "create_table", dict(table(name, **extra), database=database))
    assert name not in action1(client, "list_tables", {"database": database})


def test_given_valid_primary_key_definition_should_be_unimplemented_and_create_nothing(client, database, unique_name):
    name = unique_name("pk")
    body = table(name, bucket_key=["user_id"], options={"table.merge-engine": "aggregation", "fields.amount.agg": "sum", "fields.uv.agg": "rbm64"})
    with raises_grpc("UNIMPLEMENTED", "definition is valid"):
        action1(client, "create_table", dict(body, database=database))
    assert name not in action1(client, "list_tables", {"database": database})


def test_given_primary_key_options_on_log_table_should_be_invalid_argument(client, database, unique_name):
    body = {"database": database, "table": unique_name("log"), "columns": COLUMNS, "options": {"table.merge-engine": "first_row"}}
    with raises_grpc("INVALID_ARGUMENT", "applies to primary-key tables"):
        action1(client, "create_table", body)
