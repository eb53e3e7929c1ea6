/**
 * A line diff printed as Python's `difflib.unified_diff` prints it (3 lines of context, `--- ` /
 * `+++ ` headers without file names), which is what `patronictl edit-config` shows.
 */

type Opcode = ['equal' | 'replace' | 'delete' | 'insert', number, number, number, number];

/** Opcodes from a longest common subsequence of lines (configs are small, so O(n·m) is fine). */
function opcodes(a: string[], b: string[]): Opcode[] {
  const n = a.length;
  const m = b.length;
  const lcs: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  const codes: Opcode[] = [];
  let i = 0;
  let j = 0;
  let si = 0;
  let sj = 0;
  const flush = () => {
    if (si < i || sj < j)
      codes.push([si < i && sj < j ? 'replace' : si < i ? 'delete' : 'insert', si, i, sj, j]);
  };
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      flush();
      const ei = i;
      const ej = j;
      while (i < n && j < m && a[i] === b[j]) {
        i++;
        j++;
      }
      codes.push(['equal', ei, i, ej, j]);
      si = i;
      sj = j;
    } else if (j < m && (i >= n || lcs[i]![j + 1]! >= lcs[i + 1]![j]!)) j++;
    else i++;
  }
  flush();
  return codes;
}

/** difflib's `get_grouped_opcodes(n)`. */
function grouped(codes: Opcode[], n = 3): Opcode[][] {
  if (codes.length === 0) codes = [['equal', 0, 1, 0, 1]];
  const first = codes[0]!;
  if (first[0] === 'equal')
    codes[0] = [
      'equal',
      Math.max(first[1], first[2] - n),
      first[2],
      Math.max(first[3], first[4] - n),
      first[4],
    ];
  const last = codes[codes.length - 1]!;
  if (last[0] === 'equal')
    codes[codes.length - 1] = [
      'equal',
      last[1],
      Math.min(last[2], last[1] + n),
      last[3],
      Math.min(last[4], last[3] + n),
    ];
  const groups: Opcode[][] = [];
  let group: Opcode[] = [];
  for (const code of codes) {
    const [tag, , i2, , j2] = code;
    let [, i1, , j1] = code;
    if (tag === 'equal' && i2 - i1 > 2 * n) {
      group.push([tag, i1, Math.min(i2, i1 + n), j1, Math.min(j2, j1 + n)]);
      groups.push(group);
      group = [];
      i1 = Math.max(i1, i2 - n);
      j1 = Math.max(j1, j2 - n);
    }
    group.push([tag, i1, i2, j1, j2]);
  }
  if (group.length > 0 && !(group.length === 1 && group[0]![0] === 'equal')) groups.push(group);
  return groups;
}

function range(start: number, stop: number): string {
  let beginning = start + 1;
  const length = stop - start;
  if (length === 1) return String(beginning);
  if (length === 0) beginning -= 1;
  return `${beginning},${length}`;
}

/** patronictl's `show_diff` lines for two texts (each split into lines, trailing newlines ignored). */
export function unifiedDiff(before: string, after: string): string[] {
  const a = before.replace(/\n+$/, '').split('\n');
  const b = after.replace(/\n+$/, '').split('\n');
  const out: string[] = [];
  for (const group of grouped(opcodes(a, b))) {
    if (out.length === 0) out.push('--- ', '+++ ');
    const f = group[0]!;
    const l = group[group.length - 1]!;
    out.push(`@@ -${range(f[1], l[2])} +${range(f[3], l[4])} @@`);
    for (const [tag, i1, i2, j1, j2] of group) {
      if (tag === 'equal') {
        for (const line of a.slice(i1, i2)) out.push(' ' + line);
        continue;
      }
      if (tag === 'replace' || tag === 'delete') for (const line of a.slice(i1, i2)) out.push('-' + line);
      if (tag === 'replace' || tag === 'insert') for (const line of b.slice(j1, j2)) out.push('+' + line);
    }
  }
  return out;
}
