import { createInterface } from 'node:readline/promises';
import type { Member } from '../dcs/types.js';
import { errorMessage, PghaError } from '../util/errors.js';
import type { CtlContext } from './context.js';

/** Asks a yes/no question on the terminal; without a terminal the answer is no. */
export async function confirm(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) return false;
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  try {
    const answer = await rl.question(`${question} [y/N]: `);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

/** Sends a request to a member's REST API with the configured credentials. */
export async function memberApiRequest(
  ctx: CtlContext,
  member: Member,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ ok: boolean; status: number; text: string }> {
  const apiUrl = member.data.api_url;
  if (!apiUrl) throw new PghaError('PGHA_NO_API', `member ${member.name} publishes no api_url`);
  const url = new URL(path, apiUrl);
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  const auth = ctx.config.restapi.authentication;
  if (auth)
    headers.authorization = 'Basic ' + Buffer.from(`${auth.username}:${auth.password}`).toString('base64');
  try {
    const res = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    return { ok: res.ok, status: res.status, text: await res.text() };
  } catch (err) {
    throw new PghaError(
      'PGHA_API_UNREACHABLE',
      `REST API of ${member.name} at ${url.origin} did not answer: ${errorMessage(err)}`,
    );
  }
}
