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
