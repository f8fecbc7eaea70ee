// Prints the standard introspection query that GraphiQL and graphql-js tools send, from the
// pinned `graphql` package, so a test can post exactly what those clients post.
import { getIntrospectionQuery } from "graphql";

process.stdout.write(
  getIntrospectionQuery({ descriptions: true, inputValueDeprecation: true }),
);
