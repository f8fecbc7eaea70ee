// graphql-http's own server audit (every MUST, SHOULD and MAY of the GraphQL-over-HTTP
// specification it checks) against a running server: `node graphql-audit.mjs URL`. Prints each
// audit's name and result; exits non-zero when any MUST or SHOULD fails.
import { serverAudits } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node graphql-audit.mjs http://host:port/graphql');
  process.exit(2);
}

let failed = 0;
for (const audit of serverAudits({ url })) {
  const result = await audit.fn();
  const required = audit.name.startsWith('MUST') || audit.name.startsWith('SHOULD');
  const mark = result.status === 'ok' ? 'ok' : required ? 'FAIL' : 'warn';
  console.log(`${mark} ${audit.id} ${audit.name}${result.status === 'ok' ? '' : `: ${result.reason}`}`);
  if (result.status !== 'ok' && required) {
    failed += 1;
  }
}
console.log(`${failed} required audits failed`);
process.exit(failed === 0 ? 0 : 1);
