#!/usr/bin/env python3
"""Scans as a new user tries them: plain ``pyarrow.flight`` against Strom and against an
in-memory pyarrow Flight server holding the same batches, alternating, in one run.

The table: ``--rows`` rows (default 1M) of 43 columns (BIGINT, DOUBLE, STRING, INT, BOOLEAN,
TIMESTAMP(3) in turn, as ``strom-bench``'s wide table), written to both servers in
``--batch-rows`` batches (default 65 536) in one bucket. Strom stores them with
``--compression`` (``NONE``, ``ZSTD`` or ``LZ4_FRAME``); the peer (integration/peer/pyarrow_peer.py)
keeps the written batches in memory and serves them with pyarrow's C++ ``RecordBatchStream``,
uncompressed or, for a compressed table, with ``IpcWriteOptions(compression=...)``: compressed
IPC on the wire like the node's (16 MB of batches became 2 MB on the loopback interface with
ZSTD), but compressed again on every scan, since pyarrow only sends IPC it encodes itself.
The table is made and written by a child process, so the scanning process holds nothing but
what it scans: made in the scanning process (``--write-here``), the millions of Python strings
behind the string columns left its heap in a state where every scan's buffers were faulted in
afresh, and the client paid 0.8-1.3 s of CPU per GB instead of ~0.35 for the same scans
(docs/benchmarks.md, "Scans, 2026-12-07 23:40 UTC").

Each round scans full width, then the first 13 columns, the 13 columns ``strom-bench`` picks
across the table, and the last 13, from each server in turn (the order alternating between
rounds); a scan is timed from ``do_get`` to the last batch read (``read_all``). It prints the
median GB/s of the Arrow bytes received (decoded: the same for both servers), the ratio
Strom / peer, and each server's CPU time per GB served over all rounds (from /proc, user +
system).

Run from the repository root after ``cargo build --release -p strom-server``::

    .venv/bin/python integration/peer/scan_compare.py --strom-bin target/release/strom

``--baseline-bin PATH`` adds a second Strom node from another build (written and scanned the
same way, in the same rounds) to compare a change before and after in one run.

``--concurrency N`` runs each measured scan as N scans at once, each on its own connection (one
thread each; pyarrow reads without holding the GIL), and reports their bytes over the time from
the first ``do_get`` to the last batch: whether concurrent scanners use both cores.

``--pin`` runs this client on CPU 0 and every server on CPU 1 (``taskset``), so that no server's
CPU is taken from the client: the rate each server reaches is then the client's, the way to
tell a client-bound scan from a server-bound one. The client's own CPU time per GB received
(user + system of this process, all its threads) is printed either way.

``--perf-strom FILE`` / ``--perf-peer FILE`` record a ``perf record --call-graph dwarf`` profile of that server
during the measured rounds (Debian's ``linux-perf``); read it with ``perf report -i FILE``.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.flight as flight

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
from flight_helpers import action1, start_peer, start_strom  # noqa: E402

TYPES = ["BIGINT", "DOUBLE", "STRING", "INT", "BOOLEAN", "TIMESTAMP(3)"]
COLUMNS = 43
PROJECTED = [0, 2, 5, 7, 9, 12, 16, 20, 24, 25, 29, 33, 38]
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet"]


def column_name(i: int) -> str:
    short = {"BIGINT": "bigint", "DOUBLE": "double", "STRING": "string", "INT": "int",
             "BOOLEAN": "bool", "TIMESTAMP(3)": "ts"}[TYPES[i % len(TYPES)]]
    return f"c{i:02}_{short}"


def make_batch(rows: int, first: int, rng: np.random.Generator) -> pa.RecordBatch:
    arrays = []
    for i in range(COLUMNS):
        t = TYPES[i % len(TYPES)]
        if t == "BIGINT":
            values = np.arange(first, first + rows, dtype=np.int64) if i == 0 else rng.integers(0, 100_000_000, rows)
            arrays.append(pa.array(values, pa.int64()))
        elif t == "DOUBLE":
            arrays.append(pa.array(np.round(rng.random(rows) * 1000, 2), pa.float64()))
        elif t == "STRING":
            if (i // len(TYPES)) % 2 == 0:
                codes = rng.integers(0, 100_000, rows)
                cats = rng.integers(0, len(WORDS), rows)
                arrays.append(pa.array([f"{WORDS[c]}-{n:05}" for c, n in zip(cats, codes)], pa.string()))
            else:
                lengths = rng.integers(1, 5, rows)
                picks = rng.integers(0, len(WORDS), (rows, 4))
                arrays.append(pa.array([" ".join(WORDS[w] for w in picks[r, :lengths[r]]) for r in range(rows)],
                                       pa.string()))
        elif t == "INT":
            arrays.append(pa.array(rng.integers(0, 10_000, rows).astype(np.int32), pa.int32()))
        elif t == "BOOLEAN":
            arrays.append(pa.array(rng.random(rows) < 0.3, pa.bool_()))
        else:
            base = 1_760_000_000_000 + first * 7
            ts = base + np.arange(rows, dtype=np.int64) * 7 + rng.integers(0, 5, rows)
            arrays.append(pa.array(ts, pa.timestamp("ms")))
    return pa.RecordBatch.from_arrays(arrays, names=[column_name(i) for i in range(COLUMNS)])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its threads so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write_table(client: flight.FlightClient, table: str, batches: list[pa.RecordBatch], compression: str | None) -> None:
    columns = [{"name": column_name(i), "type": TYPES[i % len(TYPES)], "nullable": i != 0} for i in range(COLUMNS)]
    request = {"database": "bench", "table": table, "columns": columns, "bucket_num": 1}
    if compression:
        request["options"] = {"table.log.arrow.compression.type": compression}
    action1(client, "create_table", request)
    descriptor = flight.FlightDescriptor.for_path("bench", table)
    writer, reader = client.do_put(descriptor, batches[0].schema)
    for batch in batches:
        writer.write_batch(batch)
        reader.read()
    writer.done_writing()
    writer.close()


def write_everywhere(urls: list[str], rows: int, batch_rows: int, compression: str) -> None:
    """Makes the table and writes it to every server (run in a child process: see --write-here)."""
    rng = np.random.default_rng(7)
    batches = [make_batch(min(batch_rows, rows - first), first, rng) for first in range(0, rows, batch_rows)]
    for url in urls:
        client = flight.FlightClient(url)
        action1(client, "create_database", {"name": "bench"})
        # Explicit even for NONE: the node's default for new tables is ZSTD.
        write_table(client, "wide", batches, compression)
        client.close()


def scan(client: flight.FlightClient, table: str, columns: list[str] | None) -> tuple[float, int, int]:
    request = {"scan": "log", "database": "bench", "table": table}
    if columns is not None:
        request["columns"] = columns
    start = time.perf_counter()
    result = client.do_get(flight.Ticket(json.dumps(request).encode())).read_all()
    seconds = time.perf_counter() - start
    return seconds, result.num_rows, result.nbytes


def scan_concurrently(clients: list[flight.FlightClient], table: str, columns: list[str] | None) -> tuple[float, int, int]:
    """One scan per client, all at once; (seconds for all, rows of each, bytes of all)."""
    if len(clients) == 1:
        return scan(clients[0], table, columns)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        done = list(pool.map(lambda c: scan(c, table, columns), clients))
    seconds = time.perf_counter() - start
    rows = {r for _, r, _ in done}
    if len(rows) != 1:
        raise SystemExit(f"concurrent scans returned different row counts: {sorted(rows)}")
    return seconds, rows.pop(), sum(n for _, _, n in done)


def pin_cpus(servers: list) -> None:
    """This process (every thread) on CPU 0, each server (every thread) on CPU 1."""
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("--pin needs two CPUs")
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        os.sched_setaffinity(int(task), {0})
    for server in servers:
        subprocess.run(["taskset", "--all-tasks", "--pid", "--cpu-list", "1", str(server.proc.pid)],
                       stdout=subprocess.DEVNULL, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--strom-bin", default=os.environ.get("STROM_BIN", "target/release/strom"))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-rows", type=int, default=65_536)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--compression", default="NONE", choices=["NONE", "ZSTD", "LZ4_FRAME"])
    parser.add_argument("--concurrency", type=int, default=1, help="scans run at once per measured scan")
    parser.add_argument("--baseline-bin", help="a second strom binary scanned in the same rounds (before/after)")
    parser.add_argument("--perf-strom", help="perf record -g the node during the measured rounds into this file")
    parser.add_argument("--perf-peer", help="perf record -g the peer during the measured rounds into this file")
    parser.add_argument("--perf-freq", type=int, default=999, help="perf sampling frequency (Hz)")
    parser.add_argument("--pin", action="store_true", help="this client on CPU 0, every server on CPU 1")
    parser.add_argument("--write-here", action="store_true",
                        help="make and write the table in the scanning process (as before 2026-12-07 23:40: its heap then "
                             "costs every scan 2-3x the client CPU per GB)")
    args = parser.parse_args()
    os.environ["STROM_BIN"] = str(Path(args.strom_bin).resolve())

    with tempfile.TemporaryDirectory(prefix="scan-compare-") as tmp:
        node = start_strom(Path(tmp) / "data", Path(tmp) / "strom.log", "--durability", "os")
        peer = start_peer(Path(tmp) / "peer.log")
        extra_servers = []
        try:
            servers = {"strom": (node, flight.FlightClient(node.url)), "peer": (peer, flight.FlightClient(peer.url))}
            if args.baseline_bin:
                os.environ["STROM_BIN"] = str(Path(args.baseline_bin).resolve())
                baseline = start_strom(Path(tmp) / "baseline", Path(tmp) / "baseline.log", "--durability", "os")
                extra_servers.append(baseline)
                servers["baseline"] = (baseline, flight.FlightClient(baseline.url))
            urls = [server.url for server, _ in servers.values()]
            if args.write_here:
                write_everywhere(urls, args.rows, args.batch_rows, args.compression)
            else:
                writer = multiprocessing.get_context("spawn").Process(
                    target=write_everywhere, args=(urls, args.rows, args.batch_rows, args.compression))
                writer.start()
                writer.join()
                if writer.exitcode != 0:
                    raise SystemExit(f"the writer process failed (exit code {writer.exitcode})")
            names = [column_name(i) for i in range(COLUMNS)]
            shapes = {
                "full43": None,
                "first13": names[:13],
                "proj13": [names[i] for i in PROJECTED],
                "last13": names[-13:],
            }
            results: dict[tuple[str, str], list[tuple[float, int, float]]] = {}
            client_cpus: dict[tuple[str, str], list[float]] = {}
            if args.pin:
                pin_cpus([server for server, _ in servers.values()])
            for name, (_, client) in servers.items():  # one unmeasured scan each: caches, connections
                scan(client, "wide", None)
            profilers = [subprocess.Popen(["perf", "record", "--call-graph", "dwarf,32768", "-F", str(args.perf_freq), "-o", out, "-p", str(server.proc.pid)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                         for out, server in ((args.perf_strom, node), (args.perf_peer, peer)) if out]
            time.sleep(1.0 if profilers else 0)  # perf attaches asynchronously; not a sync of the scans
            # Extra connections for concurrent scans (the first is the one that wrote).
            scanners = {name: [client] + [flight.FlightClient(server.url) for _ in range(args.concurrency - 1)]
                        for name, (server, client) in servers.items()}
            for round_no in range(args.rounds):
                order = list(servers) if round_no % 2 == 0 else list(reversed(servers))
                for shape, columns in shapes.items():
                    for name in order:
                        server, client = servers[name]
                        cpu0, client0 = cpu_seconds(server.proc.pid), cpu_seconds(os.getpid())
                        seconds, rows, nbytes = scan_concurrently(scanners[name], "wide", columns)
                        cpu, client_cpu = cpu_seconds(server.proc.pid) - cpu0, cpu_seconds(os.getpid()) - client0
                        if rows != args.rows:
                            raise SystemExit(f"{name} {shape}: {rows} rows, expected {args.rows}")
                        results.setdefault((shape, name), []).append((seconds, nbytes, cpu))
                        client_cpus.setdefault((shape, name), []).append(client_cpu)
            for profiler in profilers:
                profiler.send_signal(signal.SIGINT)
                profiler.wait()
            print(f"{args.rows} rows x 43 columns in {args.batch_rows}-row batches, compression {args.compression} (both servers), "
                  f"{args.concurrency} scan(s) at once, medians of {args.rounds} alternating rounds (pyarrow {pa.__version__})"
                  + (", client on CPU 0, servers on CPU 1" if args.pin else "")
                  + (", table written by the scanning process" if args.write_here else ", table written by another process"))
            has_baseline = "baseline" in servers
            print(f"{'scan':8} {'strom GB/s':>11} {'peer GB/s':>10} {'ratio':>6} {'strom CPU s/GB':>15} {'peer CPU s/GB':>14}"
                  f" {'client s/GB (strom / peer)':>27}"
                  + (f" {'baseline GB/s':>14} {'ratio':>6} {'baseline CPU s/GB':>18}" if has_baseline else ""))
            for shape in shapes:
                line = {}
                for name in servers:
                    runs = results[(shape, name)]
                    gbps = statistics.median(n / s / 1e9 for s, n, _ in runs)
                    # /proc counts CPU in clock ticks (10 ms): per GB over all rounds, not a median.
                    cpu_per_gb = sum(c for _, _, c in runs) / (sum(n for _, n, _ in runs) / 1e9)
                    line[name] = (gbps, cpu_per_gb)
                client = {name: sum(client_cpus[(shape, name)]) / (sum(n for _, n, _ in results[(shape, name)]) / 1e9)
                          for name in servers}
                print(f"{shape:8} {line['strom'][0]:11.2f} {line['peer'][0]:10.2f} {line['strom'][0] / line['peer'][0]:6.2f} "
                      f"{line['strom'][1]:15.3f} {line['peer'][1]:14.3f} {client['strom']:13.3f} / {client['peer']:.3f}"
                      + (f" {line['baseline'][0]:14.2f} {line['baseline'][0] / line['peer'][0]:6.2f} {line['baseline'][1]:18.3f}"
                         if has_baseline else ""))
        finally:
            for server in (node, peer, *extra_servers):
                server.stop()


if __name__ == "__main__":
    main()
