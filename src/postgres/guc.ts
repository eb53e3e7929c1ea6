/**
 * Pure checks of PostgreSQL server parameters (GUCs), so one bad value in the configuration cannot
 * keep PostgreSQL from starting. What a parameter accepts comes from PostgreSQL itself: the names,
 * contexts, types and ranges from `postgres --describe-config` of the node's own binary, the units
 * and enum values from `pg_settings` (of a running server, or the table generated from one in
 * `pg-settings.generated.ts`). Values are parsed as PostgreSQL's guc.c parses them (parse_bool,
 * parse_int, parse_real, convert_to_base_unit, enum lookup), so what passes here PostgreSQL takes.
 *
 * Mirrors Patroni's validator.py and config.py on purpose, with one deviation (see `reviewParameters`):
 * unknown names are dropped, names with a dot (extension parameters) are kept unchecked, and
 * `wal_keep_segments` becomes `wal_keep_size` on PostgreSQL 13 and later.
 */

export type GucType = 'bool' | 'integer' | 'real' | 'string' | 'enum';

/** One row of pg_settings as pgha keeps it (the generated table has the same shape). */
export interface SettingEntry {
  context: string;
  type: GucType;
  /** Base unit as pg_settings shows it (`8kB`, `kB`, `MB`, `B`, `ms`, `s`, `min`); absent: none. */
  unit?: string;
  min?: number;
  max?: number;
  /** Enum values PostgreSQL lists (hidden aliases are not listed). */
  values?: readonly string[];
}

/** What pgha knows about one parameter of one PostgreSQL build. */
export interface GucSpec {
  /** The name as PostgreSQL spells it. */
  name: string;
  /** postmaster, sighup, superuser, user, backend, ..., or internal (cannot be set). */
  context: string;
  type: GucType;
  min?: number;
  max?: number;
  /** Base unit; null: the parameter takes no unit; undefined: not known for this version. */
  unit?: string | null;
  /** Enum values; undefined: not known for this version. */
  values?: readonly string[];
}

export interface GucCatalog {
  /** Major version of the binary, e.g. 15. */
  major: number;
  /** Keyed by the lower-case name (PostgreSQL's names are case-insensitive). */
  specs: ReadonlyMap<string, GucSpec>;
}

// ---- what the binary and pg_settings say ---------------------------------------------------------

/** `--describe-config` spells the types in capitals, pg_settings.vartype in lower case. */
const DESCRIBE_TYPES: Record<string, GucType> = {
  BOOLEAN: 'bool',
  INTEGER: 'integer',
  REAL: 'real',
  STRING: 'string',
  ENUM: 'enum',
};
const VARTYPES: Record<string, GucType> = {
  bool: 'bool',
  integer: 'integer',
  real: 'real',
  string: 'string',
  enum: 'enum',
};

/**
 * Parses `postgres --describe-config`: one tab-separated line per parameter that may be set in
 * postgresql.conf (name, context, group, type, reset value, min, max, descriptions). The output has
 * no units and no enum values.
 */
export function parseDescribeConfig(text: string): GucSpec[] {
  const specs: GucSpec[] = [];
  for (const line of text.split('\n')) {
    const [name, context, , rawType, , min, max] = line.split('\t');
    const type = DESCRIBE_TYPES[rawType ?? ''];
    if (!name || !context || !type) continue;
    const spec: GucSpec = { name, context, type };
    if (type === 'integer' || type === 'real') {
      spec.min = Number(min);
      spec.max = Number(max);
    }
    specs.push(spec);
  }
  return specs;
}

/** A pg_settings row as SQL returns it, turned into a `SettingEntry`. */
export function settingFromRow(row: {
  context: string;
  vartype: string;
  unit: string | null;
  min_val: string | null;
  max_val: string | null;
  enumvals: string[] | null;
}): SettingEntry {
  const type = VARTYPES[row.vartype] ?? 'string';
  const e: SettingEntry = { context: row.context, type };
  if (row.unit) e.unit = row.unit;
  if ((type === 'integer' || type === 'real') && row.min_val !== null && row.max_val !== null) {
    e.min = Number(row.min_val);
    e.max = Number(row.max_val);
  }
  if (type === 'enum' && row.enumvals) e.values = row.enumvals;
  return e;
}

