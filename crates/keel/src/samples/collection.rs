//! The samples of one collection: create, list, get and update (each with its key
//! errors) while its sample record lives, and delete once every collection has run.
//! Requests go as the signed-in sample user, or anonymous where the rules keep
//! anonymous callers out.

use super::bodies;
use super::exchange::{Recorder, request};
use keel_design::analysis::{self, Audience};
use keel_design::samples::{Endpoint, Exchange};
use keel_spec::{Collection, Operation};
use serde_json::json;
use std::collections::BTreeMap;

/// Walks the collections in dependency order, keeping each one's sample record.
pub struct Runner<'a> {
    rec: &'a Recorder,
    /// The sample record of each collection, by collection name.
    pub ids: BTreeMap<String, String>,
}

fn endpoint(
    c: &Collection,
    operation: &'static str,
    method: &'static str,
    route: String,
    summary: String,
    success: Exchange,
    errors: Vec<Exchange>,
) -> Endpoint {
    Endpoint {
        collection: c.name.clone(),
        operation,
        method,
        route,
        summary,
        success,
        errors,
    }
}

fn denies_anonymous(c: &Collection, op: Operation) -> bool {
    analysis::audience(c, op) != Audience::Anyone
}

impl<'a> Runner<'a> {
    pub fn new(rec: &'a Recorder) -> Self {
        Self {
            rec,
            ids: BTreeMap::new(),
        }
    }

    /// Create, list, get and update, in document order (list first).
    pub async fn collection(&mut self, c: &Collection) -> Result<Vec<Endpoint>, String> {
        let base = format!("/v1/{}", c.name);
        let create = self.create(c, &base).await?;
        let id = self.ids.get(&c.name).cloned().unwrap_or_default();
        let one = format!("{base}/{id}");
        let list = self.list(c, &base).await?;
        let get = self.get(c, &base, &one).await?;
        // Update as a client does: If-Match the ETag the get answered.
        let tag = get
            .success
            .response_headers
            .iter()
            .find(|(k, _)| k == "etag")
            .map_or_else(|| "\"1\"".to_string(), |(_, v)| v.clone());
        let update = self.update(c, &base, &one, &tag).await?;
        Ok(vec![list, create, get, update])
    }

    async fn create(&mut self, c: &Collection, base: &str) -> Result<Endpoint, String> {
        let key = format!("sample-create-{}", c.name);
        let body = bodies::create(c, 1, &self.ids);
        let mut x = self.rec.signed("POST", base, Some(body), "");
        x.request_headers.push(("idempotency-key".into(), key));
        let success = self.rec.send(x).await?;
        // The builtin users already has its sample record: the signed-in user.
        if success.status == 201
            && !c.builtin
            && let Some(id) = success.response.as_ref().and_then(|r| r["id"].as_str())
        {
            self.ids.insert(c.name.clone(), id.to_string());
        }
        let mut errors = Vec::new();
        let (bad, note) = if c.creatable().any(|f| f.required && f.default.is_none()) {
            (json!({}), "a body that misses required fields")
        } else {
            (
                json!({"unknown_field": 1}),
                "a body with a field the collection does not have",
            )
        };
        let x = self.rec.signed("POST", base, Some(bad), note);
        self.rec.refusal(x, &mut errors).await?;
        if denies_anonymous(c, Operation::Create) {
            let body = bodies::create(c, 2, &self.ids);
            let x = request("POST", base, Some(body), "an anonymous caller");
            self.rec.refusal(x, &mut errors).await?;
        }
        Ok(endpoint(
            c,
            "create",
            "POST",
            base.to_string(),
            format!("Create a record in `{}`", c.name),
            success,
            errors,
        ))
    }

    async fn list(&self, c: &Collection, base: &str) -> Result<Endpoint, String> {
        let path = format!("{base}?limit=2");
        let success = self
            .rec
            .send(self.rec.signed("GET", &path, None, ""))
            .await?;
        let mut errors = Vec::new();
        let path = format!("{base}?filter=no_such_field%20%3D%3D%201");
        let note = "a filter on a field that does not exist";
        let x = self.rec.signed("GET", &path, None, note);
        self.rec.refusal(x, &mut errors).await?;
        if denies_anonymous(c, Operation::Read) {
            let mut x = self
                .rec
                .send(request("GET", base, None, "an anonymous caller"))
                .await?;
            let empty = x.status == 200
                && x.response
                    .as_ref()
                    .and_then(|r| r["items"].as_array())
                    .is_some_and(Vec::is_empty);
            if empty {
                x.note =
                    "an anonymous caller: the rule hides every row, so the page is empty".into();
            }
            if empty || x.status >= 400 {
                errors.push(x);
            }
        }
        Ok(endpoint(
            c,
            "list",
            "GET",
            base.to_string(),
            format!("List `{}` (filter, sort, cursor)", c.name),
            success,
            errors,
        ))
    }

    async fn get(&self, c: &Collection, base: &str, one: &str) -> Result<Endpoint, String> {
        let success = self.rec.send(self.rec.signed("GET", one, None, "")).await?;
        let missing = format!("{base}/{}", uuid::Uuid::now_v7());
        let note = "a record that does not exist (or may not be read)";
        let mut errors = Vec::new();
        self.rec
            .refusal(self.rec.signed("GET", &missing, None, note), &mut errors)
            .await?;
        Ok(endpoint(
            c,
            "get",
            "GET",
            format!("{base}/{{id}}"),
            format!("Get one record of `{}`", c.name),
            success,
            errors,
        ))
    }

    async fn update(
        &self,
        c: &Collection,
        base: &str,
        one: &str,
        tag: &str,
    ) -> Result<Endpoint, String> {
        let patch = bodies::patch(c);
        let if_match = || ("if-match".to_string(), tag.to_string());
        let mut x = self.rec.signed("PATCH", one, Some(patch.clone()), "");
        x.request_headers.push(if_match());
        let success = self.rec.send(x).await?;
        let mut errors = Vec::new();
        let note = "a stale If-Match (someone else updated first)";
        let mut x = self.rec.signed("PATCH", one, Some(patch), note);
        x.request_headers.push(if_match());
        self.rec.refusal(x, &mut errors).await?;
        let bad = bodies::wrong_type(c);
        let x = self
            .rec
            .signed("PATCH", one, Some(bad), "a value of the wrong type");
        self.rec.refusal(x, &mut errors).await?;
        Ok(endpoint(
            c,
            "update",
            "PATCH",
            format!("{base}/{{id}}"),
            format!(
                "Update a record of `{}` (partial, optimistic locking)",
                c.name
            ),
            success,
            errors,
        ))
    }

    /// Delete the sample record, then again (run children before parents, so
    /// restricting refs do not get in the way).
    pub async fn delete(&self, c: &Collection) -> Result<Endpoint, String> {
        let base = format!("/v1/{}", c.name);
        let id = self.ids.get(&c.name).cloned().unwrap_or_default();
        let one = format!("{base}/{id}");
        let success = self
            .rec
            .send(self.rec.signed("DELETE", &one, None, ""))
            .await?;
        let mut errors = Vec::new();
        let note = "a record that is already gone";
        self.rec
            .refusal(self.rec.signed("DELETE", &one, None, note), &mut errors)
            .await?;
        Ok(endpoint(
            c,
            "delete",
            "DELETE",
            format!("{base}/{{id}}"),
            format!("Delete a record of `{}`", c.name),
            success,
            errors,
        ))
    }
}
