"""Fixtures for the end-to-end pyarrow suite: a real `strom` node (the binary from
`cargo build -p strom-server`, or $STROM_BIN) in a temporary data directory, and a plain
`pyarrow.flight.FlightClient` connected to it."""

from __future__ import annotations

import itertools

import pyarrow.flight as flight
import pytest

from flight_helpers import action1, start_peer, start_strom

_names = itertools.count(1)


@pytest.fixture(scope="session")
def strom(tmp_path_factory):
    """One node for the whole session; every test uses its own tables."""
    root = tmp_path_factory.mktemp("strom")
    node = start_strom(root / "data", root / "strom.log")
    yield node
    node.stop()


@pytest.fixture(scope="session")
def client(strom):
    c = flight.FlightClient(strom.url)
    yield c
    c.close()


@pytest.fixture(scope="module")
def database(client, request):
    """A database of its own for each test module."""
    name = "db_" + request.module.__name__.split(".")[-1].removeprefix("test_")
    action1(client, "create_database", {"name": name})
    return name


@pytest.fixture
def unique_name():
    """Returns a fresh table name on every call."""
    return lambda prefix="t": f"{prefix}_{next(_names)}"


@pytest.fixture(scope="session")
def peer(tmp_path_factory):
    root = tmp_path_factory.mktemp("peer")
    server = start_peer(root / "peer.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def peer_client(peer):
    c = flight.FlightClient(peer.url)
    yield c
    c.close()
