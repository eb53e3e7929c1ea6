/**
 * A network lab for tests: one Linux bridge and one network namespace per host, each joined to the
 * bridge by a veth pair and given its own address on a private /24, so processes in different hosts
 * talk over a real link (ARP, TCP, addresses that move) and faults can be injected per host.
 *
 * ```ts
 * const lab = await createNetLab({ hosts: ['pg1', 'pg2', 'client'] });
 * const pg1 = lab.host('pg1');            // { name, ns, address: '10.213.x.11', iface: 'eth0', ... }
 * const child = pg1.spawn('/usr/bin/etcd', [...]);      // runs inside pg1's namespace
 * await lab.host('client').exec('ip', ['route']);      // runs a command there, returns stdout
 * await lab.partition('pg1', [lab.host('pg2').address]); // pg1 can no longer reach pg2 (silent drop)
 * await lab.heal('pg1');
 * await lab.linkDown('pg2');                          // pull pg2's cable
 * await lab.cleanup();                                // in afterAll; also runs on exit/SIGINT/SIGTERM
 * ```
 *
 * - Hosts get `<subnet>.11`, `.12`, ... in the order given (`address`), and an IPv6 ULA
 *   `fd00:213:<x>::11/64` ... (`address6`). `spareAddress(n)` gives `.100 + n`, free for a VIP.
 * - The test process itself (the root namespace) gets `<subnet>.1` on the bridge (`runnerAddress`),
 *   so it can reach the hosts (etcd, PostgreSQL, REST APIs) directly. No host has a default route:
 *   nothing in the lab can reach an address outside the /24, and nothing is forwarded anywhere.
 * - Names carry the pid and a per-process sequence number (`pgb<pid><seq>` bridge, `pgv<pid><seq><i>`
 *   veths, `pgha-<pid><seq>-<host>` namespaces), so parallel runs never collide.
 * - `cleanup()` kills what still runs inside the lab's namespaces (by pid, from `ip netns pids`),
 *   deletes every veth, namespace and the bridge. It also runs synchronously from a process `exit`
 *   hook and from SIGINT/SIGTERM handlers, so a failed or interrupted run leaks nothing.
 * - Needs root and iproute2 (`ip`); `createNetLab` refuses with a clear message otherwise.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { statSync } from 'node:fs';
import { isAlive, run, startProcess, type RunOptions, type RunResult } from '../../src/util/process.js';
import { localAddresses } from '../../src/vip/procnet.js';

export interface NetLabOptions {
  /** Host names, `[a-z0-9-]`, up to 20 characters; each becomes a namespace. */
  hosts: string[];
  /** First three octets of the lab's /24, e.g. `10.213.7`. Default: a free `10.213.<x>`. */
  subnet?: string;
  /** Give the root namespace (the test process) `<subnet>.1` on the bridge. Default true. */
  runnerAccess?: boolean;
}

/** One host of the lab: a network namespace with `lo` and one veth (`iface`) into the bridge. */
export interface LabHost {
  name: string;
  /** The network namespace's name (`ip netns exec <ns> ...`). */
  ns: string;
  /** Its IPv4 address on the lab subnet (without prefix). */
  address: string;
  /** Its IPv6 address (ULA, /64, no DAD). */
  address6: string;
  /** The veth inside the namespace (always `eth0`). */
  iface: string;
  /** The other end of the veth, on the bridge, in the root namespace. */
  peer: string;
  /** `ip netns exec <ns> <file> <args>`: the argv that runs `file` inside this host. */
  argv(file: string, args?: string[]): { file: string; args: string[] };
  /**
   * Starts a long-running process inside this host (as `startProcess` does); the caller stops it.
   * The lab SIGKILLs it at cleanup if it is still running. `opts.user` is not supported (entering a
   * namespace needs root): use `runuser -u <user> -- <cmd>` as the command instead.
   */
  spawn(file: string, args?: string[], opts?: RunOptions & { detached?: boolean }): ChildProcess;
  /** Runs a command inside this host to completion (as `run` does); a non-zero exit is returned. */
  run(file: string, args?: string[], opts?: RunOptions): Promise<RunResult>;
  /** Runs a command inside this host and returns its stdout; throws with its stderr when it fails. */
  exec(file: string, args?: string[], opts?: RunOptions): Promise<string>;
  /** `ip -n <ns> <args>`; returns stdout, throws on failure. */
  ip(...args: string[]): Promise<string>;
  /** The addresses (IPv4 and IPv6, global scope) on `iface` now (runs `ip`). */
  addresses(): Promise<string[]>;
  /**
   * Every local address of the namespace (any interface, loopback included), read from procfs
   * through the host's anchor process: synchronous and cheap enough to sample every few ms.
   */
  localAddresses(): Set<string>;
  /** Pid of a `sleep` kept running inside the namespace (its `/proc/<pid>/net` is the host's). */
  anchorPid(): number;
}

