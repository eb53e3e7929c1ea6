/**
 * Requests to a member's REST API, as patronictl's `PatroniRequest` sends them: to the member's
 * `api_url` origin, HTTP Basic credentials from `ctl.authentication` or `restapi.authentication`,
 * TLS checked unless `-k/--insecure` (or `ctl.insecure`).
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { Member } from '../dcs/types.js';
import { errorMessage, PghaError } from '../util/errors.js';
import { pyJson } from './table.js';

export interface ApiResponse {
  status: number;
  text: string;
  /** The answer's `Date` header (the member's clock, whole seconds), when it sent one. */
  date?: string;
}

export interface ApiSettings {
  auth?: { username: string; password: string };
  insecure: boolean;
  cacert?: string;
  certfile?: string;
  keyfile?: string;
  keyfilePassword?: string;
  timeoutMs: number;
}

/** Thrown when the member cannot be reached at all (no HTTP answer). */
export class ApiUnreachableError extends PghaError {
  constructor(member: string, url: string, cause: unknown) {
    super('PGHA_API_UNREACHABLE', `REST API of ${member} at ${url} did not answer: ${errorMessage(cause)}`, {
      cause,
      retryable: true,
    });
  }
}

/** Sends one request; `endpoint` replaces the path of the member's api_url, as in Patroni. */
export async function apiRequest(
  settings: ApiSettings,
  member: Member,
  method: string,
  endpoint: string,
  body?: unknown,
): Promise<ApiResponse> {
  const apiUrl = member.data.api_url;
  if (!apiUrl)
    throw new PghaError('PGHA_NO_API', `member ${member.name} publishes no api_url in its member key`);
  let url: URL;
  try {
    url = new URL(`/${endpoint.replace(/^\//, '')}`, apiUrl);
  } catch (err) {
    throw new PghaError('PGHA_BAD_API_URL', `member ${member.name} has an invalid api_url ${apiUrl}`, {
      cause: err,
    });
  }
  const payload = body === undefined ? undefined : Buffer.from(pyJson(body));
  const headers: Record<string, string | number> = { 'user-agent': 'pgha-ctl' };
  if (payload) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = payload.length;
  }
  if (settings.auth)
    headers.authorization =
      'Basic ' + Buffer.from(`${settings.auth.username}:${settings.auth.password}`).toString('base64');
  const isHttps = url.protocol === 'https:';
  const tls = isHttps
    ? {
        rejectUnauthorized: !settings.insecure,
        ca: settings.cacert ? readFileSync(settings.cacert) : undefined,
        cert: settings.certfile ? readFileSync(settings.certfile) : undefined,
        key: settings.keyfile ? readFileSync(settings.keyfile) : undefined,
        passphrase: settings.keyfilePassword,
      }
    : {};
  return new Promise<ApiResponse>((resolve, reject) => {
    const req = (isHttps ? https : http).request(
      url,
      { method: method.toUpperCase(), headers, timeout: settings.timeoutMs, ...tls },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            text: Buffer.concat(chunks).toString('utf8'),
            ...(res.headers.date ? { date: res.headers.date } : {}),
          }),
        );
        res.on('error', (err) => reject(new ApiUnreachableError(member.name, url.origin, err)));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${settings.timeoutMs / 1000} s`)));
    req.on('error', (err) => reject(new ApiUnreachableError(member.name, url.origin, err)));
    req.end(payload);
  });
}
