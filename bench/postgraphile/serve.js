// The benchmark's peer: PostGraphile 4 over the same seeded PostgreSQL database Groundswell
// serves, with the options PostGraphile's documentation recommends for production. Started by
// `groundswell-bench run` (bench/src/peer.rs); not part of Groundswell.
//
//   DATABASE_URL=postgres://… [PORT=0] [POOL=10] [WORKERS=2] node serve.js
//
// It first applies peer.sql (the few SQL functions a PostGraphile team would write so that its
// schema can answer the benchmark's pages), then serves POST /graphql on 127.0.0.1:PORT (0 for
// any free port) with WORKERS processes sharing the port, as a production deployment on this
// many cores would. When every worker is listening it prints one line,
// `listening on http://127.0.0.1:PORT/graphql`, and the benchmark starts measuring.
//
// A bearer token names the caller as Groundswell's sessions do: its SHA-256 (hex) is handed to
// PostgreSQL as the setting `bench.token_hash`, which the viewer's computed column reads.
"use strict";

const cluster = require("node:cluster");
const crypto = require("node:crypto");
const fs = require("node:fs");
const http = require("node:http");
const os = require("node:os");
const path = require("node:path");
const { Pool } = require("pg");
const { postgraphile } = require("postgraphile");

const databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl) {
  console.error("serve.js: DATABASE_URL is not set");
  process.exit(2);
}
const port = Number(process.env.PORT || 0);
const poolSize = Number(process.env.POOL || 10);
const workers = Math.max(1, Number(process.env.WORKERS || os.availableParallelism()));

async function applyFunctions() {
  const pool = new Pool({ connectionString: databaseUrl, max: 1 });
  try {
    await pool.query(fs.readFileSync(path.join(__dirname, "peer.sql"), "utf8"));
  } finally {
    await pool.end();
  }
}

function pgSettings(req) {
  const header = req.headers.authorization || "";
  const match = /^Bearer (.+)$/.exec(header);
  if (!match) {
    // No settings: PostGraphile then runs the query without a transaction of its own.
    return {};
  }
  return {
    "bench.token_hash": crypto.createHash("sha256").update(match[1]).digest("hex"),
  };
}

function serve() {
  // Each worker has its own pool, so the database sees WORKERS × POOL connections at most.
  const pgPool = new Pool({ connectionString: databaseUrl, max: poolSize });
  const middleware = postgraphile(pgPool, "public", {
    // Production options, as PostGraphile's "Recommended options" lists them.
    disableQueryLog: true,
    watchPg: false,
    graphiql: false,
    enhanceGraphiql: false,
    dynamicJson: true,
    setofFunctionsContainNulls: false,
    ignoreRBAC: false,
    extendedErrors: ["errcode"],
    showErrorStack: false,
    retryOnInitFail: false,
    legacyRelations: "omit",
    disableDefaultMutations: true,
    pgSettings,
  });
  const server = http.createServer(middleware);
  server.keepAliveTimeout = 60_000;
  server.listen(port, "127.0.0.1");
}

function stopWorkers() {
  for (const worker of Object.values(cluster.workers || {})) {
    worker.process.kill("SIGTERM");
  }
  process.exit(0);
}

if (cluster.isPrimary) {
  applyFunctions()
    .then(() => {
      let listening = 0;
      cluster.on("listening", (_worker, address) => {
        listening += 1;
        if (listening === workers) {
          console.log(`listening on http://127.0.0.1:${address.port}/graphql`);
        }
      });
      cluster.on("exit", (_worker, code, signal) => {
        if (signal !== "SIGTERM") {
          console.error(`serve.js: a worker stopped (${signal || code})`);
          stopWorkers();
        }
      });
      process.on("SIGTERM", stopWorkers);
      process.on("SIGINT", stopWorkers);
      for (let i = 0; i < workers; i += 1) {
        cluster.fork();
      }
    })
    .catch((err) => {
      console.error(`serve.js: ${err.stack || err}`);
      process.exit(1);
    });
} else {
  // A worker whose primary is gone stops too.
  process.on("disconnect", () => process.exit(0));
  serve();
}
