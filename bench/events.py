#!/usr/bin/env python3
"""Keel's events benchmark (issue 10): what events cost and how fast the relay is.

1. Create throughput, events off vs on: the harness's create workload (wrk +
   bench/lua/workload.lua, the same seeded data) at 64 connections against
   bench/keel.toml as is and against the same spec plus one webhook (signed,
   `allow_private = true`) to a local receiver that answers 200 at once. Runs
   alternate off/on; after each "on" run the relay's backlog is let drain, so the next
   run starts clean. Target: on ≥ 0.9 × off.
2. Relay throughput: a backlog of creates is written while the receiver answers 503
   (the endpoint's breaker opens after a few failures and holds the rest), Keel is
   restarted with the receiver answering 200, and the receiver counts deliveries per
   second while the relay drains it. Target ≥ 2,000/s on SQLite.
3. Commit → first attempt: one client creates at a steady rate (default 200/s) with the
   receiver answering 200; the receiver records arrival − the envelope's `occurred_at`
   (stamped in the write's transaction, just before commit). Targets p50 ≤ 50 ms,
   p99 ≤ 250 ms.

The receiver is bench/ceiling/src/bin/receiver.rs (`keel-bench-receiver`). Run through
bench/events.sh, which builds the release binaries. Standard library only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402 - the sibling module, found through sys.path

HERE = h.HERE
# 32 fixed bytes, base64: a benchmark secret, not a real one.
WEBHOOK_SECRET = "whsec_a2VlbC1ldmVudHMtYmVuY2gtc2VjcmV0LTAxMjM0NTY3ODk="
TARGET_RATIO = 0.90
TARGET_DRAIN = 2000.0
TARGET_P50_MS, TARGET_P99_MS = 50.0, 250.0


def load() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


class Receiver:
    def __init__(self, binary: str, logfile: Path):
        self.port = h.free_port()
        self.server = h.Server("receiver", [binary, "--addr", f"127.0.0.1:{self.port}"],
                               self.port, logfile, "/_stats")

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def status(self, code: int) -> None:
        h.call(self.port, "POST", f"/_status/{code}")

    def reset(self) -> None:
        h.call(self.port, "POST", "/_reset")

    def stats(self) -> dict:
        return h.call(self.port, "GET", "/_stats")[2]

    def wait_for(self, n: int, stall: float = 15.0, limit: float = 300.0) -> dict:
        """Polls until n deliveries arrived, or none for `stall` seconds, or `limit`."""
        t0 = last_change = time.monotonic()
        seen = -1
        while True:
            s = self.stats()
            if s["delivered"] >= n:
                return s
            now = time.monotonic()
            if s["delivered"] != seen:
                seen, last_change = s["delivered"], now
            if now - last_change > stall or now - t0 > limit:
                return s
            time.sleep(0.1)


class EventsBench(h.Bench):
    def __init__(self, args, receiver: Receiver):
        super().__init__(args)
        self.receiver = receiver

    def spec(self, name: str, webhook: bool) -> Path:
        d = self.work / f"spec-{name}"
        d.mkdir(exist_ok=True)
        text = h.SPEC.read_text()
        if webhook:
            text += f"""
