import { describe, expect, it } from 'vitest';
import { ConfigError } from '../util/errors.js';
import { canonicalAddress, parseVipSection } from './config.js';

function problems(raw: unknown, router?: unknown): string[] {
  try {
    parseVipSection(raw, router);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('vip: section', () => {
  it('fills defaults: leader mode, /32, ttl 10, check every second, 3 gratuitous ARPs', () => {
    expect(parseVipSection({ address: '192.168.1.160', interface: 'enp0s3' })).toEqual({
      address: '192.168.1.160',
      family: 4,
      prefix: 32,
      interface: 'enp0s3',
      mode: 'leader',
      ttl: 10,
      check_interval: 1,
      fall: 2,
      rise: 1,
      arp_count: 3,
    });
  });

  it('router mode takes its health URL from router.status_listen', () => {
    const v = parseVipSection(
      { address: '10.0.0.5', prefix: '24', interface: 'eth0', mode: 'Router' },
      { status_listen: '0.0.0.0:8009' },
    );
    expect(v).toMatchObject({
      mode: 'router',
      prefix: 24,
      router_health_url: 'http://127.0.0.1:8009/status',
    });
  });

  it('IPv6 addresses are canonical and default to /128', () => {
    const v = parseVipSection({ address: 'FD00:0:0::10', interface: 'eth0' });
    expect(v).toMatchObject({ address: 'fd00::10', family: 6, prefix: 128 });
    expect(canonicalAddress('2001:db8:0:0:0:0:2:1')).toBe('2001:db8::2:1');
  });

  it('reports every problem as vip.key: what is wrong', () => {
    expect(problems({ address: '10.0.0.300', interface: 'a/b', mode: 'vrrp', ttl: 1, prefix: 40 })).toEqual([
      'vip.address: expected an IPv4 or IPv6 address, got "10.0.0.300"',
      'vip.interface: expected an interface name (1-15 characters, no spaces, "/" or ":"), got "a/b"',
      'vip.mode: expected one of leader, router, got "vrrp"',
      'vip.ttl: must be at least 4, got 1',
    ]);
    expect(problems({ address: '10.0.0.5', interface: 'eth0', prefix: 33 })).toEqual([
      'vip.prefix: must be at most 32 for an IPv4 address, got 33',
    ]);
    expect(problems({ address: '10.0.0.5', interface: 'eth0', ttl: 4, check_interval: 2 })).toEqual([
      'vip.check_interval: must be at most (ttl − 2) / 2 = 1 seconds, got 2',
    ]);
    expect(problems({ address: '10.0.0.5', interface: 'eth0', bogus: 1 })).toEqual([
      'vip.bogus: unknown key',
    ]);
    expect(problems(undefined)[0]).toMatch(/^vip: required/);
  });

  it('router mode without a health URL or router.status_listen says what to set', () => {
    expect(problems({ address: '10.0.0.5', interface: 'eth0', mode: 'router' })).toEqual([
      'vip.router_health_url: required in router mode when router.status_listen is not set ' +
        '(the local router status URL, e.g. http://127.0.0.1:8009/status)',
    ]);
    expect(
      problems({ address: '10.0.0.5', interface: 'eth0', mode: 'router', router_health_url: 'ftp://x' }),
    ).toEqual(['vip.router_health_url: expected an http(s) URL, got "ftp://x"']);
  });
});