export type HostRef = string | LabHost;

export interface NetLab {
  /** `<pid><seq>`: what every name of this lab contains. */
  id: string;
  bridge: string;
  /** `10.213.x.0/24` */
  subnet: string;
  /** `fd00:213:x::/64` */
  subnet6: string;
  /** The test process's address on the bridge, or null without `runnerAccess`. */
  runnerAddress: string | null;
  hosts: LabHost[];
  host(name: HostRef): LabHost;
  /** `<subnet>.(100 + n)`: on the lab subnet and used by no host (a VIP). */
  spareAddress(n?: number): string;
  /** `fd00:213:x::(100 + n)` */
  spareAddress6(n?: number): string;
  /**
   * Makes `host` unable to send to `addresses` (lab addresses or VIPs). With `drop` (default) the
   * packets go to a MAC address nobody has and vanish, so TCP in both directions stalls silently, as
   * in a real partition. With `reject` the kernel refuses at once (a `prohibit` route: EACCES to
   * local senders). Call it on both sides (or use `split`) for a symmetric cut. Undone by `heal`.
   */
  partition(host: HostRef, addresses: string[], opts?: { mode?: 'drop' | 'reject' }): Promise<void>;
  /** Cuts every host of `a` from every host of `b`, both ways (silent drop). */
  split(a: HostRef[], b: HostRef[]): Promise<void>;
  /** Removes every partition rule set on `host`. */
  heal(host: HostRef): Promise<void>;
  /** Takes the host's cable out: its veth's bridge end goes down (the host sees NO-CARRIER). */
  linkDown(host: HostRef): Promise<void>;
  linkUp(host: HostRef): Promise<void>;
  /** Kills what still runs in the lab, deletes the veths, namespaces and the bridge. Idempotent. */
  cleanup(): Promise<void>;
}

/** A MAC address no interface has: frames sent to it are flooded and dropped by everyone. */
const NOWHERE_MAC = '02:00:5e:00:de:ad';
const HOST_NAME_RE = /^[a-z0-9-]{1,20}$/i;

interface LabRecord {
  id: string;
  bridge: string;
  hosts: Array<{ ns: string; peer: string }>;
  children: Set<ChildProcess>;
  cleaned: boolean;
}

const labs = new Set<LabRecord>();
let sequence = 0;
let hooksInstalled = false;

function ipSync(args: string[]): void {
  try {
    execFileSync('ip', args, { stdio: 'ignore', timeout: 10_000 });
  } catch {
    // already gone
  }
}

function killSync(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Synchronous teardown, for `exit` and signal handlers where nothing async runs any more. */
function cleanupSync(lab: LabRecord): void {
  if (lab.cleaned) return;
  lab.cleaned = true;
  labs.delete(lab);
  for (const child of lab.children) if (isAlive(child) && child.pid) killSync(child.pid);
  for (const h of lab.hosts) {
    try {
      const pids = execFileSync('ip', ['netns', 'pids', h.ns], { encoding: 'utf8', timeout: 10_000 });
      for (const p of pids.split(/\s+/).filter(Boolean)) killSync(Number(p));
    } catch {
      // no such namespace
    }
  }
  for (const h of lab.hosts) ipSync(['link', 'del', h.peer]);
  for (const h of lab.hosts) ipSync(['netns', 'del', h.ns]);
  ipSync(['link', 'del', lab.bridge]);
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const lab of [...labs]) cleanupSync(lab);
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    const handler = () => {
      for (const lab of [...labs]) cleanupSync(lab);
      // Only ours: behave as the default action would (exit, running the other `exit` hooks). If
      // someone else handles the signal too, leave the decision to them.
      if (process.listenerCount(signal) === 1) process.exit(signal === 'SIGINT' ? 130 : 143);
    };
    process.on(signal, handler);
  }
}

/** True when process `pid` runs in network namespace `ns` (same inode as /run/netns/<ns>). */
function inNamespace(pid: number, ns: string): boolean {
  try {
    return statSync(`/proc/${pid}/ns/net`).ino === statSync(`/run/netns/${ns}`).ino;
  } catch {
    return false;
  }
}

