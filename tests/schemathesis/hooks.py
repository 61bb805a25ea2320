"""Schemathesis strategies for the parameters whose valid values a JSON Schema
cannot describe. Each is a real generator of valid values, so the positive-data
checks stay meaningful:

- keel-filter: expressions of Keel's filter language over the system fields every
  collection has (id, created_at, version), combined with &&, || and !;
- keel-cursor: a cursor is only valid if the server signed it, so none is sent
  (an empty cursor means "the first page");
- keel-idempotency-key: a fresh UUID per request, as the header's contract asks;
- keel-etag: `*` (any version); stale ETags answer 412, tested in the Rust suite.
"""

import schemathesis
from hypothesis import strategies as st

_version = st.integers(min_value=-3, max_value=5).map(lambda n: f"version >= {n}")
_id = st.uuids().map(lambda u: f'id != "{u}"')
_when = st.datetimes().map(lambda d: f'created_at < "{d.isoformat()}Z"')
_null = st.sampled_from(["id != null", "created_at == null"])
_atom = st.one_of(_version, _id, _when, _null)
_filter = st.recursive(
    _atom,
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from([" && ", " || "]), inner).map(
            lambda t: f"({t[0]}{t[1]}{t[2]})"
        ),
        inner.map(lambda e: f"!({e})"),
    ),
    max_leaves=4,
)

schemathesis.openapi.format("keel-filter", _filter)
schemathesis.openapi.format("keel-cursor", st.just(""))
schemathesis.openapi.format("keel-idempotency-key", st.uuids().map(str))
schemathesis.openapi.format("keel-etag", st.just("*"))


# Keel's error codes (`extensions.code` on GraphQL errors, the problem `type` slug on
# REST): a refused request carries one of these; `internal` is a failure.
KEEL_CODES = {
    "malformed-request", "invalid-parameter", "unauthorized", "forbidden", "not-found",
    "method-not-allowed", "timeout", "conflict", "precondition-failed", "payload-too-large",
    "unsupported-media-type", "validation", "idempotency-key-reused", "rate-limited",
}


@schemathesis.check
def keel_never_fails_inside(ctx, response, case):
    """No 5xx; on /graphql, every error carries one of Keel's client-side codes (so
    an expected refusal — sign in, not found, validation — is not a failure, while a
    resolver that failed, `internal`, or an uncoded error is)."""
    if response.status_code >= 500:
        raise AssertionError(f"{response.status_code} from the server")
    url = str(getattr(getattr(response, "request", None), "url", ""))
    if not url.split("?")[0].endswith("/graphql"):
        return
    try:
        body = response.json()
    except ValueError as e:
        raise AssertionError("a GraphQL answer that is not JSON") from e
    for error in (body.get("errors") or []) if isinstance(body, dict) else []:
        code = (error.get("extensions") or {}).get("code")
        if code not in KEEL_CODES:
            raise AssertionError(f"GraphQL error with code {code!r}: {error.get('message')}")
