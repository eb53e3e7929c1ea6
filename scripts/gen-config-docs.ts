/**
 * Writes docs/configuration.md from the zod schema in src/config/schema.ts: every key of the YAML
 * file and of the dynamic configuration, with its type, default, whether it is required and its
 * description (`.describe()` in the schema), plus the `PATRONI_*` environment variables and the
 * Patroni keys pgha does not act on (from the table in src/config/keys.ts), which also fill the
 * generated part of docs/migration-from-patroni.md. `npm run docs:config` rewrites both files; `--check`
 * only says whether they are current (test/packaging/config-docs.test.ts runs the same comparison).
 */
import { RULES } from '../src/ha/decide.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { format, resolveConfig } from 'prettier';
import { z } from 'zod';
import { DYNAMIC_KEYS, LOCAL_KEYS, type KeyRow } from '../src/config/keys.js';
import { applyEnvOverrides } from '../src/config/load.js';
import { dynamicConfigSchema, errorMap, fileSchema, formatPath } from '../src/config/schema.js';

/** Where the generated reference lives. */
export const CONFIG_DOCS = join(import.meta.dirname, '..', 'docs', 'configuration.md');
/** The migration guide, whose list of keys pgha does not act on is generated between two markers. */
export const MIGRATION_DOCS = join(import.meta.dirname, '..', 'docs', 'migration-from-patroni.md');
const BEGIN = '<!-- begin: generated from src/config/keys.ts by `npm run docs:config` -->';
const END = '<!-- end: generated -->';

/** The subset of JSON Schema that `z.toJSONSchema` produces for this schema. */
interface JsonSchema {
  type?: string | string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
  const?: unknown;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  minItems?: number;
  properties?: Record<string, JsonSchema>;
  additionalProperties?: JsonSchema | boolean;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
}

interface Row {
  key: string;
  type: string;
  default: string;
  required: boolean;
  description: string;
}

const MAX_SAFE = Number.MAX_SAFE_INTEGER;
/** Keys parsed from `host:port` text into hosts and a port; JSON Schema cannot show that. */
const HOST_PORT_KEY = /(^|\.)(listen|replica_listen|status_listen)$/;

function jsonSchema(schema: z.ZodType): JsonSchema {
  // Output types: the values after pgha's coercions ("on" → true, "16MB" → bytes), with defaults.
  return z.toJSONSchema(schema, { io: 'output', unrepresentable: 'any' }) as JsonSchema;
}

