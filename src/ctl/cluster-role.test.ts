import { describe, expect, it } from 'vitest';
import { standbySection } from './cluster-role.js';

describe('demote-cluster: the standby_cluster section it writes', () => {
  it.each([
    [
      { host: 'src', port: '5433' },
      { host: 'src', port: 5433 },
    ],
    [{ restoreCommand: 'cp /a/%f %p' }, { restore_command: 'cp /a/%f %p' }],
    [
      { host: 'src', primarySlotName: 'standby' },
      { host: 'src', primary_slot_name: 'standby' },
    ],
  ])('%j → %j', (opts, section) => {
    expect(standbySection(opts)).toEqual(section);
  });

  it('needs a host, a port or a restore command', () => {
    expect(() => standbySection({ primarySlotName: 'x' })).toThrow(
      /At least --host, --port or --restore-command/,
    );
  });

  it('refuses a port that is not one', () => {
    expect(() => standbySection({ port: '99999' })).toThrow(/--port must be a port number/);
  });
});
