"""A small Python model of primary-key tables (docs/primary-keys.md, "Merge rules"): it merges
upserts and deletes the way the node must, and predicts the rows and the change records.

The model is built from the very `create_table` definition the test sends (columns, primary key,
options), so every expected result is derived from the inputs. Bitmap columns (`rbm32`, `rbm64`)
are modelled as frozensets of ids; `decode` turns the node's serialized bitmaps into the same.
"""

from __future__ import annotations

import copy

import pytest
from pyroaring import BitMap, BitMap64

INSERT, UPDATE_BEFORE, UPDATE_AFTER, DELETE = "+I", "-U", "+U", "-D"
_INT_BITS = {"TINYINT": 8, "SMALLINT": 16, "INT": 32, "BIGINT": 64}


class Rejected(Exception):
    """The model predicts that the node refuses the whole batch."""


def bitmap32(ids) -> bytes:
    return BitMap(ids).serialize()


def bitmap64(ids) -> bytes:
    return BitMap64(ids).serialize()


class PkModel:
    def __init__(self, columns: list[dict], primary_key: list[str], options: dict | None = None):
        options = options or {}
        self.columns = [c["name"] for c in columns]
        self.types = {c["name"]: c["type"].upper().replace(" ", "") for c in columns}
        self.key = list(primary_key)
        self.engine = options.get("table.merge-engine", "last_row")
        self.ver = options.get("table.merge-engine.versioned.ver-column")
        self.aggs = {c: options.get(f"fields.{c}.agg", "last_value_ignore_nulls")
                     for c in self.columns if c not in self.key}
        self.delimiters = {c: options.get(f"fields.{c}.listagg.delimiter", ",") for c in self.columns}
        self.delete_behavior = options.get("table.delete.behavior", "ALLOW").upper()
        self.image = options.get("table.changelog.image", "FULL").upper()
        self.state: dict[tuple, dict] = {}
        self.log: list[tuple[str, dict]] = []

    # ------------------------------------------------------------------ writes
    def key_of(self, row: dict) -> tuple:
        return tuple(row[c] for c in self.key)

    def upsert(self, rows: list[dict], targets: list[str] | None = None) -> list[tuple[str, dict]]:
        """Merges one batch of upserts (all or nothing); returns its change records."""
        if targets is not None and self.engine in ("first_row", "versioned"):
            raise Rejected("partial updates are refused by first_row and versioned tables")
        return self._batch(rows, lambda old, row: self._upsert(old, row, targets))

    def delete(self, rows: list[dict]) -> list[tuple[str, dict]]:
        if self.delete_behavior == "DISABLE" and rows:
            raise Rejected("deletes are disabled")
        return self._batch(rows, self._delete)

    def _batch(self, rows, merge) -> list[tuple[str, dict]]:
        staged = dict(self.state)
        changes = []
        for row in rows:   # merged in batch order: a key written twice sees its first write
            k = self.key_of(row)
            new, emitted = merge(staged.get(k), row)
            if new is None:
                staged.pop(k, None)
            else:
                staged[k] = new
            changes.extend(emitted)
        self.state = staged
        self.log.extend(changes)
        return changes

    def _upsert(self, old, row, targets):
        if old is None:
            new = {c: row.get(c) if targets is None or c in self.key or c in targets else None
                   for c in self.columns}
            return new, [(INSERT, new)]
        if self.engine == "first_row":
            return old, []
        if self.engine == "versioned":
            v, stored = row[self.ver], old[self.ver]
            if v is None or (stored is not None and v < stored):
                return old, []
            new = {c: row[c] for c in self.columns}
        elif self.engine == "aggregation":
            new = dict(old)
            for c in self.columns:
                if c not in self.key and (targets is None or c in targets):
                    new[c] = self._fold(c, old[c], row.get(c))
        else:
            new = dict(old)
            for c in self.columns:
                if c not in self.key and (targets is None or c in targets):
                    new[c] = row.get(c)
        if new == old:
            return old, []
        after = [(UPDATE_AFTER, new)]
        return new, ([(UPDATE_BEFORE, old)] + after if self.image == "FULL" else after)

    def _delete(self, old, row):
        if self.delete_behavior == "IGNORE" or self.engine == "first_row" or old is None:
            return old, []
        return None, [(DELETE, old)]

    def _fold(self, column: str, stored, incoming):
        fn = self.aggs[column]
        if fn == "last_value":
            return incoming
        if fn == "last_value_ignore_nulls":
            return stored if incoming is None else incoming
        if fn == "first_value":
            return stored
        if fn == "first_value_ignore_nulls":
            return incoming if stored is None else stored
        if incoming is None:
            return stored
        if stored is None:
            return incoming
        if fn in ("sum", "product"):
            value = stored + incoming if fn == "sum" else stored * incoming
            bits = _INT_BITS.get(self.types[column])
            if bits and not -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
                raise Rejected(f"{fn} of {column} overflows {self.types[column]}")
            return value
        if fn == "max":
            return max(stored, incoming)
        if fn == "min":
            return min(stored, incoming)
        if fn in ("listagg", "string_agg"):
            return f"{stored}{self.delimiters[column]}{incoming}"
        if fn == "bool_and":
            return stored and incoming
        if fn == "bool_or":
            return stored or incoming
        if fn in ("rbm32", "rbm64"):
            return frozenset(stored) | frozenset(incoming)
        raise AssertionError(f"the model does not know {fn}")

    # ------------------------------------------------------------------ expectations
    def rows(self) -> list[dict]:
        """The current rows in key order."""
        return [copy.copy(self.state[k]) for k in sorted(self.state)]

    def changes_by_key(self) -> dict[tuple, list[tuple[str, dict]]]:
        out: dict[tuple, list] = {}
        for kind, row in self.log:
            out.setdefault(self.key_of(row), []).append((kind, row))
        return out

    def encode(self, row: dict) -> dict:
        """A model row as the node takes it in a record batch (bitmaps serialized)."""
        out = dict(row)
        for c, fn in self.aggs.items():
            if fn in ("rbm32", "rbm64") and out.get(c) is not None:
                out[c] = bitmap32(out[c]) if fn == "rbm32" else bitmap64(out[c])
        return out

    def decode(self, row: dict) -> dict:
        """A row served by the node, in the model's terms (bitmaps as frozensets)."""
        out = dict(row)
        for c, fn in self.aggs.items():
            if fn in ("rbm32", "rbm64") and out.get(c) is not None:
                cls = BitMap if fn == "rbm32" else BitMap64
                out[c] = frozenset(cls.deserialize(out[c]))
        return out


