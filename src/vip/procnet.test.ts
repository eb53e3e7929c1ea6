import { describe, expect, it } from 'vitest';
import { parseFibTrieLocal, parseIfInet6 } from './procnet.js';

// /proc/net/fib_trie of a namespace with 10.213.9.1/24 and the VIPs .100/24 and .101/32.
const FIB_TRIE = `Main:
  +-- 10.213.9.0/24 3 0 5
     +-- 10.213.9.0/31 1 0 0
        |-- 10.213.9.0
           /24 link UNICAST
        |-- 10.213.9.1
           /32 host LOCAL
     +-- 10.213.9.100/31 1 0 0
        |-- 10.213.9.100
           /32 host LOCAL
        |-- 10.213.9.101
           /32 host LOCAL
     |-- 10.213.9.255
        /32 link BROADCAST
Local:
  +-- 10.213.9.0/24 3 0 5
     |-- 10.213.9.1
        /32 host LOCAL
`;

const IF_INET6 = `fe8000000000000088d05ffffe225862 03 40 20 c0       d0
fd000009000000000000000000000005 03 40 00 82       d0
fd000009000000000000000000000100 03 40 00 48       eth0
fd000009000000000000000000000101 03 40 00 08       eth0
`;

describe('procfs addresses', () => {
  it('fib_trie: the /32 host LOCAL leaves, nothing else', () => {
    expect([...parseFibTrieLocal(FIB_TRIE)].sort()).toEqual(['10.213.9.1', '10.213.9.100', '10.213.9.101']);
  });

  it('if_inet6: canonical addresses with their interface, tentative and DAD-failed flags', () => {
    const a = parseIfInet6(IF_INET6);
    expect(a.get('fd00:9::5')).toEqual({ iface: 'd0', tentative: false, dadFailed: false });
    expect(a.get('fd00:9::100')).toEqual({ iface: 'eth0', tentative: true, dadFailed: true });
    expect(a.get('fd00:9::101')).toEqual({ iface: 'eth0', tentative: false, dadFailed: true });
    expect(a.has('fe80::88d0:5fff:fe22:5862')).toBe(true);
  });
});
