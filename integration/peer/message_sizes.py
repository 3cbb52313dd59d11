#!/usr/bin/env python3
"""What a message size costs a pyarrow client: an in-memory pyarrow Flight server holding the
1M-row, 43-column table of scan_compare.py as batches of each given row count, scanned with
``do_get(...).read_all()`` in alternating rounds; prints GB/s and the client's CPU per GB.

    .venv/bin/python integration/peer/message_sizes.py 65536 16384 8192 4096

The server is a child process, so the client's CPU is its own (docs/benchmarks.md, "Scans,
2026-12-08 02:30 UTC").
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scan_compare import make_batch  # noqa: E402

ROWS = 1_000_000
WRITTEN_BATCH_ROWS = 65_536


def serve(sizes: list[int]) -> None:
    """Serves the table as batches of each size: the ticket is the batch row count."""
    rng = np.random.default_rng(7)
    written = [make_batch(min(WRITTEN_BATCH_ROWS, ROWS - first), first, rng) for first in range(0, ROWS, WRITTEN_BATCH_ROWS)]
    whole = pa.Table.from_batches(written).combine_chunks()
    tables = {n: pa.Table.from_batches(whole.to_batches(max_chunksize=n)) for n in sizes}

    class Server(flight.FlightServerBase):
        def do_get(self, context, ticket):
            return flight.RecordBatchStream(tables[int(ticket.ticket.decode())])

    server = Server("grpc://127.0.0.1:0")
    print(server.port, flush=True)
    server.serve()


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    if sys.argv[1] == "--serve":
        serve([int(a) for a in sys.argv[2:]])
        return
    sizes = [int(a) for a in sys.argv[1:]]
    server = subprocess.Popen([sys.executable, __file__, "--serve", *map(str, sizes)], stdout=subprocess.PIPE, text=True)
    try:
        client = flight.FlightClient(f"grpc://127.0.0.1:{int(server.stdout.readline())}")
        results: dict[int, list[tuple[float, float]]] = {n: [] for n in sizes}
        for _ in range(5):
            for n in sizes:
                cpu, start = cpu_seconds(), time.perf_counter()
                table = client.do_get(flight.Ticket(str(n).encode())).read_all()
                seconds, gb = time.perf_counter() - start, table.nbytes / 1e9
                results[n].append((gb / seconds, (cpu_seconds() - cpu) / gb))
                del table
        for n, samples in results.items():
            print(f"{n:>6} rows per batch: {statistics.median(s[0] for s in samples):.2f} GB/s, "
                  f"client {statistics.median(s[1] for s in samples):.3f} s CPU per GB")
    finally:
        server.kill()


if __name__ == "__main__":
    main()
