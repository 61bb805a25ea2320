//! The realtime benchmark's client: opens many Server-Sent Events streams to Keel's
//! `/v1/realtime` or PocketBase's `/api/realtime`, spread over several loopback source
//! addresses (as many clients would be), optionally writes records at a steady rate
//! through the same server's REST API, and reports what the streams received: how
//! many events, how fast, and commit → client latency (arrival − the record's
//! `occurred_at` for Keel, `created` for PocketBase: both stamped by the server just
//! before its insert, on this machine's clock).
//!
//! Raw HTTP/1.1 over tokio sockets (chunked bodies decoded here), so the client costs
//! little of the CPU it shares with the server. Prints `READY <n>` once `n` streams
//! are open (and, for PocketBase, subscribed), then one JSON line with the results.
//!
//! Usage:
//!   subscribers --system keel|pocketbase --port P --connections N [--sources 40]
//!               [--hold SECS] [--write-rate R --write-seconds S --token T --user U]

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;

#[derive(Clone, Copy, PartialEq)]
enum System {
    Keel,
    PocketBase,
}

struct Args {
    system: System,
    port: u16,
    connections: usize,
    sources: u8,
    hold: f64,
    write_rate: f64,
    write_seconds: f64,
    token: String,
    user: String,
}

fn args() -> Args {
    let mut a: HashMap<String, String> = HashMap::new();
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if let Some(name) = k.strip_prefix("--") {
            a.insert(name.to_string(), it.next().unwrap_or_default());
        }
    }
    let num = |k: &str, d: f64| a.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
    Args {
        system: match a.get("system").map(String::as_str) {
            Some("pocketbase") => System::PocketBase,
            _ => System::Keel,
        },
        port: num("port", 8080.0) as u16,
        connections: num("connections", 100.0) as usize,
        sources: num("sources", 40.0).clamp(1.0, 250.0) as u8,
        hold: num("hold", 0.0),
        write_rate: num("write-rate", 0.0),
        write_seconds: num("write-seconds", 0.0),
        token: a.get("token").cloned().unwrap_or_default(),
        user: a.get("user").cloned().unwrap_or_default(),
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// A connection from the `i`-th loopback source address (127.0.0.2, .3, …).
async fn connect(port: u16, i: usize, sources: u8) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    let source = Ipv4Addr::new(127, 0, 0, 2 + (i % usize::from(sources)) as u8);
    socket.bind(SocketAddr::from((source, 0)))?;
    socket
        .connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
}

/// One request on a keep-alive connection; the status and the body (by
/// `Content-Length`, or chunked).
async fn call(
    conn: &mut BufReader<TcpStream>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    conn.get_mut().write_all(req.as_bytes()).await?;
    let (status, length, chunked) = response_head(conn).await?;
    let mut out = Vec::new();
    if chunked {
        let mut decoder = Chunked::default();
        let mut buf = [0u8; 8192];
        while !decoder.done {
            let n = conn.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            decoder.feed(&buf[..n], &mut out);
        }
    } else {
        out.resize(length, 0);
        conn.read_exact(&mut out).await?;
    }
    Ok((status, out))
}

/// The status line and headers: status, content length, chunked?
async fn response_head(conn: &mut BufReader<TcpStream>) -> std::io::Result<(u16, usize, bool)> {
    let mut line = String::new();
    conn.read_line(&mut line).await?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (mut length, mut chunked) = (0, false);
    loop {
        line.clear();
        if conn.read_line(&mut line).await? == 0 || line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    Ok((status, length, chunked))
}

/// A chunked-transfer decoder fed arbitrary slices of the stream.
#[derive(Default)]
struct Chunked {
    /// Bytes of the current chunk still to copy; `None` while reading a size line.
    left: Option<usize>,
    line: Vec<u8>,
    /// CRLF after a chunk's data still to skip.
    skip: usize,
    done: bool,
}

impl Chunked {
    fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) {
        while !input.is_empty() && !self.done {
            if self.skip > 0 {
                let n = self.skip.min(input.len());
                self.skip -= n;
                input = &input[n..];
                continue;
            }
            match self.left {
                Some(left) => {
                    let n = left.min(input.len());
                    out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    if left == n {
                        self.left = None;
                        self.skip = 2;
                    } else {
                        self.left = Some(left - n);
                    }
                }
                None => {
                    let Some(end) = input.iter().position(|b| *b == b'\n') else {
                        self.line.extend_from_slice(input);
                        return;
                    };
                    self.line.extend_from_slice(&input[..end]);
                    input = &input[end + 1..];
                    let text = String::from_utf8_lossy(&self.line);
                    let size = usize::from_str_radix(
                        text.trim().split(';').next().unwrap_or("0").trim(),
                        16,
                    )
                    .unwrap_or(0);
                    self.line.clear();
                    if size == 0 {
                        self.done = true;
                    } else {
                        self.left = Some(size);
                    }
                }
            }
        }
    }
}

