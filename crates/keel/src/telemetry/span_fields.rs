//! A span's fields as the JSON object the JSON log lines embed under `span`, written
//! directly. tracing-subscriber's own `JsonFields` collects them into a map of JSON
//! values and serializes it once per span (and parses and re-serializes the whole
//! object when a field is recorded later, as `user_id` is): a request's span cost
//! more than the rest of its logging.

use std::fmt::{self, Write as _};
use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormattedFields;
use tracing_subscriber::fmt::format::{FormatFields, Writer};

/// Span fields as a JSON object: `{"request_id":"…","user_id":"…"}`.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonSpanFields;

impl<'writer> FormatFields<'writer> for JsonSpanFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut object = String::from("{");
        fields.record(&mut Members(&mut object));
        object.push('}');
        writer.write_str(&object)
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        // The object so far, reopened: its closing brace comes off, the new members
        // go on, and it is closed again.
        let mut object = std::mem::take(&mut current.fields);
        if object.ends_with('}') {
            object.pop();
        } else {
            object.clear();
            object.push('{');
        }
        fields.record(&mut Members(&mut object));
        object.push('}');
        current.fields = object;
        Ok(())
    }
}

/// Appends `"name":value` members to an open JSON object.
struct Members<'a>(&'a mut String);

impl Members<'_> {
    fn key(&mut self, field: &Field) {
        if !self.0.ends_with('{') {
            self.0.push(',');
        }
        string(self.0, field.name());
        self.0.push(':');
    }
}

impl Visit for Members<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        string(self.0, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.key(field);
        // `%value` arrives here as Debug over Display: its text, as a string.
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        string(self.0, &text);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        self.0.push_str(itoa::Buffer::new().format(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        self.0.push_str(itoa::Buffer::new().format(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.0.push_str(if value { "true" } else { "false" });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        match serde_json::Number::from_f64(value) {
            Some(n) => self.0.push_str(&n.to_string()),
            None => self.0.push_str("null"),
        }
    }
}

/// `s` as a JSON string literal.
fn string(out: &mut String, s: &str) {
    match serde_json::to_string(s) {
        Ok(quoted) => out.push_str(&quoted),
        Err(_) => out.push_str("\"\""),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The JSON lines the events of `f` make, under the JSON format with these fields.
    fn lines(f: impl FnOnce()) -> Vec<serde_json::Value> {
        let out = Lines::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .fmt_fields(JsonSpanFields)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn span_fields_are_an_object_even_when_recorded_later() {
        let id = "01a2-\"quoted\"\\";
        let lines = lines(|| {
            let span = tracing::info_span!("request", request_id = %id, user_id = tracing::field::Empty, n = 3_i64, big = 7_u64, ok = true);
            let _in = span.enter();
            tracing::info!(x = 1, "before");
            span.record("user_id", tracing::field::display("u-1"));
            tracing::info!("after");
        });
        assert_eq!(lines.len(), 2);
        let before = &lines[0]["span"];
        assert_eq!(before["request_id"], id);
        assert_eq!(before["n"], 3);
        assert_eq!(before["big"], 7);
        assert_eq!(before["ok"], true);
        assert!(before.get("user_id").is_none(), "{before}");
        let after = &lines[1]["span"];
        assert_eq!(after["request_id"], id);
        assert_eq!(after["user_id"], "u-1");
        assert_eq!(after["name"], "request");
        assert_eq!(lines[0]["x"], 1);
    }

    #[test]
    fn a_span_without_fields_gets_them_later() {
        let lines = lines(|| {
            let span = tracing::info_span!("bare", late = tracing::field::Empty);
            let _in = span.enter();
            span.record("late", 2.5);
            tracing::info!("in");
        });
        assert_eq!(lines[0]["span"]["late"], 2.5);
    }
}
