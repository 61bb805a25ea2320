//! `POST /graphql` and `GET /graphql` (queries only) per GraphQL-over-HTTP: the
//! request is read here, executed by `keel_graphql` over the same core as REST.
//!
//! Media types: `application/graphql-response+json` when the client accepts it
//! (request errors are then 400), `application/json` otherwise (always 200 for a
//! well-formed request). A request that is not a GraphQL request at all (bad JSON,
//! no `query`) is a 400; a mutation over GET a 405. Never a 5xx. A `GET` that asks
//! for a WebSocket gets `graphql-transport-ws` ([`ws`]): subscriptions.

pub mod ws;

use crate::AppState;
use crate::extract::BodyLimit;
use crate::identity::Caller;
use crate::limits::client_ip;
use crate::problem::Problem;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keel_core::{ErrorCode, Principal};
use keel_graphql::async_graphql;
use serde_json::{Value as Json, json};
use std::collections::HashMap;

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";
const JSON: &str = "application/json";

/// Whether the client prefers `application/graphql-response+json` (listed, and not
/// after `application/json`).
fn wants_graphql_response(headers: &HeaderMap) -> bool {
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let types: Vec<String> = accept
        .split(',')
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .collect();
    let gql = types.iter().position(|t| t == GRAPHQL_RESPONSE);
    let json = types.iter().position(|t| t == JSON);
    match (gql, json) {
        (Some(g), Some(j)) => g < j,
        (Some(_), None) => true,
        _ => false,
    }
}

fn answer(status: StatusCode, body: &Json, graphql_response: bool) -> Response {
    answer_bytes(status, body.to_string().into_bytes(), graphql_response)
}

fn answer_bytes(status: StatusCode, body: Vec<u8>, graphql_response: bool) -> Response {
    let mut res = (status, body).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if graphql_response {
            "application/graphql-response+json; charset=utf-8"
        } else {
            "application/json"
        }),
    );
    res
}

/// The response body, `{data, errors, extensions}` (data left out after a request
/// error), serialized straight from the executor's values.
fn execution_result_bytes(response: &async_graphql::Response, with_data: bool) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        data: Option<&'a async_graphql::Value>,
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        errors: &'a [async_graphql::ServerError],
        #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        extensions: &'a std::collections::BTreeMap<String, async_graphql::Value>,
    }
    serde_json::to_vec(&Body {
        data: with_data.then_some(&response.data),
        errors: &response.errors,
        extensions: &response.extensions,
    })
    .unwrap_or_default()
}

/// A request that is not a GraphQL request: 400 (or `status`) with one error.
fn refuse(status: StatusCode, message: &str, code: ErrorCode, graphql_response: bool) -> Response {
    answer(
        status,
        &json!({"errors": [{"message": message, "extensions": {"code": code.slug()}}]}),
        graphql_response,
    )
}

type Refusal = (StatusCode, String, ErrorCode);

fn bad(message: impl Into<String>) -> Refusal {
    (
        StatusCode::BAD_REQUEST,
        message.into(),
        ErrorCode::MalformedRequest,
    )
}

/// The GraphQL request from its parts as JSON values (body or query string).
fn request_from(
    query: Option<Json>,
    operation_name: Option<Json>,
    variables: Option<Json>,
    extensions: Option<Json>,
) -> Result<async_graphql::Request, Refusal> {
    let Some(Json::String(query)) = query else {
        return Err(bad("`query` must be a string"));
    };
    let mut request = async_graphql::Request::new(query);
    match operation_name {
        None | Some(Json::Null) => {}
        Some(Json::String(name)) => request = request.operation_name(name),
        Some(_) => return Err(bad("`operationName` must be a string")),
    }
    match variables {
        None | Some(Json::Null) => {}
        Some(v @ Json::Object(_)) => {
            request = request.variables(async_graphql::Variables::from_json(v));
        }
        Some(_) => return Err(bad("`variables` must be an object")),
    }
    match extensions {
        None | Some(Json::Null) | Some(Json::Object(_)) => {}
        Some(_) => return Err(bad("`extensions` must be an object")),
    }
    Ok(request)
}

async fn from_body(req: Request) -> Result<async_graphql::Request, Refusal> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if content_type != JSON {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the request as `application/json`".into(),
            ErrorCode::UnsupportedMediaType,
        ));
    }
    let limit = req
        .extensions()
        .get::<BodyLimit>()
        .map_or(1024 * 1024, |l| l.0);
    let bytes = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {limit} bytes"),
                ErrorCode::PayloadTooLarge,
            )
        })?;
    let Ok(Json::Object(mut body)) = serde_json::from_slice::<Json>(&bytes) else {
        return Err(bad("the body must be a JSON object"));
    };
    request_from(
        body.remove("query"),
        body.remove("operationName"),
        body.remove("variables"),
        body.remove("extensions"),
    )
}

fn from_query(query: Option<&str>) -> Result<async_graphql::Request, Refusal> {
    let params: HashMap<String, String> = match query {
        None => HashMap::new(),
        Some(q) => {
            let uri: axum::http::Uri = format!("/?{q}")
                .parse()
                .map_err(|_| bad("the query string is malformed"))?;
            axum::extract::Query::<HashMap<String, String>>::try_from_uri(&uri)
                .map_err(|_| bad("the query string is malformed"))?
                .0
        }
    };
    let json_param = |name: &str| -> Result<Option<Json>, Refusal> {
        params
            .get(name)
            .map(|v| serde_json::from_str(v).map_err(|_| bad(format!("`{name}` is not JSON"))))
            .transpose()
    };
    request_from(
        params.get("query").cloned().map(Json::String),
        params.get("operationName").cloned().map(Json::String),
        json_param("variables")?,
        json_param("extensions")?,
    )
}

/// `GET /graphql` and `POST /graphql`; a `GET` upgraded to a WebSocket.
pub async fn serve(
    State(state): State<AppState>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    req: Request,
) -> Response {
    let Some(graphql) = state.graphql.clone() else {
        return Problem::new(ErrorCode::NotFound, "GraphQL is not served here").into_response();
    };
    let principal = req
        .extensions()
        .get::<Caller>()
        .map_or_else(Principal::anonymous, |c| c.0.clone());
    let ip = client_ip(&req);
    match crate::realtime::ws::upgrade(upgrade, req.headers()) {
        Err(problem) => return problem.into_response(),
        Ok(Some(upgrade)) => {
            let offered = req.headers().contains_key(header::SEC_WEBSOCKET_PROTOCOL);
            return ws::open(state.clone(), graphql, principal, ip, offered, upgrade);
        }
        Ok(None) => {}
    }
    let graphql_response = wants_graphql_response(req.headers());
    let get = req.method() == Method::GET;
    let request = if get {
        from_query(req.uri().query())
    } else {
        from_body(req).await
    };
    let request = match request {
        Ok(r) => r,
        Err((status, message, code)) => return refuse(status, &message, code, graphql_response),
    };
    let mut outcome = graphql.execute(principal, ip, request, get).await;
    let body = match outcome.prepared.take() {
        Some(body) => body,
        None => execution_result_bytes(&outcome.response, !outcome.request_error),
    };
    let status = if outcome.mutation_refused {
        StatusCode::METHOD_NOT_ALLOWED
    } else if outcome.request_error && graphql_response {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut res = answer_bytes(status, body, graphql_response);
    if outcome.mutation_refused {
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
    }
    res
}
