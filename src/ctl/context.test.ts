import { describe, expect, it } from 'vitest';
import { ctlConfigPath } from './context.js';

describe('ctlConfigPath: which file pgha ctl reads, as patronictl', () => {
  const present = (paths: string[]) => (p: string) => paths.includes(p);
  it.each([
    ['-c first', '/a.yml', { PATRONICTL_CONFIG_FILE: '/b.yml', HOME: '/root' }, [], '/a.yml'],
    [
      'then $PATRONICTL_CONFIG_FILE',
      undefined,
      { PATRONICTL_CONFIG_FILE: '/b.yml', HOME: '/root' },
      [],
      '/b.yml',
    ],
    [
      "then patronictl's own file under ~/.config, when it exists",
      undefined,
      { HOME: '/root' },
      ['/root/.config/patroni/patronictl.yaml'],
      '/root/.config/patroni/patronictl.yaml',
    ],
    [
      'under $XDG_CONFIG_HOME when set',
      undefined,
      { HOME: '/root', XDG_CONFIG_HOME: '/etc/xdg' },
      ['/etc/xdg/patroni/patronictl.yaml', '/root/.config/patroni/patronictl.yaml'],
      '/etc/xdg/patroni/patronictl.yaml',
    ],
    ['none: no file', undefined, { HOME: '/root' }, [], undefined],
  ])('%s', (_name, flag, env, files, want) => {
    expect(ctlConfigPath(flag, env, present(files))).toBe(want);
  });
});
