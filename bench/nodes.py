#!/usr/bin/env python3
"""Keel's many-nodes benchmark (issue 12): what sharing state through Redis costs, and
what the record cache buys. The harness's workloads (wrk + bench/lua/workload.lua, the
same seeded data, 64 connections by default); each pair below runs in one session,
the side that goes first alternating run by run, and is reported as a ratio:

1. Cache: `get by id` with the record cache vs `--cache off`, on SQLite (in process,
   `--cache local`) and on PostgreSQL with Redis (shared). Target: cached ≥ 1.5 ×
   uncached.
2. Limits: on PostgreSQL, the rate limiter in process vs in Redis (one GCRA script per
   request), cache off on both sides so only the limiter differs; get and create.
   Target: Redis costs ≤ 15 % (ratio ≥ 0.85).
3. One node vs three: PostgreSQL + Redis (limits and cache shared), three `keel
   serve` processes on the same database, each driven by its own wrk with a third of
   the connections (requests spread evenly, as behind a balancer). This machine has
   2 cores: three nodes cannot add CPU, so the ratio shows the cost of running
   several nodes on shared state, not scaling.

Uses the machine's Redis at 127.0.0.1:6379 (BENCH_REDIS_URL overrides), with a key
prefix per start (KEEL_REDIS_PREFIX), so no run starts warm from the one before. Run
through bench/nodes.sh, which builds the release binary. Standard library only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as h  # noqa: E402 - the sibling module, found through sys.path

HERE = h.HERE
TARGET_CACHE = 1.5
TARGET_LIMITS = 0.85


class NodesBench(h.Bench):
    def __init__(self, args):
        super().__init__(args)
        self.redis = args.redis_url
        self.starts = 0

    def start_nodes(self, backend: str, name: str, n: int, env: dict) -> list[h.Setup]:
        """`n` Keel nodes on one fresh copy of the seeded data, each signed in."""
        user, url, location = self.fresh_keel_db(backend, name)
        # A Redis prefix of its own: no cache entry, limit or login throttle carries
        # over from an earlier start.
        self.starts += 1
        env = {**env, "KEEL_REDIS_PREFIX": f"keel-bench:{os.getpid()}:{self.starts}:"}
        spec = self.work / f"keel-{backend}" / "keel.toml"
        setups = []
        public, own = self.keel_ids(backend, location, user)
        ids, own_f = self.id_files(name, public, own)
        for i in range(n):
            port = h.free_port()
            server = h.Server(f"{name}-{i}", [self.a.keel, "serve", str(spec), "--addr",
                                               f"127.0.0.1:{port}", "--database", url], port,
                              self.work / f"{name}-{i}.log", "/readyz",
                              {"KEEL_SECRET": h.KEEL_SECRET, "KEEL_LOG_FORMAT": "json", **env})
            server.start()
            status, _, body = h.call(port, "POST", "/v1/auth/login",
                                     {"email": h.BENCH_EMAIL, "password": h.BENCH_PASSWORD})
            if status != 200:
                for s in setups:
                    s.server.stop()
                server.stop()
                raise RuntimeError(f"keel login: {status} {body}")
            setups.append(h.Setup(server, body["access_token"], user, ids, own_f, lambda: None))
        return setups

    def stop_nodes(self, setups: list[h.Setup], backend: str) -> None:
        for s in setups:
            s.server.stop()
        if backend == "postgres":
            self.drop_pg("keel_bench_run")

    def drive(self, setups: list[h.Setup], workload: str, conns: int, seconds: float) -> dict:
        """One wrk per node, `conns` split evenly, at once; rates summed."""
        share = max(1, conns // len(setups))
        results: list[dict] = [{} for _ in setups]

        def one(i: int) -> None:
            results[i] = self.wrk("keel-x", setups[i], workload, share, seconds)

        threads = [threading.Thread(target=one, args=(i,)) for i in range(len(setups))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return {
            "rps": sum(r["rps"] for r in results),
            "p50_us": max(r["p50_us"] for r in results),
            "p99_us": max(r["p99_us"] for r in results),
            "errors": sum(r["status_errors"] + r["connect_errors"] + r["read_errors"]
                          + r["write_errors"] + r["timeouts"] for r in results),
        }

    def pair(self, label: str, backend: str, sides: dict[str, tuple[int, dict]],
             workloads: list[str]) -> dict:
        """Each side's nodes started once; runs alternate which side goes first."""
        names = list(sides)
        started = {}
        try:
            for side in names:
                n, env = sides[side]
                started[side] = self.start_nodes(backend, f"{label}-{side}", n, env) \
                    if backend == "sqlite" else None
            out: dict = {}
            for w in workloads:
                runs: dict[str, list[dict]] = {side: [] for side in names}
                for r in range(self.a.runs):
                    order = names if r % 2 == 0 else list(reversed(names))
                    for side in order:
                        n, env = sides[side]
                        setups = started[side]
                        fresh = setups is None
                        if fresh:
                            setups = self.start_nodes(backend, f"{label}-{side}", n, env)
                        try:
                            self.drive(setups, w, self.a.conns, self.a.warmup)
                            runs[side].append(self.drive(setups, w, self.a.conns,
                                                         self.a.duration))
                        finally:
                            if fresh:
                                self.stop_nodes(setups, backend)
                        last = runs[side][-1]
                        h.log(f"{label} {w} {side}: {last['rps']:.0f} req/s, "
                              f"p50 {last['p50_us'] / 1000:.2f} ms, p99 {last['p99_us'] / 1000:.2f} ms"
                              + (f", {last['errors']} errors" if last["errors"] else ""))
                out[w] = {side: {
                    "rps": statistics.median(x["rps"] for x in runs[side]),
                    "p50_us": statistics.median(x["p50_us"] for x in runs[side]),
                    "p99_us": statistics.median(x["p99_us"] for x in runs[side]),
                    "errors": sum(x["errors"] for x in runs[side]),
                    "runs": runs[side],
                } for side in names}
            return out
        finally:
            for setups in started.values():
                if setups:
                    self.stop_nodes(setups, backend)

    def cache(self) -> dict:
        off = {"KEEL_CACHE": "off"}
        return {
            "sqlite": self.pair("cache-sqlite", "sqlite", {
                "cached": (1, {"KEEL_CACHE": "local"}), "uncached": (1, off)}, ["get"]),
            "postgres+redis": self.pair("cache-pg", "postgres", {
                "cached": (1, {"KEEL_CACHE": "auto", "KEEL_REDIS_URL": self.redis}),
                "uncached": (1, {**off, "KEEL_REDIS_URL": self.redis})}, ["get"]),
        }

    def limits(self) -> dict:
        off = {"KEEL_CACHE": "off"}
        return self.pair("limits", "postgres", {
            "in-process": (1, off), "redis": (1, {**off, "KEEL_REDIS_URL": self.redis})},
            ["get", "create"])

    def nodes(self) -> dict:
        shared = {"KEEL_REDIS_URL": self.redis}
        return self.pair("nodes", "postgres", {"1 node": (1, shared), "3 nodes": (3, shared)},
                         ["get", "list", "create"])


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b else "n/a"