/// What the streams report to the collector.
enum Report {
    Ready,
    /// Arrival − commit stamp, microseconds, and the arrival time.
    Event(i64, i64),
    Failed(String),
}

/// The commit stamp in an event's data: Keel's `occurred_at`, PocketBase's `created`.
fn stamp(system: System, data: &str) -> Option<i64> {
    let key = match system {
        System::Keel => "\"occurred_at\":\"",
        System::PocketBase => "\"created\":\"",
    };
    let start = data.find(key)? + key.len();
    let end = start + data[start..].find('"')?;
    let text = data[start..end].replacen(' ', "T", 1);
    let t = OffsetDateTime::parse(&text, &Rfc3339).ok()?;
    Some((t.unix_timestamp_nanos() / 1000) as i64)
}

/// One SSE stream: opened, subscribed (PocketBase), then every event reported.
async fn stream(a: Arc<Args>, i: usize, tx: mpsc::UnboundedSender<Report>) {
    let fail = |e: String| {
        let _ = tx.send(Report::Failed(e));
    };
    let tcp = match connect(a.port, i, a.sources).await {
        Ok(t) => t,
        Err(e) => return fail(format!("connect: {e}")),
    };
    let mut conn = BufReader::new(tcp);
    let path = match a.system {
        System::Keel => "/v1/realtime?collections=posts",
        System::PocketBase => "/api/realtime",
    };
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n");
    if let Err(e) = conn.get_mut().write_all(req.as_bytes()).await {
        return fail(format!("request: {e}"));
    }
    let (status, _, chunked) = match response_head(&mut conn).await {
        Ok(h) => h,
        Err(e) => return fail(format!("response: {e}")),
    };
    if status != 200 {
        return fail(format!("status {status}"));
    }
    if a.system == System::Keel {
        let _ = tx.send(Report::Ready);
    }
    let mut decoder = Chunked::default();
    let mut text: Vec<u8> = Vec::new();
    let mut raw = vec![0u8; 16 * 1024];
    loop {
        let n = match conn.read(&mut raw).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if chunked {
            decoder.feed(&raw[..n], &mut text);
        } else {
            text.extend_from_slice(&raw[..n]);
        }
        // Complete events end with a blank line.
        while let Some(end) = find(&text, b"\n\n") {
            let event = String::from_utf8_lossy(&text[..end]).into_owned();
            text.drain(..end + 2);
            let (mut name, mut data) = ("", String::new());
            for line in event.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if a.system == System::PocketBase && name == "PB_CONNECT" {
                let Some(id) = data
                    .split("\"clientId\":\"")
                    .nth(1)
                    .and_then(|s| s.split('"').next())
                else {
                    return fail("PB_CONNECT without a clientId".into());
                };
                match subscribe_pocketbase(&a, i, id).await {
                    Ok(()) => {
                        let _ = tx.send(Report::Ready);
                    }
                    Err(e) => return fail(e),
                }
            } else if let Some(at) = stamp(a.system, &data) {
                let arrival = now_us();
                let _ = tx.send(Report::Event(arrival - at, arrival));
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn subscribe_pocketbase(a: &Args, i: usize, client: &str) -> Result<(), String> {
    let tcp = connect(a.port, i, a.sources)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let mut conn = BufReader::new(tcp);
    let body = format!(r#"{{"clientId":"{client}","subscriptions":["posts"]}}"#);
    let (status, out) = call(
        &mut conn,
        "POST",
        "/api/realtime",
        &[("Content-Type", "application/json")],
        &body,
    )
    .await
    .map_err(|e| format!("subscribe: {e}"))?;
    if status / 100 != 2 {
        return Err(format!(
            "subscribe: {status} {}",
            String::from_utf8_lossy(&out)
        ));
    }
    Ok(())
}

/// Writers sharing the rate, each on its own keep-alive connection: the offered load
/// stays the rate while a create takes up to this many periods (a server slowed by
/// its own broadcasting is not let off by a waiting client).
const WRITERS: u64 = 8;

/// Creates at `write_rate` per second for `write_seconds`, public posts, as the
/// benchmark user, over [`WRITERS`] connections. Returns how many the server
/// acknowledged.
async fn write_all(a: Arc<Args>) -> Result<u64, String> {
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let a = a.clone();
        writers.spawn(async move {
            // Staggered, so the creates are spread over each period.
            tokio::time::sleep(Duration::from_secs_f64(w as f64 / a.write_rate)).await;
            write(a, w).await
        });
    }
    let mut acked = 0;
    while let Some(r) = writers.join_next().await {
        acked += r.map_err(|e| e.to_string())??;
    }
    Ok(acked)
}

/// One writer: `write_rate / WRITERS` creates per second.
async fn write(a: Arc<Args>, w: u64) -> Result<u64, String> {
    let tcp = TcpStream::connect(("127.0.0.1", a.port))
        .await
        .map_err(|e| format!("writer: {e}"))?;
    let mut conn = BufReader::new(tcp);
    let (path, auth) = match a.system {
        System::Keel => ("/v1/posts", format!("Bearer {}", a.token)),
        System::PocketBase => ("/api/collections/posts/records", a.token.clone()),
    };
    let mut tick = tokio::time::interval(Duration::from_secs_f64(WRITERS as f64 / a.write_rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let until = Instant::now() + Duration::from_secs_f64(a.write_seconds);
    let mut acked = 0;
    let mut n = w * 1_000_000;
    while Instant::now() < until {
        tick.tick().await;
        n += 1;
        let body = match a.system {
            System::Keel => format!(
                r#"{{"title":"realtime {n}","body":"fan-out benchmark","visibility":"public"}}"#
            ),
            System::PocketBase => format!(
                r#"{{"title":"realtime {n}","body":"fan-out benchmark","visibility":"public","author":"{}"}}"#,
                a.user
            ),
        };
        let (status, out) = call(
            &mut conn,
            "POST",
            path,
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &auth),
            ],
            &body,
        )
        .await
        .map_err(|e| format!("writer: {e}"))?;
        if status / 100 == 2 {
            acked += 1;
        } else {
            return Err(format!(
                "create answered {status}: {}",
                String::from_utf8_lossy(&out)
            ));
        }
    }
    Ok(acked)
}

fn percentile(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let a = Arc::new(args());
    let (tx, mut rx) = mpsc::unbounded_channel();
    let started = Instant::now();
    for i in 0..a.connections {
        tokio::spawn(stream(a.clone(), i, tx.clone()));
        // Open gradually: a burst of thousands of connects overflows the accept queue.
        if i % 200 == 199 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    drop(tx);
    let (mut ready, mut failed) = (0usize, 0usize);
    let mut failures: HashMap<String, usize> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while ready + failed < a.connections {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Report::Ready)) => ready += 1,
            Ok(Some(Report::Failed(e))) => {
                failed += 1;
                *failures.entry(e).or_default() += 1;
            }
            Ok(Some(Report::Event(..))) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let open_seconds = started.elapsed().as_secs_f64();
    println!("READY {ready}");
    if a.hold > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(a.hold)).await;
    }
    let received = Arc::new(AtomicU64::new(0));
    let mut latencies: Vec<i64> = Vec::new();
    let (mut first, mut last) = (i64::MAX, 0i64);
    let mut acked = 0;
    let mut write_error = None;
    if a.write_rate > 0.0 {
        let writer = tokio::spawn(write_all(a.clone()));
        let collect = async {
            while let Some(r) = rx.recv().await {
                if let Report::Event(lat, at) = r {
                    received.fetch_add(1, Ordering::Relaxed);
                    latencies.push(lat);
                    first = first.min(at);
                    last = last.max(at);
                }
            }
        };
        // Collect while writing, then until the streams have been quiet for 3 s.
        let quiet = async {
            match writer.await {
                Ok(Ok(n)) => acked = n,
                Ok(Err(e)) => write_error = Some(e),
                Err(e) => write_error = Some(e.to_string()),
            }
            let mut seen = received.load(Ordering::Relaxed);
            loop {
                tokio::time::sleep(Duration::from_secs(3)).await;
                let now = received.load(Ordering::Relaxed);
                if now == seen {
                    break;
                }
                seen = now;
            }
        };
        tokio::select! {
            () = collect => {}
            () = quiet => {}
        }
    }
    latencies.sort_unstable();
    let events = latencies.len() as f64;
    let span = (last - first) as f64 / 1e6;
    let result = serde_json::json!({
        "connections": a.connections,
        "ready": ready,
        "failed": failed,
        "failures": failures,
        "open_seconds": open_seconds,
        "acked_writes": acked,
        "write_error": write_error,
        "events": latencies.len(),
        "expected": acked * ready as u64,
        "per_second": if span > 0.0 { events / span } else { 0.0 },
        "p50_ms": percentile(&latencies, 0.50),
        "p90_ms": percentile(&latencies, 0.90),
        "p99_ms": percentile(&latencies, 0.99),
        "max_ms": percentile(&latencies, 1.0),
    });
    println!("{result}");
}