async function ip(args: string[]): Promise<string> {
  const r = await run('ip', args, { timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

function checkPrerequisites(): void {
  if (process.getuid?.() !== 0) {
    throw new Error('createNetLab: network namespaces need root; run this test as root (sudo) or skip it');
  }
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
  } catch {
    throw new Error('createNetLab: the ip command is missing; install iproute2 (apt-get install iproute2)');
  }
}

/** True when some route in the root namespace (other than the default) overlaps `cidr`. */
async function subnetInUse(cidr: string): Promise<boolean> {
  const routes = [
    ...(JSON.parse(await ip(['-j', 'route', 'show', 'match', cidr])) as Array<{ dst: string }>),
    ...(JSON.parse(await ip(['-j', 'route', 'show', 'root', cidr])) as Array<{ dst: string }>),
  ];
  return routes.some((r) => r.dst !== 'default');
}

async function pickSubnet(seq: number): Promise<string> {
  const start = (process.pid * 7 + seq) % 200;
  for (let i = 0; i < 200; i++) {
    const octet = 20 + ((start + i) % 200);
    if (!(await subnetInUse(`10.213.${octet}.0/24`))) return `10.213.${octet}`;
  }
  throw new Error('createNetLab: every 10.213.x.0/24 is in use; pass `subnet`');
}

/** Creates the lab (bridge, namespaces, veths, addresses). Call `cleanup()` in afterAll. */
export async function createNetLab(opts: NetLabOptions): Promise<NetLab> {
  checkPrerequisites();
  if (opts.hosts.length === 0 || opts.hosts.length > 36) throw new Error('createNetLab: 1 to 36 hosts');
  for (const h of opts.hosts)
    if (!HOST_NAME_RE.test(h)) throw new Error(`createNetLab: host name "${h}" must match ${HOST_NAME_RE}`);
  if (new Set(opts.hosts).size !== opts.hosts.length) throw new Error('createNetLab: duplicate host names');
  installHooks();

  // One base-36 character each for the lab and the host keeps every interface name unique and
  // within 15 characters (`pgv` + pid + lab + host).
  let seq = sequence;
  for (let tries = 0; [...labs].some((l) => l.id === `${process.pid}${seq.toString(36)}`); tries++) {
    if (tries >= 36) throw new Error('createNetLab: 36 labs are open in this process; clean some up');
    seq = (seq + 1) % 36;
  }
  sequence = (seq + 1) % 36;
  const id = `${process.pid}${seq.toString(36)}`;
  const bridge = `pgb${id}`;
  if (bridge.length > 15) throw new Error(`createNetLab: interface name ${bridge} is too long`);
  const record: LabRecord = { id, bridge, hosts: [], children: new Set(), cleaned: false };
  labs.add(record);
  const subnetBase =
    opts.subnet ??
    (await pickSubnet(seq).catch((err: unknown) => {
      cleanupSync(record);
      throw err;
    }));
  if (!/^10\.\d{1,3}\.\d{1,3}$|^172\.(1[6-9]|2\d|3[01])\.\d{1,3}$|^192\.168\.\d{1,3}$/.test(subnetBase)) {
    cleanupSync(record);
    throw new Error(`createNetLab: subnet "${subnetBase}" must be the first three octets of a private /24`);
  }
  const third = Number(subnetBase.split('.')[2]);
  const v6Base = `fd00:213:${third.toString(16)}::`;

  const partitions = new Map<string, Array<{ kind: 'neigh' | 'route'; address: string }>>();
  const hosts: LabHost[] = [];

  const makeHost = (name: string, i: number): LabHost => {
    const ns = `pgha-${id}-${name}`;
    let anchor: ChildProcess | null = null;
    const peer = `pgv${id}${i.toString(36)}`;
    const argv = (file: string, args: string[] = []) => ({
      file: 'ip',
      args: ['netns', 'exec', ns, file, ...args],
    });
    const host: LabHost = {
      name,
      ns,
      address: `${subnetBase}.${11 + i}`,
      address6: `${v6Base}${(11 + i).toString(16)}`,
      iface: 'eth0',
      peer,
      argv,
      spawn(file, args = [], o = {}) {
        if (o.user) throw new Error('LabHost.spawn: use runuser inside the namespace instead of opts.user');
        const a = argv(file, args);
        const child = startProcess(a.file, a.args, o);
        record.children.add(child);
        child.once('exit', () => record.children.delete(child));
        return child;
      },
      run(file, args = [], o = {}) {
        const a = argv(file, args);
        return run(a.file, a.args, { timeoutMs: 30_000, ...o });
      },
      async exec(file, args = [], o = {}) {
        const r = await host.run(file, args, o);
        if (r.code !== 0)
          throw new Error(
            `${file} ${args.join(' ')} in ${name}: ${(r.stderr || r.stdout).trim() || `exit ${r.code}`}`,
          );
        return r.stdout;
      },
      ip: (...args: string[]) => ip(['-n', ns, ...args]),
      async addresses() {
        const links = JSON.parse(await ip(['-n', ns, '-j', 'addr', 'show', 'dev', 'eth0'])) as Array<{
          addr_info?: Array<{ local: string; scope: string }>;
        }>;
        return links.flatMap((l) =>
          (l.addr_info ?? []).filter((a) => a.scope === 'global').map((a) => a.local),
        );
      },
      localAddresses() {
        const pid = host.anchorPid();
        // Until `ip netns exec` has entered the namespace, /proc/<pid>/net is the root namespace's.
        if (!inNamespace(pid, ns)) throw new Error(`the anchor of ${name} has not entered ${ns} yet`);
        return localAddresses(pid);
      },
      anchorPid() {
        if (!anchor || !isAlive(anchor) || !anchor.pid) {
          anchor = host.spawn('sleep', ['infinity']);
          anchor.on('error', () => undefined);
        }
        return anchor.pid!;
      },
    };
    return host;
  };

  const lab: NetLab = {
    id,
    bridge,
    subnet: `${subnetBase}.0/24`,
    subnet6: `${v6Base}/64`,
    runnerAddress: opts.runnerAccess === false ? null : `${subnetBase}.1`,
    hosts,
    host(ref) {
      const name = typeof ref === 'string' ? ref : ref.name;
      const h = hosts.find((x) => x.name === name);
      if (!h) throw new Error(`no lab host ${name} (hosts: ${hosts.map((x) => x.name).join(', ')})`);
      return h;
    },
    spareAddress: (n = 0) => `${subnetBase}.${100 + n}`,
    spareAddress6: (n = 0) => `${v6Base}${(100 + n).toString(16)}`,
    async partition(ref, addresses, o = {}) {
      const h = lab.host(ref);
      const rules = partitions.get(h.name) ?? [];
      partitions.set(h.name, rules);
      for (const address of addresses) {
        const v6 = address.includes(':');
        if (o.mode === 'reject') {
          await h.ip(...(v6 ? ['-6'] : []), 'route', 'replace', 'prohibit', `${address}/${v6 ? 128 : 32}`);
          rules.push({ kind: 'route', address });
        } else {
          // A permanent neighbour entry is never overwritten by ARP/NDP: the host keeps sending
          // to a MAC address that nobody has.
          await h.ip('neigh', 'replace', address, 'lladdr', NOWHERE_MAC, 'nud', 'permanent', 'dev', h.iface);
          rules.push({ kind: 'neigh', address });
        }
      }
    },
    async split(a, b) {
      const A = a.map((x) => lab.host(x));
      const B = b.map((x) => lab.host(x));
      for (const x of A)
        await lab.partition(
          x,
          B.flatMap((y) => [y.address, y.address6]),
        );
      for (const y of B)
        await lab.partition(
          y,
          A.flatMap((x) => [x.address, x.address6]),
        );
    },
    async heal(ref) {
      const h = lab.host(ref);
      for (const r of partitions.get(h.name) ?? []) {
        const v6 = r.address.includes(':');
        const args =
          r.kind === 'neigh'
            ? ['neigh', 'del', r.address, 'dev', h.iface]
            : [...(v6 ? ['-6'] : []), 'route', 'del', 'prohibit', `${r.address}/${v6 ? 128 : 32}`];
        await h.ip(...args).catch(() => undefined);
      }
      partitions.delete(h.name);
    },
    async linkDown(ref) {
      await ip(['link', 'set', lab.host(ref).peer, 'down']);
    },
    async linkUp(ref) {
      await ip(['link', 'set', lab.host(ref).peer, 'up']);
    },
    cleanup() {
      cleanupSync(record);
      return Promise.resolve();
    },
  };

  try {
    await ip(['link', 'add', bridge, 'type', 'bridge']);
    await ip(['link', 'set', bridge, 'up']);
    if (lab.runnerAddress) await ip(['addr', 'add', `${lab.runnerAddress}/24`, 'dev', bridge]);
    for (const [i, name] of opts.hosts.entries()) {
      const h = makeHost(name, i);
      hosts.push(h);
      record.hosts.push({ ns: h.ns, peer: h.peer });
      await ip(['netns', 'add', h.ns]);
      // The namespace end is created inside the namespace, so `eth0` never clashes with the host's.
      await ip(['link', 'add', h.peer, 'type', 'veth', 'peer', 'name', h.iface, 'netns', h.ns]);
      await ip(['link', 'set', h.peer, 'master', bridge, 'up']);
      await h.ip('link', 'set', 'lo', 'up');
      await h.ip('addr', 'add', `${h.address}/24`, 'dev', h.iface);
      await h.ip('addr', 'add', `${h.address6}/64`, 'dev', h.iface, 'nodad');
      await h.ip('link', 'set', h.iface, 'up');
      const pid = h.anchorPid();
      for (let t = 0; !inNamespace(pid, h.ns); t++) {
        if (t > 200) throw new Error(`the anchor process of ${h.name} did not enter ${h.ns}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  } catch (err) {
    cleanupSync(record);
    throw new Error(`createNetLab: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  return lab;
}
