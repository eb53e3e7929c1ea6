/**
 * The address on the interface, through iproute2 (`ip addr add/change/del`), and the announcement
 * of a takeover: gratuitous ARP with iputils' `arping -U` for IPv4; for IPv6 the kernel's own
 * unsolicited neighbour advertisement, which it sends after duplicate address detection when the
 * interface's `ndisc_notify` is on (it is switched on here).
 *
 * Every address is added with a kernel lifetime (`valid_lft`) that ends before the VIP key's lease
 * can expire, and renewed on each check: if `pgha vip` is killed, the kernel removes the address
 * itself before another node can take the key.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { PghaError, errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { isAlive, run, startProcess, stopProcess, type RunResult } from '../util/process.js';
import { canonicalAddress } from './config.js';
import { parseFibTrieLocal, parseIfInet6, readProcNet } from './procnet.js';

export interface AddressState {
  present: boolean;
  /** IPv6: duplicate address detection still running. */
  tentative: boolean;
  /** IPv6: another host on the link answered for the address. */
  dadFailed: boolean;
}

/** What the manager needs from the host's network stack; tests can supply their own. */
export interface AddressControl {
  /** `10.0.0.5/24 on eth0`, for messages. */
  readonly label: string;
  /** Checks `ip`, privileges and the interface; throws a one-line `PghaError`. */
  preflight(): Promise<void>;
  inspect(): Promise<AddressState>;
  add(lifetimeS: number): Promise<void>;
  renew(lifetimeS: number): Promise<void>;
  /** Removes the address; succeeds when it is not there. */
  remove(): Promise<void>;
  /** Tells the link the address moved here (in the background). */
  announce(): void;
  close(): Promise<void>;
}

export interface IpRouteOptions {
  address: string;
  family: 4 | 6;
  prefix: number;
  iface: string;
  /** Gratuitous ARP packets per takeover (IPv4); 0 for none. */
  arpCount: number;
  log: Logger;
  ipBin?: string;
  arpingBin?: string;
}

const CAP_NET_ADMIN = 12;
const ABSENT: AddressState = { present: false, tentative: false, dadFailed: false };
const IP_TIMEOUT_MS = 5000;

/** Whether this process may change addresses: root, or CAP_NET_ADMIN in its effective set. */
export function hasNetAdmin(): boolean {
  if (process.getuid?.() === 0) return true;
  try {
    const m = /^CapEff:\s*([0-9a-f]+)/im.exec(readFileSync('/proc/self/status', 'utf8'));
    return m !== null && (BigInt(`0x${m[1]}`) & (1n << BigInt(CAP_NET_ADMIN))) !== 0n;
  } catch {
    return false;
  }
}

/** `AddressControl` with iproute2 and iputils-arping. */
export class IpRoute implements AddressControl {
  readonly label: string;
  private readonly o: IpRouteOptions;
  private readonly ip: string;
  private readonly arping: string;
  private arpingChild: ChildProcess | null = null;
  private arpingMissing = false;

  constructor(o: IpRouteOptions) {
    this.o = o;
    this.ip = o.ipBin ?? 'ip';
    this.arping = o.arpingBin ?? 'arping';
    this.label = `${o.address}/${o.prefix} on ${o.iface}`;
  }

  private get cidr(): string {
    return `${this.o.address}/${this.o.prefix}`;
  }

  private async runIp(args: string[]): Promise<RunResult> {
    try {
      return await run(this.ip, args, { timeoutMs: IP_TIMEOUT_MS });
    } catch (err) {
      if (/ENOENT/.test(errorMessage(err)))
        throw new PghaError('PGHA_VIP_NO_IP', `the ip command was not found: install iproute2`, {
          cause: err,
        });
      throw err;
    }
  }

  /** Turns a failed `ip` run into one clear line. */
  private failure(what: string, r: RunResult): PghaError {
    const msg = (r.stderr || r.stdout).trim().split('\n')[0] ?? `exit code ${r.code}`;
    if (/not permitted|permission denied/i.test(msg))
      return new PghaError(
        'PGHA_VIP_PRIVILEGES',
        `cannot ${what}: ${msg}; pgha vip needs root or the CAP_NET_ADMIN capability`,
      );
    if (/cannot find device|does not exist/i.test(msg))
      return new PghaError('PGHA_VIP_NO_INTERFACE', `cannot ${what}: no network interface "${this.o.iface}"`);
    return new PghaError('PGHA_VIP_IP_FAILED', `cannot ${what}: ip ${msg}`, { retryable: true });
  }

  async preflight(): Promise<void> {
    const version = await this.runIp(['-V']);
    if (version.code !== 0) throw this.failure('run ip -V', version);
    if (!hasNetAdmin()) {
      throw new PghaError(
        'PGHA_VIP_PRIVILEGES',
        'pgha vip needs root or the CAP_NET_ADMIN capability to add and remove addresses ' +
          '(systemd: AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW)',
      );
    }
    const link = await this.runIp(['-j', 'link', 'show', 'dev', this.o.iface]);
    if (link.code !== 0) {
      const all = await this.runIp(['-j', 'link', 'show']);
      let names = '';
      try {
        names = (JSON.parse(all.stdout) as Array<{ ifname: string }>).map((l) => l.ifname).join(', ');
      } catch {
        // the list is only a hint
      }
      throw new PghaError(
        'PGHA_VIP_NO_INTERFACE',
        `vip.interface: no network interface "${this.o.iface}" on this host${names ? ` (there are: ${names})` : ''}`,
      );
    }
    try {
      const [l] = JSON.parse(link.stdout) as Array<{ flags?: string[] }>;
      if (l && !l.flags?.includes('UP'))
        this.o.log.warn(`interface ${this.o.iface} is down: the VIP will not be reachable until it is up`);
    } catch {
      // not JSON: an old iproute2; the address commands will say what is wrong
    }
    if (this.o.family === 6) this.enableNdiscNotify();
    else if (this.o.arpCount > 0) await this.checkArping();
  }

