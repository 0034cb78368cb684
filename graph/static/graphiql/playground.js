/*
 * Conduit GraphQL playground bootstrap.
 *
 * The same behaviour as Strawberry's own GraphiQL page (strawberry/static/graphiql.html),
 * moved out of an inline <script> so the page works under a strict Content-Security-Policy
 * (script-src 'self'; style-src 'self'), with every asset served by the app from
 * /static/graphiql/ (see VERSIONS.txt there; no CDN).
 *
 * Globals expected (loaded before this file by graphiql.html):
 *   React, ReactDOM, Cookies (js-cookie), GraphiQL, GraphiQLPluginExplorer
 */
(function () {
  "use strict";

  var GRAPHQL_PATH = "/graphql";

  var DEFAULT_QUERY = [
    "# Welcome to the Conduit GraphQL playground.",
    "#",
    "# Run a query: Ctrl-Enter or the play button.",
    "# Autocomplete: Ctrl-Space (or start typing).",
    "# Explorer: the folder icon on the left builds",
    "# queries by clicking through the schema.",
    "#",
    "# Signed in: in the Headers tab below, set",
    '#   {"Authorization": "Bearer <token>"}',
    "# (kept in this browser, used by subscriptions).",
    "",
    "{",
    "  articles(first: 5) {",
    "    edges {",
    "      node {",
    "        slug",
    "        title",
    "        author {",
    "          username",
    "        }",
    "      }",
    "    }",
    "  }",
    "}",
    "",
  ].join("\n");

  // Parse URL parameters for sharing queries (?q=...&variables=...).
  var parameters = {};
  window.location.search
    .slice(1)
    .split("&")
    .forEach(function (entry) {
      var eq = entry.indexOf("=");
      if (eq >= 0) {
        try {
          parameters[decodeURIComponent(entry.slice(0, eq))] = decodeURIComponent(
            entry.slice(eq + 1),
          );
        } catch (e) {
          // ignore a malformed parameter rather than failing to start
        }
      }
    });

  function updateURL(data) {
    Object.assign(parameters, data);
    var newSearch =
      "?" +
      Object.keys(parameters)
        .filter(function (key) {
          return Boolean(parameters[key]);
        })
        .map(function (key) {
          return encodeURIComponent(key) + "=" + encodeURIComponent(parameters[key]);
        })
        .join("&");
    history.replaceState(null, "", newSearch === "?" ? window.location.pathname : newSearch);
  }

  // Same-origin endpoint, whatever path this page itself was served at.
  var fetchURL = window.location.origin + GRAPHQL_PATH;
  var subscriptionUrl =
    (window.location.protocol === "https:" ? "wss:" : "ws:") +
    "//" +
    window.location.host +
    GRAPHQL_PATH;

  // As Strawberry's page: forward a CSRF cookie, if a framework in front of us set one.
  var defaultHeaders = {};
  var csrfToken = window.Cookies ? window.Cookies.get("csrftoken") : undefined;
  if (csrfToken) {
    defaultHeaders["x-csrftoken"] = csrfToken;
  }

  // HTTP for queries and mutations; subscriptions over WebSocket with the
  // graphql-transport-ws protocol (GraphiQL's bundled graphql-ws client). Headers typed into
  // the Headers editor are sent with every HTTP request and as WebSocket connectionParams.
  var baseFetcher = GraphiQL.createFetcher({
    url: fetchURL,
    headers: defaultHeaders,
    subscriptionUrl: subscriptionUrl,
  });

  // GraphiQL 3 works out the operation name and document AST of the query editor in a
  // 100 ms debounced change handler, but reads the query text itself fresh when Run is
  // pressed. Run within 100 ms of the last keystroke (a fast typist, or a browser test) and
  // the request pairs the new text with the old operation name: replacing
  // "query HomePage {...}" by "{ __typename }" sent operationName "HomePage", and the
  // server answered "Unknown operation named 'HomePage'". The AST also decides whether a
  // request goes over WebSocket (subscription) or HTTP. So re-parse the text being sent:
  // keep the operation name when the document defines it, otherwise, with exactly one
  // operation in the document, use that operation's name (none for an anonymous one).
  function freshenOperation(graphQLParams, fetcherOpts) {
    var graphql = GraphiQL.GraphQL;
    if (!graphQLParams || typeof graphQLParams.query !== "string" || !graphql || !graphql.parse) {
      return [graphQLParams, fetcherOpts];
    }
    var documentAST;
    try {
      documentAST = graphql.parse(graphQLParams.query);
    } catch (e) {
      return [graphQLParams, fetcherOpts]; // let the server report the syntax error
    }
    var operations = documentAST.definitions.filter(function (d) {
      return d.kind === "OperationDefinition";
    });
    var name = graphQLParams.operationName;
    var known = operations.some(function (op) {
      return op.name && op.name.value === name;
    });
    var params = graphQLParams;
    if (!known && operations.length === 1) {
      params = Object.assign({}, graphQLParams, {
        operationName: operations[0].name ? operations[0].name.value : undefined,
      });
    }
    return [params, Object.assign({}, fetcherOpts, { documentAST: documentAST })];
  }

  function fetcher(graphQLParams, fetcherOpts) {
    var fresh = freshenOperation(graphQLParams, fetcherOpts);
    return baseFetcher(fresh[0], fresh[1]);
  }

  var explorerPlugin = GraphiQLPluginExplorer.explorerPlugin();

  function ConduitPlayground() {
    var queryState = React.useState(parameters.q || DEFAULT_QUERY);
    var variablesState = React.useState(parameters.variables);
    var headersState = React.useState(undefined);

    function onEditQuery(newQuery) {
      queryState[1](newQuery);
      updateURL({ q: newQuery });
    }

    function onEditVariables(newVariables) {
      variablesState[1](newVariables);
      updateURL({ variables: newVariables });
    }

    function onEditHeaders(newHeaders) {
      // Not put in the URL: headers usually carry a token.
      headersState[1](newHeaders);
    }

    return React.createElement(GraphiQL, {
      fetcher: fetcher,
      // open the editor tools on the Headers tab so the Authorization header is easy to set
      defaultEditorToolsVisibility: parameters.variables ? "variables" : "headers",
      plugins: [explorerPlugin],
      query: queryState[0],
      variables: variablesState[0],
      headers: headersState[0],
      onEditQuery: onEditQuery,
      onEditVariables: onEditVariables,
      onEditHeaders: onEditHeaders,
      inputValueDeprecation: true,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
    });
  }

  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(React.createElement(ConduitPlayground));
})();
