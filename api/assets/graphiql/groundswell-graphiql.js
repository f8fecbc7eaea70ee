// Starts GraphiQL on Groundswell's own /graphql (and /graphql/ws for subscriptions). A file, not
// an inline script, so the page's Content-Security-Policy can forbid inline scripts entirely.
(function () {
  'use strict';
  var wsScheme = window.location.protocol === 'https:' ? 'wss://' : 'ws://';
  var fetcher = GraphiQL.createFetcher({
    url: window.location.origin + '/graphql',
    subscriptionUrl: wsScheme + window.location.host + '/graphql/ws',
  });
  var params = new URLSearchParams(window.location.search);
  var props = { fetcher: fetcher, defaultEditorToolsVisibility: true };
  if (params.get('query')) props.query = params.get('query');
  if (params.get('variables')) props.variables = params.get('variables');
  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(React.createElement(GraphiQL, props));
})();
