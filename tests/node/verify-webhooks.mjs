// Verifies webhook deliveries with the `standardwebhooks` npm package (the specification's own
// JavaScript implementation), independent of the Rust code that signed them.
//
// Usage: node tests/node/verify-webhooks.mjs deliveries.json
// The file holds [{ secret, id, timestamp, signature, body }]. Each must verify; each must also
// fail once its body is altered, so a verifier that accepts anything cannot pass. Prints
// "verified N" and exits non-zero on the first failure.
import { readFileSync } from "node:fs";
import { Webhook } from "standardwebhooks";

const deliveries = JSON.parse(readFileSync(process.argv[2], "utf8"));
let verified = 0;
for (const d of deliveries) {
  const headers = {
    "webhook-id": d.id,
    "webhook-timestamp": d.timestamp,
    "webhook-signature": d.signature,
  };
  const wh = new Webhook(d.secret);
  const payload = wh.verify(d.body, headers);
  if (typeof payload !== "object" || payload === null || !payload.type) {
    console.error(`delivery ${d.id}: verified but the payload has no type`);
    process.exit(1);
  }
  let tamperedAccepted = true;
  try {
    wh.verify(d.body + " ", headers);
  } catch {
    tamperedAccepted = false;
  }
  if (tamperedAccepted) {
    console.error(`delivery ${d.id}: an altered body verified`);
    process.exit(1);
  }
  verified += 1;
}
console.log(`verified ${verified}`);
