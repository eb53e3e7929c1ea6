/**
 * Questions on standard input, as click's `prompt` and `confirm` ask them for patronictl: from a
 * terminal, or line by line from a pipe (so `printf 'demo\n' | pgha ctl remove demo` works).
 * When input ends before an answer, the command stops and says which question went unanswered.
 */
import { createInterface, type Interface } from 'node:readline';
import { Writable } from 'node:stream';
import { PghaError } from '../util/errors.js';

export interface Prompter {
  /** click.prompt: shows `text [default]: `; an empty answer takes the default when there is one. */
  prompt(text: string, opts?: { default?: string; hidden?: boolean }): Promise<string>;
  /** click.confirm: `text [y/N]: `; anything but y/yes is no. */
  confirm(text: string, defaultYes?: boolean): Promise<boolean>;
  close(): void;
}

/** A prompter reading `input` (standard input by default) and writing questions to `output`. */
export function createPrompter(
  input: NodeJS.ReadableStream = process.stdin,
  output: NodeJS.WritableStream = process.stdout,
): Prompter {
  let rl: Interface | undefined;
  let lines: AsyncIterator<string> | undefined;
  let muted = false;
  const isTTY = Boolean((input as { isTTY?: boolean }).isTTY);
  // On a terminal readline echoes what is typed; a hidden answer (a password) is not echoed.
  const echo = new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (!muted) output.write(chunk);
      cb();
    },
  });

  const readLine = async (question: string, hidden: boolean): Promise<string> => {
    if (!rl) {
      rl = createInterface({ input, output: echo, terminal: isTTY });
      lines = rl[Symbol.asyncIterator]();
    }
    rl.setPrompt(question);
    rl.prompt();
    muted = hidden && isTTY;
    try {
      const next = await lines!.next();
      if (next.done) {
        output.write('\n');
        throw new PghaError(
          'PGHA_NO_ANSWER',
          `aborted: no answer to "${question.replace(/:\s*$/, '')}" (standard input ${isTTY ? 'closed' : 'is not a terminal and has no more lines'}; answer on a terminal, pipe the answers in, or use --force where the command has it)`,
        );
      }
      return next.value;
    } finally {
      if (muted) output.write('\n');
      muted = false;
    }
  };

  return {
    async prompt(text, opts = {}) {
      const suffix = opts.default !== undefined ? ` [${opts.default}]` : '';
      for (;;) {
        const answer = await readLine(`${text}${suffix}: `, opts.hidden ?? false);
        if (answer !== '') return answer;
        if (opts.default !== undefined) return opts.default;
      }
    },
    async confirm(text, defaultYes = false) {
      for (;;) {
        const answer = (await readLine(`${text} [${defaultYes ? 'Y/n' : 'y/N'}]: `, false)).trim();
        if (answer === '') return defaultYes;
        if (/^(y|yes)$/i.test(answer)) return true;
        if (/^(n|no)$/i.test(answer)) return false;
        output.write('Error: invalid input\n');
      }
    },
    close() {
      rl?.close();
      rl = undefined;
    },
  };
}
