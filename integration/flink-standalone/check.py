"""The checks of run.sh, and the few Flink REST calls it makes.

Every check reads what the SQL files left **in the node**, with plain pyarrow.flight calls
(integration/python/flight_helpers.py), and compares it with rows computed here from the same
formulas as the SQL: exact row sets, not "something arrived". Flink's REST API is only asked
whether the cluster is up and how the jobs went.

    python check.py --endpoint grpc://127.0.0.1:PORT --rest http://127.0.0.1:PORT COMMAND

Commands: flink-ready, written, batch, stream-job, stream-initial, stream-more, cancel JOB_ID,
jobs-ok. Each prints one `ok:` line per passed check and exits 1 naming what differs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

import pyarrow.flight as flight  # noqa: E402

from flight_helpers import action1, call_options, ticket  # noqa: E402

DB = "shop"
STREAM_JOB = "strom-standalone-mirror"  # 'pipeline.name' in 03_stream.sql


class CheckFailed(Exception):
    pass


def ok(what: str) -> None:
    print(f"ok: {what}", flush=True)


# ------------------------------------------------------------------------------------------
# What the SQL files write, computed independently of Flink
# ------------------------------------------------------------------------------------------
def expected_orders(step4: bool) -> list[tuple]:
    """orders after 01_write.sql (datagen ids 1..1000, three VALUES rows), and 04_more.sql."""
    rows = [(i, i % 7, Decimal(i % 100) + Decimal("0.25"), "app" if i % 3 == 0 else "web")
            for i in range(1, 1001)]
    rows += [(1001, 1, Decimal("19.99"), "store"), (1002, 2, Decimal("5.00"), "store"),
             (1003, 8, Decimal("120.50"), "store")]
    if step4:
        rows += [(1004, 3, Decimal("7.25"), "store"), (1005, 3, Decimal("7.75"), "store")]
    return rows


def day_hour(i: int) -> tuple[str, str]:
    return f"2026-12-0{1 + i % 2}", f"0{i % 3}"


def expected_stat_wide(step4: bool) -> list[tuple]:
    """shop_stat_wide: (shop_id, stat_date, stat_hour, exp_cnt, page_cnt). Job 1 sums the
    exposures of ids 1..600, job 2 counts the page views of ids 1..400; a key only one job
    wrote keeps NULL in the other column."""
    exp: dict[tuple, int] = {}
    for i in range(1, 601):
        key = (i % 5, *day_hour(i))
        exp[key] = exp.get(key, 0) + i % 10
    page: dict[tuple, int] = {}
    for i in range(1, 401):
        key = (3 + i % 4, *day_hour(i))
        page[key] = page.get(key, 0) + 1
    if step4:
        page[(1, "2026-12-02", "01")] = 999
        page[(2, "2026-12-03", "01")] = 7
    return [(*key, exp.get(key), page.get(key)) for key in set(exp) | set(page)]


def expected_shop_sales() -> list[tuple]:
    sales: dict[int, tuple[int, Decimal]] = {}
    for _, shop, amount, _ in expected_orders(step4=False):
        n, total = sales.get(shop, (0, Decimal(0)))
        sales[shop] = (n + 1, total + amount)
    return [(shop, n, total) for shop, (n, total) in sales.items()]


def expected_stat_day1() -> list[tuple]:
    return [(shop, hour, e, p) for shop, day, hour, e, p in expected_stat_wide(step4=False)
            if day == "2026-12-01"]


# ------------------------------------------------------------------------------------------
# The node's contents
# ------------------------------------------------------------------------------------------
def rows_of(client: flight.FlightClient, table: str, columns: list[str], scan: str) -> list[tuple]:
    """Every row of a log table (`scan` = "log") or the current rows of a primary-key table
    (`scan` = "snapshot"), as tuples of `columns`."""
    result = client.do_get(ticket(scan=scan, database=DB, table=table, columns=columns),
                           options=call_options()).read_all()
    return [tuple(r[c] for c in columns) for r in result.to_pylist()]


def diff(table: str, actual: list[tuple], expected: list[tuple], key_len: int) -> str | None:
    """None when both hold the same rows (in any order), else what differs."""
    if sorted(actual, key=repr) == sorted(expected, key=repr):
        return None
    by_key_a: dict[tuple, list[tuple]] = {}
    for r in actual:
        by_key_a.setdefault(r[:key_len], []).append(r)
    by_key_e = {r[:key_len]: r for r in expected}
    lines = [f"{table}: {len(actual)} rows in the node, {len(expected)} expected"]
    for k in sorted(set(by_key_a) | set(by_key_e), key=repr):
        a, e = by_key_a.get(k, []), by_key_e.get(k)
        if a != ([e] if e else []):
            lines.append(f"  key {k}: node has {a or 'nothing'}, expected {e or 'nothing'}")
        if len(lines) > 15:
            lines.append("  ...")
            break
    return "\n".join(lines)


def check_table(client, table: str, columns: list[str], scan: str, expected: list[tuple],
                key_len: int = 1) -> None:
    problem = diff(table, rows_of(client, table, columns, scan), expected, key_len)
    if problem:
        raise CheckFailed(problem)
    ok(f"{DB}.{table} holds exactly the {len(expected)} expected rows")


def await_table(client, rest: str, table: str, columns: list[str], scan: str,
                expected: list[tuple], key_len: int, timeout: float = 60.0) -> None:
    """For the streaming job's sinks: polls the node until the table holds exactly the expected
    rows; fails at once if the job failed, and after `timeout` with the last difference."""
    deadline = time.monotonic() + timeout
    while True:
        problem = diff(table, rows_of(client, table, columns, scan), expected, key_len)
        if problem is None:
            ok(f"{DB}.{table} holds exactly the {len(expected)} expected rows (streaming job)")
            return
        job = find_job(rest, STREAM_JOB)
        if job is not None and job["state"] in ("FAILED", "CANCELED", "FINISHED"):
            raise CheckFailed(f"the streaming job is {job['state']}:\n{job_exceptions(rest, job['jid'])}")
        if time.monotonic() > deadline:
            raise CheckFailed(f"after {timeout:.0f}s of the streaming job:\n{problem}")
        time.sleep(0.5)


def check_partitions(client, table: str, expected: list[str]) -> None:
    names = sorted(p["name"] for p in action1(client, "list_partitions", {"database": DB, "table": table}))
    if names != expected:
        raise CheckFailed(f"{DB}.{table}: partitions {names}, expected {expected}")
    ok(f"{DB}.{table} has the partitions {expected}")


def check_definition(client, table: str, **expected) -> None:
    """The parts of get_table's answer that the DDL set (primary key, partition keys, ...)."""
    info = action1(client, "get_table", {"database": DB, "table": table})
    wrong = {k: info.get(k) for k, v in expected.items() if info.get(k) != v}
    if wrong:
        raise CheckFailed(f"{DB}.{table}: get_table has {wrong}, expected {expected}\n{json.dumps(info)}")
    ok(f"{DB}.{table} is defined as created: {expected}")


