// graphql-js checks of Keel's GraphQL schema, driven by the Rust tests:
//
//   node graphql_schema_check.mjs sdl <schema.graphql>...
//       buildSchema + validateSchema on each file (what `keel design` writes)
//   node graphql_schema_check.mjs served <http url of /graphql> [<schema.graphql>]
//       the standard introspection query against the server, buildClientSchema +
//       validateSchema on the result; with a file, the served schema must print the
//       same as the file's
//
// Prints one JSON line ({"ok":true,"types":n} or {"ok":false,"errors":[…]}) per
// schema and exits 1 when any check fails.
import {
  buildClientSchema,
  buildSchema,
  getIntrospectionQuery,
  lexicographicSortSchema,
  printSchema,
  validateSchema,
} from "graphql";
import { readFileSync } from "node:fs";

const [mode, ...args] = process.argv.slice(2);
let failed = false;
const report = (what, schema, extra = []) => {
  const errors = [...validateSchema(schema).map((e) => e.message), ...extra];
  failed ||= errors.length > 0;
  const types = Object.keys(schema.getTypeMap()).filter((n) => !n.startsWith("__")).length;
  console.log(JSON.stringify(errors.length ? { what, ok: false, errors } : { what, ok: true, types }));
};
const canonical = (schema) => printSchema(lexicographicSortSchema(schema));

try {
  if (mode === "sdl") {
    for (const file of args) report(file, buildSchema(readFileSync(file, "utf8")));
  } else if (mode === "served") {
    const [url, file] = args;
    const res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/graphql-response+json" },
      body: JSON.stringify({ query: getIntrospectionQuery() }),
    });
    const body = await res.json();
    if (res.status !== 200 || body.errors) throw new Error(`introspection: ${res.status} ${JSON.stringify(body.errors)}`);
    const served = buildClientSchema(body.data);
    const extra = [];
    if (file && canonical(served) !== canonical(buildSchema(readFileSync(file, "utf8")))) {
      extra.push(`the served schema differs from ${file}`);
    }
    report(url, served, extra);
  } else {
    console.error("usage: node graphql_schema_check.mjs sdl <file>... | served <url> [<file>]");
    process.exit(2);
  }
} catch (e) {
  console.log(JSON.stringify({ ok: false, errors: [String(e?.message ?? e)] }));
  process.exit(1);
}
process.exit(failed ? 1 : 0);