[events.webhooks.bench]
url = "http://127.0.0.1:{self.receiver.port}/hook"
on = ["posts.*"]
secret = "{WEBHOOK_SECRET}"
allow_private = true
"""
        spec = d / "keel.toml"
        spec.write_text(text)
        return spec

    def start_events_keel(self, backend: str, name: str, webhook: bool,
                          url: str | None = None) -> tuple[h.Setup, str]:
        """Keel on a fresh copy of the seeded data (or on `url`), signed in."""
        if url is None:
            user, url, _ = self.fresh_keel_db(backend, name)
        else:
            user = self.golden[backend][0]
        spec = self.spec(name, webhook)
        env = {**os.environ, "KEEL_SECRET": h.KEEL_SECRET}
        h.run([self.a.keel, "migrate", str(spec), "--database", url], capture_output=True, env=env)
        port = h.free_port()
        server = h.Server(name, [self.a.keel, "serve", str(spec), "--addr", f"127.0.0.1:{port}",
                                 "--database", url], port, self.work / f"{name}.log", "/readyz",
                          {"KEEL_SECRET": h.KEEL_SECRET, "KEEL_LOG_FORMAT": "json"})
        server.start()
        status, _, body = h.call(port, "POST", "/v1/auth/login",
                                 {"email": h.BENCH_EMAIL, "password": h.BENCH_PASSWORD})
        if status != 200:
            server.stop()
            raise RuntimeError(f"keel login: {status} {body}")
        empty = h.write_ids(self.work / f"{name}.ids", [])
        return h.Setup(server, body["access_token"], user, empty, empty, lambda: None), url

    def creates(self, s: h.Setup, conns: int, seconds: float) -> dict:
        r = self.wrk("keel-x", s, "create", conns, seconds)
        r["errors"] = (r["status_errors"] + r["connect_errors"] + r["read_errors"]
                       + r["write_errors"] + r["timeouts"])
        r["ok"] = r["requests"] - r["status_errors"]
        return r

    # -- 1. events off vs on ---------------------------------------------------------

    def cost(self, backend: str) -> dict:
        h.log(f"== {backend}: create throughput, events off vs on, c={self.a.conns}")
        off, _ = self.start_events_keel(backend, f"off-{backend}", webhook=False)
        on, _ = self.start_events_keel(backend, f"on-{backend}", webhook=True)
        res = {"off": [], "on": [], "on_delivered": [], "on_latency": [], "load": []}
        try:
            self.receiver.status(200)
            self.creates(off, self.a.conns, self.a.warmup)
            self.creates(on, self.a.conns, self.a.warmup)
            self.receiver.wait_for(10**9, stall=2.0, limit=120.0)
            for i in range(self.a.runs):
                res["load"].append(load())
                # Which side goes first alternates (off-on, on-off, …): a machine that
                # warms up or slows down over the pair does not favour one side.
                for side in (("off", "on") if i % 2 == 0 else ("on", "off")):
                    if side == "off":
                        c0 = cpu_seconds(off.server.proc.pid)
                        r = self.creates(off, self.a.conns, self.a.duration)
                        r["keel_cpu_us"] = (cpu_seconds(off.server.proc.pid) - c0) * 1e6 / max(r["ok"], 1)
                        res["off"].append(r)
                        continue
                    self.receiver.reset()
                    c0 = cpu_seconds(on.server.proc.pid)
                    rc0 = cpu_seconds(self.receiver.server.proc.pid)
                    r2 = self.creates(on, self.a.conns, self.a.duration)
                    res["on"].append(r2)
                    at_end = self.receiver.stats()["delivered"]
                    st = self.receiver.wait_for(r2["ok"], stall=5.0)
                    # Keel's CPU from the run's start to the last delivery: each create
                    # with its delivery, wherever the relay did it; the receiver's apart.
                    r2["keel_cpu_us"] = (cpu_seconds(on.server.proc.pid) - c0) * 1e6 / max(r2["ok"], 1)
                    r2["receiver_cpu_us"] = ((cpu_seconds(self.receiver.server.proc.pid) - rc0) * 1e6
                                             / max(st["delivered"], 1))
                    res["on_delivered"].append({"at_end_of_run": at_end, "after_drain": st["delivered"],
                                                "created": r2["ok"]})
                    res["on_latency"].append(st)
                h.log(f"{backend} run {i + 1}: off {r['rps']:.0f} req/s, on {r2['rps']:.0f} req/s "
                      f"({r2['rps'] / r['rps']:.2f}×); delivered {at_end}/{r2['ok']} by the end of "
                      f"the run, {st['delivered']} after draining; load {' '.join(load())}")
        finally:
            off.server.stop()
            on.server.stop()
            if backend == "postgres":
                self.drop_pg("keel_bench_run")
        res["off_rps"] = statistics.median(r["rps"] for r in res["off"])
        res["on_rps"] = statistics.median(r["rps"] for r in res["on"])
        res["ratio"] = res["on_rps"] / res["off_rps"] if res["off_rps"] else 0.0
        res["off_cpu_us"] = statistics.median(r["keel_cpu_us"] for r in res["off"])
        res["on_cpu_us"] = statistics.median(r["keel_cpu_us"] for r in res["on"])
        res["receiver_cpu_us"] = statistics.median(r["receiver_cpu_us"] for r in res["on"])
        res["load"].append(load())
        return res

    # -- 2. relay throughput -----------------------------------------------------------

    def drain(self, backend: str) -> dict:
        h.log(f"== {backend}: relay throughput, a backlog of ≥ {self.a.backlog} creates")
        name = f"drain-{backend}"
        self.receiver.status(503)
        self.receiver.reset()
        s, url = self.start_events_keel(backend, name, webhook=True)
        created = 0
        try:
            while created < self.a.backlog:
                created += self.creates(s, 16, 2)["ok"]
        finally:
            s.server.stop()
        rejected = self.receiver.stats()["rejected"]
        h.log(f"{backend}: {created} creates written, {rejected} attempts answered 503; "
              "restarting Keel with the receiver answering 200")
        self.receiver.status(200)
        self.receiver.reset()
        before = load()
        s, _ = self.start_events_keel(backend, name, webhook=True, url=url)
        t0 = time.time()
        try:
            st = self.receiver.wait_for(created, stall=10.0)
        finally:
            s.server.stop()
            if backend == "postgres":
                self.drop_pg("keel_bench_run")
        res = {"created": created, "rejected_503": rejected, "stats": st,
               "load_before": before, "load_after": load(),
               "from_start_s": st["last_at"] - t0 if st["delivered"] else 0.0}
        h.log(f"{backend}: {st['delivered']}/{created} delivered, {st['per_second']:.0f}/s "
              f"({st['per_second_99']:.0f}/s to the 99th percentile); load {' '.join(load())}")
        return res

    # -- 3. latency --------------------------------------------------------------------

    def latency(self, backend: str) -> dict:
        rate, seconds = self.a.rate, self.a.latency_seconds
        h.log(f"== {backend}: commit → first attempt at {rate}/s for {seconds} s")
        self.receiver.status(200)
        s, _ = self.start_events_keel(backend, f"latency-{backend}", webhook=True)
        conn = http.client.HTTPConnection("127.0.0.1", s.server.port, timeout=10)
        headers = {"Authorization": f"Bearer {s.token}", "Content-Type": "application/json"}
        before = load()
        ok = errors = 0
        try:
            # Warm the path, then measure from a clean slate.
            for i in range(20):
                conn.request("POST", "/v1/posts", body=json.dumps(
                    {"title": f"warm {i}", "body": "warm-up", "visibility": "public"}), headers=headers)
                conn.getresponse().read()
            self.receiver.wait_for(20, stall=2.0)
            self.receiver.reset()
            n = int(rate * seconds)
            t0 = time.perf_counter()
            for i in range(n):
                due = t0 + i / rate
                pause = due - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                conn.request("POST", "/v1/posts", body=json.dumps(
                    {"title": f"latency {i}", "body": "One create at a steady rate.",
                     "visibility": "public"}), headers=headers)
                res = conn.getresponse()
                res.read()
                if res.status == 201:
                    ok += 1
                else:
                    errors += 1
            achieved = n / (time.perf_counter() - t0)
            st = self.receiver.wait_for(ok, stall=5.0)
        finally:
            conn.close()
            s.server.stop()
            if backend == "postgres":
                self.drop_pg("keel_bench_run")
        h.log(f"{backend}: {achieved:.0f} creates/s, {st['delivered']}/{ok} delivered, "
              f"p50 {st['p50_ms']:.1f} ms, p99 {st['p99_ms']:.1f} ms; load {' '.join(load())}")
        return {"rate": rate, "achieved": achieved, "created": ok, "errors": errors, "stats": st,
                "load_before": before, "load_after": load()}


# ------------------------------------------------------------------ report


def cpu_seconds(pid: int) -> float:
    """A process's user + system CPU so far, from /proc (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mark(ok: bool) -> str:
    return "✅ met" if ok else "❌ missed"


