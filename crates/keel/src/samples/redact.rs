//! Making the recorded samples reproducible: ids, timestamps, tokens and cursors
//! differ on every run, so each is rewritten to a fixed placeholder, numbered in
//! order of first appearance (the same id keeps the same placeholder everywhere).
//! Statuses, headers and everything else in a body stay as the app answered.

use keel_design::samples::{Endpoint, Exchange};
use serde_json::Value as Json;

/// Rewrites UUIDs, timestamps and cursors to fixed placeholders, in order of first
/// appearance, so the same spec always gives the same samples.
#[derive(Default)]
pub struct Redactor {
    ids: Vec<String>,
    times: Vec<String>,
    tokens: Vec<String>,
}

const UUID_RE: &str = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
const TIME_RE: &str = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z";
/// Every weak `ETag`'s placeholder (they hash bodies that hold ids and times).
const WEAK_ETAG: &str = "W/\"5f0e3c9a1b2d4e67\"";
/// Every list cursor's placeholder (cursors are signed with the scratch key).
const CURSOR: &str = "eyJzIjoiLWNyZWF0ZWRfYXQsaWQiLCJ2IjpbXX0.c2lnbmF0dXJl";

impl Redactor {
    /// Every exchange of every endpoint, in document order.
    pub fn endpoints(mut self, eps: Vec<Endpoint>) -> Vec<Endpoint> {
        eps.into_iter()
            .map(|mut e| {
                e.success = self.exchange(e.success);
                e.errors = e.errors.into_iter().map(|x| self.exchange(x)).collect();
                e
            })
            .collect()
    }

    fn exchange(&mut self, mut x: Exchange) -> Exchange {
        x.path = self.text(&x.path);
        x.request_headers = x
            .request_headers
            .into_iter()
            .map(|(k, v)| {
                let v = match v.strip_prefix("Bearer ") {
                    Some(t) if k == "authorization" => format!("Bearer {}", self.token(t, true)),
                    _ => self.text(&v),
                };
                (k, v)
            })
            .collect();
        x.request = x.request.map(|j| self.json(j, ""));
        x.response_headers = x
            .response_headers
            .into_iter()
            .map(|(k, v)| {
                let v = if k == "etag" && v.starts_with("W/") {
                    // A hash of a body full of ids and times: a fixed one instead.
                    WEAK_ETAG.to_string()
                } else {
                    self.text(&v)
                };
                (k, v)
            })
            .collect();
        x.response = x.response.map(|j| self.json(j, ""));
        x
    }

    fn json(&mut self, j: Json, key: &str) -> Json {
        match j {
            Json::String(_) if key == "next_cursor" => Json::String(CURSOR.into()),
            Json::String(s) if key == "access_token" || key == "refresh_token" => {
                Json::String(self.token(&s, key == "access_token"))
            }
            Json::String(s) => Json::String(self.text(&s)),
            Json::Array(xs) => Json::Array(xs.into_iter().map(|x| self.json(x, "")).collect()),
            Json::Object(o) => Json::Object(
                o.into_iter()
                    .map(|(k, v)| {
                        let v = self.json(v, &k);
                        (k, v)
                    })
                    .collect(),
            ),
            other => other,
        }
    }

    /// A token's placeholder: JWT-shaped for access tokens, opaque for refresh tokens.
    fn token(&mut self, t: &str, access: bool) -> String {
        let i = match self.tokens.iter().position(|x| x == t) {
            Some(i) => i,
            None => {
                self.tokens.push(t.to_string());
                self.tokens.len() - 1
            }
        } + 1;
        if access {
            format!("eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9.c2FtcGxlLXRva2VuLX{i}.c2lnbmF0dXJl")
        } else {
            format!("rt_sample_refresh_token_{i:04}")
        }
    }

    fn text(&mut self, s: &str) -> String {
        let (Ok(uuid), Ok(time)) = (
            regex_lite::Regex::new(UUID_RE),
            regex_lite::Regex::new(TIME_RE),
        ) else {
            return s.to_string();
        };
        let s = uuid
            .replace_all(s, |c: &regex_lite::Captures<'_>| {
                let m = c.get(0).map_or("", |m| m.as_str()).to_string();
                let i = match self.ids.iter().position(|x| *x == m) {
                    Some(i) => i,
                    None => {
                        self.ids.push(m);
                        self.ids.len() - 1
                    }
                };
                format!("01900000-0000-7000-8000-{:012}", i + 1)
            })
            .into_owned();
        time.replace_all(&s, |c: &regex_lite::Captures<'_>| {
            let m = c.get(0).map_or("", |m| m.as_str()).to_string();
            let i = match self.times.iter().position(|x| *x == m) {
                Some(i) => i,
                None => {
                    self.times.push(m);
                    self.times.len() - 1
                }
            };
            let secs = i + 1;
            format!("2026-01-15T09:{:02}:{:02}.000000Z", secs / 60, secs % 60)
        })
        .into_owned()
    }
}
