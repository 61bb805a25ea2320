// The graphql-ws client (the reference implementation of `graphql-transport-ws`)
// running one operation against Keel's `/graphql`, driven by
// crates/keel/tests/api/graphql_subscriptions.rs.
//
//   node graphql_ws_client.mjs <ws url> <token or ""> <query> [variables as JSON]
//
// The token travels in the `connection_init` payload as `Authorization: Bearer …`.
// Each thing that happens is one JSON line on stdout:
//   {"type":"connected"}                 connection_ack received
//   {"type":"next","payload":{…}}        one execution result
//   {"type":"error","errors":[…]}        the operation failed (request error)
//   {"type":"complete"}                  the server completed the operation
//   {"type":"closed","code":…,"reason":…} the socket closed
// A line `close` on stdin (or its end) completes the operation, disposes of the
// client and exits 0.
import { createClient } from "graphql-ws";
import WebSocket from "ws";
import { createInterface } from "node:readline";

const [url, token, query, variables] = process.argv.slice(2);
if (!url || query === undefined) {
  console.error("usage: node graphql_ws_client.mjs <ws url> <token or \"\"> <query> [variables]");
  process.exit(2);
}

const say = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);
const client = createClient({
  url,
  webSocketImpl: WebSocket,
  lazy: false,
  retryAttempts: 0,
  connectionParams: token ? { Authorization: `Bearer ${token}` } : {},
  on: {
    connected: () => say({ type: "connected" }),
    closed: (e) => say({ type: "closed", code: e?.code, reason: e?.reason }),
  },
});

const stop = client.subscribe(
  { query, variables: variables ? JSON.parse(variables) : undefined },
  {
    next: (payload) => say({ type: "next", payload }),
    error: (errors) => {
      if (Array.isArray(errors)) say({ type: "error", errors });
      else say({ type: "error", errors: [{ message: String(errors?.reason ?? errors) }] });
    },
    complete: () => say({ type: "complete" }),
  },
);

let done = false;
const close = async () => {
  if (done) return;
  done = true;
  stop();
  await client.dispose();
  process.exit(0);
};
createInterface({ input: process.stdin }).on("line", (l) => {
  if (l.trim() === "close") close();
});
process.stdin.on("end", close);
