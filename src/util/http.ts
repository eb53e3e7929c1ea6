import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { readFileSync } from 'node:fs';

export interface HttpOptions {
  signal?: AbortSignal;
  /** PEM file of the CA that signed the peers' certificates; without it TLS peers are not verified. */
  cafile?: string;
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

const caCache = new Map<string, Buffer>();

/** One HTTP(S) request to a peer's REST API, with a deadline and a size cap on the answer. */
export function httpRequestText(url: string, opts: HttpRequestOptions = {}): Promise<HttpResponse> {
  const u = new URL(url);
  const tls = u.protocol === 'https:';
  let ca: Buffer | undefined;
  if (tls && opts.cafile) {
    ca = caCache.get(opts.cafile) ?? readFileSync(opts.cafile);
    caCache.set(opts.cafile, ca);
  }
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
        ...(tls ? { ca, rejectUnauthorized: ca !== undefined } : {}),
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
