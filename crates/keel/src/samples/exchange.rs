//! Recording one exchange: the request goes through the app's router in process (no
//! socket, no client), and the answer is kept as the app sent it: its status, the
//! headers a client acts on, and its JSON body.

use axum::body::Body;
use axum::http::Request;
use keel_design::samples::Exchange;
use serde_json::Value as Json;
use tower::ServiceExt;

/// The response headers the samples show, in this order: the ones a client acts on.
/// The others are the same on every answer (security headers, the request id) or
/// depend on the clock (rate-limit counters).
const SHOWN: [&str; 7] = [
    "content-type",
    "location",
    "etag",
    "idempotent-replayed",
    "www-authenticate",
    "retry-after",
    "allow",
];

/// A request to record, not sent yet: a JSON body goes with its content type.
pub fn request(method: &str, path: &str, body: Option<Json>, note: &str) -> Exchange {
    Exchange {
        method: method.into(),
        path: path.into(),
        request_headers: if body.is_some() {
            vec![("content-type".into(), "application/json".into())]
        } else {
            Vec::new()
        },
        request: body,
        status: 0,
        response_headers: Vec::new(),
        response: None,
        note: note.into(),
    }
}

/// The app, driven in process, and the sample user's access token once signed in.
pub struct Recorder {
    router: keel_http::Edge,
    bearer: Option<String>,
}

impl Recorder {
    pub fn new(router: keel_http::Edge) -> Self {
        Self {
            router,
            bearer: None,
        }
    }

    /// From now on, [`Recorder::signed`] requests carry this access token.
    pub fn sign_in(&mut self, access_token: &str) {
        self.bearer = Some(access_token.to_string());
    }

    /// A request made as the signed-in sample user.
    pub fn signed(&self, method: &str, path: &str, body: Option<Json>, note: &str) -> Exchange {
        let mut x = request(method, path, body, note);
        if let Some(t) = &self.bearer {
            x.request_headers
                .insert(0, ("authorization".into(), format!("Bearer {t}")));
        }
        x
    }

    /// Send `x`, and keep it among `errors` if the app refused it.
    pub async fn refusal(&self, x: Exchange, errors: &mut Vec<Exchange>) -> Result<(), String> {
        let x = self.send(x).await?;
        if x.status >= 400 {
            errors.push(x);
        }
        Ok(())
    }

    /// Send the request and record what the app answered.
    pub async fn send(&self, mut x: Exchange) -> Result<Exchange, String> {
        let what = format!("{} {}", x.method, x.path);
        let mut req = Request::builder()
            .method(x.method.as_str())
            .uri(x.path.as_str());
        for (k, v) in &x.request_headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let body = match &x.request {
            Some(j) => Body::from(serde_json::to_vec(j).map_err(|e| format!("{what}: {e}"))?),
            None => Body::empty(),
        };
        let req = req.body(body).map_err(|e| format!("{what}: {e}"))?;
        let res = match self.router.clone().oneshot(req).await {
            Ok(res) => res,
            Err(never) => match never {},
        };
        x.status = res.status().as_u16();
        x.response_headers = SHOWN
            .iter()
            .filter_map(|k| {
                let v = res.headers().get(*k)?.to_str().ok()?;
                Some((k.to_string(), v.to_string()))
            })
            .collect();
        let bytes = axum::body::to_bytes(res.into_body(), usize::MAX)
            .await
            .map_err(|e| format!("{what}: reading the answer: {e}"))?;
        x.response = if bytes.is_empty() {
            None
        } else {
            Some(serde_json::from_slice(&bytes).map_err(|e| {
                format!(
                    "{what} answered {} with a body that is not JSON: {e}",
                    x.status
                )
            })?)
        };
        Ok(x)
    }
}
