/**
 * `npm run bench:switchover`: longest write gap and lost writes during a planned switchover, real
 * Patroni 3.0.2 behind HAProxy against pgha, same machine, same run, same timings.
 *
 *   npm run bench:switchover -- --runs 1
 *   npm run bench:switchover -- --preset defaults --pgha-endpoint haproxy
 *
 * Needs `npm run build` (pgha runs as `node dist/cli.js`), root, Debian's patroni and haproxy.
 */
import { main } from './support/scenario.js';

await main('switchover', process.argv.slice(2));