/**
 * The catalog of one binary: every parameter `--describe-config` lists, with units and enum values
 * from `settings` (pg_settings of the same major version) when given. Names only pg_settings knows
 * are added too: parameters PostgreSQL leaves out of the sample file (`application_name`,
 * `zero_damaged_pages`, ...) that may still be set, and `internal` ones that may not. Names with a
 * dot in pg_settings belong to loaded extensions and are left out, so they are treated alike
 * whether or not a server runs.
 */
export function buildCatalog(
  major: number,
  described: readonly GucSpec[],
  settings: Readonly<Record<string, SettingEntry>> | null,
): GucCatalog {
  const byLower = new Map<string, SettingEntry>();
  for (const [name, e] of Object.entries(settings ?? {})) byLower.set(name.toLowerCase(), e);
  const specs = new Map<string, GucSpec>();
  for (const d of described) {
    const e = byLower.get(d.name.toLowerCase());
    const spec: GucSpec = { ...d };
    if (e && e.type === d.type) {
      spec.unit = e.unit ?? null;
      if (d.type === 'enum' && e.values) spec.values = e.values;
    } else if (d.type === 'bool' || d.type === 'string') {
      spec.unit = null;
    }
    specs.set(d.name.toLowerCase(), spec);
  }
  for (const [name, e] of Object.entries(settings ?? {})) {
    const key = name.toLowerCase();
    if (specs.has(key) || name.includes('.')) continue;
    specs.set(key, { name, ...e, unit: e.unit ?? null });
  }
  return { major, specs };
}

// ---- parsing values as guc.c does -----------------------------------------------------------------

/** C's isspace in the C locale. */
const isCSpace = (c: string | undefined) =>
  c === ' ' || c === '\t' || c === '\n' || c === '\v' || c === '\f' || c === '\r';
const asciiLower = (s: string) => s.replace(/[A-Z]/g, (c) => c.toLowerCase());

function skipSpace(s: string, i: number): number {
  while (isCSpace(s[i])) i++;
  return i;
}

