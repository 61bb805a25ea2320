//! The JetStream stream the NATS sink publishes into: created if missing (file
//! storage, capturing `<subject_prefix>.>`), or an existing one made to capture our
//! subjects by adding `<subject_prefix>.>` to them.

use crate::BrokerError;
use async_nats::jetstream::Context;
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::context::{CreateStreamErrorKind, GetStreamErrorKind};
use async_nats::jetstream::stream::{Config as StreamConfig, StorageType};

/// Why the stream is not ready.
pub(super) enum Ensure {
    /// The server answered no: a configuration problem.
    Refused(BrokerError),
    /// No answer (not connected, timed out): try again later.
    Unavailable(String),
}

/// Create `stream` capturing `<prefix>.>`, or make sure the existing one captures it.
pub(super) async fn ensure(js: &Context, stream: &str, prefix: &str) -> Result<(), Ensure> {
    let wanted = format!("{prefix}.>");
    let refused = |reason: String| {
        Ensure::Refused(BrokerError::Stream {
            stream: stream.to_owned(),
            reason,
        })
    };
    match js.get_stream(stream).await {
        Ok(existing) => {
            let mut config = existing.cached_info().config.clone();
            if config.subjects.iter().any(|s| captures(s, prefix)) {
                return Ok(());
            }
            let before = config.subjects.join(", ");
            config.subjects.push(wanted.clone());
            match js.update_stream(config).await {
                Ok(_) => tracing::warn!(
                    stream = %stream,
                    subjects = %before,
                    added = %wanted,
                    "NATS stream existed without our subjects: added them"
                ),
                Err(e) => {
                    return Err(
                        if matches!(e.kind(), CreateStreamErrorKind::JetStream(err) if !transient(&err))
                        {
                            refused(format!(
                                "exists with subjects [{before}] and adding `{wanted}` was refused: {e}"
                            ))
                        } else {
                            Ensure::Unavailable(format!("NATS stream update: {e}"))
                        },
                    );
                }
            }
        }
        Err(e) => {
            let missing = matches!(e.kind(), GetStreamErrorKind::JetStream(err)
                if err.error_code() == ErrorCode::STREAM_NOT_FOUND);
            if !missing {
                return Err(match e.kind() {
                    GetStreamErrorKind::JetStream(err) if !transient(&err) => {
                        refused(e.to_string())
                    }
                    _ => Ensure::Unavailable(format!("NATS stream lookup: {e}")),
                });
            }
            let config = StreamConfig {
                name: stream.to_owned(),
                subjects: vec![wanted.clone()],
                storage: StorageType::File,
                ..Default::default()
            };
            if let Err(e) = js.create_stream(config).await {
                return Err(match e.kind() {
                    CreateStreamErrorKind::JetStream(err) if !transient(&err) => {
                        refused(format!("cannot create it for `{wanted}`: {e}"))
                    }
                    _ => Ensure::Unavailable(format!("NATS stream creation: {e}")),
                });
            }
            tracing::info!(stream = %stream, subjects = %wanted, "NATS stream created");
        }
    }
    Ok(())
}

/// A JetStream API error that says nothing about our configuration: the server failed
/// (a 5xx, e.g. nats-server 2.9's "error creating store for stream" when a stream is
/// created while the account's last one is being deleted). Try again later.
fn transient(err: &async_nats::jetstream::Error) -> bool {
    err.code() >= 500
}

/// Whether the stream subject `pattern` captures every subject under `prefix.>`.
pub(super) fn captures(pattern: &str, prefix: &str) -> bool {
    let prefix: Vec<&str> = prefix.split('.').collect();
    for (i, token) in pattern.split('.').enumerate() {
        if token == ">" {
            return true;
        }
        match prefix.get(i) {
            Some(p) if token == "*" || token == *p => {}
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_subjects_that_capture_a_prefix() {
        for yes in ["keel.social.>", "keel.*.>", "keel.>", ">", "*.social.>"] {
            assert!(captures(yes, "keel.social"), "{yes}");
        }
        for no in [
            "keel.social",
            "keel.social.*",
            "keel.social.posts.>",
            "keel.other.>",
            "keel",
            "keel.*",
        ] {
            assert!(!captures(no, "keel.social"), "{no}");
        }
    }
}
