"""Pins down how pyarrow's Flight client turns gRPC status codes into exceptions (the table
in flight_helpers.py that the Strom error tests rely on). A plain grpcio server, not a
pyarrow one, answers every call with a given code, exactly like a non-C++ server (Strom is
tonic) does. Skipped when grpcio is not installed."""

from __future__ import annotations

from concurrent import futures

import pyarrow as pa
import pyarrow.flight as flight
import pytest

from flight_helpers import GRPC_TO_PYARROW, grpc_code_of

grpc = pytest.importorskip("grpc")


class _AbortEverything(grpc.GenericRpcHandler):
    """Answers any method with the status code named in the `x-code` request header."""

    def service(self, details):
        code_name = dict(details.invocation_metadata).get("x-code", "UNKNOWN")
        code = getattr(grpc.StatusCode, code_name)

        def abort(_request, context):
            context.abort(code, f"boom {code_name}")

        same = lambda b: b  # noqa: E731 - raw bytes in and out
        if details.method.endswith(("DoPut", "DoExchange", "Handshake")):
            return grpc.stream_stream_rpc_method_handler(abort, same, same)
        return grpc.unary_stream_rpc_method_handler(abort, same, same)


@pytest.fixture(scope="module")
def aborting_client():
    server = grpc.server(futures.ThreadPoolExecutor(4))
    server.add_generic_rpc_handlers((_AbortEverything(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    client = flight.FlightClient(f"grpc://127.0.0.1:{port}")
    yield client
    client.close()
    server.stop(None)


def _do_put(client, options):
    writer, _ = client.do_put(flight.FlightDescriptor.for_path("d", "t"),
                              pa.schema([("a", pa.int64())]), options=options)
    writer.write_batch(pa.record_batch({"a": [1]}))
    writer.close()


CALLS = {
    "do_action": lambda c, o: list(c.do_action(flight.Action("x", b"{}"), options=o)),
    "do_get": lambda c, o: c.do_get(flight.Ticket(b"{}"), options=o).read_all(),
    "do_put": _do_put,
}


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("code", sorted(GRPC_TO_PYARROW))
def test_given_grpc_status_when_called_should_raise_the_mapped_pyarrow_exception(aborting_client, code, call):
    options = flight.FlightCallOptions(headers=[(b"x-code", code.encode())], timeout=10)
    with pytest.raises(pa.ArrowException) as info:
        CALLS[call](aborting_client, options)
    expected_cls, prefix = GRPC_TO_PYARROW[code]
    assert type(info.value) is expected_cls, f"{code}: {type(info.value).__name__}: {info.value}"
    assert str(info.value).startswith(prefix), str(info.value)
    assert f"boom {code}" in str(info.value)
    assert grpc_code_of(info.value) == code
