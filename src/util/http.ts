import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { readFileSync } from 'node:fs';
import type { PghaConfig } from '../config/types.js';

export interface HttpOptions {
  signal?: AbortSignal;
  /** PEM file of the CA that signed the peers' certificates; without it TLS peers are not verified. */
  cafile?: string;
  /** Client certificate and key (PEM files) for peers that ask for one (`verify_client`). */
  certfile?: string;
  keyfile?: string;
  keyfile_password?: string;
  /** The peer's certificate need not name its host (still checked against `cafile` when given). */
  insecure?: boolean;
  /** Largest body accepted, in bytes. */
  maxBytes?: number;
}

export interface HttpRequestOptions extends HttpOptions {
  method?: string;
  /** Sent as JSON with `Content-Type: application/json`. */
  json?: unknown;
  /** HTTP Basic credentials (the peers share `restapi.authentication`). */
  auth?: { username: string; password: string };
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

const fileCache = new Map<string, Buffer>();

function pemFile(path: string): Buffer {
  const cached = fileCache.get(path);
  if (cached) return cached;
  const data = readFileSync(path);
  fileCache.set(path, data);
  return data;
}

/**
 * How the agent's requests to other members use TLS, as Patroni's: `ctl.certfile`/`keyfile`
 * (default: `restapi.certfile`/`keyfile`) as client certificate, `ctl.cacert` (default:
 * `restapi.cafile`) as CA, and with `ctl.insecure` no host name check.
 */
export function peerTls(config: Pick<PghaConfig, 'restapi' | 'ctl'>): HttpOptions {
  const ctl = config.ctl ?? {};
  const certfile = ctl.certfile ?? config.restapi.certfile;
  const keyfile = ctl.keyfile ?? config.restapi.keyfile;
  const password = ctl.keyfile_password ?? config.restapi.keyfile_password;
  const cafile = ctl.cacert ?? config.restapi.cafile;
  return {
    ...(cafile ? { cafile } : {}),
    ...(certfile ? { certfile } : {}),
    ...(certfile && keyfile ? { keyfile } : {}),
    ...(certfile && password ? { keyfile_password: password } : {}),
    ...(ctl.insecure ? { insecure: true } : {}),
  };
}

/** One HTTP(S) request to a peer's REST API, with a deadline and a size cap on the answer. */
export function httpRequestText(url: string, opts: HttpRequestOptions = {}): Promise<HttpResponse> {
  const u = new URL(url);
  const tls = u.protocol === 'https:';
  const ca = tls && opts.cafile ? pemFile(opts.cafile) : undefined;
  const client =
    tls && opts.certfile
      ? {
          cert: pemFile(opts.certfile),
          key: pemFile(opts.keyfile ?? opts.certfile),
          ...(opts.keyfile_password ? { passphrase: opts.keyfile_password } : {}),
        }
      : {};
  const max = opts.maxBytes ?? 1024 * 1024;
  const body = opts.json === undefined ? undefined : Buffer.from(JSON.stringify(opts.json));
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(body.length);
  }
  if (opts.auth) {
    const token = Buffer.from(`${opts.auth.username}:${opts.auth.password}`).toString('base64');
    headers.authorization = `Basic ${token}`;
  }
  return new Promise<HttpResponse>((resolve, reject) => {
    const req = (tls ? httpsRequest : httpRequest)(
      u,
      {
        method: opts.method ?? 'GET',
        headers,
        signal: opts.signal,
        ...(tls
          ? {
              ca,
              ...client,
              rejectUnauthorized: ca !== undefined,
              ...(opts.insecure ? { checkServerIdentity: () => undefined } : {}),
            }
          : {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > max) req.destroy(new Error(`response from ${u.origin} is larger than ${max} bytes`));
          else chunks.push(c);
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** GETs a JSON document over http or https (peers' REST APIs), with a deadline and a size cap. */
export async function getJson<T>(url: string, opts: HttpOptions = {}): Promise<T> {
  const res = await httpRequestText(url, opts);
  try {
    return JSON.parse(res.text) as T;
  } catch {
    throw new Error(`response from ${url} is not JSON`);
  }
}