def mark(ok: bool) -> str:
    return "✅" if ok else "❌"


def report(res: dict, info: dict, a, when: str) -> str:
    lines = [f"# Many nodes — {when}", "",
             f"Machine: {info.get('cpu', '?')}, {info.get('cores', '?')} cores; load after "
             f"{' '.join(info.get('load_after', []))}. {a.conns} connections, {a.runs} runs × "
             f"{a.duration} s per side (median), sides alternating first. "
             f"Profile: {info.get('profile')}.", ""]

    def table(title: str, data: dict, left: str, right: str, target: float | None) -> None:
        lines.extend([f"## {title}", "",
                      f"| workload | {left} req/s | {right} req/s | {left} ÷ {right} | "
                      f"p50 / p99 ms ({left}) | p50 / p99 ms ({right}) |"
                      + (" target |" if target else ""),
                      "|---|---:|---:|---:|---|---|" + ("---|" if target else "")])
        for w, sides in data.items():
            l, r = sides[left], sides[right]
            row = (f"| {w} | {l['rps']:.0f} | {r['rps']:.0f} | {ratio(l['rps'], r['rps'])} | "
                   f"{l['p50_us'] / 1000:.2f} / {l['p99_us'] / 1000:.2f} | "
                   f"{r['p50_us'] / 1000:.2f} / {r['p99_us'] / 1000:.2f} |")
            if target:
                row += f" ≥ {target}× {mark(r['rps'] > 0 and l['rps'] / r['rps'] >= target)} |"
            lines.append(row)
        lines.append("")

    if "cache" in res:
        for backend, data in res["cache"].items():
            table(f"Record cache, {backend}: get by id", data, "cached", "uncached", TARGET_CACHE)
    if "limits" in res:
        table("Rate limits in Redis vs in process (PostgreSQL, cache off)", res["limits"],
              "redis", "in-process", TARGET_LIMITS)
    if "nodes" in res:
        table("Three nodes vs one (PostgreSQL + Redis; 2 cores: the cost of sharing, not "
              "scaling)", res["nodes"], "3 nodes", "1 node", None)
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--parts", default="cache,limits,nodes")
    p.add_argument("--conns", type=int, default=64)
    p.add_argument("--duration", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--posts", type=int, default=100_000)
    p.add_argument("--wrk-threads", type=int, default=2)
    p.add_argument("--smoke", action="store_true", help="a few seconds: every part, tiny")
    p.add_argument("--out", help="results directory (default bench/results/<date>-nodes-<machine>; "
                                 "smoke: a temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    p.add_argument("--keel", default="keel")
    p.add_argument("--wrk", default="wrk")
    p.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432"))
    p.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379"))
    a = p.parse_args()
    if a.smoke:
        a.duration, a.warmup, a.runs, a.users, a.posts, a.conns = 1, 1, 1, 50, 200, 6
    a.systems, a.pocketbase, a.ceiling = ["keel-sqlite"], "pocketbase", "keel-bench-ceiling"
    parts = [x for x in a.parts.split(",") if x]
    info = h.machine(a)
    info["command"] = " ".join(["bench/nodes.sh", *sys.argv[1:]])
    info["profile"] = "debug" if "/debug/" in a.keel else "release"
    now = dt.datetime.now(dt.timezone.utc)
    if a.out:
        out = Path(a.out)
    elif a.smoke:
        out = Path(tempfile.mkdtemp(prefix="keel-bench-nodes-smoke-"))
    else:
        out = HERE / "results" / f"{now:%Y-%m-%d}-nodes-{h.machine_slug(info)}"
    bench = NodesBench(a)
    h.log(f"scratch {bench.work}; results → {out}")
    res: dict = {}
    try:
        for part in parts:
            res[part] = getattr(bench, part)()
    finally:
        bench.cleanup()
    info["load_after"] = Path("/proc/loadavg").read_text().split()[:3]
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    md = report(res, info, a, now.strftime("%Y-%m-%d %H:%M UTC"))
    (out / "results.md").write_text(md)
    (out / "results.json").write_text(json.dumps({"date": now.isoformat(), "machine": info,
                                                  "settings": vars(a), "results": res},
                                                 indent=1) + "\n")
    print(md)
    h.log(f"written to {out}")
    if a.smoke:
        errors = [f"{part} {w} {side}" for part, r in res.items()
                  for data in ([r] if part != "cache" else r.values())
                  for w, sides in data.items() for side, cell in sides.items() if cell["errors"]]
        if errors:
            h.log("nodes smoke: requests failed: " + ", ".join(errors))
            return 1
        print("bench nodes smoke: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
