//! Structured logs: pretty for a terminal, JSON for pipelines.
//!
//! Lines go to a [`LogSink`]: formatted on the calling thread, appended whole to one
//! buffer, and written to stderr by a background thread at most every 50 ms (or at
//! 64 KiB). An access line per request would otherwise cost a `write(2)` on the
//! request's own worker; the profile showed that as a fifth of a get-by-id.

mod span_fields;

use span_fields::JsonSpanFields;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// How long a line may wait in the buffer before it is written.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// A buffer this full is written at once.
const FLUSH_AT: usize = 64 * 1024;

/// The process's log buffer, shared by every tracing event.
#[derive(Default)]
struct LogSink {
    pending: Mutex<Vec<u8>>,
    wake: Condvar,
}

static SINK: OnceLock<Arc<LogSink>> = OnceLock::new();

impl LogSink {
    fn append(&self, bytes: &[u8]) {
        let Ok(mut pending) = self.pending.lock() else {
            // A poisoned buffer: write directly rather than lose the line.
            let _ = std::io::stderr().write_all(bytes);
            return;
        };
        pending.extend_from_slice(bytes);
        if pending.len() >= FLUSH_AT {
            self.wake.notify_one();
        }
    }

    /// Write out whatever is buffered. The buffer is swapped with `spare` (emptied
    /// afterwards), so both keep their capacity: no regrowth on every flush.
    fn drain(&self, spare: &mut Vec<u8>) {
        match self.pending.lock() {
            Ok(mut pending) if !pending.is_empty() => std::mem::swap(&mut *pending, spare),
            _ => return,
        }
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(spare);
        let _ = err.flush();
        spare.clear();
    }

    fn run_flusher(self: Arc<Self>) {
        let mut spare = Vec::with_capacity(2 * FLUSH_AT);
        loop {
            if let Ok(pending) = self.pending.lock() {
                let _ = self.wake.wait_timeout(pending, FLUSH_EVERY);
            }
            self.drain(&mut spare);
        }
    }
}

/// One event's writer: tracing formats a whole line, then writes it here once.
struct SinkWriter(Arc<LogSink>);

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Clone)]
struct MakeSinkWriter(Arc<LogSink>);

impl<'a> MakeWriter<'a> for MakeSinkWriter {
    type Writer = SinkWriter;

    fn make_writer(&'a self) -> Self::Writer {
        SinkWriter(self.0.clone())
    }
}

/// Install the subscriber. `buffered` (for `serve`) goes through the [`LogSink`];
/// short commands write each line at once, so it interleaves with their own output.
pub fn init(json: bool, filter: &str, buffered: bool) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    if !buffered {
        install(json, filter, std::io::stderr);
        return;
    }
    let sink = SINK
        .get_or_init(|| {
            let sink = Arc::new(LogSink::default());
            let flusher = sink.clone();
            let spawned = std::thread::Builder::new()
                .name("keel-log".into())
                .spawn(move || flusher.run_flusher());
            if spawned.is_err() {
                eprintln!("warning: no log thread; logs are written when the process ends");
            }
            sink
        })
        .clone();
    install(json, filter, MakeSinkWriter(sink));
}

/// The subscriber over `writer`: JSON lines (the event's fields flat, the current
/// span's under `span`) or text. A second install (tests) is harmless: the first
/// subscriber stays.
fn install<W>(json: bool, filter: EnvFilter, writer: W)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .fmt_fields(JsonSpanFields)
            .try_init()
    } else {
        builder.with_target(false).try_init()
    };
}

/// `serve`'s access lines, formatted here and appended to the [`LogSink`]: one line,
/// the same fields as the tracing formatter would give, at a fraction of its cost.
#[derive(Debug)]
pub struct AccessLines {
    json: bool,
}

impl AccessLines {
    /// `None` when the log sink is not installed (a command other than `serve`).
    pub fn new(json: bool) -> Option<Self> {
        SINK.get().map(|_| Self { json })
    }
}

impl keel_http::AccessLog for AccessLines {
    fn write(&self, l: &keel_http::AccessLine<'_>) {
        use std::fmt::Write as _;
        let Some(sink) = SINK.get() else { return };
        let mut line = String::with_capacity(256);
        let stamp = timestamp();
        if self.json {
            line.push_str(r#"{"timestamp":""#);
            line.push_str(&stamp);
            line.push_str(r#"","level":"INFO","message":"request","request_id":"#);
            push_json_str(&mut line, l.request_id);
            line.push_str(r#","method":"#);
            push_json_str(&mut line, l.method);
            line.push_str(r#","path":"#);
            push_json_str(&mut line, l.path);
            let _ = writeln!(
                line,
                r#","status":{},"elapsed_ms":{:.3},"target":"keel::access"}}"#,
                l.status, l.elapsed_ms
            );
        } else {
            let _ = writeln!(
                line,
                "{stamp}  INFO request request_id={} method={} path={} status={} elapsed_ms={:.3}",
                l.request_id, l.method, l.path, l.status, l.elapsed_ms
            );
        }
        sink.append(line.as_bytes());
    }
}

/// `s` as a JSON string literal, escaped in place (no intermediate allocation).
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    // Request ids, methods and most paths need no escape: copied whole.
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(s);
        out.push('"');
        return;
    }
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `2026-12-03T02:51:44.123456Z`, the date and time to the second formatted once per
/// second per thread (an access line is written for every request).
fn timestamp() -> String {
    use std::cell::RefCell;
    use std::fmt::Write as _;
    thread_local! {
        static SECOND: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
    }
    let now = time::OffsetDateTime::now_utc();
    SECOND.with(|cached| {
        let mut cached = cached.borrow_mut();
        let second = now.unix_timestamp();
        if cached.0 != second {
            cached.1.clear();
            let _ = write!(
                cached.1,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                now.year(),
                u8::from(now.month()),
                now.day(),
                now.hour(),
                now.minute(),
                now.second()
            );
            cached.0 = second;
        }
        let mut stamp = String::with_capacity(28);
        stamp.push_str(&cached.1);
        let _ = write!(stamp, ".{:06}Z", now.microsecond());
        stamp
    })
}

/// Write out buffered log lines; called before the process exits.
pub fn flush() {
    if let Some(sink) = SINK.get() {
        sink.drain(&mut Vec::new());
    }
}

#[cfg(test)]
mod tests {
    use super::{push_json_str, timestamp};

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds_and_move_on() {
        let a = timestamp();
        let parsed =
            time::OffsetDateTime::parse(&a, &time::format_description::well_known::Rfc3339)
                .expect(&a);
        let now = time::OffsetDateTime::now_utc();
        assert!((now - parsed).abs() < time::Duration::seconds(2), "{a}");
        assert_eq!(a.len(), "2026-12-03T02:51:44.123456Z".len(), "{a}");
        assert!(timestamp() >= a, "monotonic within a thread");
    }

    #[test]
    fn json_strings_round_trip_through_a_parser() {
        for s in [
            "/v1/posts",
            "a\"b\\c",
            "line\nbreak\ttab\r",
            "\u{1}\u{1f}ctl",
            "ünï €",
        ] {
            let mut out = String::new();
            push_json_str(&mut out, s);
            let back: String = serde_json::from_str(&out).expect(&out);
            assert_eq!(back, s, "{out}");
        }
    }
}
