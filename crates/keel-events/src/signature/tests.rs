//! Signatures against the Standard Webhooks test vectors and their refusals.
use super::*;

/// The test vector published with the official libraries (Python, JS, Go, …).
const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const SPEC_TS: i64 = 1614265330;
const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

const OTHER_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

fn secrets(s: &str) -> WebhookSecrets {
    WebhookSecrets::parse(s).unwrap()
}

fn check(
    s: &WebhookSecrets,
    id: &str,
    ts: &str,
    sig: &str,
    body: &[u8],
    now: i64,
) -> Result<(), VerifyError> {
    verify(s, id, ts, sig, body, now, DEFAULT_TOLERANCE)
}

#[test]
fn signs_the_published_test_vector() {
    let s = secrets(SPEC_SECRET);
    assert_eq!(sign(&s, SPEC_ID, SPEC_TS, SPEC_BODY), SPEC_SIGNATURE);
    // The bare base64 key is the same key.
    let bare = secrets(SPEC_SECRET.trim_start_matches(SECRET_PREFIX));
    assert_eq!(sign(&bare, SPEC_ID, SPEC_TS, SPEC_BODY), SPEC_SIGNATURE);
    assert_eq!(
        check(
            &s,
            SPEC_ID,
            "1614265330",
            SPEC_SIGNATURE,
            SPEC_BODY,
            SPEC_TS
        ),
        Ok(())
    );
    // The official Rust library's vector.
    let s = secrets(OTHER_SECRET);
    assert_eq!(
        sign(
            &s,
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#
        ),
        "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
    );
}

#[test]
fn headers_carry_id_timestamp_and_signature() {
    let s = secrets(SPEC_SECRET);
    let h = headers(&s, SPEC_ID, SPEC_TS, SPEC_BODY);
    assert_eq!(h[0], ("webhook-id", SPEC_ID.to_owned()));
    assert_eq!(h[1], ("webhook-timestamp", "1614265330".to_owned()));
    assert_eq!(h[2], ("webhook-signature", SPEC_SIGNATURE.to_owned()));
}

#[test]
fn rotation_signs_with_every_secret_and_each_verifies_alone() {
    let both = secrets(&format!("{SPEC_SECRET}  {OTHER_SECRET}\n"));
    assert_eq!(both.as_slice().len(), 2);
    let header = sign(&both, SPEC_ID, SPEC_TS, SPEC_BODY);
    let parts: Vec<&str> = header.split(' ').collect();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0], SPEC_SIGNATURE);
    assert!(parts[1].starts_with("v1,") && parts[1] != SPEC_SIGNATURE);
    let ts = SPEC_TS.to_string();
    for alone in [SPEC_SECRET, OTHER_SECRET] {
        let alone = secrets(alone);
        assert_eq!(
            check(&alone, SPEC_ID, &ts, &header, SPEC_BODY, SPEC_TS),
            Ok(())
        );
    }
    // Each entry on its own verifies only under its own secret.
    let old = secrets(OTHER_SECRET);
    assert_eq!(
        check(&old, SPEC_ID, &ts, parts[0], SPEC_BODY, SPEC_TS),
        Err(VerifyError::NoMatch)
    );
    assert_eq!(
        check(&old, SPEC_ID, &ts, parts[1], SPEC_BODY, SPEC_TS),
        Ok(())
    );
    // A third, unrelated secret matches neither.
    let stranger = WebhookSecrets::from(WebhookSecret::from_bytes(&[7; 32]).unwrap());
    assert_eq!(
        check(&stranger, SPEC_ID, &ts, &header, SPEC_BODY, SPEC_TS),
        Err(VerifyError::NoMatch)
    );
}