/** A value as YAML would show it: `30`, `true`, `/service/`, `0.0.0.0:5433`, `[basebackup]`. */
function yamlValue(v: unknown): string {
  if (v === undefined) return '';
  if (v !== null && typeof v === 'object' && 'hosts' in v && 'port' in v) {
    const l = v as { hosts: string[]; port: number };
    return `${l.hosts.join(',')}:${l.port}`;
  }
  if (Array.isArray(v)) return `[${v.map(yamlValue).join(', ')}]`;
  if (v !== null && typeof v === 'object') return Object.keys(v).length === 0 ? '{}' : JSON.stringify(v);
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function typeName(s: JsonSchema, key: string): string {
  if (HOST_PORT_KEY.test(key) && !s.type) return 'host:port';
  if (s.enum) return s.enum.map((v) => `\`${yamlValue(v)}\``).join(', ');
  if (s.anyOf) return s.anyOf.map((a) => typeName(a, key)).join(' or ');
  if (s.const !== undefined) return `\`${yamlValue(s.const)}\``;
  const t = Array.isArray(s.type) ? s.type.join(' or ') : s.type;
  const bounds: string[] = [];
  if (s.minimum !== undefined && s.minimum > -MAX_SAFE) bounds.push(`≥ ${s.minimum}`);
  if (s.maximum !== undefined && s.maximum < MAX_SAFE) bounds.push(`≤ ${s.maximum}`);
  const suffix = bounds.length ? ` ${bounds.join(', ')}` : '';
  switch (t) {
    case 'integer':
      return `integer${suffix}`;
    case 'number':
      return `number${suffix}`;
    case 'string':
      return 'text';
    case 'boolean':
      return 'boolean';
    case 'array':
      return s.items ? `list of ${typeName(s.items, key)}` : 'list';
    case 'object':
      if (s.properties) return 'mapping';
      if (s.additionalProperties && typeof s.additionalProperties === 'object') {
        const inner = typeName(s.additionalProperties, key);
        return inner === 'any' ? 'mapping' : `mapping of name → ${inner}`;
      }
      return 'mapping';
    default:
      return t ?? 'any';
  }
}

/** Keys an empty file lacks: the schema's own "required" answers, as `load.ts` reports them. */
function requiredKeys(schema: z.ZodType, input: unknown): Set<string> {
  const res = schema.safeParse(input, { error: errorMap });
  const out = new Set<string>();
  if (!res.success)
    for (const i of res.error.issues) if (i.message === 'required') out.add(formatPath(i.path));
  return out;
}

/** One row per key, depth first; sections become a row followed by their own keys. */
function rows(s: JsonSchema, prefix: string, required: Set<string>): Row[] {
  const out: Row[] = [];
  for (const [name, prop] of Object.entries(s.properties ?? {})) {
    const key = prefix ? `${prefix}.${name}` : name;
    out.push({
      key,
      type: typeName(prop, key),
      default: yamlValue(prop.default),
      required: required.has(key),
      description: prop.description ?? '',
    });
    if (prop.properties) out.push(...rows(prop, key, required));
  }
  return out;
}

function cell(text: string): string {
  // Outside code spans, < and > would be read as HTML; inside them they show as written.
  return text
    .split('`')
    .map((part, i) => (i % 2 === 1 ? part : part.replace(/</g, '&lt;').replace(/>/g, '&gt;')))
    .join('`')
    .replace(/\|/g, '\\|')
    .replace(/\n/g, ' ');
}

function table(list: Row[]): string {
  const lines = ['| Key | Type | Default | Description |', '| --- | --- | --- | --- |'];
  for (const r of list) {
    const def = r.default === '' ? (r.required ? '**required**' : '') : `\`${cell(r.default)}\``;
    lines.push(`| \`${r.key}\` | ${cell(r.type)} | ${def} | ${cell(r.description)} |`);
  }
  return lines.join('\n');
}

/** `PATRONI_*` variables and the key each sets, found by letting `applyEnvOverrides` fill a file. */
function envVariables(): Array<{ name: string; key: string }> {
  // Every variable the loader reads answers with its own name; the keys it fills say where it goes.
  const env = new Proxy<NodeJS.ProcessEnv>(
    {},
    {
      get: (_t, name) => (typeof name === 'string' && name.startsWith('PATRONI_') ? `$${name}` : undefined),
    },
  );
  const filled = applyEnvOverrides({}, env);
  const out: Array<{ name: string; key: string }> = [];
  const walk = (v: unknown, path: string[]) => {
    if (typeof v === 'string' && v.startsWith('$PATRONI_'))
      out.push({ name: v.slice(1), key: path.join('.') });
    else if (Array.isArray(v)) v.forEach((x) => walk(x, path));
    else if (v !== null && typeof v === 'object')
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) walk(x, [...path, k]);
  };
  walk(filled, []);
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/** The whole of docs/configuration.md, formatted as Prettier formats it (the lint checks it too). */
export async function renderConfigDocs(): Promise<string> {
  const options = (await resolveConfig(CONFIG_DOCS)) ?? {};
  return format(markdown(), { ...options, parser: 'markdown' });
}

function markdown(): string {
  const file = jsonSchema(fileSchema);
  const fileRows = rows(file, '', requiredKeys(fileSchema, {}));
  const top = fileRows.filter((r) => !r.key.includes('.') && !file.properties?.[r.key]?.properties);
  const sections = Object.entries(file.properties ?? {}).filter(([, p]) => p.properties);
  const dynamic = rows(jsonSchema(dynamicConfigSchema), '', new Set());
  const env = envVariables();

  const parts: string[] = [
    '# Configuration reference',
    '',
    '<!-- Generated from src/config/schema.ts by `npm run docs:config`; edit the schema, not this file. -->',
    '',
    "pgha reads Patroni's YAML: the same file (`pgha agent /etc/patroni/config.yml`), the same keys, the",
    'same `PATRONI_*` environment variables. Values are taken the way Patroni takes them: `on`/`yes`/`1` are',
    '`true`, numbers may be quoted, `host:port` may list several hosts (`10.0.0.1,10.0.0.2:5432`). Every',
    'problem is reported before anything starts, all at once, as `path.to.key: what is wrong`; Patroni keys',
    'pgha does not act on are warned about (see the end of this page).',
    '',
    'Precedence: environment variables over the file; the file over the dynamic configuration in etcd',
    '(for `postgresql.parameters` and `pg_hba`).',
    '',
    '## The configuration file',
    '',
    table(top),
    '',
  ];
  for (const [name, prop] of sections) {
    parts.push(`### \`${name}\``, '');
    if (prop.description) parts.push(prop.description, '');
    parts.push(table(fileRows.filter((r) => r.key.startsWith(`${name}.`))), '');
  }
  parts.push(
    '## Dynamic configuration',
    '',
    'Shared by every member and stored in etcd under `/<namespace>/<scope>/config`: written from',
    '`bootstrap.dcs` when the cluster is created, then changed with `pgha ctl edit-config` (or',
    '`patronictl edit-config`) or `PATCH /config`. A bad value there never stops the agents: it is',
    'reported and its default used. Rule across keys: `loop_wait + 2 × retry_timeout ≤ ttl`; values that break it are lowered to fit (loop_wait first), with a warning in the agent log, as Patroni does.',
    '',
    table(dynamic),
    '',
    '## Environment variables',
    '',
    'Each overrides the key beside it. `PATRONI_CONFIGURATION` holds a whole YAML document, used when',
    'no configuration file (or directory) is given or the one given does not exist; then no other',
    'variable is read, as in Patroni. An etcd endpoint variable replaces',
    "every endpoint key of that section, so a file's `host` cannot outrank the environment's `hosts`.",
    '',
    '| Variable | Key |',
    '| --- | --- |',
    ...env.map((e) => `| \`${e.name}\` | \`${e.key}\` |`),
    '',
    '## Patroni keys pgha does not act on',
    '',
    'From the table in `src/config/keys.ts`. When the agent starts it names each of these that is present',
    'in a warning, saying what pgha does instead; for the dynamic configuration in etcd, it does so again',
    'when one appears or changes. A key of the dynamic configuration counts in `bootstrap.dcs` too. Any',
    'other key the schema above does not know is reported as unknown.',
    '',
    ...keysSection('###'),
  );
  return parts.join('\n');
}

// ---------------------------------------------------------------------------------------------------
// Keys pgha does not act on (src/config/keys.ts)

/** A row's path as a reader writes it: `{method}` becomes `<method>`. */
function shownPath(row: KeyRow): string {
  return row.path.replace(/\{\w+\}/g, '<method>');
}

function covers(row: KeyRow): string {
  return row.keys?.length ? ` Covers ${row.keys.map((k) => `\`${k}\``).join(', ')}.` : '';
}

function unlessText(row: KeyRow): string {
  return row.status !== 'acted' && row.unless ? ` Not reported when ${row.unless.text}.` : '';
}

const SOURCES = [
  ['file', LOCAL_KEYS],
  ['dynamic', DYNAMIC_KEYS],
] as const;

interface KeyLine {
  key: string;
  where: string;
  text: string;
}

/** The refused and the ignored keys, each with what pgha does: as tables, or as lists (`bullets`). */
function keysSection(level: string, bullets = false): string[] {
  const refusedLines: KeyLine[] = [];
  const ignoredLines: KeyLine[] = [];
  for (const [where, list] of SOURCES) {
    for (const row of list) {
      const key = shownPath(row);
      if (row.status === 'refused')
        refusedLines.push({ key, where, text: `${row.why} (${row.risk}).${unlessText(row)}${covers(row)}` });
      else if (row.status === 'ignored')
        ignoredLines.push({ key, where, text: `${row.instead}.${unlessText(row)}${covers(row)}` });
    }
  }
  const render = (lines: KeyLine[], head: string): string[] =>
    bullets
      ? lines.map((l) => `- ${cell(`\`${l.key}\` (${l.where}): ${l.text}`)}`)
      : [
          `| Key | In | ${head} |`,
          '| --- | --- | --- |',
          ...lines.map((l) => `| ${cell(`\`${l.key}\``)} | ${l.where} | ${cell(l.text)} |`),
        ];
  return [
    `${level} Keys that stop the agent`,
    '',
    'Ignoring these could cost data or availability, so an agent refuses to start while one is set (in its',
    'file, in `bootstrap.dcs`, or in the configuration in etcd) and changes nothing: no initdb, no key written.',
    'One that appears in etcd while the agents run makes them stop acting on PostgreSQL until it is removed;',
    '`PATCH /config` and `pgha ctl edit-config` refuse to add one. Removing the key, or running Patroni',
    'for the cluster, are the ways out.',
    '',
    ...render(refusedLines, 'Why'),
    '',
    `${level} Keys pgha does not act on`,
    '',
    '"file" is the YAML file; "dynamic" is the dynamic configuration (`bootstrap.dcs`, the `config` key).',
    'A key listed here is named in a warning when it is set, with what pgha does instead.',
    '',
    ...render(ignoredLines, 'What pgha does instead'),
    '',
  ];
}

/** docs/migration-from-patroni.md with its generated part brought up to date. */
export async function renderMigrationDocs(): Promise<string> {
  const current = readFileSync(MIGRATION_DOCS, 'utf8');
  const start = current.indexOf(BEGIN);
  const end = current.indexOf(END);
  if (start < 0 || end < start)
    throw new Error(`${MIGRATION_DOCS}: the markers ${BEGIN} and ${END} are missing`);
  const text = [
    current.slice(0, start + BEGIN.length),
    '',
    ...keysSection('###', true),
    current.slice(end),
  ].join('\n');
  const options = (await resolveConfig(MIGRATION_DOCS)) ?? {};
  return format(text, { ...options, parser: 'markdown' });
}

export const HA_DOCS = join(import.meta.dirname, '..', 'docs', 'ha-loop.md');
const RULES_BEGIN = '<!-- rules:begin -->';
const RULES_END = '<!-- rules:end -->';

/** docs/ha-loop.md with its rule table generated from the HA decision's RULES. */
export async function renderHaDocs(): Promise<string> {
  const current = readFileSync(HA_DOCS, 'utf8');
  const start = current.indexOf(RULES_BEGIN);
  const end = current.indexOf(RULES_END);
  if (start < 0 || end < start)
    throw new Error(`${HA_DOCS}: the markers ${RULES_BEGIN} and ${RULES_END} are missing`);
  const cell = (t: string) => t.replace(/\|/g, '\\|');
  const table = [
    '| #   | rule | seen | step |',
    '| --- | ---- | ---- | ---- |',
    ...RULES.map((r, i) => `| ${i + 1} | \`${r.id}\` | ${cell(r.when)} | ${cell(r.then)} |`),
  ];
  const text = [current.slice(0, start + RULES_BEGIN.length), '', ...table, '', current.slice(end)].join(
    '\n',
  );
  const options = (await resolveConfig(HA_DOCS)) ?? {};
  return format(text, { ...options, parser: 'markdown' });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const outputs: Array<[string, string]> = [
    [CONFIG_DOCS, await renderConfigDocs()],
    [MIGRATION_DOCS, await renderMigrationDocs()],
    [HA_DOCS, await renderHaDocs()],
  ];
  for (const [file, text] of outputs) {
    if (process.argv.includes('--check')) {
      if (readFileSync(file, 'utf8') !== text) {
        console.error(`${file} is out of date: run npm run docs:config`);
        process.exitCode = 1;
      }
    } else {
      writeFileSync(file, text);
      console.log(`wrote ${file}`);
    }
  }
}
