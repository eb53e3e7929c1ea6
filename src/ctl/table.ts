/**
 * Output in patronictl's formats: `pretty` (a framed table with the title set into the top
 * border, as patronictl's PrettyTable subclass draws it), `tsv`, `json` and `yaml`, plus the
 * YAML and JSON dialects Python writes (`yaml.safe_dump`, `json.dumps`), so scripts that parse
 * patronictl's output read ours unchanged.
 */
import { parse, stringify, type Tags } from 'yaml';

/**
 * YAML 1.1 as PyYAML reads it: the yaml package's 1.1 schema also takes a lone `y`/`n` as a
 * boolean, PyYAML does not, so those two tests are narrowed.
 */
function pyYamlTags(tags: Tags): Tags {
  return tags.map((t) =>
    typeof t === 'object' && t.tag === 'tag:yaml.org,2002:bool' && t.test
      ? { ...t, test: new RegExp(t.test.source.replace(/^\^\(\?:[YN]\|[yn]\|/, '^(?:')) }
      : t,
  );
}

export type Cell = string | number | boolean | null | undefined | Record<string, unknown>;
export type Align = 'l' | 'r';
export type OutputFormat = 'pretty' | 'tsv' | 'json' | 'yaml' | 'topology';

export const FORMATS = ['pretty', 'tsv', 'json', 'yaml', 'yml'] as const;

/** Python's `str()` of a cell, which is what patronictl prints. */
export function pyStr(c: Cell): string {
  if (c === null || c === undefined) return c === null ? 'None' : '';
  if (typeof c === 'boolean') return c ? 'True' : 'False';
  if (typeof c === 'object') return pyJson(c);
  return String(c);
}

/** `json.dumps(value)` as Python writes it: `", "` and `": "` separators, non-ASCII escaped. */
export function pyJson(value: unknown): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'string')
    return JSON.stringify(value).replace(
      /[\u007f-\uffff]/g,
      (ch) => '\\u' + ch.charCodeAt(0).toString(16).padStart(4, '0'),
    );
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : 'NaN';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (Array.isArray(value)) return '[' + value.map(pyJson).join(', ') + ']';
  if (value instanceof Date) return pyJson(value.toISOString());
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
  return '{' + entries.map(([k, v]) => `${pyJson(k)}: ${pyJson(v)}`).join(', ') + '}';
}

/**
 * `yaml.safe_dump(data, default_flow_style=False, width=200)`, patronictl's
 * `format_config_for_editing`: YAML 1.1, sorted keys, list items not indented.
 */
export function formatConfigForEditing(data: unknown, flow = false): string {
  if (flow) {
    return stringify(data, {
      version: '1.1',
      customTags: pyYamlTags,
      sortMapEntries: true,
      singleQuote: true,
      collectionStyle: 'flow',
      flowCollectionPadding: false,
      lineWidth: 200,
    });
  }
  return stringify(data, {
    version: '1.1',
    customTags: pyYamlTags,
    sortMapEntries: true,
    indentSeq: false,
    singleQuote: true,
    lineWidth: 200,
  });
}

/** `yaml.safe_load`: YAML 1.1, where `on`/`off`/`yes`/`no` are booleans. */
export function parseYaml11(text: string): unknown {
  return parse(text, { version: '1.1', customTags: pyYamlTags }) as unknown;
}

/**
 * Renders a framed table; `title` replaces the start of the top border (Patroni's look).
 * Multi-line cells make it draw a rule between every row, as PrettyTable's `hrules=ALL` does.
 */
export function prettyTable(
  columns: string[],
  rows: Cell[][],
  align: Record<string, Align> = {},
  title?: string,
): string {
  const cellLines = rows.map((r) => columns.map((_, i) => pyStr(r[i]).split('\n')));
  const widths = columns.map((c, i) =>
    Math.max(c.length, ...cellLines.map((r) => Math.max(...(r[i] ?? ['']).map((l) => l.length)))),
  );
  const rule = '+' + widths.map((w) => '-'.repeat(w + 2)).join('+') + '+';
  const line = (cells: string[]) =>
    '|' +
    cells
      .map((c, i) => {
        const w = widths[i] ?? 0;
        const right = align[columns[i] ?? ''] === 'r';
        return ' ' + (right ? c.padStart(w) : c.padEnd(w)) + ' ';
      })
      .join('|') +
    '|';
  let top = rule;
  if (title) {
    const t = title.slice(0, rule.length - 2);
    top = rule[0] + t + rule.slice(1 + t.length);
  }
  const allRules = cellLines.some((r) => r.some((lines) => lines.length > 1));
  const out = [top, line(columns), rule];
  cellLines.forEach((r, n) => {
    const height = Math.max(...r.map((lines) => lines.length));
    for (let k = 0; k < height; k++) out.push(line(r.map((lines) => lines[k] ?? '')));
    if (allRules && n < cellLines.length - 1) out.push(rule);
  });
  out.push(rule);
  return out.join('\n');
}

/**
 * Prints rows the way patronictl's `print_output` does for each format. With a `title` (the
 * member list), empty cells are left out of json/yaml and the first column is not drawn in
 * `pretty`; `Tags` cells are written as YAML.
 */
export function formatOutput(
  columns: string[],
  rows: Cell[][],
  fmt: OutputFormat,
  opts: { align?: Record<string, Align>; title?: string; delimiter?: string } = {},
): string {
  if (fmt === 'json' || fmt === 'yaml') {
    const elements = rows.map((r) => {
      const o: Record<string, Cell> = {};
      columns.forEach((c, i) => {
        const v = r[i];
        if (!opts.title || pyStr(v) !== '') o[c] = v;
      });
      return o;
    });
    return fmt === 'json' ? pyJson(elements) : formatConfigForEditing(elements);
  }
  const listCluster = Boolean(opts.title && columns[0] === 'Cluster');
  let cols = columns;
  let body = rows;
  if (listCluster) {
    const tags = columns.indexOf('Tags');
    if (tags >= 0)
      body = body.map((r) => {
        const v = r[tags];
        if (!v) return r;
        const copy = [...r];
        copy[tags] = formatConfigForEditing(v, fmt !== 'pretty').trim();
        return copy;
      });
    if (fmt !== 'tsv') {
      cols = cols.slice(1);
      body = body.map((r) => r.slice(1));
    }
  }
  if (fmt === 'tsv') {
    const delimiter = opts.delimiter ?? '\t';
    return [...(cols.length ? [cols] : []), ...body].map((r) => r.map(pyStr).join(delimiter)).join('\n');
  }
  return prettyTable(cols, body, opts.align, opts.title);
}

/** Python's `round()`: halves go to the even neighbour. */
export function pyRound(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** patronictl's `timestamp(precision)`: local time, `%Y-%m-%d %H:%M:%S.%f` cut to `precision` digits. */
export function timestamp(precision = 6, now = new Date()): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const base = `${now.getFullYear()}-${p(now.getMonth() + 1)}-${p(now.getDate())} ${p(now.getHours())}:${p(now.getMinutes())}:${p(now.getSeconds())}`;
  if (precision <= 0) return base;
  return `${base}.${p(now.getMilliseconds() * 1000, 6).slice(0, precision - 1)}`;
}