#[test]
fn tampering_fails() {
    let s = secrets(SPEC_SECRET);
    let ts = SPEC_TS.to_string();
    let sig = SPEC_SIGNATURE;
    let no = Err(VerifyError::NoMatch);
    assert_eq!(
        check(&s, SPEC_ID, &ts, sig, br#"{"test": 2432232315}"#, SPEC_TS),
        no
    );
    assert_eq!(
        check(&s, SPEC_ID, &ts, sig, br#"{"test":2432232314}"#, SPEC_TS),
        no
    );
    assert_eq!(check(&s, SPEC_ID, &ts, sig, b"", SPEC_TS), no);
    assert_eq!(
        check(
            &s,
            "msg_p5jXN8AQM9LWM0D4loKWxJeK",
            &ts,
            sig,
            SPEC_BODY,
            SPEC_TS
        ),
        no
    );
    assert_eq!(
        check(&s, SPEC_ID, "1614265331", sig, SPEC_BODY, SPEC_TS),
        no
    );
    // Leading zeros change the signed text, so they do not match either.
    assert_eq!(
        check(&s, SPEC_ID, "01614265330", sig, SPEC_BODY, SPEC_TS),
        no
    );
    // A flipped bit of the signature itself.
    let flipped = sig.replace("1OE=", "1OA=");
    assert_eq!(check(&s, SPEC_ID, &ts, &flipped, SPEC_BODY, SPEC_TS), no);
}

#[test]
fn empty_truncated_and_garbage_signatures_never_verify() {
    let s = secrets(SPEC_SECRET);
    let ts = SPEC_TS.to_string();
    let valid_b64 = SPEC_SIGNATURE.trim_start_matches("v1,");
    let truncated_b64 = STANDARD.encode(&STANDARD.decode(valid_b64).unwrap()[..16]);
    let longer_b64 = {
        let mut b = STANDARD.decode(valid_b64).unwrap();
        b.push(0);
        STANDARD.encode(b)
    };
    for bad in [
        "v1,".to_owned(),
        "v1,=".to_owned(),
        "v1,====".to_owned(),
        "v1,AAAA".to_owned(),
        "v1,garbage".to_owned(),
        "v1,!!not*base64!!".to_owned(),
        format!("v1,{}", &valid_b64[..1]),
        format!("v1,{}", &valid_b64[..20]),
        format!("v1,{truncated_b64}"),
        format!("v1,{longer_b64}"),
        format!("v1,{valid_b64}garbage"),
        format!("v1,{}", STANDARD.encode([0u8; 32])),
        "v1, v1,".to_owned(),
    ] {
        assert_eq!(
            check(&s, SPEC_ID, &ts, &bad, SPEC_BODY, SPEC_TS),
            Err(VerifyError::NoMatch),
            "{bad}"
        );
    }
}

#[test]
fn other_versions_are_ignored() {
    let s = secrets(SPEC_SECRET);
    let ts = SPEC_TS.to_string();
    let b64 = SPEC_SIGNATURE.trim_start_matches("v1,");
    for other in [
        format!("v1a,{b64}"),
        format!("v2,{b64}"),
        format!("V1,{b64}"),
    ] {
        assert_eq!(
            check(&s, SPEC_ID, &ts, &other, SPEC_BODY, SPEC_TS),
            Err(VerifyError::NoMatch),
            "{other}"
        );
    }
    // Beside a valid `v1`, unknown versions do no harm.
    let mixed = format!("v1a,{b64} v2,whatever {SPEC_SIGNATURE} v1,AAAA");
    assert_eq!(check(&s, SPEC_ID, &ts, &mixed, SPEC_BODY, SPEC_TS), Ok(()));
}

#[test]
fn malformed_and_missing_headers_are_errors() {
    let s = secrets(SPEC_SECRET);
    let ts = SPEC_TS.to_string();
    let sig = SPEC_SIGNATURE;
    let e = |id: &str, t: &str, g: &str| check(&s, id, t, g, SPEC_BODY, SPEC_TS);
    assert_eq!(e("", &ts, sig), Err(VerifyError::Missing(WEBHOOK_ID)));
    assert_eq!(
        e("msg.1", &ts, sig),
        Err(VerifyError::Malformed(WEBHOOK_ID))
    );
    assert_eq!(
        e(SPEC_ID, "", sig),
        Err(VerifyError::Missing(WEBHOOK_TIMESTAMP))
    );
    for t in [
        "hello",
        "-1614265330",
        "+1614265330",
        "1614265330.0",
        "1e9",
        "99999999999999999999",
    ] {
        assert_eq!(
            e(SPEC_ID, t, sig),
            Err(VerifyError::Malformed(WEBHOOK_TIMESTAMP)),
            "{t}"
        );
    }
    for g in ["", " ", "   "] {
        assert_eq!(
            e(SPEC_ID, &ts, g),
            Err(VerifyError::Missing(WEBHOOK_SIGNATURE)),
            "{g:?}"
        );
    }
    let no_comma = SPEC_SIGNATURE.replace(',', "");
    for g in [no_comma.as_str(), ",abc", "v1", &format!("{sig} garbage")] {
        assert_eq!(
            e(SPEC_ID, &ts, g),
            Err(VerifyError::Malformed(WEBHOOK_SIGNATURE)),
            "{g}"
        );
    }
    // Extra spaces between entries are tolerated.
    assert_eq!(e(SPEC_ID, &ts, &format!("  v1a,x   {sig} ")), Ok(()));
}

#[test]
fn timestamps_outside_the_tolerance_fail() {
    let s = secrets(SPEC_SECRET);
    let ts = SPEC_TS.to_string();
    let sig = SPEC_SIGNATURE;
    let at = |now: i64| check(&s, SPEC_ID, &ts, sig, SPEC_BODY, now);
    assert_eq!(at(SPEC_TS + 300), Ok(()));
    assert_eq!(at(SPEC_TS - 300), Ok(()));
    assert_eq!(at(SPEC_TS + 301), Err(VerifyError::TooOld));
    assert_eq!(at(SPEC_TS - 301), Err(VerifyError::TooNew));
    assert_eq!(at(i64::MAX), Err(VerifyError::TooOld));
    assert_eq!(at(i64::MIN), Err(VerifyError::TooNew));
    let strict = verify(
        &s,
        SPEC_ID,
        &ts,
        sig,
        SPEC_BODY,
        SPEC_TS + 2,
        Duration::from_secs(1),
    );
    assert_eq!(strict, Err(VerifyError::TooOld));
    // Outside the tolerance it fails even with a valid signature; inside, a bad
    // signature still fails.
    assert_eq!(
        check(&s, SPEC_ID, &ts, "v1,", SPEC_BODY, SPEC_TS + 10),
        Err(VerifyError::NoMatch)
    );
}

#[test]
fn secrets_parse_like_the_spec_says() {
    // Unpadded base64 is the same key as padded.
    let padded =
        WebhookSecret::parse("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
    let unpadded =
        WebhookSecret::parse("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
    assert_eq!(padded.key, unpadded.key);
    assert_eq!(padded.key.len(), 32);
    assert_eq!(
        padded.to_whsec(),
        "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
    );
    assert_eq!(
        WebhookSecret::parse(SPEC_SECRET).unwrap().to_whsec(),
        SPEC_SECRET
    );
    assert!(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
            .parse::<WebhookSecret>()
            .is_ok()
    );

    assert_eq!(WebhookSecrets::parse("").unwrap_err(), SecretError::Empty);
    assert_eq!(
        WebhookSecrets::parse(" \n\t").unwrap_err(),
        SecretError::Empty
    );
    assert_eq!(WebhookSecret::parse("").unwrap_err(), SecretError::Empty);
    assert_eq!(WebhookSecrets::new(vec![]).unwrap_err(), SecretError::Empty);
    assert_eq!(
        WebhookSecrets::parse(&format!("{SPEC_SECRET} whsec_not-base64!")).unwrap_err(),
        SecretError::NotBase64 { index: 2 }
    );
    assert_eq!(
        WebhookSecrets::parse("whsec_").unwrap_err(),
        SecretError::Length { index: 1, len: 0 }
    );
    // A password is not a key: too short once decoded.
    assert_eq!(
        WebhookSecret::parse("hunter22").unwrap_err(),
        SecretError::Length { index: 1, len: 6 }
    );
    let long = format!("whsec_{}", STANDARD.encode([1u8; 65]));
    assert_eq!(
        WebhookSecret::parse(&long).unwrap_err(),
        SecretError::Length { index: 1, len: 65 }
    );
    assert!(WebhookSecret::from_bytes(&[1; 64]).is_ok());
    assert!(WebhookSecret::from_bytes(&[1; 23]).is_err());
    assert_eq!(
        WebhookSecrets::parse(&format!("{SPEC_SECRET} whsk_AAAA")).unwrap_err(),
        SecretError::Asymmetric {
            index: 2,
            prefix: "whsk_"
        }
    );
    // URL-safe base64 is not the spec's alphabet.
    assert!(WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV-b5sSYspob7oD").is_err());
}

#[test]
fn secrets_never_show_in_debug_or_errors() {
    let s = secrets(&format!("{SPEC_SECRET} {OTHER_SECRET}"));
    let shown = format!("{s:?} {:?}", s.as_slice()[0]);
    assert!(
        !shown.contains("MfKQ") && !shown.contains("C2FV"),
        "{shown}"
    );
    assert_eq!(
        shown,
        "WebhookSecrets(<2 redacted>) WebhookSecret(<redacted>)"
    );
    let err = WebhookSecrets::parse(&format!("{SPEC_SECRET} MfKQ9r8GKYq!")).unwrap_err();
    assert!(!err.to_string().contains("MfKQ"), "{err}");
}

#[test]
fn non_ascii_and_binary_bodies_sign_and_verify() {
    let s = secrets(SPEC_SECRET);
    for body in [
        "{\"name\":\"Zoë — 東京 🚀\"}".as_bytes(),
        b"{}",
        b"",
        &[0xff, 0x00, 0xfe],
    ] {
        let sig = sign(&s, "evt_1", 1_700_000_000, body);
        assert_eq!(
            check(&s, "evt_1", "1700000000", &sig, body, 1_700_000_000),
            Ok(())
        );
    }
}
