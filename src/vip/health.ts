/**
 * Router mode's check of the local router: a GET of its status URL (`router.status_listen`'s
 * `/status`), healthy on a 2xx answer within the timeout. It plays the part of the seed's
 * `check_haproxy.sh` (is HAProxy running and listening).
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { errorMessage } from '../util/errors.js';
import type { ProbeResult } from './decide.js';

/** GETs `url` and reports whether it answered 2xx within `timeoutMs`. Never rejects. */
export function probeHttp(url: string, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      resolve({ ok: false, refused: false, detail: `invalid URL ${url}` });
      return;
    }
    const req = (u.protocol === 'https:' ? httpsRequest : httpRequest)(
      u,
      // A local liveness check: a router with a self-signed certificate is still a running router.
      { method: 'GET', signal: AbortSignal.timeout(timeoutMs), rejectUnauthorized: false },
      (res) => {
        res.resume();
        const code = res.statusCode ?? 0;
        const ok = code >= 200 && code < 300;
        res.on('end', () => resolve({ ok, refused: false, detail: `${url} answered ${code}` }));
        res.on('error', (err) =>
          resolve({ ok: false, refused: false, detail: `${url}: ${errorMessage(err)}` }),
        );
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => {
      const timedOut = err.name === 'AbortError' || err.name === 'TimeoutError';
      resolve({
        ok: false,
        refused: err.code === 'ECONNREFUSED',
        detail: timedOut ? `${url} did not answer within ${timeoutMs} ms` : `${url}: ${errorMessage(err)}`,
      });
    });
    req.end();
  });
}
