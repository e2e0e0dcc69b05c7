// A live subscriber resuming from lastEventId over WebSocket (the typed client), reading until it
// has seen `count` events. Prints { events, seconds }.
// usage: node bench/responsiveness/replayer.mjs BASE_URL LAST_EVENT_ID COUNT
import { createCoordinationClient } from "../../dist/client/index.js";

const [base, lastEventId, countArg] = process.argv.slice(2);
const count = Number(countArg);
const client = createCoordinationClient({ url: base });
const started = performance.now();
let seen = 0;
await new Promise((resolve, reject) => {
  const sub = client.api.events.onEvent.subscribe(
    { lastEventId },
    {
      onData: () => {
        if (++seen === count) {
          sub.unsubscribe();
          resolve();
        }
      },
      onError: reject,
    },
  );
});
console.log(JSON.stringify({ events: seen, seconds: Math.round((performance.now() - started) / 100) / 10 }));
await client.close();
