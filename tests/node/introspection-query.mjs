// Prints graphql-js's standard introspection query, as GraphiQL, code generators and other
// client tools send it.
import { getIntrospectionQuery } from 'graphql';

process.stdout.write(getIntrospectionQuery({ descriptions: true, inputValueDeprecation: true }));
