/**
 * Splits a command line as a POSIX shell (and Python's `shlex.split`, which Patroni uses) would,
 * without running one: words separated by blanks, `'single'` and `"double"` quotes, backslash
 * escapes. Throws on an unterminated quote.
 */
export function splitCommandLine(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: "'" | '"' | null = null;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i] as string;
    if (quote === "'") {
      if (ch === "'") quote = null;
      else word += ch;
      continue;
    }
    if (quote === '"') {
      if (ch === '"') quote = null;
      else if (ch === '\\' && i + 1 < line.length && '\\"$`\n'.includes(line[i + 1] as string)) {
        word += line[i + 1];
        i++;
      } else word += ch;
      continue;
    }
    if (/\s/.test(ch)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      continue;
    }
    inWord = true;
    if (ch === "'" || ch === '"') quote = ch;
    else if (ch === '\\' && i + 1 < line.length) {
      word += line[i + 1];
      i++;
    } else word += ch;
  }
  if (quote) throw new RangeError(`unterminated ${quote} quote in command: ${line}`);
  if (inWord) words.push(word);
  return words;
}
