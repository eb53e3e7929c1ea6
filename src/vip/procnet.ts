/**
 * The local addresses of a network namespace, read from procfs instead of spawning `ip`: IPv4 from
 * `net/fib_trie` (every local address is a `/32 host LOCAL` leaf), IPv6 from `net/if_inet6` (with
 * the interface and flags). Reading both takes microseconds, so a node that does not hold the VIP
 * can check every second at no cost; `/proc/self/net` is the caller's own namespace and
 * `/proc/<pid>/net` that of process `pid`.
 */
import { readFileSync } from 'node:fs';
import { canonicalAddress } from './config.js';

/** An IPv6 address on an interface, from `if_inet6`. */
export interface Inet6Address {
  iface: string;
  tentative: boolean;
  dadFailed: boolean;
}

const IFA_F_DADFAILED = 0x08;
const IFA_F_TENTATIVE = 0x40;

/** The IPv4 addresses local to the namespace (any interface), from the text of `fib_trie`. */
export function parseFibTrieLocal(text: string): Set<string> {
  const out = new Set<string>();
  let leaf: string | null = null;
  for (const line of text.split('\n')) {
    const m = /\|-- (\d+\.\d+\.\d+\.\d+)/.exec(line);
    if (m) leaf = m[1]!;
    else if (leaf !== null && /\/32 host LOCAL/.test(line)) out.add(leaf);
    else if (/\+--/.test(line)) leaf = null;
  }
  return out;
}

/** The IPv6 addresses of the namespace, canonical, from the text of `if_inet6`. */
export function parseIfInet6(text: string): Map<string, Inet6Address> {
  const out = new Map<string, Inet6Address>();
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6 || !/^[0-9a-f]{32}$/i.test(f[0]!)) continue;
    const hex = f[0]!;
    const groups = Array.from({ length: 8 }, (_, i) => hex.slice(i * 4, i * 4 + 4));
    const flags = parseInt(f[4]!, 16);
    out.set(canonicalAddress(groups.join(':')), {
      iface: f[5]!,
      tentative: (flags & IFA_F_TENTATIVE) !== 0,
      dadFailed: (flags & IFA_F_DADFAILED) !== 0,
    });
  }
  return out;
}

/** Reads a procfs net file of `pid`'s namespace (`self` by default); '' when unreadable. */
export function readProcNet(file: 'fib_trie' | 'if_inet6', pid: number | 'self' = 'self'): string {
  try {
    return readFileSync(`/proc/${pid}/net/${file}`, 'utf8');
  } catch {
    return '';
  }
}

/** Every local address (IPv4 and IPv6, canonical) of `pid`'s network namespace. */
export function localAddresses(pid: number | 'self' = 'self'): Set<string> {
  const out = parseFibTrieLocal(readProcNet('fib_trie', pid));
  for (const a of parseIfInet6(readProcNet('if_inet6', pid)).keys()) out.add(a);
  return out;
}
