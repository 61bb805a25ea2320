// A browser-compatible EventSource (npm `eventsource`) following Keel's
// `GET /v1/realtime`, driven by crates/keel/tests/api/realtime_clients.rs.
//
//   node eventsource_client.mjs <url> <event type>...
//
// The URL carries everything a browser would put there (`collections=`,
// `access_token=`, optionally `since=`): EventSource cannot send headers. The
// library reconnects on its own when the connection drops, sending `Last-Event-ID`.
// Each thing that happens is one JSON line on stdout:
//   {"type":"open"}                      the stream is open (again)
//   {"type":"event","event":…,"id":…,"data":…}
//   {"type":"error"}                     the connection dropped (it will reconnect)
//   {"type":"closed","last_event_id":…}  after `close` on stdin: closed by the client
// A line `close` on stdin (or its end) closes the EventSource and exits 0.
import { EventSource } from "eventsource";
import { createInterface } from "node:readline";

const [url, ...types] = process.argv.slice(2);
if (!url || types.length === 0) {
  console.error("usage: node eventsource_client.mjs <url> <event type>...");
  process.exit(2);
}

const say = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);
let last = null;
const es = new EventSource(url);
es.onopen = () => say({ type: "open" });
es.onerror = () => say({ type: "error", ready_state: es.readyState });
// Named events reach only listeners of their name (`onmessage` gets unnamed ones).
for (const name of types) {
  es.addEventListener(name, (e) => {
    last = e.lastEventId || last;
    let data;
    try {
      data = JSON.parse(e.data);
    } catch {
      data = e.data;
    }
    say({ type: "event", event: e.type, id: e.lastEventId, data });
  });
}

let done = false;
const close = () => {
  if (done) return;
  done = true;
  es.close();
  say({ type: "closed", last_event_id: last });
  process.exit(0);
};
const input = createInterface({ input: process.stdin });
input.on("line", (line) => {
  if (line.trim() === "close") close();
});
input.on("close", close);
