//! Keel's webhook signatures checked by an independent implementation: the reference
//! `standardwebhooks` library from PyPI (installed by scripts/tools.sh, found through
//! `KEEL_TOOLS_BIN`; the test fails, never skips, without it). Keel signs; Python
//! verifies, and signs the same messages so Keel can compare and verify back.

#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use keel_events::Envelope;
use keel_events::signature::{self, DEFAULT_TOLERANCE, WebhookSecret, WebhookSecrets};
use serde_json::{Value as Json, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

fn tools_python() -> PathBuf {
    let dir = std::env::var("KEEL_TOOLS_BIN").unwrap_or_else(|_| {
        panic!("KEEL_TOOLS_BIN is not set: run the tests through scripts/test.sh, which installs standardwebhooks (scripts/tools.sh) and exports it")
    });
    let python = Path::new(&dir).join("python");
    assert!(
        python.is_file(),
        "KEEL_TOOLS_BIN={dir} has no python: run scripts/tools.sh"
    );
    python
}

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    i64::try_from(secs).unwrap()
}

struct Case {
    name: String,
    /// The secret the receiver verifies with.
    secret: WebhookSecret,
    id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
    valid: bool,
}

fn key(seed: u8, len: usize) -> WebhookSecret {
    let bytes: Vec<u8> = (0..len)
        .map(|i| seed.wrapping_mul(31).wrapping_add(u8::try_from(i).unwrap()))
        .collect();
    WebhookSecret::from_bytes(&bytes).unwrap()
}

fn envelope_body() -> Vec<u8> {
    let data = json!({
        "title": "Zoë — 東京 🚀",
        "body": "naïve café, Ελληνικά, עברית, \"quoted\"\n\ttabbed \\ backslash",
        "emoji": "🦀",
        "count": 3,
    });
    let id = uuid::Uuid::now_v7();
    Envelope {
        id,
        kind: "posts.updated".into(),
        collection: "posts".into(),
        record_id: id,
        occurred_at: "2026-12-02T10:00:00.000000Z".into(),
        actor: None,
        data: data.as_object().cloned(),
        previous: Some(serde_json::Map::new()),
    }
    .to_json_bytes()
}