ORDER_COLS = ["order_id", "shop_id", "amount", "channel"]
STAT_COLS = ["shop_id", "stat_date", "stat_hour", "exp_cnt", "page_cnt"]


def cmd_written(client, rest) -> None:
    check_definition(client, "orders", kind="log", bucket_num=2)
    check_definition(client, "shop_stat_wide", kind="primary_key", bucket_num=2, bucket_key=["shop_id"],
                     primary_key=["shop_id", "stat_date", "stat_hour"], partition_keys=["stat_date"])
    check_table(client, "orders", ORDER_COLS, "log", expected_orders(step4=False))
    check_table(client, "shop_stat_wide", STAT_COLS, "snapshot", expected_stat_wide(step4=False), key_len=3)
    check_partitions(client, "shop_stat_wide", ["2026-12-01", "2026-12-02"])


def cmd_batch(client, rest) -> None:
    check_table(client, "shop_sales", ["shop_id", "order_cnt", "amount_sum"], "snapshot",
                expected_shop_sales())
    check_table(client, "stat_day1", ["shop_id", "stat_hour", "exp_cnt", "page_cnt"], "snapshot",
                expected_stat_day1(), key_len=2)


def mirror_orders(step4: bool) -> list[tuple]:
    return [r[:3] for r in expected_orders(step4)]


def cmd_stream(client, rest, step4: bool) -> None:
    if not step4:
        check_definition(client, "stat_mirror", kind="primary_key", partition_keys=["stat_date"],
                         primary_key=["shop_id", "stat_date", "stat_hour"])
    await_table(client, rest, "orders_mirror", ["order_id", "shop_id", "amount"], "log",
                mirror_orders(step4), key_len=1)
    await_table(client, rest, "stat_mirror", STAT_COLS, "snapshot", expected_stat_wide(step4), key_len=3)
    if step4:
        # The source rows too: the partial update kept exp_cnt, the new day got a partition.
        check_table(client, "orders", ORDER_COLS, "log", expected_orders(step4=True))
        check_table(client, "shop_stat_wide", STAT_COLS, "snapshot", expected_stat_wide(step4=True), key_len=3)
        check_partitions(client, "shop_stat_wide", ["2026-12-01", "2026-12-02", "2026-12-03"])
        check_partitions(client, "stat_mirror", ["2026-12-01", "2026-12-02", "2026-12-03"])


# ------------------------------------------------------------------------------------------
# Flink's REST API
# ------------------------------------------------------------------------------------------
def rest_call(rest: str, path: str, method: str = "GET"):
    req = urllib.request.Request(rest + path, method=method)
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = resp.read()
    return json.loads(body) if body else None


