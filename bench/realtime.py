#!/usr/bin/env python3
"""Keel's realtime benchmark (issue 11), beside PocketBase's realtime on the same data
and rules (bench/keel.toml and the harness's PocketBase collection: public posts or
your own; subscribers are anonymous, so the rule reads only the record's fields).

1. Idle streams: N Server-Sent Events streams (default 10,000) opened and held, from
   40 loopback source addresses (as many clients would be: Keel caps streams per
   address); RSS of the server before and with them open. Target: ≥ 10,000 per node.
2. Fan-out: 1,000 subscribers while one writer creates public posts at 100/s for 20 s
   through the REST API; every subscriber may read every post, so each create is one
   delivery per subscriber. Commit → client latency is arrival − the record's commit
   stamp (Keel's `occurred_at`, PocketBase's `created`, both stamped just before the
   insert on this machine's clock). Targets: p50 ≤ 50 ms, p99 ≤ 250 ms; deliveries/s
   ≥ 10× PocketBase in the same run and ≥ 40,000/s per node.
3. Capacity: the same subscribers with 400 creates/s offered (8 writer connections)
   for 10 s: what each system sustains once saturated. At 100/s Keel's deliveries/s
   is the offered load (100,000/s), so the ratio to PocketBase is read here too.

The client is bench/ceiling/src/bin/subscribers.rs (`keel-bench-subscribers`, raw
HTTP/1.1 on tokio); it shares the server's cores. Run through bench/realtime.sh, which
builds the release binaries. Standard library only.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import harness as h  # noqa: E402 - the sibling module, found through sys.path


def subscribers(a, system: str, port: int, connections: int, hold: float = 0.0,
                rate: float = 0.0, seconds: float = 0.0, token: str = "", user: str = "",
                on_ready=None) -> dict:
    """Run the client; `on_ready` is called once every stream is open (for RSS)."""
    cmd = [a.subscribers, "--system", system, "--port", str(port), "--connections",
           str(connections), "--hold", str(hold), "--write-rate", str(rate),
           "--write-seconds", str(seconds), "--token", token, "--user", user]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    result: dict = {}
    for line in proc.stdout:
        if line.startswith("READY "):
            if on_ready is not None:
                on_ready(int(line.split()[1]))
        elif line.startswith("{"):
            result = json.loads(line)
    proc.wait()
    if not result:
        raise RuntimeError(f"subscribers printed no result (exit {proc.returncode})")
    return result


class RealtimeBench(h.Bench):
    def run_system(self, system: str) -> dict:
        h.log(f"== {system}")
        s = self.start(system)
        kind = "pocketbase" if system == "pocketbase" else "keel"
        out: dict = {}
        try:
            time.sleep(1.0)
            idle_rss = s.server.status_kb("VmRSS")
            held: dict = {}

            def sample(n: int) -> None:
                time.sleep(1.0)
                held["rss_kb"] = s.server.status_kb("VmRSS")
                held["open"] = n
                h.log(f"{system}: {n} streams open, RSS {held['rss_kb'] / 1024:.1f} MB")

            r = subscribers(self.a, kind, s.server.port, self.a.idle, hold=2.0, on_ready=sample)
            out["idle"] = {**r, "rss_before_kb": idle_rss, "rss_open_kb": held.get("rss_kb", 0)}
            h.log(f"{system}: idle {r['ready']}/{r['connections']} streams "
                  f"({r['failed']} failed: {r['failures']})")
            time.sleep(2.0)
            r = subscribers(self.a, kind, s.server.port, self.a.fanout, rate=self.a.rate,
                            seconds=self.a.seconds, token=s.token, user=s.user)
            out["fanout"] = r
            h.log(f"{system}: fan-out {r['ready']} subscribers, {r['acked_writes']} creates, "
                  f"{r['events']}/{r['expected']} deliveries, {r['per_second']:.0f}/s, "
                  f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms"
                  + (f", writer: {r['write_error']}" if r.get("write_error") else ""))
            if self.a.capacity_rate > 0:
                time.sleep(2.0)
                r = subscribers(self.a, kind, s.server.port, self.a.fanout, rate=self.a.capacity_rate,
                                seconds=self.a.capacity_seconds, token=s.token, user=s.user)
                out["capacity"] = r
                h.log(f"{system}: capacity {r['acked_writes']} creates, {r['events']}/{r['expected']} "
                      f"deliveries, {r['per_second']:.0f}/s, p50 {r['p50_ms']:.1f} ms")
        finally:
            s.server.stop()
        return out


def mark(ok: bool) -> str:
    return "✅ met" if ok else "❌ missed"


def report(res: dict, info: dict, a, when: str) -> str:
    k, pb = res.get("keel-sqlite"), res.get("pocketbase")
    lines = [f"# Keel realtime benchmark — {when}", "",
             f"Machine: {info['nproc']} × {info['cpu']}, {info['memory_gb']} GB, {info['kernel']} "
             f"({info['os']}); {info['rustc']}; PocketBase {info['pocketbase']}; Keel "
             f"{info['keel_commit']}. Load average before: {' '.join(info['load_before'])}, after: "
             f"{' '.join(info.get('load_after', []))}.", "",
             f"Command: `{info['command']}` ({info['profile']} build). The client "
             "(`keel-bench-subscribers`) shares the server's 2 cores. Data: "
             f"{a.users:,} users and {a.posts:,} posts. Subscribers are anonymous, from 40 loopback "
             "addresses; the read rule (`visibility == \"public\" || author == auth.id`) reads only "
             "the record's fields.", "", "## Targets (issue 11)", "",
             "| target | figure | status |", "|---|---|---|"]
    if k:
        i = k["idle"]
        lines.append(f"| ≥ 10,000 idle SSE streams per node | {i['ready']:,} open, RSS "
                     f"{i['rss_open_kb'] / 1024:.1f} MB (from {i['rss_before_kb'] / 1024:.1f} MB) | "
                     f"{mark(i['ready'] >= 10_000)} |")
        f = k["fanout"]
        lines.append(f"| commit → client p50 ≤ 50 ms | {f['p50_ms']:.1f} ms | {mark(f['p50_ms'] <= 50)} |")
        lines.append(f"| commit → client p99 ≤ 250 ms | {f['p99_ms']:.1f} ms | {mark(f['p99_ms'] <= 250)} |")
        lines.append(f"| ≥ 40,000 authorized deliveries/s per node | {f['per_second']:,.0f}/s "
                     f"({f['events']:,} of {f['expected']:,}) | {mark(f['per_second'] >= 40_000)} |")
        if pb:
            for part, label in (("fanout", f"at {a.rate:g} creates/s offered"),
                                ("capacity", f"saturated ({a.capacity_rate:g} creates/s offered)")):
                if part not in k or part not in pb:
                    continue
                mine, theirs = k[part]["per_second"], pb[part]["per_second"]
                ratio = mine / theirs if theirs else None
                lines.append(f"| deliveries/s ≥ 10× PocketBase, {label} | {h.fmt_ratio(ratio)} "
                             f"({mine:,.0f}/s vs {theirs:,.0f}/s) | {mark(ratio is not None and ratio >= 10)} |")
    lines += ["", "## Idle streams", "", "| system | open | failed | RSS before | RSS open | per stream |",
              "|---|---:|---:|---:|---:|---:|"]
    for name, r in res.items():
        i = r["idle"]
        per = (i["rss_open_kb"] - i["rss_before_kb"]) / i["ready"] if i["ready"] else 0
        lines.append(f"| {name} | {i['ready']:,} | {i['failed']:,} | {i['rss_before_kb'] / 1024:.1f} MB | "
                     f"{i['rss_open_kb'] / 1024:.1f} MB | {per:.1f} kB |")
    lines += ["", f"## Fan-out: {a.fanout:,} subscribers × {a.rate:g} creates/s for {a.seconds:g} s", "",
              "| system | subscribers | creates | deliveries | of expected | deliveries/s | p50 | p90 | p99 | max |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in res.items():
        f = r["fanout"]
        share = f["events"] / f["expected"] if f["expected"] else 0
        lines.append(f"| {name} | {f['ready']:,} | {f['acked_writes']:,} | {f['events']:,} | "
                     f"{share:.1%} | {f['per_second']:,.0f} | {f['p50_ms']:.1f} ms | "
                     f"{f['p90_ms']:.1f} ms | {f['p99_ms']:.1f} ms | {f['max_ms']:.1f} ms |")
    if any("capacity" in r for r in res.values()):
        lines += ["", f"## Capacity: {a.fanout:,} subscribers, {a.capacity_rate:g} creates/s offered "
                  f"for {a.capacity_seconds:g} s (8 writer connections; what each system sustains)", "",
                  "| system | creates/s sustained | deliveries | of expected | deliveries/s | p50 | p99 |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for name, r in res.items():
            f = r.get("capacity")
            if not f:
                continue
            share = f["events"] / f["expected"] if f["expected"] else 0
            lines.append(f"| {name} | {f['acked_writes'] / a.capacity_seconds:,.0f} | {f['events']:,} | "
                         f"{share:.1%} | {f['per_second']:,.0f} | {f['p50_ms']:.1f} ms | {f['p99_ms']:.1f} ms |")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--systems", default="keel-sqlite,pocketbase")
    p.add_argument("--idle", type=int, default=10_000, help="idle streams to open")
    p.add_argument("--fanout", type=int, default=1_000, help="subscribers during the writes")
    p.add_argument("--rate", type=float, default=100.0, help="creates per second")
    p.add_argument("--seconds", type=float, default=20.0, help="how long to write")
    p.add_argument("--capacity-rate", type=float, default=400.0,
                   help="creates per second offered to find each system's saturation (0: skip)")
    p.add_argument("--capacity-seconds", type=float, default=10.0)
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--posts", type=int, default=100_000)
    p.add_argument("--smoke", action="store_true", help="seconds: few streams, tiny data")
    p.add_argument("--out", help="results directory (default bench/results/<date>-realtime-<machine>)")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    p.add_argument("--keel", default="keel")
    p.add_argument("--ceiling", default="keel-bench-ceiling")
    p.add_argument("--pocketbase", default="pocketbase")
    p.add_argument("--subscribers", default="keel-bench-subscribers")
    p.add_argument("--wrk", default="wrk")
    p.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432"))
    a = p.parse_args()
    if a.smoke:
        a.idle, a.fanout, a.rate, a.seconds, a.users, a.posts = 50, 20, 20.0, 2.0, 50, 200
        a.capacity_rate = 0.0
        a.systems = "keel-sqlite"
    a.systems = [s for s in a.systems.split(",") if s]
    a.warmup, a.duration, a.runs, a.concurrency, a.workloads = 1, 1, 1, [1], []
    info = h.machine(a)
    info["command"] = " ".join(["bench/realtime.sh", *sys.argv[1:]])
    info["profile"] = "debug" if "/debug/" in a.keel else "release"
    now = dt.datetime.now(dt.timezone.utc)
    if a.out:
        out = Path(a.out)
    elif a.smoke:
        out = Path(tempfile.mkdtemp(prefix="keel-bench-realtime-smoke-"))
    else:
        out = HERE / "results" / f"{now:%Y-%m-%d}-realtime-{h.machine_slug(info)}"
    bench = RealtimeBench(a)
    h.log(f"scratch {bench.work}; results → {out}")
    res: dict = {}
    try:
        for system in a.systems:
            res[system] = bench.run_system(system)
    finally:
        bench.cleanup()
    info["load_after"] = Path("/proc/loadavg").read_text().split()[:3]
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    md = report(res, info, a, now.strftime("%Y-%m-%d %H:%M UTC"))
    (out / "results.md").write_text(md)
    (out / "results.json").write_text(json.dumps({"date": now.isoformat(), "machine": info,
                                                  "settings": {k: v for k, v in vars(a).items()},
                                                  "results": res}, indent=1) + "\n")
    print(md)
    h.log(f"written to {out}")
    if a.smoke:
        k = res["keel-sqlite"]
        bad = k["idle"]["ready"] < a.idle or k["fanout"]["events"] < k["fanout"]["expected"] \
            or k["fanout"]["acked_writes"] == 0
        if bad:
            h.log("realtime smoke: streams missing or deliveries lost")
            return 1
        print("bench realtime smoke: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
