// Runs the graphql-http server audits against the URL given as the first argument and
// prints their results as one JSON array: [{id, name, status, reason}].
import { createRequire } from "node:module";

const require = createRequire(process.env.GRAPHQL_HTTP_DIR + "/");
const { serverAudits } = require("graphql-http");

const results = [];
for (const audit of serverAudits({ url: process.argv[2], fetchFn: fetch })) {
  const result = await audit.fn();
  results.push({ id: audit.id, name: audit.name, status: result.status, reason: result.reason ?? "" });
}
console.log(JSON.stringify(results));