  /**
   * The kernel sends an unsolicited neighbour advertisement for a new IPv6 address, after duplicate
   * address detection, only when `ndisc_notify` is on for the interface.
   */
  private enableNdiscNotify(): void {
    const path = `/proc/sys/net/ipv6/conf/${this.o.iface}/ndisc_notify`;
    try {
      if (readFileSync(path, 'utf8').trim() !== '1') {
        writeFileSync(path, '1');
        this.o.log.info(`set net.ipv6.conf.${this.o.iface}.ndisc_notify = 1 so takeovers are announced`);
      }
    } catch (err) {
      this.o.log.warn(
        `cannot turn on ${path} (${errorMessage(err)}): neighbours learn where the VIP moved only when ` +
          'their neighbour cache entries expire',
      );
    }
  }

  private async checkArping(): Promise<void> {
    try {
      await run(this.arping, ['-V'], { timeoutMs: IP_TIMEOUT_MS });
    } catch {
      this.arpingMissing = true;
      this.o.log.warn(
        'arping not found (Debian: apt-get install iputils-arping): after a takeover, neighbours reach ' +
          'the new node only when their ARP entries expire',
      );
    }
  }

  async inspect(): Promise<AddressState> {
    // procfs first: on a node that does not hold the VIP (the usual case) no `ip` runs at all.
    if (this.o.family === 6) {
      const text = readProcNet('if_inet6');
      if (text !== '') {
        const a = parseIfInet6(text).get(this.o.address);
        if (a?.iface === this.o.iface)
          return { present: true, tentative: a.tentative, dadFailed: a.dadFailed };
        if (!a) return ABSENT;
      }
    } else {
      const text = readProcNet('fib_trie');
      if (text !== '' && !parseFibTrieLocal(text).has(this.o.address)) return ABSENT;
    }
    const fam = this.o.family === 6 ? '-6' : '-4';
    const r = await this.runIp(['-j', fam, 'addr', 'show', 'dev', this.o.iface]);
    if (r.code !== 0) throw this.failure(`read the addresses of ${this.o.iface}`, r);
    let links: Array<{ addr_info?: Array<Record<string, unknown>> }>;
    try {
      links = JSON.parse(r.stdout || '[]') as typeof links;
    } catch {
      throw new PghaError('PGHA_VIP_IP_FAILED', `ip -j addr show printed no JSON (iproute2 too old?)`);
    }
    for (const l of links) {
      for (const a of l.addr_info ?? []) {
        if (typeof a.local !== 'string' || canonicalAddress(a.local) !== this.o.address) continue;
        return { present: true, tentative: a.tentative === true, dadFailed: a.dadfailed === true };
      }
    }
    return ABSENT;
  }

  async add(lifetimeS: number): Promise<void> {
    const lft = ['valid_lft', String(lifetimeS), 'preferred_lft', String(lifetimeS)];
    const r = await this.runIp(['addr', 'add', this.cidr, 'dev', this.o.iface, ...lft]);
    // Someone (a previous run) put it there meanwhile: take it over with our lifetime.
    if (r.code !== 0 && /exists|already assigned/i.test(r.stderr)) return this.renew(lifetimeS);
    if (r.code !== 0) throw this.failure(`add ${this.label}`, r);
  }

  async renew(lifetimeS: number): Promise<void> {
    const lft = ['valid_lft', String(lifetimeS), 'preferred_lft', String(lifetimeS)];
    const r = await this.runIp(['addr', 'change', this.cidr, 'dev', this.o.iface, ...lft]);
    if (r.code !== 0) throw this.failure(`renew ${this.label}`, r);
  }

  async remove(): Promise<void> {
    this.stopAnnouncing();
    const r = await this.runIp(['addr', 'del', this.cidr, 'dev', this.o.iface]);
    if (r.code !== 0 && !/cannot assign requested address|not found/i.test(r.stderr))
      throw this.failure(`remove ${this.label}`, r);
  }

  announce(): void {
    // IPv6: the kernel announces the address itself once DAD completes (ndisc_notify, above).
    if (this.o.family === 6 || this.o.arpCount === 0 || this.arpingMissing) return;
    this.stopAnnouncing();
    // -U: unsolicited (gratuitous) ARP requests, which update the neighbours' existing entries.
    const args = ['-U', '-c', String(this.o.arpCount), '-I', this.o.iface, this.o.address];
    const child = startProcess(this.arping, args);
    this.arpingChild = child;
    let err = '';
    child.stderr?.on('data', (c: Buffer) => (err += c.toString('utf8')));
    child.stdout?.resume();
    child.on('error', (e) => this.o.log.warn(`cannot run arping: ${errorMessage(e)}`));
    child.on('exit', (code, signal) => {
      if (this.arpingChild === child) this.arpingChild = null;
      if (code !== 0 && signal === null)
        this.o.log.warn(`arping exited with code ${code}: ${err.trim().split('\n')[0] ?? ''}`);
    });
  }

  private stopAnnouncing(): void {
    const child = this.arpingChild;
    this.arpingChild = null;
    if (child && isAlive(child)) void stopProcess(child, 'SIGTERM', 1000);
  }

  async close(): Promise<void> {
    const child = this.arpingChild;
    this.arpingChild = null;
    if (child) await stopProcess(child, 'SIGTERM', 1000);
  }
}
