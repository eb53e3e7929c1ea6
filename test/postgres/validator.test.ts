/**
 * The parameter validator against the real PostgreSQL binary: its catalog (describe-config plus the
 * generated pg_settings table) and the binary's own check of what the pure review lets through.
 */
import { describe, expect, it } from 'vitest';
import { describeDropped } from '../../src/postgres/guc.js';
import { PG_SETTINGS } from '../../src/postgres/pg-settings.generated.js';
import { ParameterValidator } from '../../src/postgres/validator.js';
import { runAsUser } from '../../src/util/process.js';
import { PG_BIN, PG_OS_USER } from '../support/postgres.js';

const validator = new ParameterValidator({ binDir: PG_BIN, user: () => runAsUser(PG_OS_USER) });

describe('ParameterValidator with the installed binary', () => {
  it('knows every parameter the binary lists, with units and enum values from the generated table', async () => {
    const catalog = await validator.catalog();
    const table = PG_SETTINGS[catalog.major];
    expect(table, `no generated pg_settings for PostgreSQL ${catalog.major}`).toBeDefined();
    for (const spec of catalog.specs.values()) {
      // The table was generated from this version, so nothing is left unknown.
      if (spec.type === 'integer' || spec.type === 'real')
        expect([spec.name, spec.unit]).not.toContain(undefined);
      if (spec.type === 'enum') expect(spec.values, spec.name).toBeDefined();
    }
    expect(catalog.specs.get('shared_buffers')).toMatchObject({ unit: '8kB', min: 16 });
    expect(catalog.specs.get('wal_level')?.values).toContain('logical');
  });

  it('drops what the binary refuses, including values only its check hooks catch', async () => {
    const review = await validator.review({
      max_connections: 'lots',
      work_mem: '8MB',
      log_destination: 'nowhere',
      TimeZone: 'Mars/Base',
      synchronous_standby_names: 'FIRST 1 (a,',
      'pg_stat_statements.track': 'all',
      wal_keep_segments: 4,
    });
    expect(review.params).toEqual({
      work_mem: '8MB',
      'pg_stat_statements.track': 'all',
      wal_keep_size: '64MB',
    });
    expect(review.dropped.map(describeDropped)).toEqual([
      "max_connections: invalid value 'lots': expected an integer",
      `log_destination: invalid value 'nowhere': PostgreSQL refuses it (invalid value for parameter "log_destination": "nowhere"; Unrecognized key word: "nowhere".)`,
      `TimeZone: invalid value 'Mars/Base': PostgreSQL refuses it (invalid value for parameter "TimeZone": "Mars/Base")`,
      `synchronous_standby_names: invalid value 'FIRST 1 (a,': PostgreSQL refuses it (invalid value for parameter "synchronous_standby_names": "FIRST 1 (a,"; syntax error at end of input)`,
    ]);
  });

  it('finds nothing wrong with a sound set', async () => {
    expect(
      await validator.problems({
        max_connections: 100,
        hot_standby: true,
        wal_level: 'logical',
        shared_buffers: '128MB',
        synchronous_standby_names: '',
        log_line_prefix: '%m [%p] ',
      }),
    ).toEqual([]);
  });

  it('says it cannot check when there is no binary', async () => {
    const none = new ParameterValidator({ binDir: '/nonexistent/bin', user: () => runAsUser(PG_OS_USER) });
    await expect(none.problems({ max_connections: 1 })).rejects.toThrow(
      /cannot run \/nonexistent\/bin\/postgres/,
    );
  });
});