/** C's rint in the default rounding mode: halves go to the even neighbour. */
export function rint(x: number): number {
  if (!Number.isFinite(x)) return x;
  const f = Math.floor(x);
  const d = x - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

interface Scan {
  value: number;
  /** Index after the number; 0 when nothing was parsed (C's `endptr == value`). */
  end: number;
  /** errno == ERANGE. */
  range: boolean;
}

const LONG_MAX = 2n ** 63n - 1n;

/** glibc strtol(s, &end, 0) for a 64-bit long: decimal, 0x hex or 0 octal. */
export function strtol(s: string): Scan {
  let i = skipSpace(s, 0);
  let neg = false;
  if (s[i] === '+' || s[i] === '-') neg = s[i++] === '-';
  let base = 10;
  let digits = /[0-9]/;
  if (s[i] === '0' && (s[i + 1] === 'x' || s[i + 1] === 'X') && /[0-9a-fA-F]/.test(s[i + 2] ?? '')) {
    base = 16;
    digits = /[0-9a-fA-F]/;
    i += 2;
  } else if (s[i] === '0') {
    base = 8;
    digits = /[0-7]/;
  }
  const start = i;
  let n = 0n;
  while (i < s.length && digits.test(s[i] as string)) n = n * BigInt(base) + BigInt(parseInt(s[i++]!, base));
  if (i === start) return { value: 0, end: 0, range: false };
  const range = n > LONG_MAX + (neg ? 1n : 0n);
  return { value: Number(neg ? -n : n), end: i, range };
}

const DECIMAL = /^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?/;
const HEX_FLOAT = /^0[xX](?:[0-9a-fA-F]+(?:\.[0-9a-fA-F]*)?|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?/;
const DBL_MIN = 2.2250738585072014e-308;

function hexFloat(text: string): number {
  const m = /^0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?(?:[pP]([+-]?[0-9]+))?$/.exec(text);
  if (!m) return NaN;
  const int = m[1] ?? '';
  const frac = m[2] ?? '';
  const mantissa = parseInt(int + frac || '0', 16);
  return mantissa * 2 ** (Number(m[3] ?? '0') - 4 * frac.length);
}

/** glibc strtod: decimal, hex, inf/infinity and nan, with ERANGE on overflow and underflow. */
export function strtod(s: string): Scan {
  let i = skipSpace(s, 0);
  let sign = 1;
  if (s[i] === '+' || s[i] === '-') sign = s[i++] === '-' ? -1 : 1;
  const rest = s.slice(i);
  const special = /^(?:(infinity|inf)|(nan)(?:\([0-9A-Za-z_]*\))?)/i.exec(rest);
  if (special) {
    return { value: special[1] ? sign * Infinity : NaN, end: i + special[0].length, range: false };
  }
  const hex = HEX_FLOAT.exec(rest);
  const dec = hex ? null : DECIMAL.exec(rest);
  const text = hex?.[0] ?? dec?.[0];
  if (text === undefined) return { value: 0, end: 0, range: false };
  const magnitude = hex ? hexFloat(text) : Number(text);
  const mantissa = hex ? text.slice(2).split(/[pP]/)[0] : text.split(/[eE]/)[0];
  const mantissaNonZero = (hex ? /[1-9a-fA-F]/ : /[1-9]/).test(mantissa ?? '');
  const range =
    !Number.isFinite(magnitude) || (mantissaNonZero && (magnitude === 0 || Math.abs(magnitude) < DBL_MIN));
  return { value: sign * magnitude, end: i + text.length, range };
}

/** PostgreSQL's parse_bool: on, off, true, false, yes, no, 1, 0, and unique prefixes, any case. */
export function parsePgBool(value: string): boolean | null {
  const v = asciiLower(value);
  switch (v[0]) {
    case 't':
      return 'true'.startsWith(v) ? true : null;
    case 'f':
      return 'false'.startsWith(v) ? false : null;
    case 'y':
      return 'yes'.startsWith(v) ? true : null;
    case 'n':
      return 'no'.startsWith(v) ? false : null;
    case 'o':
      // "o" alone is ambiguous
      if (v === 'on') return true;
      return v === 'of' || v === 'off' ? false : null;
    case '1':
      return v.length === 1 ? true : null;
    case '0':
      return v.length === 1 ? false : null;
    default:
      return null;
  }
}

/** Unit names in guc.c's conversion tables, largest first, with their size in bytes or microseconds. */
const MEMORY_UNITS: ReadonlyArray<readonly [string, number]> = [
  ['TB', 2 ** 40],
  ['GB', 2 ** 30],
  ['MB', 2 ** 20],
  ['kB', 2 ** 10],
  ['B', 1],
];
const TIME_UNITS: ReadonlyArray<readonly [string, number]> = [
  ['d', 86_400_000_000],
  ['h', 3_600_000_000],
  ['min', 60_000_000],
  ['s', 1_000_000],
  ['ms', 1000],
  ['us', 1],
];

/** The conversion table and the size of one base unit for a pg_settings unit (`8kB` is one block). */
function baseUnit(unit: string): { table: typeof MEMORY_UNITS; size: number } | null {
  // Time parameters count in ms, s or min; memory ones in B, kB, MB or blocks (8kB, 16kB, ...).
  if (unit === 'ms' || unit === 's' || unit === 'min')
    return { table: TIME_UNITS, size: TIME_UNITS.find(([u]) => u === unit)?.[1] ?? 1 };
  const m = /^([0-9]*)(B|kB|MB)$/.exec(unit);
  if (!m) return null;
  const size = (MEMORY_UNITS.find(([u]) => u === m[2])?.[1] ?? 1) * (m[1] ? Number(m[1]) : 1);
  return { table: MEMORY_UNITS, size };
}

/** The units a value of this parameter may carry, smallest first, as PostgreSQL's hint lists them. */
function unitHint(unit: string): string {
  const names = (baseUnit(unit)?.table ?? []).map(([u]) => u).reverse();
  return `${names.slice(0, -1).join(', ')} or ${names.at(-1)} (case matters)`;
}

/**
 * guc.c's convert_to_base_unit: `value` given in `unitText`, expressed in the base unit, rounded to
 * a whole number of the next smaller unit as PostgreSQL does ("1.5GB" → 1536 MB). Null when the
 * unit is not one this parameter takes.
 */
export function toBaseUnit(value: number, unitText: string, unit: string): number | null {
  const base = baseUnit(unit);
  if (!base) return null;
  const idx = base.table.findIndex(([u]) => u === unitText);
  if (idx < 0) return null;
  // The same multipliers as guc.c's tables (an exact quotient, or 1/quotient below the base unit).
  const mult = (size: number) => (size >= base.size ? size / base.size : 1 / (base.size / size));
  let cvalue = value * mult(base.table[idx]![1]);
  const next = base.table[idx + 1];
  if (next) cvalue = rint(cvalue / mult(next[1])) * mult(next[1]);
  return cvalue;
}

/** The unit after a number: one token and optional spaces (guc.c reads at most three characters). */
function unitAfter(s: string, end: number): string | null {
  const rest = s.slice(skipSpace(s, end));
  if (rest === '') return '';
  const m = /^([^ \t\n\v\f\r]{1,3})[ \t\n\v\f\r]*$/.exec(rest);
  return m ? (m[1] as string) : null;
}

/** The result of parsing a number: the value in base units, or why it is not one. */
type NumberParse = { ok: true; value: number; converted: boolean } | { ok: false; reason: string };

const INT_MAX = 2 ** 31 - 1;
const INT_MIN = -(2 ** 31);

/**
 * Applies the unit after the number (if any) as parse_int / parse_real do. `unknown-unit`: the value
 * has a unit but the parameter's base unit is not known here, so it cannot be converted.
 */
function withUnit(
  s: string,
  value: number,
  end: number,
  unit: string | null | undefined,
  what: string,
): NumberParse | 'unknown-unit' {
  const u = unitAfter(s, end);
  if (u === '') return { ok: true, value, converted: false };
  // "08", "1.2.3": the number itself does not parse (no unit starts with a digit or a dot).
  if (u !== null && /^[0-9.]/.test(u)) return { ok: false, reason: `expected ${what}` };
  if (unit === null) return { ok: false, reason: `expected ${what} without a unit` };
  if (u !== null && unit === undefined) return 'unknown-unit';
  const v = u === null || unit === undefined ? null : toBaseUnit(value, u, unit);
  if (v === null)
    return {
      ok: false,
      reason: `expected ${what}, optionally with a unit${unit ? `: ${unitHint(unit)}` : ''}`,
    };
  return { ok: true, value: v, converted: true };
}

/** guc.c's parse_int (numbers with a fraction or an exponent are accepted and rounded). */
export function parsePgInt(s: string, unit: string | null | undefined): NumberParse | 'unknown-unit' {
  const what = 'an integer';
  let scan = strtol(s);
  if ('.eE'.includes(s[scan.end] ?? 'x') || scan.range) scan = strtod(s);
  if (scan.end === 0 || scan.range || Number.isNaN(scan.value))
    return { ok: false, reason: `expected ${what}` };
  const r = withUnit(s, scan.value, scan.end, unit, what);
  if (r === 'unknown-unit' || !r.ok) return r;
  const v = rint(r.value);
  if (v > INT_MAX || v < INT_MIN) return { ok: false, reason: 'exceeds the integer range' };
  return { ok: true, value: v, converted: r.converted };
}

/** guc.c's parse_real. */
export function parsePgReal(s: string, unit: string | null | undefined): NumberParse | 'unknown-unit' {
  const what = 'a number';
  const scan = strtod(s);
  if (scan.end === 0 || scan.range || Number.isNaN(scan.value))
    return { ok: false, reason: `expected ${what}` };
  return withUnit(s, scan.value, scan.end, unit, what);
}

/** Case-insensitive match against the listed values; an enum that lists on/off also takes true/yes/1 and false/no/0. */
function enumAccepts(values: readonly string[], value: string): boolean {
  const v = asciiLower(value);
  const listed = values.map(asciiLower);
  if (listed.includes(v)) return true;
  // guc.c gives every enum with "on"/"off" the other boolean spellings as hidden values.
  if (listed.includes('on') && ['true', 'yes', '1'].includes(v)) return true;
  return listed.includes('off') && ['false', 'no', '0'].includes(v);
}

/**
 * Why PostgreSQL would refuse `value` for the parameter, or null when it takes it. A unit or enum
 * value that cannot be checked because pg_settings of this version is not at hand passes here; the
 * binary's own check (`ParameterValidator`) still sees it.
 */
export function checkValue(spec: GucSpec, value: string): string | null {
  switch (spec.type) {
    case 'bool':
      return parsePgBool(value) === null ? 'expected a boolean: on, off, true, false, yes, no, 1 or 0' : null;
    case 'integer':
    case 'real': {
      const r = spec.type === 'integer' ? parsePgInt(value, spec.unit) : parsePgReal(value, spec.unit);
      if (r === 'unknown-unit') return null;
      if (!r.ok) return r.reason;
      const { min, max } = spec;
      if (min === undefined || max === undefined || (r.value >= min && r.value <= max)) return null;
      const unit = spec.unit ? ` ${spec.unit}` : '';
      const got = r.converted ? ` (it is ${r.value}${unit})` : '';
      return `outside the valid range ${min} .. ${max}${unit}${got}`;
    }
    case 'enum':
      if (!spec.values || enumAccepts(spec.values, value)) return null;
      return `expected one of ${spec.values.join(', ')}`;
    case 'string':
      return null;
  }
}

// ---- reviewing a parameter map ---------------------------------------------------------------------

/** A parameter left out, and why. */
export interface DroppedParameter {
  name: string;
  value: string;
  /** `value`: the value is wrong; `name`: the parameter cannot be set at all. */
  problem: 'value' | 'name';
  reason: string;
}

/** A parameter rewritten for this version, as Patroni rewrites it. */
export interface ConvertedParameter {
  from: { name: string; value: string };
  to: { name: string; value: string } | null;
  reason: string;
}

export interface ParameterReview {
  params: Record<string, string>;
  dropped: DroppedParameter[];
  converted: ConvertedParameter[];
}

export interface ReviewOptions {
  /** Bytes per WAL segment of the cluster (pg_controldata); 16 MiB when not known. */
  walSegmentBytes?: number;
}

const MIB = 1024 * 1024;

/** Values as postgresql.conf gets them: booleans on/off, the rest as text. */
function asText(v: string | number | boolean): string {
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  return String(v);
}

function findKey(params: Record<string, string>, name: string): string | undefined {
  return Object.keys(params).find((k) => k.toLowerCase() === name);
}

/**
 * Patroni's renames (config.py `get_server_parameters`), decided by what the binary knows rather than
 * by its version number: `wal_keep_segments` (gone in PostgreSQL 13) becomes `wal_keep_size` =
 * segments × the WAL segment size, unless wal_keep_size is set too; `wal_level` hot_standby and
 * archive (9.6's old names) become replica.
 */
function convertRenamed(
  params: Record<string, string>,
  catalog: GucCatalog,
  opts: ReviewOptions,
  dropped: DroppedParameter[],
): ConvertedParameter[] {
  const converted: ConvertedParameter[] = [];
  const segKey = findKey(params, 'wal_keep_segments');
  if (segKey && !catalog.specs.has('wal_keep_segments') && catalog.specs.has('wal_keep_size')) {
    const value = params[segKey] as string;
    delete params[segKey];
    const n = parsePgInt(value, null);
    const sizeKey = findKey(params, 'wal_keep_size');
    if (n === 'unknown-unit' || !n.ok || n.value < 0) {
      const reason = n !== 'unknown-unit' && !n.ok ? n.reason : 'expected a number of segments (0 or more)';
      dropped.push({ name: segKey, value, problem: 'value', reason });
    } else if (sizeKey) {
      converted.push({
        from: { name: segKey, value },
        to: null,
        reason: `PostgreSQL ${catalog.major} has no wal_keep_segments and wal_keep_size is set`,
      });
    } else {
      const segMb = Math.max(1, Math.round((opts.walSegmentBytes ?? 16 * MIB) / MIB));
      const size = `${n.value * segMb}MB`;
      params.wal_keep_size = size;
      converted.push({
        from: { name: segKey, value },
        to: { name: 'wal_keep_size', value: size },
        reason: `PostgreSQL ${catalog.major} has wal_keep_size instead: ${n.value} segments of ${segMb} MB`,
      });
    }
  }
  const levelKey = findKey(params, 'wal_level');
  const level = levelKey ? asciiLower(params[levelKey] as string) : undefined;
  const levels = catalog.specs.get('wal_level')?.values;
  if (
    levelKey &&
    (level === 'hot_standby' || level === 'archive') &&
    levels?.includes('replica') &&
    !levels.includes(level)
  ) {
    converted.push({
      from: { name: levelKey, value: params[levelKey] as string },
      to: { name: levelKey, value: 'replica' },
      reason: `PostgreSQL ${catalog.major} calls this level replica`,
    });
    params[levelKey] = 'replica';
  }
  return converted;
}

/** Why the parameter cannot be set at all, or null when it may be. */
function nameProblem(spec: GucSpec | undefined, major: number): string | null {
  if (spec?.context === 'internal')
    return 'cannot be set: PostgreSQL fixes it when it is built or when the cluster is initialised';
  if (spec) return null;
  return `PostgreSQL ${major} has no such parameter (an extension's parameters have a dot in their name, e.g. pg_stat_statements.max)`;
}

/**
 * Checks every parameter against the catalog and returns the ones to write, the ones dropped (with
 * why) and the ones converted. As Patroni does: a name with a dot that the binary does not list is an
 * extension's parameter and kept as it is (its library defines it only when loaded, and PostgreSQL
 * accepts any value for it until then); any other name the binary does not list is dropped, since
 * PostgreSQL refuses to start with an unrecognised parameter. Where a configuration is written
 * (PATCH/PUT /config, edit-config) the same findings are refusals, unknown names included, which
 * Patroni does not check at all: every member of a cluster runs the same major version (physical
 * replication needs it), so a name this binary lacks would be dropped on every node; problems the
 * stored configuration already had are not blamed on an edit, so one carried over from another
 * version stays editable.
 *
 * Deliberately unlike Patroni, a number outside the valid range is dropped rather than clamped to the
 * nearest bound: a clamped extreme (max_connections = 262143) can still keep the server from starting,
 * whereas without it PostgreSQL starts with its default.
 */
export function reviewParameters(
  input: Readonly<Record<string, string | number | boolean>>,
  catalog: GucCatalog,
  opts: ReviewOptions = {},
): ParameterReview {
  const params: Record<string, string> = {};
  for (const [k, v] of Object.entries(input)) params[k] = asText(v);
  const dropped: DroppedParameter[] = [];
  const converted = convertRenamed(params, catalog, opts, dropped);
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(params)) {
    const spec = catalog.specs.get(name.toLowerCase());
    if (!spec && name.includes('.')) {
      out[name] = value;
      continue;
    }
    const why = nameProblem(spec, catalog.major);
    if (why) {
      dropped.push({ name, value, problem: 'name', reason: why });
      continue;
    }
    const bad = checkValue(spec as GucSpec, value);
    if (bad) dropped.push({ name, value, problem: 'value', reason: bad });
    else out[name] = value;
  }
  return { params: out, dropped, converted };
}

/** postgresql.conf's quoting, for messages. */
function quoted(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** One line for a dropped parameter: `max_connections: invalid value 'lots': expected an integer`. */
export function describeDropped(d: DroppedParameter): string {
  return d.problem === 'name'
    ? `${d.name}: ${d.reason}`
    : `${d.name}: invalid value ${quoted(d.value)}: ${d.reason}`;
}

/** One line for a conversion: `wal_keep_segments = '8' → wal_keep_size = '128MB' (...)`. */
export function describeConverted(c: ConvertedParameter): string {
  const to = c.to ? `${c.to.name} = ${quoted(c.to.value)}` : 'dropped';
  return `${c.from.name} = ${quoted(c.from.value)} → ${to} (${c.reason})`;
}

/**
 * Which of `names` PostgreSQL's refusal names, from the stderr of `postgres -C ... -c name=value`
 * run with LC_ALL=C: the FATAL line (with its DETAIL/HINT) and the parameter it is about.
 */
export function parseRefusal(
  stderr: string,
  names: readonly string[],
): { name: string; message: string } | null {
  const lines = stderr.split('\n').map((l) => l.replace(/^.*?\b(FATAL|DETAIL|HINT):\s+/, '$1: '));
  const at = lines.findIndex((l) => l.startsWith('FATAL: '));
  if (at < 0) return null;
  const fatal = (lines[at] as string).slice('FATAL: '.length).trim();
  const extra = lines
    .slice(at + 1)
    .filter((l) => l.startsWith('DETAIL: ') || l.startsWith('HINT: '))
    .map((l) => l.replace(/^(DETAIL|HINT): /, '').trim());
  const m = /parameter(?: name)? "([^"]+)"/.exec(fatal) ?? /^-c (\S+) requires a value/.exec(fatal);
  const name = m ? names.find((n) => n.toLowerCase() === (m[1] as string).toLowerCase()) : undefined;
  if (!name) return null;
  return { name, message: [fatal, ...extra].join('; ') };
}