def report(res: dict, info: dict, a, when: str) -> str:
    out = [f"# Keel events benchmark — {when}", ""]
    out.append(f"Machine: {info['nproc']} × {info['cpu']}, {info['memory_gb']} GB, Linux "
               f"{info['kernel']} ({info['os']}); {info['rustc']}; PostgreSQL {info['postgres']}; "
               f"{info['wrk']}; Keel {info['keel_commit']}. Load average (1, 5, 15 min) before: "
               f"{' '.join(info['load_before'])}, after: {' '.join(info['load_after'])}.")
    out.append("")
    out.append(f"Command: `{info['command']}` ({info['profile']} build). wrk and the receiver "
               f"(`keel-bench-receiver`, one tokio worker) share the server's cores. Data: "
               f"{a.users:,} users, {a.posts:,} posts, a fresh copy per server.")
    out.append("")
    out.append("## Targets (issue 10)")
    out.append("")
    out.append("| target | backend | figure | status |")
    out.append("|---|---|---|---|")
    for b, r in res.items():
        if "cost" in r:
            c = r["cost"]
            out.append(f"| create req/s with events ≥ 0.9 × without, c={a.conns} | {b} | "
                       f"{c['on_rps']:,.0f} vs {c['off_rps']:,.0f} req/s = {c['ratio']:.2f}× "
                       f"({(1 - c['ratio']) * 100:+.0f} % cost) | {mark(c['ratio'] >= TARGET_RATIO)} |")
        if "drain" in r:
            d = r["drain"]["stats"]
            out.append(f"| relay ≥ 2,000 deliveries/s (SQLite) | {b} | {d['per_second']:,.0f}/s "
                       f"({d['delivered']:,} of {r['drain']['created']:,}) | "
                       + (mark(d["per_second"] >= TARGET_DRAIN) if b == "sqlite" else "(SQLite target)")
                       + " |")
        if "latency" in r:
            lt = r["latency"]["stats"]
            out.append(f"| commit → first attempt p50 ≤ 50 ms | {b} | {lt['p50_ms']:.1f} ms | "
                       f"{mark(lt['p50_ms'] <= TARGET_P50_MS)} |")
            out.append(f"| commit → first attempt p99 ≤ 250 ms | {b} | {lt['p99_ms']:.1f} ms | "
                       f"{mark(lt['p99_ms'] <= TARGET_P99_MS)} |")
    for b, r in res.items():
        if "cost" in r:
            c = r["cost"]
            out += ["", f"## 1. Create throughput, events off vs on — {b}", "",
                    f"wrk, create workload, {a.conns} connections, {a.warmup} s warm-up each, then "
                    f"{a.runs} × {a.duration} s per side, alternating which side goes first (off-on, on-off, …; the relay's backlog "
                    "drained after each \"on\" run). Off: bench/keel.toml. On: the same plus one "
                    "webhook on `posts.*`, signed, `allow_private = true`, to the receiver "
                    "(200 at once).", "",
                    "| run | load (1 min) | off req/s | on req/s | on ÷ off | delivered by the run's end | after draining | on: p50 / p99 of arrival − occurred_at | Keel CPU per create off / on | receiver CPU per delivery |",
                    "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
            for i, (x, y, dl, lt) in enumerate(zip(c["off"], c["on"], c["on_delivered"],
                                                   c["on_latency"], strict=True)):
                out.append(f"| {i + 1} | {c['load'][i][0]} | {x['rps']:,.0f} | {y['rps']:,.0f} | "
                           f"{y['rps'] / x['rps']:.2f}× | {dl['at_end_of_run']:,} / {dl['created']:,} | "
                           f"{dl['after_drain']:,} | {lt['p50_ms']:,.0f} / {lt['p99_ms']:,.0f} ms | "
                           f"{x['keel_cpu_us']:,.0f} / {y['keel_cpu_us']:,.0f} µs | {y['receiver_cpu_us']:,.0f} µs |")
            out.append(f"| median | | {c['off_rps']:,.0f} | {c['on_rps']:,.0f} | {c['ratio']:.2f}× | | | | "
                       f"{c['off_cpu_us']:,.0f} / {c['on_cpu_us']:,.0f} µs | {c['receiver_cpu_us']:,.0f} µs |")
            out.append("")
            out.append(f"Keel's own CPU (user + system, all threads, from /proc) per create: "
                       f"{c['off_cpu_us']:,.0f} µs without events, {c['on_cpu_us']:,.0f} µs with the "
                       f"webhook, counted from the run's start to its last delivery, so each create "
                       f"carries its event and its delivery = "
                       f"{(c['on_cpu_us'] / c['off_cpu_us'] - 1) * 100 if c['off_cpu_us'] else 0:+.0f} %. "
                       f"The receiver, a stand-in for a service on another machine, used "
                       f"{c['receiver_cpu_us']:,.0f} µs per delivery of the same two cores.")
            errs = sum(r["errors"] for r in c["off"] + c["on"])
            if errs:
                out.append(f"\n⚠ {errs} wrk errors in these runs.")
        if "drain" in r:
            d = r["drain"]
            s = d["stats"]
            out += ["", f"## 2. Relay throughput — {b}", "",
                    f"{d['created']:,} creates written (wrk, 16 connections) while the receiver "
                    f"answered 503 ({d['rejected_503']} attempts reached it before the breaker "
                    "held the rest); Keel stopped, the receiver switched to 200, Keel started "
                    f"again. Load before: {' '.join(d['load_before'])}, after: "
                    f"{' '.join(d['load_after'])}.", "",
                    f"- delivered: {s['delivered']:,} (unique event ids {s['unique_ids']:,})",
                    f"- **{s['per_second']:,.0f} deliveries/s** (first to last arrival); "
                    f"{s['per_second_99']:,.0f}/s up to the 99th percentile arrival",
                    f"- from `keel serve` spawned to the last delivery: {d['from_start_s']:.1f} s "
                    "(includes start-up)"]
        if "latency" in r:
            lt = r["latency"]
            s = lt["stats"]
            out += ["", f"## 3. Commit → first attempt — {b}", "",
                    f"One keep-alive client, creates paced at {lt['rate']}/s (achieved "
                    f"{lt['achieved']:.0f}/s) for {a.latency_seconds} s; {lt['created']:,} created, "
                    f"{s['delivered']:,} delivered. Latency is the receiver's arrival time minus the "
                    "envelope's `occurred_at` (same clock). Load before: "
                    f"{' '.join(lt['load_before'])}, after: {' '.join(lt['load_after'])}.", "",
                    "| p50 | p90 | p99 | max |", "|---:|---:|---:|---:|",
                    f"| {s['p50_ms']:.1f} ms | {s['p90_ms']:.1f} ms | {s['p99_ms']:.1f} ms | "
                    f"{s['max_ms']:.1f} ms |"]
    return "\n".join(out) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backends", default="sqlite", help="sqlite,postgres")
    p.add_argument("--parts", default="cost,drain,latency")
    p.add_argument("--conns", type=int, default=64)
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--backlog", type=int, default=20_000)
    p.add_argument("--rate", type=int, default=200)
    p.add_argument("--latency-seconds", type=int, default=20)
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--posts", type=int, default=100_000)
    p.add_argument("--wrk-threads", type=int, default=2)
    p.add_argument("--smoke", action="store_true", help="a few seconds: every part, tiny")
    p.add_argument("--out", help="results directory (default bench/results/<date>-events-<machine>; "
                                 "smoke: a temporary one)")
    p.add_argument("--keep", action="store_true")
    p.add_argument("--keel", default="keel")
    p.add_argument("--receiver", default="keel-bench-receiver")
    p.add_argument("--wrk", default="wrk")
    p.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432"))
    a = p.parse_args()
    if a.smoke:
        a.duration, a.warmup, a.runs, a.users, a.posts = 1, 1, 1, 50, 200
        a.conns, a.backlog, a.rate, a.latency_seconds = 4, 200, 100, 1
    a.systems, a.pocketbase = ["keel-sqlite"], "pocketbase"
    backends = [b for b in a.backends.split(",") if b]
    parts = [x for x in a.parts.split(",") if x]
    info = h.machine(a)
    info["command"] = " ".join(["bench/events.sh", *sys.argv[1:]])
    info["profile"] = "debug" if "/debug/" in a.keel else "release"
    now = dt.datetime.now(dt.timezone.utc)
    if a.out:
        out = Path(a.out)
    elif a.smoke:
        out = Path(tempfile.mkdtemp(prefix="keel-bench-events-smoke-"))
    else:
        out = HERE / "results" / f"{now:%Y-%m-%d}-events-{h.machine_slug(info)}"
    receiver = Receiver(a.receiver, Path(tempfile.mkdtemp(prefix="keel-receiver-")) / "receiver.log")
    receiver.start()
    bench = EventsBench(a, receiver)
    h.log(f"scratch {bench.work}; receiver on {receiver.port}; results → {out}")
    res: dict = {}
    try:
        for b in backends:
            res[b] = {}
            for part in parts:
                res[b][part] = getattr(bench, {"cost": "cost", "drain": "drain",
                                               "latency": "latency"}[part])(b)
    finally:
        receiver.stop()
        bench.cleanup()
    info["load_after"] = load()
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
        bad = []
        for b, r in res.items():
            if "latency" in r and r["latency"]["stats"]["delivered"] < r["latency"]["created"]:
                bad.append(f"{b} latency: {r['latency']['stats']['delivered']} of "
                           f"{r['latency']['created']} delivered")
            if "drain" in r and r["drain"]["stats"]["delivered"] < r["drain"]["created"]:
                bad.append(f"{b} drain: {r['drain']['stats']['delivered']} of {r['drain']['created']}")
        if bad:
            h.log("events smoke: " + "; ".join(bad))
            return 1
        print("bench events smoke: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
