// graphql-http's server audit (the GraphQL-over-HTTP spec's checks) against Keel's
// `/graphql`, driven by crates/keel/tests/api/graphql.rs.
//
//   node graphql_http_audit.mjs <http url of /graphql>
//
// Prints one JSON line per audit ({"id","name","status","reason"}) and exits 1 when a
// MUST audit fails (SHOULD and MAY audits are reported, not enforced).
import { auditServer } from "graphql-http";

const [url] = process.argv.slice(2);
if (!url) {
  console.error("usage: node graphql_http_audit.mjs <url>");
  process.exit(2);
}
const results = await auditServer({ url });
let failed = 0;
for (const r of results) {
  const line = { id: r.id, name: r.name, status: r.status };
  if (r.status !== "ok") line.reason = r.reason;
  console.log(JSON.stringify(line));
  if (r.status === "error" && r.name.startsWith("MUST")) failed += 1;
}
console.log(JSON.stringify({ audits: results.length, must_failed: failed }));
process.exit(failed ? 1 : 0);
