// Builds the GraphQL reference (SpectaQL, with the theme in ./theme) and copies Redoc's standalone
// bundle for the REST reference. Run by `conduit docs build` (graph/docs.py), which installs
// package-lock.json into MODULES first and moves OUT into place afterwards:
//   node docs/build.mjs --modules DIR --schema schema.graphql --examples examples/operations \
//        --out DIR --redoc DIR
// The output is deterministic: SpectaQL picks its example values with Math.random, which is
// seeded here, so the same schema and examples give byte-identical files (the committed site is
// checked against a fresh build by tests/test_docs_site.py).
import { createRequire } from 'node:module';
import { copyFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    modules: { type: 'string' },
    schema: { type: 'string' },
    examples: { type: 'string' },
    out: { type: 'string' },
    redoc: { type: 'string' },
  },
});
for (const name of ['modules', 'schema', 'examples', 'out', 'redoc']) {
  if (!args[name]) {
    console.error(`build.mjs: --${name} is required`);
    process.exit(2);
  }
}

// mulberry32: a small seeded generator, so every build draws the same "random" example values
let seed = 0x5eed;
Math.random = () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};

const require = createRequire(join(resolve(args.modules), 'package.json'));
const spectaql = require('spectaql');
// SpectaQL's Markdown renderer, highlighting GraphQL as its own examples are
const { markdown } = require('spectaql/dist/lib/common');

// Each example operation as an introduction item: its leading comment as the text, the code
// highlighted into x-code (theme/views/.../introduction/item.hbs). The code's line breaks are
// written as &#10;: Handlebars indents every line a partial outputs, which would shift the code.
function exampleItems(folder) {
  const files = readdirSync(folder).filter((name) => name.endsWith('.graphql')).sort();
  return files.map((name) => {
    const lines = readFileSync(join(folder, name), 'utf8').split('\n');
    const comment = [];
    while (lines.length && lines[0].startsWith('#')) comment.push(lines.shift().replace(/^#\s?/, ''));
    const code = lines.join('\n').trim();
    const operations = [...code.matchAll(/^(query|mutation|subscription)\s+(\w+)/gm)].map((m) => m[2]);
    // "The home page: the global feed..." is titled "Example: the home page"
    const lead = comment.join(' ').split(/[:.]/)[0].trim() || basename(name, '.graphql');
    const names = operations.map((operation) => `\`${operation}\``).join(', ');
    return {
      title: `Example: ${lead.charAt(0).toLowerCase()}${lead.slice(1)}`,
      description:
        `${comment.join(' ')}\n\nOperations: ${names}. From \`examples/operations/${name}\`, ` +
        'checked against the schema by the test suite.',
      'x-code': markdown(`\`\`\`graphql\n${code}\n\`\`\``).trim().replaceAll('\n', '&#10;'),
    };
  });
}

// SpectaQL's options as its YAML file would hold them, passed as data: a file would have
// "$name" in the examples replaced by environment variables
const specData = {
  introspection: {
    schemaFile: resolve(args.schema),
    fieldExpansionDepth: 2,
    // every type, even one no field reaches (the reference lists the whole schema)
    hideUnusedTypes: false,
  },
  extensions: { graphqlScalarExamples: true },
  info: {
    title: 'Conduit GraphQL API',
    description:
      'The reference of every query, mutation, subscription and type of the Conduit GraphQL API, ' +
      'generated from its schema (`schema.graphql`) by `conduit docs build`. Send operations to ' +
      '`POST /graphql` (GraphQL over HTTP) or over a WebSocket at `/graphql` (graphql-transport-ws); ' +
      'sign in with `Authorization: Bearer <token>` from the `login` or `register` mutation. ' +
      'Try operations in the playground at `/graphql`; the REST API has its own reference at `/api/docs`.\n\n' +
      'Search with the box at the top of the menu (press `/` to focus it).',
    'x-introItems': exampleItems(args.examples),
  },
  servers: [{ url: 'http://localhost:8000/graphql', description: '`conduit serve` on this machine', production: true }],
};

await spectaql.run({
  specData,
  targetDir: resolve(args.out),
  themeDir: join(HERE, 'theme'),
  oneFile: false,
  embeddable: false,
  quiet: true,
});
// Redoc's bundle with its licence texts (the bundle's banner names the LICENSE.txt beside it)
// Its one load from another origin, the Redocly logo beside "API docs by Redocly", becomes an
// image that fails at once (the component then hides it): the page loads nothing from elsewhere.
const bundle = require.resolve('redoc/bundles/redoc.standalone.js');
const LOGO = 'src:"https://cdn.redoc.ly/redoc/logo-mini.svg"';
const code = readFileSync(bundle, 'utf8');
if (code.split(LOGO).length !== 2) throw new Error(`${bundle}: expected ${LOGO} once; check the upgrade`);
writeFileSync(join(resolve(args.redoc), 'redoc.standalone.js'), code.replace(LOGO, 'src:"data:,"'));
copyFileSync(`${bundle}.LICENSE.txt`, join(resolve(args.redoc), 'redoc.standalone.js.LICENSE.txt'));
copyFileSync(join(dirname(require.resolve('redoc/package.json')), 'LICENSE'), join(resolve(args.redoc), 'LICENSE.redoc'));
console.log(`built ${resolve(args.out)} and ${resolve(args.redoc)}`);