def find_job(rest: str, name: str) -> dict | None:
    """The most recently started job of that name (jid, name, state, ...)."""
    jobs = [j for j in rest_call(rest, "/jobs/overview")["jobs"] if j["name"] == name]
    return max(jobs, key=lambda j: j["start-time"]) if jobs else None


def job_exceptions(rest: str, jid: str) -> str:
    info = rest_call(rest, f"/jobs/{jid}/exceptions")
    root = (info.get("exceptionHistory") or {}).get("entries") or []
    return root[0].get("stacktrace", json.dumps(root[0])) if root else json.dumps(info)[:4000]


def cmd_flink_ready(rest: str, timeout: float = 120.0) -> None:
    """Waits until the TaskManager registered its slots with the JobManager."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            overview = rest_call(rest, "/overview")
            last = json.dumps(overview)
            if overview["taskmanagers"] >= 1 and overview["slots-total"] >= 2:
                ok(f"Flink {overview['flink-version']} is up: {overview['taskmanagers']} TaskManager, "
                   f"{overview['slots-total']} slots")
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
            last = repr(e)
        time.sleep(0.5)
    raise CheckFailed(f"no TaskManager with 2 slots registered at {rest} within {timeout:.0f}s (last: {last})")


def cmd_stream_job(rest: str, timeout: float = 60.0) -> None:
    """Waits until the streaming job of 03_stream.sql runs; its `ok:` line ends with its id."""
    deadline = time.monotonic() + timeout
    while True:
        job = find_job(rest, STREAM_JOB)
        if job is not None and job["state"] == "RUNNING":
            ok(f"the streaming job {STREAM_JOB} runs: job {job['jid']}")
            return
        if job is not None and job["state"] in ("FAILED", "CANCELED", "FINISHED"):
            raise CheckFailed(f"the streaming job is {job['state']}:\n{job_exceptions(rest, job['jid'])}")
        if time.monotonic() > deadline:
            raise CheckFailed(f"the streaming job {STREAM_JOB} is not RUNNING after {timeout:.0f}s: {job}")
        time.sleep(0.5)


def cmd_cancel(rest: str, jid: str, timeout: float = 60.0) -> None:
    state = rest_call(rest, f"/jobs/{jid}")["state"]
    if state != "RUNNING":
        raise CheckFailed(f"the streaming job should still run before it is cancelled, it is {state}:\n"
                          f"{job_exceptions(rest, jid)}")
    rest_call(rest, f"/jobs/{jid}?mode=cancel", method="PATCH")
    deadline = time.monotonic() + timeout
    while rest_call(rest, f"/jobs/{jid}")["state"] != "CANCELED":
        if time.monotonic() > deadline:
            raise CheckFailed(f"job {jid} not CANCELED {timeout:.0f}s after the cancel request")
        time.sleep(0.5)
    ok("the streaming job was running until it was cancelled")


def cmd_jobs_ok(rest: str) -> None:
    """No job of the run failed; lists them all."""
    jobs = sorted(rest_call(rest, "/jobs/overview")["jobs"], key=lambda j: j["start-time"])
    for j in jobs:
        name = " ".join(j["name"].split())
        print(f"  job {j['jid']}  {j['state']:<9} {j['duration'] / 1000:6.1f}s  "
              f"{name if len(name) <= 90 else name[:87] + '...'}")
    failed = [j for j in jobs if j["state"] == "FAILED"]
    if failed:
        raise CheckFailed("\n".join(f"job {j['name']} FAILED:\n{job_exceptions(rest, j['jid'])}" for j in failed))
    ok(f"none of the {len(jobs)} Flink jobs failed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", help="the node, grpc://127.0.0.1:PORT")
    parser.add_argument("--rest", required=True, help="Flink's REST API, http://127.0.0.1:PORT")
    parser.add_argument("command", choices=["flink-ready", "written", "batch", "stream-job", "stream-initial",
                                            "stream-more", "cancel", "jobs-ok"])
    parser.add_argument("job_id", nargs="?")
    args = parser.parse_args()
    try:
        if args.command == "flink-ready":
            cmd_flink_ready(args.rest)
        elif args.command == "stream-job":
            cmd_stream_job(args.rest)
        elif args.command == "cancel":
            cmd_cancel(args.rest, args.job_id)
        elif args.command == "jobs-ok":
            cmd_jobs_ok(args.rest)
        else:
            client = flight.FlightClient(args.endpoint)
            try:
                {"written": cmd_written, "batch": cmd_batch,
                 "stream-initial": lambda c, r: cmd_stream(c, r, step4=False),
                 "stream-more": lambda c, r: cmd_stream(c, r, step4=True)}[args.command](client, args.rest)
            finally:
                client.close()
    except CheckFailed as e:
        print(f"FAILED ({args.command}): {e}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