/// The cases: valid ones signed by Keel, and tampered ones that must be refused.
fn cases() -> Vec<Case> {
    let now = now();
    let primary = key(1, 32);
    let old = key(2, 24);
    let stranger = key(3, 32);
    let big: Vec<Json> = (0..400)
        .map(|i| json!({"i": i, "s": format!("ligne {i} — ✓")}))
        .collect();
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("envelope, non-ASCII", envelope_body()),
        ("empty object", b"{}".to_vec()),
        ("compact ASCII", br#"{"a":1,"b":[true,null,"x"]}"#.to_vec()),
        ("escaped unicode", br#"{"s":"\u00e9\ud83d\ude80"}"#.to_vec()),
        ("spaced JSON", b"{\n  \"k\": \"v\"\n}\n".to_vec()),
        ("large", serde_json::to_vec(&big).unwrap()),
    ];

    let mut cases = Vec::new();
    let mut push = |name: String,
                    secret: &WebhookSecret,
                    id: &str,
                    ts: i64,
                    sig: String,
                    body: &[u8],
                    valid| {
        cases.push(Case {
            name,
            secret: secret.clone(),
            id: id.to_owned(),
            timestamp: ts.to_string(),
            signature: sig,
            body: body.to_vec(),
            valid,
        });
    };

    let one = WebhookSecrets::from(primary.clone());
    for (i, (name, body)) in bodies.iter().enumerate() {
        let id = uuid::Uuid::now_v7().to_string();
        let ts = now - i64::try_from(i).unwrap();
        let sig = signature::sign(&one, &id, ts, body);
        push(name.to_string(), &primary, &id, ts, sig, body, true);
    }

    // Rotation: both signatures in one header; either secret alone verifies it.
    let both = WebhookSecrets::new(vec![primary.clone(), old.clone()]).unwrap();
    let (_, body) = &bodies[0];
    let id = "evt_rotation";
    let sig = signature::sign(&both, id, now, body);
    assert_eq!(sig.split(' ').count(), 2);
    push(
        "rotation, new secret".into(),
        &primary,
        id,
        now,
        sig.clone(),
        body,
        true,
    );
    push(
        "rotation, old secret".into(),
        &old,
        id,
        now,
        sig.clone(),
        body,
        true,
    );
    push(
        "rotation, unrelated secret".into(),
        &stranger,
        id,
        now,
        sig,
        body,
        false,
    );

    // The longest and shortest keys the spec allows, and the spec's own secret.
    for (name, secret) in [
        ("64-byte key", key(4, 64)),
        ("24-byte key", key(5, 24)),
        (
            "spec secret",
            WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap(),
        ),
    ] {
        let sig = signature::sign(
            &secret.clone().into(),
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            now,
            br#"{"test": 2432232314}"#,
        );
        push(
            name.into(),
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            now,
            sig,
            br#"{"test": 2432232314}"#,
            true,
        );
    }

    // Tampered: every part of the signed message matters.
    let body = r#"{"type":"posts.created","data":{"title":"Zoë"}}"#.as_bytes();
    let id = "evt_tamper";
    let good = signature::sign(&one, id, now, body);
    let tampered_body = r#"{"type":"posts.created","data":{"title":"Zoe"}}"#.as_bytes();
    push(
        "tampered body".into(),
        &primary,
        id,
        now,
        good.clone(),
        tampered_body,
        false,
    );
    push(
        "tampered id".into(),
        &primary,
        "evt_tampeR",
        now,
        good.clone(),
        body,
        false,
    );
    push(
        "tampered timestamp".into(),
        &primary,
        id,
        now + 1,
        good.clone(),
        body,
        false,
    );
    push("wrong secret".into(), &stranger, id, now, good, body, false);
    push(
        "empty v1 signature".into(),
        &primary,
        id,
        now,
        "v1,".into(),
        body,
        false,
    );
    let zeros = format!("v1,{}", STANDARD.encode([0u8; 32]));
    push(
        "zero signature".into(),
        &primary,
        id,
        now,
        zeros,
        body,
        false,
    );
    let v1a = signature::sign(&one, id, now, body).replace("v1,", "v1a,");
    push(
        "other version only".into(),
        &primary,
        id,
        now,
        v1a,
        body,
        false,
    );

    // Correctly signed, but outside the 5-minute tolerance.
    for (name, ts) in [("stale", now - 600), ("future", now + 600)] {
        let sig = signature::sign(&one, id, ts, body);
        push(name.into(), &primary, id, ts, sig, body, false);
    }
    cases
}

#[test]
fn the_reference_standardwebhooks_library_verifies_keel_signatures() {
    let python = tools_python();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/verify_standardwebhooks.py");
    let cases = cases();
    let input: Vec<Json> = cases
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "secret": c.secret.to_whsec(),
                "headers": {
                    signature::WEBHOOK_ID: c.id,
                    signature::WEBHOOK_TIMESTAMP: c.timestamp,
                    signature::WEBHOOK_SIGNATURE: c.signature,
                },
                "body_b64": STANDARD.encode(&c.body),
            })
        })
        .collect();

    let mut child = Command::new(&python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(&input).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<Json> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results.len(), cases.len());

    for (case, result) in cases.iter().zip(&results) {
        let name = &case.name;
        assert_eq!(result["name"], json!(name));
        assert_eq!(
            result["verified"],
            json!(case.valid),
            "{name}: standardwebhooks said {result}"
        );
        if case.valid {
            assert_eq!(result["payload_ok"], json!(true), "{name}: {result}");
        }

        // The library's signature of the same message is Keel's, byte for byte, and
        // Keel's verifier accepts it (within the tolerance).
        let ts: i64 = case.timestamp.parse().unwrap();
        let python_sig = result["signature"].as_str().unwrap();
        assert_eq!(
            python_sig,
            case.secret.sign(&case.id, ts, &case.body),
            "{name}"
        );
        let secrets = WebhookSecrets::from(case.secret.clone());
        let keel_says = signature::verify(
            &secrets,
            &case.id,
            &case.timestamp,
            &case.signature,
            &case.body,
            now(),
            DEFAULT_TOLERANCE,
        );
        assert_eq!(
            keel_says.is_ok(),
            case.valid,
            "{name}: Keel said {keel_says:?}"
        );
    }
}
