import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { readFileSync } from 'node:fs';

export interface GetJsonOptions {
  signal?: AbortSignal;
  /** PEM file of the CA that signed the peers' certificates; without it TLS peers are not verified. */
  cafile?: string;
  /** Largest body accepted, in bytes. */
  maxBytes?: number;
}

const caCache = new Map<string, Buffer>();

/** GETs a JSON document over http or https (peers' REST APIs), with a deadline and a size cap. */
export function getJson<T>(url: string, opts: GetJsonOptions = {}): Promise<T> {
  const u = new URL(url);
  const tls = u.protocol === 'https:';
  let ca: Buffer | undefined;
  if (tls && opts.cafile) {
    ca = caCache.get(opts.cafile) ?? readFileSync(opts.cafile);
    caCache.set(opts.cafile, ca);
  }
  const max = opts.maxBytes ?? 1024 * 1024;
  return new Promise<T>((resolve, reject) => {
    const req = (tls ? httpsRequest : httpRequest)(
      u,
      {
        method: 'GET',
        headers: { accept: 'application/json' },
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
        res.on('end', () => {
          try {
            resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as T);
          } catch {
            reject(new Error(`response from ${url} is not JSON`));
          }
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}
