/**
 * `npm run bench:failover`: the leader node dies (its agent and its postmaster get SIGKILL); time
 * until writes succeed on the new primary, longest write gap and acknowledged writes lost, real
 * Patroni 3.0.2 behind HAProxy against pgha, same machine, same run, same timings.
 *
 *   npm run bench:failover -- --runs 1
 *
 * Needs `npm run build` (pgha runs as `node dist/cli.js`), root, Debian's patroni and haproxy.
 */
import { main } from './support/scenario.js';

await main('failover', process.argv.slice(2));
