/**
 * Operator actions through the REST API, in process, against a real etcd: switchover/failover
 * checks and results, the `failover` key, PATCH/PUT /config with a real compare-and-set, restart
 * (now, filtered, scheduled), reload, reinitialise. The runner is a plain-data stand-in (the HA loop
 * runs for real in cluster.test.ts); PostgreSQL is a recorder of what the operator asked it to do.
 */
import pino from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createApi } from '../../src/api/app.js';
import { parseDynamicConfig } from '../../src/config/schema.js';
import type { CallbackName, DynamicConfig } from '../../src/config/types.js';
import { EtcdDcs } from '../../src/dcs/etcd.js';
import type { ClusterState, Dcs, Member } from '../../src/dcs/types.js';
import { Operator, type OperatorRunner } from '../../src/ha/operator.js';
import type { AgentSnapshot } from '../../src/ha/runner.js';
import type { PeerStatus } from '../../src/ha/types.js';
import { buildCatalog, describeDropped, reviewParameters } from '../../src/postgres/guc.js';
import { PG_SETTINGS } from '../../src/postgres/pg-settings.generated.js';
import type { RoleConfig } from '../../src/postgres/types.js';
import { startEtcd, type EtcdCluster } from '../support/etcd.js';
import { waitFor } from '../support/postgres.js';
import { snapshot } from './fixtures.js';

let etcd: EtcdCluster;
let scopeN = 0;
const clients: EtcdDcs[] = [];

beforeAll(async () => {
  etcd = await startEtcd({ members: 1 });
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close({ revokeLease: true }).catch(() => undefined)));
  await etcd?.stop();
});

function client(scope: string, name: string): EtcdDcs {
  const c = new EtcdDcs({ hosts: etcd.endpoints, namespace: '/service/', scope, name, ttl: 30 });
  clients.push(c);
  return c;
}

class FakeRunner implements OperatorRunner {
  snapshot: AgentSnapshot;
  busyState: string | null = null;
  scheduledRestart: Record<string, unknown> | null = null;
  dynamicConfig: DynamicConfig;
  wakes = 0;
  reinitCalls: boolean[] = [];
  private mutex: Promise<void> = Promise.resolve();
  constructor(snap: AgentSnapshot) {
    this.snapshot = snap;
    this.dynamicConfig = snap.dynamic;
  }
  get busy(): string | null {
    return this.busyState;
  }
  async exclusive<T>(_what: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.mutex;
    let release!: () => void;
    this.mutex = new Promise((r) => (release = r));
    await prev;
    try {
      return await fn();
    } finally {
      release();
    }
  }
  setBusyState(s: string | null): void {
    this.busyState = s;
  }
  wake(): void {
    this.wakes++;
  }
  publish(): Promise<void> {
    return Promise.resolve();
  }
  reinitialize(force: boolean): Promise<string> {
    this.reinitCalls.push(force);
    return Promise.resolve('reinitialize started: cloning from pg1');
  }
  currentRoleConfig(): RoleConfig {
    const primary = this.snapshot.status?.inRecovery === false;
    return { role: primary ? 'primary' : 'replica', parameters: this.dynamicConfig.postgresql.parameters };
  }
}

interface World {
  scope: string;
  dcs: Record<string, EtcdDcs>;
  runner: FakeRunner;
  operator: Operator;
  pgCalls: string[];
  callbacks: Array<[CallbackName, string]>;
  peers: Record<string, Partial<PeerStatus>>;
  req(path: string, method?: string, body?: unknown): Response | Promise<Response>;
  read(): Promise<ClusterState>;
}

