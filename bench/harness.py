#!/usr/bin/env python3
"""Keel's side-by-side benchmark: the same workloads, data, client and concurrency
against each system in turn on this machine; Markdown table + SVG chart of req/s,
p50, p99 and RSS, each also as a ratio to Keel.

Run through bench/run.sh (it builds the binaries and installs wrk and PocketBase).
Standard library only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LUA = HERE / "lua" / "workload.lua"
SPEC = HERE / "keel.toml"

ALL_SYSTEMS = ["keel-sqlite", "ceiling-sqlite", "pocketbase", "keel-postgres", "ceiling-postgres"]
ALL_WORKLOADS = ["get", "list", "authlist", "create", "update", "mixed", "gql-get", "gql-list",
                 "gql-screen", "rest-screen"]
# GraphQL: Keel only; compared with Keel's own REST get and list.
GQL_VS_REST = {"gql-get": "get", "gql-list": "list"}
# The nested screen (10 newest public posts, each with its author and 5 newest comments):
# one GraphQL query vs the REST calls a client makes for it (the list with
# `expand=author`, then each post's comments). Keel only.
SCREEN = {"gql-screen": 1, "rest-screen": 11}
SCREEN_POSTS = 300
KEEL_ONLY = set(GQL_VS_REST) | set(SCREEN)
WORKLOAD_NAMES = {
    "get": "get by id",
    "list": "list (indexed filter + sort)",
    "authlist": "list, signed in (row rule)",
    "create": "create",
    "update": "update (If-Match)",
    "mixed": "mixed 90/10",
    "gql-get": "GraphQL by id",
    "gql-list": "GraphQL list",
    "gql-screen": "screen, GraphQL (1 query)",
    "rest-screen": "screen, REST (11 calls)",
}
# Which Keel a system is compared with.
REFERENCE = {
    "keel-sqlite": "keel-sqlite",
    "ceiling-sqlite": "keel-sqlite",
    "pocketbase": "keel-sqlite",
    "keel-postgres": "keel-sqlite",
    "ceiling-postgres": "keel-postgres",
}
KEEL_SECRET = "keel-bench-secret-0123456789abcdef0123456789"
BENCH_EMAIL = "bench@bench.local"
BENCH_PASSWORD = "bench-password-123"
PB_ADMIN = ("admin@bench.local", "bench-admin-123")
BODY_TEXT = "Seeded body text for the benchmark. " * 6


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port: int, method: str, path: str, body=None, headers=None, timeout=10.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = None
        hdrs = dict(headers or {})
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=hdrs)
        res = conn.getresponse()
        raw = res.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return res.status, dict((k.lower(), v) for k, v in res.getheaders()), parsed
    finally:
        conn.close()


class Server:
    """A system under test: one process, its port, its log."""

    def __init__(self, name: str, cmd: list[str], port: int, logfile: Path, ready_path: str,
                 env: dict | None = None):
        self.name, self.cmd, self.port, self.ready_path = name, cmd, port, ready_path
        self.logfile = logfile
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> float:
        """Spawn and poll until ready; returns the seconds from spawn to ready."""
        out = open(self.logfile, "ab")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                     start_new_session=True)
        out.close()
        deadline = t0 + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.logfile}")
            try:
                status, _, _ = call(self.port, "GET", self.ready_path, timeout=1.0)
                if status == 200:
                    return time.perf_counter() - t0
            except OSError:
                pass
            time.sleep(0.001)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout}s; see {self.logfile}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def status_kb(self, key: str) -> int:
        assert self.proc is not None
        try:
            text = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return 0
        m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
        return int(m.group(1)) if m else 0


class RssSampler(threading.Thread):
    """Samples VmRSS every 50 ms while a load runs; keeps the maximum."""

    def __init__(self, server: Server):
        super().__init__(daemon=True)
        self.server, self.peak_kb, self.stop_flag = server, 0, threading.Event()

    def run(self) -> None:
        while not self.stop_flag.is_set():
            self.peak_kb = max(self.peak_kb, self.server.status_kb("VmRSS"))
            self.stop_flag.wait(0.05)

    def finish(self) -> int:
        self.stop_flag.set()
        self.join()
        self.peak_kb = max(self.peak_kb, self.server.status_kb("VmRSS"))
        return self.peak_kb


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kw)


def psql(db: str, sql: str, pg: str) -> str:
    out = run(["psql", f"{pg}/{db}", "-v", "ON_ERROR_STOP=1", "-qAtX", "-c", sql],
              capture_output=True, text=True)
    return out.stdout


# ------------------------------------------------------------------ seeding


def keel_seed_sqlite(db: Path, users: int, posts: int, bench_user: str, base_ms: int) -> None:
    conn = sqlite3.connect(db, timeout=30)
    conn.execute("PRAGMA journal_mode = WAL")
    uid = ("printf('%08x-%04x-7000-8001-%012x', (:ubase + u * 10) / 65536, "
           "(:ubase + u * 10) % 65536, u)")
    ts = ("strftime('%Y-%m-%dT%H:%M:%S', ({ms}) / 1000, 'unixepoch') || '.' || "
          "printf('%06d', (({ms}) % 1000) * 1000) || 'Z'")
    params = {"ubase": base_ms - 10 * users - 1000, "pbase": base_ms, "users": users,
              "posts": posts, "bench": bench_user, "body": BODY_TEXT}
    with conn:
        conn.execute(f"""
            WITH RECURSIVE g(u) AS (SELECT 1 UNION ALL SELECT u + 1 FROM g WHERE u < :users)
            INSERT INTO users (id, created_at, updated_at, version, email, name)
            SELECT {uid}, {ts.format(ms=':ubase + u * 10')}, {ts.format(ms=':ubase + u * 10')}, 1,
                   'user' || u || '@bench.local', 'User ' || u
            FROM g""", params)
        conn.execute(f"""
            WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :posts)
            INSERT INTO posts (id, created_at, updated_at, version, title, body, author, visibility)
            SELECT printf('%08x-%04x-7000-8002-%012x', (:pbase + n * 1000) / 65536,
                          (:pbase + n * 1000) % 65536, n),
                   {ts.format(ms=':pbase + n * 1000')}, {ts.format(ms=':pbase + n * 1000')}, 1,
                   'Post ' || n, :body,
                   CASE WHEN n % 10 = 0 THEN :bench
                        ELSE (SELECT {uid} FROM (SELECT ((n - 1) % :users) + 1 AS u)) END,
                   CASE WHEN n % 5 = 0 THEN 'followers' ELSE 'public' END
            FROM g""", params)
        # The nested screen's comments: five on each of the newest public posts.
        conn.execute(f"""
            WITH RECURSIVE g(n) AS (SELECT max(1, :posts - {SCREEN_POSTS - 1}) UNION ALL
                                    SELECT n + 1 FROM g WHERE n < :posts),
                 k(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM k WHERE k < 5)
            INSERT INTO comments (id, created_at, updated_at, version, post, author, body)
            SELECT printf('%08x-%04x-7000-8003-%012x', (:pbase + n * 1000 + k) / 65536,
                          (:pbase + n * 1000 + k) % 65536, n * 8 + k),
                   {ts.format(ms=':pbase + n * 1000 + k')}, {ts.format(ms=':pbase + n * 1000 + k')}, 1,
                   printf('%08x-%04x-7000-8002-%012x', (:pbase + n * 1000) / 65536,
                          (:pbase + n * 1000) % 65536, n),
                   (SELECT {uid} FROM (SELECT ((n * 7 + k) % :users) + 1 AS u)),
                   'Comment ' || k || ' on post ' || n
            FROM g, k WHERE n % 5 <> 0""", params)
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def keel_seed_postgres(db: str, pg: str, users: int, posts: int, bench_user: str, base_ms: int) -> None:
    ubase = base_ms - 10 * users - 1000

    def uid(ms: str, kind: int, n: str) -> str:
        return (f"format('%s-%s-7000-800{kind}-%s', lpad(to_hex(({ms}) / 65536), 8, '0'), "
                f"lpad(to_hex(({ms}) % 65536), 4, '0'), lpad(to_hex({n}), 12, '0'))::uuid")

    body = BODY_TEXT.replace("'", "''")
    sql = f"""
        BEGIN;
        INSERT INTO users (id, created_at, updated_at, version, email, name)
        SELECT {uid(f'{ubase}::bigint + u * 10', 1, 'u')},
               to_timestamp(({ubase}::bigint + u * 10) / 1000.0), to_timestamp(({ubase}::bigint + u * 10) / 1000.0),
               1, 'user' || u || '@bench.local', 'User ' || u
        FROM generate_series(1, {users}) u;
        INSERT INTO posts (id, created_at, updated_at, version, title, body, author, visibility)
        SELECT {uid(f'{base_ms}::bigint + n * 1000', 2, 'n')},
               to_timestamp(({base_ms}::bigint + n * 1000) / 1000.0), to_timestamp(({base_ms}::bigint + n * 1000) / 1000.0),
               1, 'Post ' || n, '{body}',
               CASE WHEN n % 10 = 0 THEN '{bench_user}'::uuid
                    ELSE {uid(f'{ubase}::bigint + (((n - 1) % {users}) + 1) * 10', 1, f'(((n - 1) % {users}) + 1)')} END,
               CASE WHEN n % 5 = 0 THEN 'followers' ELSE 'public' END
        FROM generate_series(1, {posts}) n;
        INSERT INTO comments (id, created_at, updated_at, version, post, author, body)
        SELECT {uid(f'{base_ms}::bigint + n * 1000 + k', 3, 'n * 8 + k')},
               to_timestamp(({base_ms}::bigint + n * 1000 + k) / 1000.0),
               to_timestamp(({base_ms}::bigint + n * 1000 + k) / 1000.0), 1,
               {uid(f'{base_ms}::bigint + n * 1000', 2, 'n')},
               {uid(f'{ubase}::bigint + (((n * 7 + k) % {users}) + 1) * 10', 1, f'(((n * 7 + k) % {users}) + 1)')},
               'Comment ' || k || ' on post ' || n
        FROM generate_series({max(1, posts - SCREEN_POSTS + 1)}, {posts}) n, generate_series(1, 5) k
        WHERE n % 5 <> 0;
        COMMIT;
        VACUUM ANALYZE;
    """
    run(["psql", f"{pg}/{db}", "-v", "ON_ERROR_STOP=1", "-qAtX"], input=sql, text=True,
        capture_output=True)


def pb_seed(db: Path, users: int, posts: int, bench_user: str, base_ms: int) -> None:
    conn = sqlite3.connect(db, timeout=30)
    ts = ("strftime('%Y-%m-%d %H:%M:%S', ({ms}) / 1000, 'unixepoch') || '.' || "
          "printf('%03d', ({ms}) % 1000) || 'Z'")
    params = {"ubase": base_ms - 10 * users - 1000, "pbase": base_ms, "users": users,
              "posts": posts, "bench": bench_user, "body": BODY_TEXT}
    with conn:
        conn.execute(f"""
            WITH RECURSIVE g(u) AS (SELECT 1 UNION ALL SELECT u + 1 FROM g WHERE u < :users)
            INSERT INTO users (id, created, updated, email, emailVisibility, verified, name,
                               password, tokenKey, avatar)
            SELECT 'u' || printf('%014d', u), {ts.format(ms=':ubase + u * 10')},
                   {ts.format(ms=':ubase + u * 10')}, 'user' || u || '@bench.local', 0, 1,
                   'User ' || u, '$2a$10$seededseededseededseedeuJ0Ss2Wq9bYb3kqzF0t2W6m8aQ1ZC',
                   'seeded-token-key-' || printf('%034d', u), ''
            FROM g""", params)
        conn.execute(f"""
            WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < :posts)
            INSERT INTO posts (id, created, updated, title, body, author, visibility)
            SELECT 'p' || printf('%014d', n), {ts.format(ms=':pbase + n * 1000')},
                   {ts.format(ms=':pbase + n * 1000')}, 'Post ' || n, :body,
                   CASE WHEN n % 10 = 0 THEN :bench ELSE 'u' || printf('%014d', ((n - 1) % :users) + 1) END,
                   CASE WHEN n % 5 = 0 THEN 'followers' ELSE 'public' END
            FROM g""", params)
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def write_ids(path: Path, ids: list[str]) -> Path:
    path.write_text("\n".join(ids) + "\n")
    return path


# ------------------------------------------------------------------ systems


class Setup:
    """Everything a system needs for the workloads once it is up."""

    def __init__(self, server: Server, token: str, user: str, ids: Path, own: Path, reset):
        self.server, self.token, self.user, self.ids, self.own, self.reset = (
            server, token, user, ids, own, reset)


class Bench:
    def __init__(self, args):
        self.a = args
        self.work = Path(tempfile.mkdtemp(prefix="keel-bench-"))
        self.pg = args.pg_url.rstrip("/")
        self.base_ms = int(time.time() * 1000) - args.posts * 1000 - 3_600_000
        self.golden: dict[str, tuple[str, str]] = {}  # backend -> (bench user id, golden location)

    # -- Keel golden data (shared with the ceiling) -----------------------------------

    def keel_golden(self, backend: str) -> tuple[str, str]:
        if backend in self.golden:
            return self.golden[backend]
        spec_dir = self.work / f"keel-{backend}"
        spec_dir.mkdir()
        spec = spec_dir / "keel.toml"
        shutil.copy(SPEC, spec)
        if backend == "sqlite":
            location = str(spec_dir / "golden.db")
            url = f"sqlite://{location}"
        else:
            location = "keel_bench_golden"
            self.drop_pg(location)
            psql("postgres", f"CREATE DATABASE {location}", self.pg)
            url = f"{self.pg}/{location}"
        log(f"keel/{backend}: migrate and sign the benchmark user up")
        run([self.a.keel, "migrate", str(spec), "--database", url], capture_output=True,
            env={**os.environ, "KEEL_SECRET": KEEL_SECRET})
        port = free_port()
        server = Server(f"keel-{backend}-setup", [self.a.keel, "serve", str(spec), "--addr",
                        f"127.0.0.1:{port}", "--database", url], port,
                        self.work / f"keel-{backend}-setup.log", "/readyz",
                        {"KEEL_SECRET": KEEL_SECRET, "KEEL_LOG_FORMAT": "json"})
        server.start()
        try:
            status, _, body = call(port, "POST", "/v1/auth/signup",
                                   {"email": BENCH_EMAIL, "password": BENCH_PASSWORD})
            if status not in (200, 201):
                raise RuntimeError(f"keel signup: {status} {body}")
            user = body["user"]["id"]
        finally:
            server.stop()
        log(f"keel/{backend}: seed {self.a.users} users and {self.a.posts} posts")
        if backend == "sqlite":
            keel_seed_sqlite(Path(location), self.a.users, self.a.posts, user, self.base_ms)
        else:
            keel_seed_postgres(location, self.pg, self.a.users, self.a.posts, user, self.base_ms)
        self.golden[backend] = (user, location)
        return self.golden[backend]

    def drop_pg(self, db: str) -> None:
        psql("postgres", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)", self.pg)

    def fresh_keel_db(self, backend: str, name: str) -> tuple[str, str, str]:
        """A private copy of the golden data: (bench user, database URL, location)."""
        user, golden = self.keel_golden(backend)
        if backend == "sqlite":
            path = self.work / f"{name}.db"
            shutil.copy(golden, path)
            return user, f"sqlite://{path}", str(path)
        db = "keel_bench_run"
        self.drop_pg(db)
        psql("postgres", f"CREATE DATABASE {db} TEMPLATE {golden}", self.pg)
        return user, f"{self.pg}/{db}", db

    def id_files(self, name: str, public: list[str], own: list[str]) -> tuple[Path, Path]:
        return (write_ids(self.work / f"{name}.ids", public),
                write_ids(self.work / f"{name}.own", own))

    def keel_ids(self, backend: str, location: str, user: str) -> tuple[list[str], list[str]]:
        q_public = "SELECT id FROM posts WHERE visibility = 'public' ORDER BY random() LIMIT 20000"
        q_own = "SELECT id FROM posts WHERE author = '{u}' ORDER BY id"
        # The nested screen's posts: the newest public ones not by the benchmark user
        # (what its list filter selects, whatever the create workload added since).
        q_screen = ("SELECT id FROM posts WHERE visibility = 'public' AND author <> '{u}' "
                    "ORDER BY created_at DESC LIMIT 10")
        if backend == "sqlite":
            conn = sqlite3.connect(location)
            public = [r[0] for r in conn.execute(q_public)]
            own = [r[0] for r in conn.execute(q_own.format(u=user))]
            screen = [r[0] for r in conn.execute(q_screen.format(u=user))]
            conn.close()
        else:
            public = psql(location, q_public, self.pg).split()
            own = psql(location, q_own.format(u=user), self.pg).split()
            screen = psql(location, q_screen.format(u=user), self.pg).split()
        write_ids(self.work / f"keel-{backend}.screen", screen)
        return public, own

    def version_reset(self, backend: str, location: str, user: str):
        sql = f"UPDATE posts SET version = 1 WHERE author = '{user}'"
        if backend == "sqlite":
            def reset():
                conn = sqlite3.connect(location, timeout=30)
                with conn:
                    conn.execute(sql)
                conn.close()
        else:
            def reset():
                psql(location, sql, self.pg)
        return reset

    def start_keel(self, backend: str) -> Setup:
        name = f"keel-{backend}"
        user, url, location = self.fresh_keel_db(backend, name)
        port = free_port()
        server = Server(name, [self.a.keel, "serve", str(self.work / name / "keel.toml"), "--addr",
                        f"127.0.0.1:{port}", "--database", url], port, self.work / f"{name}.log",
                        "/readyz", {"KEEL_SECRET": KEEL_SECRET, "KEEL_LOG_FORMAT": "json"})
        server.start()
        status, _, body = call(port, "POST", "/v1/auth/login",
                               {"email": BENCH_EMAIL, "password": BENCH_PASSWORD})
        if status != 200:
            server.stop()
            raise RuntimeError(f"keel login: {status} {body}")
        public, own = self.keel_ids(backend, location, user)
        ids, own_f = self.id_files(name, public, own)
        return Setup(server, body["access_token"], user, ids, own_f,
                     self.version_reset(backend, location, user))

    def start_ceiling(self, backend: str) -> Setup:
        name = f"ceiling-{backend}"
        user, url, location = self.fresh_keel_db(backend, name)
        port = free_port()
        server = Server(name, [self.a.ceiling, "--addr", f"127.0.0.1:{port}", "--database", url],
                        port, self.work / f"{name}.log", "/readyz")
        server.start()
        public, own = self.keel_ids(backend, location, user)
        ids, own_f = self.id_files(name, public, own)
        return Setup(server, user, user, ids, own_f, self.version_reset(backend, location, user))

    def start_pocketbase(self) -> Setup:
        d = self.work / "pocketbase"
        run([self.a.pocketbase, "superuser", "upsert", *PB_ADMIN, "--dir", str(d)],
            capture_output=True)
        port = free_port()
        server = Server("pocketbase", [self.a.pocketbase, "serve", "--http", f"127.0.0.1:{port}",
                        "--dir", str(d)], port, self.work / "pocketbase.log", "/api/health")
        log("pocketbase: collections, rules and the benchmark user through its API")
        server.start()
        try:
            _, _, auth = call(port, "POST", "/api/collections/_superusers/auth-with-password",
                              {"identity": PB_ADMIN[0], "password": PB_ADMIN[1]})
            admin = {"Authorization": auth["token"]}
            status, _, body = call(port, "POST", "/api/collections", pb_posts_collection(), admin)
            if status != 200:
                raise RuntimeError(f"pocketbase collection: {status} {body}")
            status, _, body = call(port, "POST", "/api/collections/users/records",
                                   {"email": BENCH_EMAIL, "password": BENCH_PASSWORD,
                                    "passwordConfirm": BENCH_PASSWORD})
            if status != 200:
                raise RuntimeError(f"pocketbase user: {status} {body}")
            user = body["id"]
        finally:
            server.stop()
        log(f"pocketbase: seed {self.a.users} users and {self.a.posts} posts")
        pb_seed(d / "data.db", self.a.users, self.a.posts, user, self.base_ms)
        server.start()
        status, _, body = call(port, "POST", "/api/collections/users/auth-with-password",
                               {"identity": BENCH_EMAIL, "password": BENCH_PASSWORD})
        if status != 200:
            server.stop()
            raise RuntimeError(f"pocketbase login: {status} {body}")
        conn = sqlite3.connect(d / "data.db")
        public = [r[0] for r in conn.execute(
            "SELECT id FROM posts WHERE visibility = 'public' ORDER BY random() LIMIT 20000")]
        own = [r[0] for r in conn.execute("SELECT id FROM posts WHERE author = ? ORDER BY id", (user,))]
        conn.close()
        ids, own_f = self.id_files("pocketbase", public, own)
        return Setup(server, body["token"], user, ids, own_f, lambda: None)

    def start(self, system: str) -> Setup:
        if system == "keel-sqlite":
            return self.start_keel("sqlite")
        if system == "keel-postgres":
            return self.start_keel("postgres")
        if system == "ceiling-sqlite":
            return self.start_ceiling("sqlite")
        if system == "ceiling-postgres":
            return self.start_ceiling("postgres")
        if system == "pocketbase":
            return self.start_pocketbase()
        raise ValueError(system)

    # -- measuring -------------------------------------------------------------------

    def wrk(self, system: str, s: Setup, workload: str, conns: int, seconds: float) -> dict:
        threads = max(1, min(self.a.wrk_threads, conns))
        env = {**os.environ, "BENCH_SYSTEM": system.split("-")[0], "BENCH_WORKLOAD": workload,
               "BENCH_TOKEN": s.token, "BENCH_USER": s.user, "BENCH_IDS": str(s.ids),
               "BENCH_OWN_IDS": str(s.own), "BENCH_THREADS": str(threads),
               "BENCH_SCREEN_IDS": str(s.ids.with_suffix(".screen"))}
        if workload in ("update", "mixed"):
            s.reset()
        cmd = [self.a.wrk, "-t", str(threads), "-c", str(conns), "-d", f"{seconds}s", "--latency",
               "--timeout", "10s", "-s", str(LUA), f"http://127.0.0.1:{s.server.port}"]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        m = re.search(r"^BENCH_RESULT (\{.*\})$", out, re.M)
        if not m:
            raise RuntimeError(f"wrk printed no result:\n{out}")
        r = json.loads(m.group(1))
        r["rps"] = r["requests"] / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0
        return r

    def probe(self, system: str, s: Setup) -> None:
        """One request of each kind, checked, so a broken set-up fails loudly."""
        r = self.wrk(system, s, "get", 1, 1)
        for w in ALL_WORKLOADS:
            if w in KEEL_ONLY and not system.startswith("keel"):
                continue
            r = self.wrk(system, s, w, 1, 1)
            if r["requests"] == 0 or r["status_errors"] > 0:
                raise RuntimeError(f"{system}/{w}: {r['status_errors']} of {r['requests']} "
                                   f"requests failed; see {s.server.logfile}")

    def measure(self, system: str) -> dict:
        log(f"== {system}")
        s = self.start(system)
        result = {"system": system, "cells": {}}
        try:
            time.sleep(1.0)
            result["idle_rss_kb"] = s.server.status_kb("VmRSS")
            self.probe(system, s)
            peak_at_max = 0
            for w in self.a.workloads:
                if w in KEEL_ONLY and not system.startswith("keel"):
                    continue
                for c in self.a.concurrency:
                    self.wrk(system, s, w, c, self.a.warmup)
                    runs = []
                    sampler = RssSampler(s.server)
                    sampler.start()
                    for _ in range(self.a.runs):
                        runs.append(self.wrk(system, s, w, c, self.a.duration))
                    peak = sampler.finish()
                    if c == max(self.a.concurrency):
                        peak_at_max = max(peak_at_max, peak)
                    cell = {
                        "rps": statistics.median(r["rps"] for r in runs),
                        "p50_us": statistics.median(r["p50_us"] for r in runs),
                        "p99_us": statistics.median(r["p99_us"] for r in runs),
                        "requests": sum(r["requests"] for r in runs),
                        "errors": sum(r["status_errors"] + r["connect_errors"] + r["read_errors"]
                                      + r["write_errors"] + r["timeouts"] for r in runs),
                        "peak_rss_kb": peak,
                        "runs": runs,
                    }
                    result["cells"][f"{w}@{c}"] = cell
                    log(f"{system} {w} c={c}: {cell['rps']:.0f} req/s, p50 {cell['p50_us'] / 1000:.2f} ms, "
                        f"p99 {cell['p99_us'] / 1000:.2f} ms, rss {peak / 1024:.1f} MB"
                        + (f", {cell['errors']} errors" if cell["errors"] else ""))
            result["peak_rss_max_conc_kb"] = peak_at_max
            result["hwm_kb"] = s.server.status_kb("VmHWM")
        finally:
            s.server.stop()
            if system.endswith("postgres"):
                self.drop_pg("keel_bench_run")
        return result

    def cold_start(self) -> dict:
        """`keel serve` on the example spec: spawn → /readyz answering, by polling."""
        d = self.work / "cold"
        d.mkdir()
        spec = d / "keel.toml"
        shutil.copy(ROOT / "examples" / "social" / "keel.toml", spec)
        env = {"KEEL_SECRET": KEEL_SECRET, "KEEL_LOG_FORMAT": "json"}
        times = {"first_ms": 0.0, "warm_ms": []}
        for i in range(1 + self.a.cold_runs):
            port = free_port()
            server = Server("cold", [self.a.keel, "serve", str(spec), "--addr", f"127.0.0.1:{port}",
                                     "--database", f"sqlite://{d / 'social.db'}"], port,
                            d / "serve.log", "/readyz", env)
            t = server.start() * 1000
            server.stop()
            if i == 0:
                times["first_ms"] = t
            else:
                times["warm_ms"].append(t)
        times["median_ms"] = statistics.median(times["warm_ms"]) if times["warm_ms"] else times["first_ms"]
        return times

    def cleanup(self) -> None:
        for b in ("keel_bench_run", "keel_bench_golden"):
            try:
                self.drop_pg(b)
            except Exception:  # noqa: BLE001 - best effort
                pass
        if not self.a.keep:
            shutil.rmtree(self.work, ignore_errors=True)


def pb_posts_collection() -> dict:
    return {
        "name": "posts",
        "type": "base",
        "fields": [
            {"name": "title", "type": "text", "required": True, "min": 1, "max": 200},
            {"name": "body", "type": "text", "required": True, "max": 5000},
            {"name": "author", "type": "relation", "collectionId": "_pb_users_auth_",
             "maxSelect": 1, "cascadeDelete": True},
            {"name": "visibility", "type": "select", "values": ["public", "followers"],
             "maxSelect": 1},
            {"name": "created", "type": "autodate", "onCreate": True, "onUpdate": False},
            {"name": "updated", "type": "autodate", "onCreate": True, "onUpdate": True},
        ],
        "indexes": [
            "CREATE INDEX idx_posts_visibility_created ON posts (visibility, created DESC)",
            "CREATE INDEX idx_posts_author_created ON posts (author, created DESC)",
            "CREATE INDEX idx_posts_created ON posts (created DESC)",
        ],
        "listRule": 'visibility = "public" || author = @request.auth.id',
        "viewRule": 'visibility = "public" || author = @request.auth.id',
        "createRule": '@request.auth.id != "" && author = @request.auth.id',
        "updateRule": "author = @request.auth.id",
        "deleteRule": "author = @request.auth.id",
    }


# ------------------------------------------------------------------ machine


def sh(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine(args) -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    m = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    mem = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
    info = {
        "nproc": os.cpu_count() or 0,
        "cpu": m.group(1).strip() if m else platform.processor() or "unknown",
        "memory_gb": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else 0,
        "kernel": platform.release(),
        "os": sh(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "rustc": sh(["rustc", "-V"]),
        "pocketbase": sh([args.pocketbase, "--version"]) if "pocketbase" in args.systems else "not run",
        "postgres": sh(["psql", args.pg_url.rstrip("/") + "/postgres", "-Atc", "SHOW server_version"]),
        "wrk": sh([args.wrk, "-v"]).splitlines()[0] if sh([args.wrk, "-v"]) else "unknown",
        "keel_commit": os.environ.get("BENCH_KEEL_COMMIT")
        or sh(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]),
        "load_before": Path("/proc/loadavg").read_text().split()[:3],
    }
    return info


def machine_slug(info: dict) -> str:
    cpu = re.sub(r"\(.*?\)|cpu|processor|@.*$|\d+-core", "", info["cpu"], flags=re.I)
    cpu = re.sub(r"[^a-z0-9]+", "-", cpu.lower()).strip("-")
    return f"{info['nproc']}cpu-{cpu}"[:60]


# ------------------------------------------------------------------ report


def fmt_ratio(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x:.2f}×" if x < 10 else f"{x:.0f}×"


def ratio(results: dict, system: str, cell: str, key: str) -> float | None:
    ref = REFERENCE[system]
    if ref not in results or cell not in results[ref]["cells"] or cell not in results[system]["cells"]:
        return None
    a, b = results[system]["cells"][cell][key], results[ref]["cells"][cell][key]
    return a / b if b else None


def report(results: dict, info: dict, args, cold: dict | None, stamp: str) -> str:
    systems = [s for s in ALL_SYSTEMS if s in results]
    cells = [f"{w}@{c}" for w in args.workloads for c in args.concurrency]
    out = []
    out.append(f"# Keel benchmark — {stamp}\n")
    out.append(f"Machine: {info['nproc']} × {info['cpu']}, {info['memory_gb']} GB, Linux {info['kernel']} "
               f"({info['os']}); {info['rustc']}; PocketBase {info['pocketbase'].split()[-1]}; "
               f"PostgreSQL {info['postgres'].split(' (')[0]}; {info['wrk'].split(' Copyright')[0]}; Keel {info['keel_commit']}. "
               f"Load average (1, 5, 15 min) before: {' '.join(info['load_before'])}"
               + (f", after: {' '.join(info['load_after'])}" if info.get("load_after") else "")
               + ".\n")
    out.append(f"Data: {args.users:,} users, {args.posts:,} posts. wrk on the same machine "
               f"(≤{args.wrk_threads} threads, keep-alive), {args.warmup}s warm-up, "
               f"{args.runs} × {args.duration}s runs per cell, medians.\n")
    out.append("Ratios: `keel-postgres`, `ceiling-sqlite` and `pocketbase` are divided by "
               "`keel-sqlite`; `ceiling-postgres` by `keel-postgres`. For req/s higher is better "
               "for the system; for latency and memory lower is.\n")
    for key, title, scale, unit in (("rps", "Requests per second", 1, ""),
                                    ("p50_us", "p50 latency (ms)", 1000, ""),
                                    ("p99_us", "p99 latency (ms)", 1000, "")):
        out.append(f"\n## {title}\n")
        out.append("| workload | conns | " + " | ".join(systems) + " |")
        out.append("|---|---:|" + "---:|" * len(systems))
        for cell in cells:
            w, c = cell.split("@")
            row = [WORKLOAD_NAMES[w], c]
            for s in systems:
                v = results[s]["cells"].get(cell)
                if v is None:
                    row.append("–")
                    continue
                if v["rps"] == 0:
                    row.append("0: no answer in time" if key == "rps" else "–")
                    continue
                val = v[key] / scale
                txt = f"{val:,.0f}" if key == "rps" else f"{val:.2f}"
                if s != REFERENCE[s]:
                    txt += f" ({fmt_ratio(ratio(results, s, cell, key))})"
                if v["errors"]:
                    txt += f" ⚠{v['errors']} err"
                row.append(txt)
            out.append("| " + " | ".join(row) + " |")
    out.append("\n## Memory (RSS, MB)\n")
    out.append("| | " + " | ".join(systems) + " |")
    out.append("|---|" + "---:|" * len(systems))
    for key, label in (("idle_rss_kb", "idle, after start"),
                       ("peak_rss_max_conc_kb", f"peak under {max(args.concurrency)} connections"),
                       ("hwm_kb", "high-water mark (VmHWM)")):
        row = [label]
        for s in systems:
            v = results[s].get(key, 0) / 1024
            ref = results.get(REFERENCE[s], {}).get(key)
            txt = f"{v:.1f}"
            if s != REFERENCE[s] and ref:
                txt += f" ({fmt_ratio(results[s].get(key, 0) / ref)})"
            row.append(txt)
        out.append("| " + " | ".join(row) + " |")
    if cold:
        out.append(f"\nCold start of `keel serve examples/social/keel.toml` (spawn → `/readyz` 200): "
                   f"median {cold['median_ms']:.0f} ms over {len(cold['warm_ms'])} starts on a migrated "
                   f"database; {cold['first_ms']:.0f} ms for the very first start (creates and migrates it).\n")
    out.append("\n## Targets (issue 14)\n")
    out.append(targets(results, args, cold))
    return "\n".join(out) + "\n"


def targets(results: dict, args, cold: dict | None) -> str:
    rows = []
    conc = args.concurrency

    def cells_for(workloads, at):
        return [f"{w}@{c}" for w in workloads for c in conc
                if w in args.workloads and (at is None or c in at)]

    # Issue 14's ratios are taken at 16 and 64 connections; p99 at 64, p50 at 1.
    loaded = (16, 64)

    def check(label, system, workloads, key, want, op, at=loaded):
        worst = None
        for cell in cells_for(workloads, at):
            ref = REFERENCE[system]
            if cell not in results[system]["cells"] or cell not in results[ref]["cells"]:
                continue
            keel = results[ref]["cells"][cell][key]
            other = results[system]["cells"][cell][key]
            # Keel ÷ other: throughput (higher is better) or p99 (lower is better).
            v = keel / other if other else float("inf")
            if key != "rps" and results[ref]["cells"][cell]["rps"] == 0:
                v = float("inf")  # no answer at all: no latency to compare
            if worst is None or (op == ">=" and v < worst[1]) or (op == "<=" and v > worst[1]):
                worst = (cell, v)
        if worst is None:
            rows.append(f"| {label} | not measured | |")
            return
        met = worst[1] >= want if op == ">=" else worst[1] <= want
        figure = "no answer from Keel" if worst[1] in (0.0, float("inf")) else f"{worst[1]:.2f}×"
        rows.append(f"| {label} | {'✅ met' if met else '❌ missed'} | worst {worst[0]}: {figure} |")

    rows.append("| target | status | figure (Keel ÷ other, worst cell) |")
    rows.append("|---|---|---|")
    if "ceiling-sqlite" in results and "keel-sqlite" in results:
        check("SQLite reads ≥ 0.75× the ceiling (req/s)", "ceiling-sqlite",
              ["get", "list", "authlist"], "rps", 0.75, ">=")
        check("SQLite creates and updates ≥ 2× the ceiling (req/s)", "ceiling-sqlite",
              ["create", "update"], "rps", 2.0, ">=")
    if "ceiling-postgres" in results and "keel-postgres" in results:
        check("PostgreSQL reads ≥ 0.75× the PostgreSQL ceiling (req/s)", "ceiling-postgres",
              ["get", "list", "authlist"], "rps", 0.75, ">=")
    if "pocketbase" in results and "keel-sqlite" in results:
        check("≥ 6× PocketBase on get (req/s)", "pocketbase", ["get"], "rps", 6.0, ">=")
        check("≥ 5× PocketBase on lists (req/s)", "pocketbase", ["list", "authlist"], "rps", 5.0, ">=")
        check("≥ 4× PocketBase on creates and updates (req/s)", "pocketbase", ["create", "update"],
              "rps", 4.0, ">=")
        check("p99 at 64 connections ≤ 1/5 of PocketBase's (Keel p99 ÷ PocketBase p99)",
              "pocketbase", ["get", "list", "authlist", "create", "update", "mixed"], "p99_us",
              0.2, "<=", at=(64,))
        check("p50 at 1 connection no worse than PocketBase's (Keel p50 ÷ PocketBase p50)",
              "pocketbase", ["get", "list", "authlist", "create", "update", "mixed"], "p50_us",
              1.0, "<=", at=(1,))
    for keel in ("keel-sqlite", "keel-postgres"):
        k = results.get(keel)
        if not k:
            continue
        for gql, rest in GQL_VS_REST.items():
            worst = None
            for c in conc:
                g, r = k["cells"].get(f"{gql}@{c}"), k["cells"].get(f"{rest}@{c}")
                if g and r and r["rps"]:
                    v = g["rps"] / r["rps"]
                    if worst is None or v < worst[1]:
                        worst = (f"{gql}@{c}", v)
            if worst:
                rows.append(f"| {keel}: {WORKLOAD_NAMES[gql]} ≥ 0.8× REST's {rest} (req/s) | "
                            f"{'✅ met' if worst[1] >= 0.8 else '❌ missed'} | worst {worst[0]}: {worst[1]:.2f}× |")
        for c in conc:
            g, r = k["cells"].get(f"gql-screen@{c}"), k["cells"].get(f"rest-screen@{c}")
            if g and r and r["rps"]:
                gs, rs = g["rps"] / SCREEN["gql-screen"], r["rps"] / SCREEN["rest-screen"]
                rows.append(f"| {keel}: nested screen at {c} connections, GraphQL vs REST "
                            f"(screens/s; no target) | — | {gs:.0f} vs {rs:.0f} = {gs / rs:.2f}× |")
    k = results.get("keel-sqlite")
    if k:
        idle = k.get("idle_rss_kb", 0) / 1024
        rows.append(f"| idle RSS < 30 MB | {'✅ met' if idle < 30 else '❌ missed'} | {idle:.1f} MB |")
        peak = k.get("peak_rss_max_conc_kb", 0) / 1024
        rows.append(f"| RSS under {max(conc)} connections < 100 MB | "
                    f"{'✅ met' if peak < 100 else '❌ missed'} | {peak:.1f} MB"
                    + ("" if max(conc) >= 64 else f" (only {max(conc)} connections measured)") + " |")
    if cold:
        rows.append(f"| cold start < 100 ms | {'✅ met' if cold['median_ms'] < 100 else '❌ missed'} | "
                    f"{cold['median_ms']:.0f} ms |")
    return "\n".join(rows) + "\n"


COLORS = {"keel-sqlite": "#1f6feb", "keel-postgres": "#6e40c9", "ceiling-sqlite": "#8b949e",
          "ceiling-postgres": "#c9d1d9", "pocketbase": "#f0883e"}


def svg_chart(results: dict, args, stamp: str, info: dict) -> str:
    """Four panels (req/s, p50, p99 at the highest concurrency; RSS), grouped bars per
    workload, one colour per system, each bar labelled with its ratio to its Keel."""
    systems = [s for s in ALL_SYSTEMS if s in results]
    c = max(args.concurrency)
    panels = [("rps", f"requests/s at {c} connections (higher is better)", 1.0),
              ("p50_us", f"p50 latency, ms, at {c} connections", 1000.0),
              ("p99_us", f"p99 latency, ms, at {c} connections", 1000.0)]
    bar_h, gap, label_w, plot_w = 11, 8, 190, 560
    group_h = bar_h * len(systems) + gap
    panel_h = 30 + group_h * len(args.workloads)
    mem_h = 30 + (bar_h + 4) * len(systems) + 10
    width = label_w + plot_w + 90
    height = 70 + panel_h * len(panels) + mem_h + 30
    e = []
    e.append(f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11">')
    e.append(f'<rect width="{width}" height="{height}" fill="white"/>')
    e.append(f'<text x="10" y="20" font-size="14" font-weight="bold">Keel benchmark {stamp}</text>')
    e.append(f'<text x="10" y="36" fill="#555">{info["nproc"]} × {esc(info["cpu"])}; '
             f'{args.posts:,} posts; ratios to Keel in brackets</text>')
    x = 10
    for s in systems:
        e.append(f'<rect x="{x}" y="46" width="10" height="10" fill="{COLORS[s]}" stroke="#333" stroke-width="0.5"/>')
        e.append(f'<text x="{x + 14}" y="55">{s}</text>')
        x += 24 + 7 * len(s)
    y = 70
    for key, title, scale in panels:
        e.append(f'<text x="10" y="{y + 14}" font-weight="bold">{title}</text>')
        vals = [results[s]["cells"].get(f"{w}@{c}", {}).get(key, 0) / scale
                for s in systems for w in args.workloads]
        vmax = max(vals + [1e-9])
        gy = y + 24
        for w in args.workloads:
            e.append(f'<text x="{label_w - 8}" y="{gy + group_h / 2}" text-anchor="end">'
                     f'{esc(WORKLOAD_NAMES[w])}</text>')
            for i, s in enumerate(systems):
                cell = results[s]["cells"].get(f"{w}@{c}")
                if not cell:
                    continue
                v = cell[key] / scale
                bw = max(1.0, plot_w * v / vmax)
                by = gy + i * bar_h
                e.append(f'<rect x="{label_w}" y="{by}" width="{bw:.1f}" height="{bar_h - 1}" '
                         f'fill="{COLORS[s]}" stroke="#333" stroke-width="0.3"/>')
                txt = f"{v:,.0f}" if key == "rps" else f"{v:.2f}"
                r = ratio(results, s, f"{w}@{c}", key)
                if s != REFERENCE[s] and r is not None:
                    txt += f" ({fmt_ratio(r)})"
                e.append(f'<text x="{label_w + bw + 4:.1f}" y="{by + bar_h - 2}" font-size="9">{txt}</text>')
            gy += group_h
        y += panel_h
    e.append(f'<text x="10" y="{y + 14}" font-weight="bold">peak RSS under {c} connections, MB</text>')
    vmax = max([results[s].get("peak_rss_max_conc_kb", 0) / 1024 for s in systems] + [1e-9])
    gy = y + 24
    for s in systems:
        v = results[s].get("peak_rss_max_conc_kb", 0) / 1024
        bw = max(1.0, plot_w * v / vmax)
        e.append(f'<text x="{label_w - 8}" y="{gy + bar_h - 2}" text-anchor="end">{s}</text>')
        e.append(f'<rect x="{label_w}" y="{gy}" width="{bw:.1f}" height="{bar_h}" fill="{COLORS[s]}" '
                 f'stroke="#333" stroke-width="0.3"/>')
        ref = results.get(REFERENCE[s], {}).get("peak_rss_max_conc_kb")
        txt = f"{v:.1f}" + (f" ({fmt_ratio(v * 1024 / ref)})" if s != REFERENCE[s] and ref else "")
        e.append(f'<text x="{label_w + bw + 4:.1f}" y="{gy + bar_h - 2}" font-size="9">{txt}</text>')
        gy += bar_h + 4
    e.append("</svg>")
    return "\n".join(e) + "\n"


def esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# ------------------------------------------------------------------ main


def report_only(out: Path, a) -> int:
    saved = json.loads((out / "results.json").read_text())
    for k, v in saved["settings"].items():
        setattr(a, k, v)
    date = dt.datetime.fromisoformat(saved["date"])
    md = report(saved["results"], saved["machine"], a, saved["cold_start"],
                date.strftime("%Y-%m-%d %H:%M UTC"))
    (out / "results.md").write_text(md)
    (out / "chart.svg").write_text(svg_chart(saved["results"], a, date.strftime("%Y-%m-%d"),
                                             saved["machine"]))
    print(md)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--systems", default=",".join(ALL_SYSTEMS))
    p.add_argument("--workloads", default=",".join(ALL_WORKLOADS))
    p.add_argument("--concurrency", default="1,16,64")
    p.add_argument("--duration", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--posts", type=int, default=100_000)
    p.add_argument("--cold-runs", type=int, default=5)
    p.add_argument("--wrk-threads", type=int, default=2)
    p.add_argument("--smoke", action="store_true", help="seconds, small data, one concurrency")
    p.add_argument("--out", help="results directory (default bench/results/<date>-<machine>; "
                                 "smoke: a temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory")
    p.add_argument("--keel", default="keel")
    p.add_argument("--ceiling", default="keel-bench-ceiling")
    p.add_argument("--pocketbase", default="pocketbase")
    p.add_argument("--wrk", default="wrk")
    p.add_argument("--report-only", metavar="DIR",
                   help="re-render results.md and chart.svg from DIR/results.json; run nothing")
    p.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432"))
    a = p.parse_args()
    if a.smoke:
        a.duration, a.warmup, a.runs, a.users, a.posts, a.cold_runs = 1, 1, 1, 200, 2000, 2
        a.concurrency = "4"
    a.systems = [s for s in a.systems.split(",") if s]
    a.workloads = [w for w in a.workloads.split(",") if w]
    a.concurrency = [int(c) for c in str(a.concurrency).split(",") if c]
    for s in a.systems:
        if s not in ALL_SYSTEMS:
            p.error(f"unknown system {s!r}; known: {', '.join(ALL_SYSTEMS)}")
    for w in a.workloads:
        if w not in ALL_WORKLOADS:
            p.error(f"unknown workload {w!r}; known: {', '.join(ALL_WORKLOADS)}")

    if a.report_only:
        return report_only(Path(a.report_only), a)
    info = machine(a)
    now = dt.datetime.now(dt.timezone.utc)
    stamp = now.strftime("%Y-%m-%d")
    if a.out:
        out = Path(a.out)
    elif a.smoke:
        out = Path(tempfile.mkdtemp(prefix="keel-bench-smoke-"))
    else:
        out = HERE / "results" / f"{stamp}-{machine_slug(info)}"
    bench = Bench(a)
    log(f"scratch {bench.work}; results → {out}")
    results: dict = {}
    cold = None
    try:
        for s in ALL_SYSTEMS:
            if s in a.systems:
                results[s] = bench.measure(s)
        if any(s.startswith("keel") for s in a.systems):
            cold = bench.cold_start()
            log(f"cold start: median {cold['median_ms']:.1f} ms (first {cold['first_ms']:.1f} ms)")
    finally:
        bench.cleanup()
    info["load_after"] = Path("/proc/loadavg").read_text().split()[:3]
    # A day's results replace that day's earlier ones for this machine, never another day's.
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    md = report(results, info, a, cold, now.strftime("%Y-%m-%d %H:%M UTC"))
    (out / "results.md").write_text(md)
    (out / "chart.svg").write_text(svg_chart(results, a, now.strftime("%Y-%m-%d"), info))
    (out / "machine.json").write_text(json.dumps(info, indent=2) + "\n")
    (out / "results.json").write_text(json.dumps({
        "date": now.isoformat(), "machine": info,
        "settings": {k: getattr(a, k) for k in ("systems", "workloads", "concurrency", "duration",
                                                 "warmup", "runs", "users", "posts", "smoke",
                                                 "wrk_threads")},
        "cold_start": cold, "results": results}, indent=1) + "\n")
    print(md)
    log(f"written to {out}")
    if a.smoke:
        bad = [f"{s} {cell}" for s, r in results.items() for cell, v in r["cells"].items()
               if v["requests"] == 0 or v["errors"] > 0.05 * v["requests"]]
        if bad:
            log("smoke: failing cells: " + ", ".join(bad))
            return 1
        print(f"bench smoke: ok, {sum(len(r['cells']) for r in results.values())} cells measured, none failing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
