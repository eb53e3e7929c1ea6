import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { readFileSync } from 'node:fs';

export interface HttpOptions {
  signal?: AbortSignal;
  /**
   * PEM file of the CA that signed the peers' certificates; without it TLS peers are not verified.
   * A peer's certificate is checked against it but not against the host name, as the members'
   * certificates need not name the addresses they are reached at.
   */
  cafile?: string;
  /** Client certificate (PEM) shown to peers that require one (`restapi.verify_client`). */
  certfile?: string;
  /** Private key of `certfile` (default: in certfile). */
  keyfile?: string;
  /** Password of an encrypted `keyfile`. */
  keyfilePassword?: string;
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

function pem(path: string): Buffer {
  const cached = fileCache.get(path) ?? readFileSync(path);
  fileCache.set(path, cached);
  return cached;
}

/** The TLS options of a request to a peer: its CA, and the client certificate when one is set. */
function tlsOptions(opts: HttpOptions): Record<string, unknown> {
  const out: Record<string, unknown> = { rejectUnauthorized: opts.cafile !== undefined };
  if (opts.cafile) {
    out.ca = pem(opts.cafile);
    out.checkServerIdentity = () => undefined;
  }
  if (opts.certfile) {
    out.cert = pem(opts.certfile);
    out.key = pem(opts.keyfile ?? opts.certfile);
    if (opts.keyfilePassword !== undefined) out.passphrase = opts.keyfilePassword;
  }
  return out;
}

/** One HTTP(S) request to a peer's REST API, with a deadline and a size cap on the answer. */
export function httpRequestText(url: string, opts: HttpRequestOptions = {}): Promise<HttpResponse> {
  const u = new URL(url);
  const tls = u.protocol === 'https:';
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
        ...(tls ? tlsOptions(opts) : {}),
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