/** A cluster pg1 (leader), pg2, pg3 in a fresh scope; the API under test runs on `me`. */
async function world(
  me: 'pg1' | 'pg2',
  opts: {
    dcsFor?: (d: Dcs) => Dcs;
    config?: object;
    validateDynamic?: (raw: Record<string, unknown>) => Promise<string[]>;
  } = {},
) {
  const scope = `op${++scopeN}`;
  const dcs: Record<string, EtcdDcs> = {};
  for (const [i, n] of ['pg1', 'pg2', 'pg3'].entries()) {
    dcs[n] = client(scope, n);
    await dcs[n].touchMember({
      conn_url: `postgres://127.0.0.1:${5432 + i}/postgres`,
      api_url: `http://127.0.0.1:${8008 + i}/patroni`,
      state: i === 0 ? 'running' : 'streaming',
      role: i === 0 ? 'primary' : 'replica',
    });
  }
  expect(await dcs.pg1!.attemptToAcquireLeader()).toBe(true);
  await dcs.pg1!.setConfig({ ttl: 30, loop_wait: 10, ...opts.config });
  const state = await dcs.pg1!.readCluster();
  const dyn = parseDynamicConfig(state.config!.value).config;
  const runner = new FakeRunner(
    snapshot(me === 'pg1' ? 'primary' : 'replica', { cluster: state, dynamic: dyn, paused: dyn.pause }),
  );
  const pgCalls: string[] = [];
  const callbacks: Array<[CallbackName, string]> = [];
  const peers: Record<string, Partial<PeerStatus>> = {};
  const operator = new Operator({
    runner,
    dcs: opts.dcsFor ? opts.dcsFor(dcs[me]!) : dcs[me]!,
    pg: {
      configure: (rc) => (pgCalls.push(`configure ${rc.role}`), Promise.resolve()),
      reload: () => (pgCalls.push('reload'), Promise.resolve()),
      restart: (ms) => (pgCalls.push(`restart ${ms}`), Promise.resolve()),
      isRunning: () => Promise.resolve(true),
    },
    logger: pino({ level: 'silent' }),
    fetchPeer: (m: Member) =>
      Promise.resolve({ name: m.name, reachable: true, role: 'replica', state: 'running', ...peers[m.name] }),
    runCallback: (a, r) => callbacks.push([a, r]),
    validateDynamic: opts.validateDynamic ?? ((raw) => parseDynamicConfig(raw).errors),
    switchoverWaitMs: 5000,
  });
  const app = createApi({
    runner,
    operator,
    restapi: { listen: { hosts: ['127.0.0.1'], port: 8008 }, connect_address: '127.0.0.1:8008' },
    tags: {},
    version: '3.0.2',
  });
  const req = (path: string, method = 'POST', body?: unknown) =>
    app.request(path, {
      method,
      ...(body === undefined
        ? {}
        : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    });
  const w: World = {
    scope,
    dcs,
    runner,
    operator,
    pgCalls,
    callbacks,
    peers,
    req,
    read: () => dcs.pg1!.readCluster(),
  };
  return w;
}

async function answer(res: Response | Promise<Response>): Promise<[number, string]> {
  const r = await res;
  return [r.status, await r.text()];
}

const future = () => new Date(Date.now() + 3600_000).toISOString();

let w: World;
afterEach(() => w?.operator.close());

describe('POST /switchover and /failover', () => {
  beforeEach(async () => {
    w = await world('pg1');
  });

  it('refuse what Patroni refuses, with its texts and codes', async () => {
    const cases: Array<[string, object, number, string]> = [
      ['/switchover', { candidate: 'pg2' }, 400, 'Switchover could be performed only from a specific leader'],
      ['/failover', { leader: 'pg1' }, 400, 'Failover could be performed only to a specific candidate'],
      ['/switchover', { leader: 'pg2' }, 412, 'leader name does not match'],
      ['/switchover', { leader: 'pg1', candidate: 'pg9' }, 412, 'candidate does not exists'],
      ['/switchover', { leader: 'pg1', candidate: 'pg1' }, 400, 'Switchover target and source are the same'],
      ['/failover', { candidate: 'pg1' }, 412, 'candidate pg1 is already the leader'],
      [
        '/switchover',
        { leader: 'pg1', scheduled_at: '2030-01-01T10:00:00' },
        400,
        'Timezone information is mandatory for the scheduled switchover',
      ],
      [
        '/switchover',
        { leader: 'pg1', scheduled_at: '2001-01-01T10:00:00+02:00' },
        422,
        'Cannot schedule switchover in the past',
      ],
      [
        '/switchover',
        { leader: 'pg1', scheduled_at: 'tomorrow at noon' },
        422,
        'Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601',
      ],
      [
        '/failover',
        { candidate: 'pg2', scheduled_at: future() },
        400,
        'Scheduled failover is possible only from a specific leader',
      ],
    ];
    for (const [path, body, status, text] of cases) {
      expect([path, body, ...(await answer(w.req(path, 'POST', body)))]).toEqual([path, body, status, text]);
    }
    expect((await w.read()).failover).toBeNull();
  });

  it('needs a healthy candidate: unreachable and nofailover members do not count', async () => {
    w.peers.pg2 = { reachable: false };
    w.peers.pg3 = { tags: { nofailover: true } };
    expect(await answer(w.req('/switchover', 'POST', { leader: 'pg1' }))).toEqual([
      412,
      'switchover is not possible: no good candidates have been found',
    ]);
  });

  it('in synchronous mode only the sync standby qualifies', async () => {
    w.runner.dynamicConfig = parseDynamicConfig({ synchronous_mode: true }).config;
    await w.dcs.pg1!.setSync({ leader: 'pg1', sync_standby: 'pg3' });
    expect(await answer(w.req('/switchover', 'POST', { leader: 'pg1', candidate: 'pg2' }))).toEqual([
      412,
      'candidate name does not match with sync_standby',
    ]);
  });

  it('in maintenance mode a switchover needs a candidate and cannot be scheduled', async () => {
    const paused = await world('pg1', { config: { pause: true } });
    try {
      expect(await answer(paused.req('/switchover', 'POST', { leader: 'pg1' }))).toEqual([
        400,
        'Switchover is possible only to a specific candidate in a paused state',
      ]);
      expect(
        await answer(paused.req('/switchover', 'POST', { leader: 'pg1', scheduled_at: future() })),
      ).toEqual([400, "Can't schedule switchover in the paused state"]);
    } finally {
      paused.operator.close();
    }
  });

  it('schedules (202, the failover key in etcd) and DELETE /switchover cancels', async () => {
    const at = new Date(Date.now() + 3600_000);
    const local = at.toISOString().replace('Z', '+00:00');
    expect(
      await answer(w.req('/switchover', 'POST', { leader: 'pg1', candidate: 'pg2', scheduled_at: local })),
    ).toEqual([202, 'Switchover scheduled']);
    const fo = (await w.read()).failover;
    expect(fo).toMatchObject({ leader: 'pg1', member: 'pg2' });
    expect(Date.parse(fo!.scheduled_at!)).toBe(at.getTime());
    expect(await answer(w.req('/switchover', 'DELETE'))).toEqual([200, 'scheduled switchover deleted']);
    expect((await w.read()).failover).toBeNull();
    expect(await answer(w.req('/switchover', 'DELETE'))).toEqual([404, 'no switchover is scheduled']);
  });

  it('waits for the new leader and names it', async () => {
    // Play the HA loops: once the request is in etcd, pg1 releases the key and pg2 takes it.
    const loops = (async () => {
      await waitFor('the failover key', async () => (await w.read()).failover !== null, 5000);
      expect((await w.read()).failover).toMatchObject({ leader: 'pg1', member: 'pg2' });
      await w.dcs.pg1!.deleteLeader();
      await new Promise((r) => setTimeout(r, 300));
      await w.dcs.pg2!.attemptToAcquireLeader();
      await w.dcs.pg2!.clearFailover();
    })();
    const res = answer(w.req('/switchover', 'POST', { leader: 'pg1', candidate: 'pg2' }));
    await loops;
    expect(await res).toEqual([200, 'Successfully switched over to "pg2"']);
  });

  it('reports another winner, and a cancelled request as failed', async () => {
    const other = (async () => {
      await waitFor('the failover key', async () => (await w.read()).failover !== null, 5000);
      await w.dcs.pg1!.deleteLeader();
      await w.dcs.pg3!.attemptToAcquireLeader();
    })();
    const res = answer(w.req('/failover', 'POST', { candidate: 'pg2' }));
    await other;
    expect(await res).toEqual([200, 'Failed over to "pg3" instead of "pg2"']);

    const w2 = await world('pg1');
    try {
      const cancel = (async () => {
        await waitFor('the failover key', async () => (await w2.read()).failover !== null, 5000);
        await w2.dcs.pg1!.clearFailover(); // the leader found the candidate unhealthy
      })();
      const failed = answer(w2.req('/switchover', 'POST', { leader: 'pg1' }));
      await cancel;
      expect(await failed).toEqual([503, 'Switchover failed']);
      // Nobody acts on the request at all: the answer says the outcome is unknown.
      const unknown = await answer(w2.req('/switchover', 'POST', { leader: 'pg1' }));
      expect(unknown).toEqual([503, 'Switchover status unknown']);
    } finally {
      w2.operator.close();
    }
  });
});

describe('PATCH and PUT /config', () => {
  beforeEach(async () => {
    w = await world('pg1', {
      config: { postgresql: { parameters: { work_mem: '4MB', max_connections: 30 } } },
    });
  });

  it('PATCH merges (null deletes), writes, wakes the loop and returns the result', async () => {
    const res = await w.req('/config', 'PATCH', {
      loop_wait: 5,
      postgresql: { parameters: { work_mem: '8MB', max_connections: null } },
    });
    expect(res.status).toBe(200);
    const expected = { ttl: 30, loop_wait: 5, postgresql: { parameters: { work_mem: '8MB' } } };
    expect(await res.json()).toEqual(expected);
    expect((await w.read()).config?.value).toEqual(expected);
    expect(w.runner.wakes).toBeGreaterThan(0);
    expect(await (await w.req('/config', 'GET')).json()).toEqual(expected);
  });

  it('PATCH refuses a result the schema rejects, naming the key', async () => {
    const res = await w.req('/config', 'PATCH', { ttl: 'soon' });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(/ttl/);
    // Timeouts that break loop_wait + 2 × retry_timeout ≤ ttl are stored as given; each agent lowers
    // loop_wait, then retry_timeout, to fit when it applies them (as Patroni does).
    const timing = await w.req('/config', 'PATCH', { ttl: 5 });
    expect(timing.status).toBe(200);
    expect((await w.read()).config?.value.ttl).toBe(5);
  });

  it('PATCH answers 409 when the key changed between read and write (compare-and-set)', async () => {
    const racing = await world('pg1', {
      config: { ttl: 30 },
      dcsFor: (d) => {
        const wrapped = Object.create(d) as Dcs;
        wrapped.readCluster = async (signal?: AbortSignal) => {
          const state = await d.readCluster(signal);
          // Someone else edits the config right after we read it.
          await d.setConfig({ ...state.config!.value, loop_wait: 7 });
          return state;
        };
        return wrapped;
      },
    });
    try {
      const res = await racing.req('/config', 'PATCH', { loop_wait: 3 });
      expect(res.status).toBe(409);
      expect(((await res.json()) as { error: string }).error).toMatch(/compare-and-set/);
      expect((await racing.read()).config?.value.loop_wait).toBe(7);
    } finally {
      racing.operator.close();
    }
  });

  it('PUT and PATCH refuse values PostgreSQL would refuse (an async check) and write nothing', async () => {
    // The agent's check, with PostgreSQL 15's parameters from the generated table instead of the binary.
    const catalog = buildCatalog(15, [], PG_SETTINGS[15] ?? null);
    const checked = await world('pg1', {
      config: { postgresql: { parameters: { work_mem: '64kb' } } },
      validateDynamic: (raw) => {
        const { config, errors } = parseDynamicConfig(raw);
        const bad = reviewParameters(config.postgresql.parameters, catalog).dropped;
        return Promise.resolve([...errors, ...bad.map((d) => `postgresql.parameters.${describeDropped(d)}`)]);
      },
    });
    try {
      const before = await checked.read();
      const put = await checked.req('/config', 'PUT', {
        postgresql: { parameters: { max_connections: 'lots', wal_level: 'bogus' } },
      });
      expect(put.status).toBe(400);
      expect(((await put.json()) as { error: string }).error).toBe(
        "the configuration is invalid: postgresql.parameters.max_connections: invalid value 'lots': " +
          'expected an integer; postgresql.parameters.wal_level: invalid value ' +
          "'bogus': expected one of minimal, replica, logical",
      );
      const patch = await checked.req('/config', 'PATCH', { postgresql: { parameters: { foo_bar: 1 } } });
      expect(patch.status).toBe(400);
      expect(((await patch.json()) as { error: string }).error).toMatch(
        /postgresql\.parameters\.foo_bar: PostgreSQL 15 has no such parameter/,
      );
      expect((await checked.read()).config?.modRevision).toBe(before.config?.modRevision);
      // The bad value already stored is not blamed on an edit that leaves it alone.
      const ok = await checked.req('/config', 'PATCH', { loop_wait: 5 });
      expect(ok.status).toBe(200);
      expect((await checked.read()).config?.value).toEqual({
        ttl: 30,
        loop_wait: 5,
        postgresql: { parameters: { work_mem: '64kb' } },
      });
    } finally {
      checked.operator.close();
    }
  });

  it('PUT replaces the whole configuration', async () => {
    const res = await w.req('/config', 'PUT', { ttl: 20, loop_wait: 2, retry_timeout: 5 });
    expect(res.status).toBe(200);
    expect((await w.read()).config?.value).toEqual({ ttl: 20, loop_wait: 2, retry_timeout: 5 });
  });
});

describe('restart, reload, reinitialize', () => {
  beforeEach(async () => {
    w = await world('pg1');
  });

  it('restarts now: re-renders the configuration, restarts, runs on_restart', async () => {
    expect(await answer(w.req('/restart', 'POST', { timeout: 7 }))).toEqual([200, 'restarted successfully']);
    expect(w.pgCalls).toEqual(['configure primary', 'restart 7000']);
    expect(w.callbacks).toEqual([['on_restart', 'primary']]);
    expect(w.runner.busyState).toBeNull();
  });

  it('applies the role, postgres_version and restart_pending filters', async () => {
    const no = [503, 'restart conditions are not satisfied'];
    expect(await answer(w.req('/restart', 'POST', { role: 'replica' }))).toEqual(no);
    expect(await answer(w.req('/restart', 'POST', { postgres_version: '15.4' }))).toEqual(no);
    expect(await answer(w.req('/restart', 'POST', { restart_pending: true }))).toEqual(no);
    expect(await answer(w.req('/restart', 'POST', { postgres_version: '15' }))).toEqual([
      400,
      'Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 15',
    ]);
    expect(w.pgCalls).toEqual([]);
    expect(await answer(w.req('/restart', 'POST', { role: 'master', postgres_version: '15.5' }))).toEqual([
      200,
      'restarted successfully',
    ]);
    w.runner.snapshot.status!.pendingRestart = true;
    expect(await answer(w.req('/restart', 'POST', { restart_pending: true }))).toEqual([
      200,
      'restarted successfully',
    ]);
  });

  it('refuses while another action runs', async () => {
    w.runner.busyState = 'creating replica';
    expect(await answer(w.req('/restart', 'POST'))).toEqual([503, 'creating replica already in progress']);
  });

  it('schedules a restart, publishes it, refuses a second, and DELETE /restart cancels', async () => {
    const at = future();
    expect(await answer(w.req('/restart', 'POST', { schedule: at, role: 'primary' }))).toEqual([
      202,
      'Restart scheduled',
    ]);
    expect(w.runner.scheduledRestart).toEqual({ schedule: at.replace('Z', '+00:00'), role: 'primary' });
    const st = (await (await w.req('/patroni', 'GET')).json()) as { scheduled_restart: unknown };
    expect(st.scheduled_restart).toEqual({ schedule: at.replace('Z', '+00:00'), role: 'primary' });
    expect(await answer(w.req('/restart', 'POST', { schedule: future() }))).toEqual([
      409,
      'Another restart is already scheduled',
    ]);
    expect(await answer(w.req('/restart', 'DELETE'))).toEqual([200, 'scheduled restart deleted']);
    expect(w.runner.scheduledRestart).toBeNull();
    expect(await answer(w.req('/restart', 'DELETE'))).toEqual([404, 'no restarts are scheduled']);
    expect(await answer(w.req('/restart', 'POST', { schedule: '2001-01-01T00:00:00Z' }))).toEqual([
      422,
      'Cannot schedule restart in the past',
    ]);
    expect(w.pgCalls).toEqual([]);
  });

  it('runs a scheduled restart when it is due, then forgets it', async () => {
    const at = new Date(Date.now() + 800).toISOString();
    expect((await w.req('/restart', 'POST', { schedule: at })).status).toBe(202);
    await waitFor('the scheduled restart', () => Promise.resolve(w.runner.scheduledRestart === null), 5000);
    expect(w.pgCalls).toEqual([
      'configure primary',
      `restart ${w.runner.dynamicConfig.primary_start_timeout * 1000}`,
    ]);
  });

  it('POST /reload answers 202 at once and reloads between cycles', async () => {
    expect(await answer(w.req('/reload'))).toEqual([202, 'reload scheduled']);
    await waitFor('the reload', () => Promise.resolve(w.pgCalls.includes('reload')), 3000);
    expect(w.pgCalls).toEqual(['configure primary', 'reload']);
    expect(w.callbacks).toEqual([['on_reload', 'primary']]);
  });

  it('POST /reinitialize refuses on the leader and without one, runs on a replica', async () => {
    expect(await answer(w.req('/reinitialize'))).toEqual([503, 'I am the leader, can not reinitialize']);
    const r = await world('pg2');
    try {
      expect(await answer(r.req('/reinitialize', 'POST', { force: true }))).toEqual([
        200,
        'reinitialize started',
      ]);
      expect(r.runner.reinitCalls).toEqual([true]);
      r.runner.busyState = 'restarting';
      expect(await answer(r.req('/reinitialize'))).toEqual([503, 'restarting already in progress']);
      await r.dcs.pg1!.deleteLeader();
      expect(await answer(r.req('/reinitialize'))).toEqual([
        503,
        'Cluster has no leader, can not reinitialize',
      ]);
    } finally {
      r.operator.close();
    }
  });
});
