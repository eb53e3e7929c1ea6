import { describe, expect, it } from 'vitest';
import { commandName, modulesToLoad } from './argv.js';

const MODULES = ['ctl', 'router', 'vip', 'bacula', 'watchdog-access'] as const;
const BUILT_IN = ['agent', 'demo'];

describe('commandName', () => {
  const cases: { args: string[]; want: string | undefined }[] = [
    { args: [], want: undefined },
    { args: ['--help'], want: undefined },
    { args: ['-V'], want: undefined },
    { args: ['agent', 'x.yml'], want: 'agent' },
    { args: ['--help', 'ctl'], want: 'ctl' },
    { args: ['ctl', '-c', 'x.yml', 'list'], want: 'ctl' },
    { args: ['--', 'agent'], want: undefined },
  ];
  for (const c of cases)
    it(`${JSON.stringify(c.args)} -> ${String(c.want)}`, () => expect(commandName(c.args)).toBe(c.want));
});

describe('modulesToLoad', () => {
  const cases: { args: string[]; want: string[] }[] = [
    { args: ['agent', 'x.yml'], want: [] },
    { args: ['demo', '-n', '1'], want: [] },
    { args: ['agent', '--help'], want: [] },
    { args: ['ctl', '-c', 'x.yml', 'list'], want: ['ctl'] },
    { args: ['router', 'x.yml'], want: ['router'] },
    { args: ['watchdog-access', 'x.yml'], want: ['watchdog-access'] },
    { args: [], want: [...MODULES] },
    { args: ['--help'], want: [...MODULES] },
    { args: ['help', 'ctl'], want: [...MODULES] },
    { args: ['agnet'], want: [...MODULES] },
  ];
  for (const c of cases)
    it(`${JSON.stringify(c.args)} -> ${JSON.stringify(c.want)}`, () =>
      expect(modulesToLoad(c.args, MODULES, BUILT_IN)).toEqual(c.want));
});
