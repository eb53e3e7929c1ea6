/**
 * Output in patronictl's formats: `pretty` (a framed table with the title set into the top
 * border, as patronictl's PrettyTable subclass draws it), `tsv`, `json` and `yaml`.
 */
import { stringify } from 'yaml';

export type Cell = string | number | null | undefined;
export type Align = 'l' | 'r';
export type OutputFormat = 'pretty' | 'tsv' | 'json' | 'yaml' | 'topology';

function text(c: Cell): string {
  return c === null || c === undefined ? '' : String(c);
}

/** Renders a framed table; `title` replaces the start of the top border (Patroni's look). */
export function prettyTable(
  columns: string[],
  rows: Cell[][],
  align: Record<string, Align> = {},
  title?: string,
): string {
  const widths = columns.map((c, i) => Math.max(c.length, ...rows.map((r) => text(r[i]).length)));
  const rule = '+' + widths.map((w) => '-'.repeat(w + 2)).join('+') + '+';
  const line = (cells: string[], isHeader: boolean) =>
    '|' +
    cells
      .map((c, i) => {
        const w = widths[i] ?? 0;
        const right = !isHeader && align[columns[i] ?? ''] === 'r';
        return ' ' + (right ? c.padStart(w) : c.padEnd(w)) + ' ';
      })
      .join('|') +
    '|';
  let top = rule;
  if (title) {
    const t = title.slice(0, rule.length - 2);
    top = rule[0] + t + rule.slice(1 + t.length);
  }
  const out = [top, line(columns, true), rule, ...rows.map((r) => line(r.map(text), false)), rule];
  return out.join('\n');
}

/** Prints rows the way patronictl's `print_output` does for each format. */
export function formatOutput(
  columns: string[],
  rows: Cell[][],
  fmt: OutputFormat,
  opts: { align?: Record<string, Align>; title?: string; skipFirstColumn?: boolean } = {},
): string {
  if (fmt === 'json' || fmt === 'yaml') {
    const elements = rows.map((r) => {
      const o: Record<string, Cell> = {};
      columns.forEach((c, i) => {
        const v = r[i];
        if (!opts.title || text(v) !== '') o[c] = v;
      });
      return o;
    });
    return fmt === 'json' ? JSON.stringify(elements) : stringify(elements).trimEnd();
  }
  if (fmt === 'tsv') return [columns, ...rows].map((r) => r.map(text).join('\t')).join('\n');
  const skip = opts.skipFirstColumn ? 1 : 0;
  return prettyTable(
    columns.slice(skip),
    rows.map((r) => r.slice(skip)),
    opts.align,
    opts.title,
  );
}
