#!/usr/bin/env python3
"""Turns the raw figures of benches/sysbench.sh into one Markdown table.

Reads results.tsv (one line per sysbench run) and memory.tsv, prints the
table, and with --doc replaces the part of docs/performance.md between
`<!-- sysbench:begin -->` and `<!-- sysbench:end -->` (`--markers NAME` for
another pair; creating the file, or
appending the markers, when they are missing). Per (test, threads, target) it
reports the median qps and median p95 over the rounds, the qps range, and the
qps ratio to direct MariaDB and to HAProxy.
"""

import argparse
import csv
import datetime
import os
import platform
import statistics
import subprocess
from collections import defaultdict

TARGET_NAMES = {
    "direct": "direct MariaDB (cn1)",
    "haproxy": "HAProxy TCP",
    "sqlproxy": "sqlproxy",
    "sqlproxy+cache": "sqlproxy, cache on",
    "sqlproxy-cn1": "sqlproxy, reads on cn1 only (HAProxy's placement)",
    "sqlproxy-before": "sqlproxy, earlier build (BEFORE_BIN)",
    "sqlproxy+cache-before": "sqlproxy, earlier build, cache on",
}


def command_line(*cmd: str) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "?"


def machine(load_start: str) -> list[str]:
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return [
        f"- CPU: {model}, {os.cpu_count()} cores (sysbench, both MariaDB nodes and the "
        "proxy share them); memory {:.0f} GiB; Linux {}".format(mem_gib, platform.release()),
        f"- load average before the run: {load_start} (shared machine: expect noise)",
        "- " + "; ".join([
            command_line("/usr/sbin/mariadbd", "--version"),
            command_line("haproxy", "-v"),
            command_line("sysbench", "--version"),
            command_line("rustc", "--version"),
        ]),
        "- sqlproxy commit " + command_line("git", "rev-parse", "--short", "HEAD")
        + " (release build), config/ha.toml (reads split over cn1 and cn2, weights 1/1)",
    ]


def load_results(path: str):
    runs = defaultdict(list)
    order_tests, order_threads, order_targets = [], [], []
    with open(path) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            key = (row["test"], int(row["threads"]), row["target"])
            for lst, v in ((order_tests, key[0]), (order_threads, key[1]), (order_targets, key[2])):
                if v not in lst:
                    lst.append(v)
            failed = row["ignored_errors"] == "failed"
            runs[key].append((float(row["qps"] or 0), float(row["p95_ms"] or 0), failed))
    targets = [t for t in TARGET_NAMES if t in order_targets]
    return runs, order_tests, sorted(order_threads), targets


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "-"


def table(runs, tests, threads, targets) -> list[str]:
    lines = [
        "| test | threads | target | qps (median) | qps range | p95 ms (median) | vs direct | vs HAProxy |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for test in tests:
        for th in threads:
            med = {}
            for t in targets:
                ok = [r for r in runs.get((test, th, t), []) if not r[2]]
                if ok:
                    med[t] = (statistics.median(r[0] for r in ok),
                              statistics.median(r[1] for r in ok),
                              min(r[0] for r in ok), max(r[0] for r in ok),
                              len(runs[(test, th, t)]) - len(ok))
            for t in targets:
                if t not in med:
                    lines.append(f"| {test} | {th} | {TARGET_NAMES[t]} | failed | | | | |")
                    continue
                qps, p95, lo, hi, failed = med[t]
                note = f" ({failed} failed)" if failed else ""
                lines.append(
                    f"| {test} | {th} | {TARGET_NAMES[t]} | {qps:,.0f}{note} | {lo:,.0f}–{hi:,.0f} "
                    f"| {p95:.2f} | {ratio(qps, med.get('direct', (0,))[0])} "
                    f"| {ratio(qps, med.get('haproxy', (0,))[0])} |"
                )
    return lines


def memory(path: str, idle_clients: str) -> list[str]:
    labels = {
        "idle": "idle, after start",
        f"idle_clients_{idle_clients}": f"{idle_clients} idle logged-in clients",
        "after_idle_clients": "after those clients left",
        "load_64_threads_max": "under the 64-thread sysbench load (max of 1 s samples)",
        "peak_hwm": "peak RSS of the whole run (VmHWM)",
    }
    lines = ["| sqlproxy RSS | MiB |", "|---|---:|"]
    with open(path) as f:
        for row in csv.DictReader(f, delimiter="\t"):
            kib = row["kib"].strip()
            mib = f"{int(kib) / 1024:.1f}" if kib.isdigit() else "?"
            lines.append(f"| {labels.get(row['what'], row['what'])} | {mib} |")
    return lines


def cache_line(path: str | None) -> list[str]:
    """The cache-on instance's counters over the run: what its qps rests on."""
    if not path or not os.path.exists(path):
        return []
    with open(path) as f:
        kv = dict(line.rstrip("\n").split("\t", 1) for line in f if "\t" in line)
    return [
        "",
        "Cache-on instance over the whole run (warm-up included): "
        f"{kv.get('hits', '?')} hits, {kv.get('misses', '?')} misses, "
        f"hit ratio {kv.get('hit_ratio', '?')}, {kv.get('entries', '?')} entries, "
        f"{kv.get('invalidations', '?')} invalidations.",
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    for a in ("results", "memory", "time", "rounds", "tables", "table-size", "quick",
              "idle-clients", "load-start"):
        ap.add_argument("--" + a, required=True)
    ap.add_argument("--doc")
    ap.add_argument("--cache", help="SHOW CACHE output of the cache-on instance (tsv)")
    ap.add_argument("--markers", default="sysbench",
                    help="NAME of the <!-- NAME:begin/end --> pair the table replaces")
    ap.add_argument("--tls", default="0", help="1: clients connected with TLS")
    args = ap.parse_args()
    begin, end = f"<!-- {args.markers}:begin -->", f"<!-- {args.markers}:end -->"
    runs, tests, threads, targets = load_results(args.results)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    mode = " (QUICK=1 smoke run: not a measurement)" if args.quick == "1" else ""
    body = [
        f"Measured {now} by `benches/sysbench.sh`{mode}: {args.rounds} round(s) of "
        f"{args.time} s per run, targets in rotated order each round; sysbench data "
        f"{args.tables} tables x {args.table_size} rows (in the buffer pool), "
        "server-side prepared statements (sysbench's default)."
        + (" Every client connection with TLS (`--mysql-ssl=on`, TLS 1.3 by default "
           "on both ends): to cn1 directly, through HAProxy (TCP mode: TLS from the "
           "client to the node), to sqlproxy (`[mysql.tls]`, the cluster's "
           "certificate; its node connections in cleartext)."
           if args.tls == "1" else ""),
        "",
        *machine(args.load_start),
        "",
        *table(runs, tests, threads, targets),
        "",
        *memory(args.memory, args.idle_clients),
        *cache_line(args.cache),
    ]
    text = "\n".join(body)
    print()
    print(text)
    if not args.doc:
        return
    block = f"{begin}\n{text}\n{end}"
    try:
        with open(args.doc) as f:
            doc = f.read()
    except FileNotFoundError:
        doc = "# Performance\n\n## sysbench: direct MariaDB, HAProxy, sqlproxy\n\n"
    if begin in doc and end in doc:
        head, rest = doc.split(begin, 1)
        doc = head + block + rest.split(end, 1)[1]
    else:
        doc = doc.rstrip("\n") + "\n\n" + block + "\n"
    with open(args.doc, "w") as f:
        f.write(doc)
    print(f"\nwritten to {args.doc}")


if __name__ == "__main__":
    main()
