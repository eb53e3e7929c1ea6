/**
 * `npm run build` (after native/build.sh): bundles src/cli.ts, every command and the libraries they
 * use into dist/ with esbuild. The CLI stays one entry (`dist/cli.js`) and each command stays loaded
 * on demand (`import()` in src/cli.ts becomes a chunk of its own), so `pgha agent` still loads only
 * the agent's code.
 *
 * Why a bundle and not tsc's one file per module: a running agent keeps every module's source text
 * and records in its heap. Bundled, with whitespace and syntax minified and unused library code
 * (zod's locales, for one) left out, the agent's V8 heap is some 3 MB smaller (bench/README.md).
 * Identifiers are not shortened, so a stack trace still names the functions (esbuild renames only
 * the few that collide, `startStatusServer2`); `NODE_OPTIONS=--enable-source-maps` maps its
 * `dist/chunk-<hash>.js:line:column` back to src/ through the linked .map files. `npm run build`
 * type-checks first (tsc), since esbuild only strips the types.
 *
 * Bundled CommonJS code sees no `__dirname`: what needs it at run time, such as pino's transports
 * (worker threads started from a file) and `pino/file`, cannot be used from the bundle; pgha uses
 * neither. The libraries are inside dist/, their licences in dist/THIRD-PARTY-LICENSES.txt: the
 * package installs no dependencies, and an update of one reaches users with a pgha release.
 */
import { build, type Metafile } from 'esbuild';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

const root = join(import.meta.dirname, '..');
const outdir = join(root, 'dist');

const result = await build({
  absWorkingDir: root,
  entryPoints: ['src/cli.ts'],
  outdir,
  write: false,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: 'linked',
  sourcesContent: false,
  // Bundled CommonJS libraries (pg, pino, yaml, commander) call require() for Node's own modules.
  banner: {
    js: "import { createRequire as pghaCreateRequire } from 'node:module'; const require = pghaCreateRequire(import.meta.url);",
  },
  legalComments: 'linked',
  metafile: true,
  logLevel: 'warning',
});

/**
 * The libraries inside the bundle, with their licences: `dist/THIRD-PARTY-LICENSES.txt`. The
 * package installs no dependencies (the bundle holds all it runs), so this file is where their
 * copyright and licence notices travel.
 */
function thirdPartyLicenses(meta: Metafile): string {
  const dirs = new Set<string>();
  for (const input of Object.keys(meta.inputs)) {
    const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m) dirs.add(m[1]!);
  }
  const parts: string[] = [
    'pgha bundles these libraries into dist/. Each is used under its licence, given below.\n',
  ];
  const entries = [...dirs].map((dir) => {
    const pkg = JSON.parse(readFileSync(join(root, dir, 'package.json'), 'utf8')) as {
      name: string;
      version: string;
      license?: string;
      author?: string | { name?: string };
      homepage?: string;
    };
    return { dir, pkg };
  });
  // A plain code-unit order, the same on every machine (localeCompare follows the locale).
  const key = (e: (typeof entries)[number]) => `${e.pkg.name} ${e.pkg.version}`;
  entries.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  for (const { dir, pkg } of entries) {
    const author = typeof pkg.author === 'string' ? pkg.author : pkg.author?.name;
    const head = [
      `${pkg.name} ${pkg.version}`,
      `licence: ${pkg.license ?? 'not stated'}`,
      ...(author ? [`author: ${author}`] : []),
      ...(pkg.homepage ? [`home: ${pkg.homepage}`] : []),
    ];
    const files = readdirSync(join(root, dir)).filter((f) => /^(licen[cs]e|copying|notice)([.-]|$)/i.test(f));
    const texts = files.sort().map((f) => readFileSync(join(root, dir, f), 'utf8').trim());
    parts.push(
      `${'='.repeat(78)}\n${head.join('\n')}\n\n` +
        (texts.length > 0
          ? texts.join('\n\n')
          : `(the package ships no licence file; its package.json names the ${pkg.license ?? 'unstated'} licence)`) +
        '\n',
    );
  }
  return parts.join('\n');
}
const outputs: Array<{ path: string; contents: Uint8Array }> = [
  ...result.outputFiles,
  {
    path: join(outdir, 'THIRD-PARTY-LICENSES.txt'),
    contents: Buffer.from(thirdPartyLicenses(result.metafile)),
  },
];

// dist/ may be in use while it is rebuilt (`npm pack` builds on prepack while pgha runs): a file
// whose content is unchanged is left alone, a changed one is replaced in one rename, and files of
// an older build are removed only after the new ones are in place. Chunk names carry a hash of
// their content, so a process never reads half of an old build and half of a new one.
const wanted = new Set<string>();
// Chunks first, the entry (`cli.js`, whose name has no hash) last: a `pgha` started meanwhile
// finds every chunk the entry it reads imports.
const isEntry = (path: string) => Number(path.startsWith(join(outdir, 'cli.js'))); // and its .map
const entryLast = [...outputs].sort((a, b) => isEntry(a.path) - isEntry(b.path));
for (const file of entryLast) {
  wanted.add(file.path);
  if (existsSync(file.path) && readFileSync(file.path).equals(file.contents)) continue;
  mkdirSync(dirname(file.path), { recursive: true });
  const tmp = `${file.path}.${process.pid}.tmp`;
  writeFileSync(tmp, file.contents);
  renameSync(tmp, file.path);
}
/** Removes what the new build did not write; says whether `dir` is left empty. */
function prune(dir: string): boolean {
  let empty = true;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (prune(path)) rmSync(path, { recursive: true, force: true });
      else empty = false;
    } else if (wanted.has(path) || path.endsWith('.tmp'))
      empty = false; // .tmp: another build's
    else rmSync(path, { force: true });
  }
  return empty;
}
prune(outdir);