# ---------------------------------------------------------------------- checks against the node
def served_rows(model: PkModel, rows: list[dict]) -> list[dict]:
    return [model.decode({c: r[c] for c in model.columns}) for r in rows]


def assert_rows_equal(got: list[dict], expected: list[dict], what: str = "rows") -> None:
    if got != expected:
        missing = [r for r in expected if r not in got]
        extra = [r for r in got if r not in expected]
        pytest.fail(f"{what}: {len(got)} served, {len(expected)} expected by the model\n"
                    f"  expected but not served (first 5): {missing[:5]}\n"
                    f"  served but not expected (first 5): {extra[:5]}")


def assert_snapshot_matches(model: PkModel, snap, bucket_num: int | None = None) -> None:
    """The snapshot holds exactly the model's rows; within a bucket they are in key order,
    and every bucket sent at least one batch."""
    if bucket_num is not None:
        assert sorted(snap.log_offsets) == list(range(bucket_num)), \
            f"every bucket sends at least one batch: got buckets {sorted(snap.log_offsets)}"
    assert snap.table.column_names == model.columns, snap.table.schema
    for b, rows in snap.bucket_rows.items():
        keys = [model.key_of(r) for r in rows]
        assert keys == sorted(keys), f"bucket {b}: rows are not in key order: {keys[:10]}"
    got = sorted(served_rows(model, snap.rows), key=model.key_of)
    assert_rows_equal(got, model.rows(), "snapshot")


def changelog_records(model: PkModel, table) -> list[tuple[int, str, dict]]:
    """(bucket, change type, row) of a changelog scan sorted by bucket and offset."""
    names = table.column_names
    assert names[:len(model.columns) + 1] == model.columns + ["_change_type"], \
        f"a changelog holds the table's columns then _change_type: {names}"
    out = []
    for r in table.to_pylist():
        row = model.decode({c: r[c] for c in model.columns})
        out.append((r.get("_bucket"), r["_change_type"], row))
    return out


def assert_changelog_matches(model: PkModel, table) -> None:
    """Per key, the changelog holds exactly the model's change records in order, and all the
    records of a key are in one bucket."""
    got: dict[tuple, list] = {}
    bucket_of: dict[tuple, int] = {}
    for bucket, kind, row in changelog_records(model, table):
        k = model.key_of(row)
        got.setdefault(k, []).append((kind, row))
        assert bucket_of.setdefault(k, bucket) == bucket, f"key {k} has records in buckets {bucket_of[k]} and {bucket}"
    expected = model.changes_by_key()
    assert sorted(got) == sorted(expected), (
        f"keys with change records differ: only served {sorted(set(got) - set(expected))[:5]}, "
        f"only expected {sorted(set(expected) - set(got))[:5]}")
    for k in expected:
        assert got[k] == expected[k], f"key {k}: changelog\n  served   {got[k]}\n  expected {expected[k]}"


def replay(model: PkModel, records, start: dict[tuple, dict] | None = None) -> dict[tuple, dict]:
    """Applies change records (+I/+U put, -D remove; -U must match the current row)."""
    state = dict(start or {})
    for kind, row in records:
        k = model.key_of(row)
        if kind == INSERT:
            assert k not in state, f"+I of key {k} that is already there"
            state[k] = row
        elif kind == UPDATE_AFTER:
            assert k in state, f"+U of key {k} that is not there"
            state[k] = row
        elif kind == DELETE:
            assert k in state, f"-D of key {k} that is not there"
            del state[k]
        else:
            assert state.get(k) == row, f"-U of key {k} carries {row}, the current row is {state.get(k)}"
    return state
