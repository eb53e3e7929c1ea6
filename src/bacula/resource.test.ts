import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PghaError } from '../util/errors.js';
import { catalogResourceText } from './command.js';
import {
  baculaQuote,
  catalogEndpoint,
  parsePortFlag,
  passwordFromEnv,
  renderCatalogResource,
} from './resource.js';

const dir = mkdtempSync(join(tmpdir(), 'pgha-bacula-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function yml(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

/** The message of the one-line error `fn` throws. */
function failure(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PghaError);
    return (err as Error).message;
  }
  throw new Error('did not throw');
}

describe('renderCatalogResource', () => {
  it("renders the Director's Catalog resource, quoting what Bacula's lexer would misread", () => {
    expect(
      renderCatalogResource({
        name: 'BaculaCatalog',
        address: '192.168.1.160',
        port: 5433,
        dbname: 'bacula',
        user: 'bacula',
        password: 'a "quoted" \\ pw#;',
      }),
    ).toBe(
      [
        'Catalog {',
        '  Name = "BaculaCatalog"',
        '  DB Address = "192.168.1.160"',
        '  DB Port = 5433',
        '  dbname = "bacula"',
        '  dbuser = "bacula"',
        '  dbpassword = "a \\"quoted\\" \\\\ pw#;"',
        '}',
        '',
      ].join('\n'),
    );
    expect(baculaQuote('plain')).toBe('"plain"');
  });

  it('leaves dbpassword out when no password is given', () => {
    const text = renderCatalogResource({ name: 'MyCatalog', address: 'h', port: 1, dbname: 'd', user: 'u' });
    expect(text).not.toContain('dbpassword');
  });
});

describe('catalogEndpoint', () => {
  it('uses the vip address (without its prefix) and the router port', () => {
    const raw = { router: { listen: '0.0.0.0:6543' }, vip: { address: '10.1.2.3/24' } };
    expect(catalogEndpoint(raw, {}, 'f.yml')).toEqual({ host: '10.1.2.3', port: 6543 });
  });

  it("uses the router's own listen host when it is not a wildcard, and 5433 by default", () => {
    expect(catalogEndpoint({ router: { listen: '10.0.0.5:7000' } }, {}, 'f.yml')).toEqual({
      host: '10.0.0.5',
      port: 7000,
    });
    expect(catalogEndpoint({}, { address: 'db.example' }, 'f.yml')).toEqual({
      host: 'db.example',
      port: 5433,
    });
  });

  it('lets --address and --port win', () => {
    const raw = { router: { listen: '0.0.0.0:6543' }, vip: { address: '10.1.2.3' } };
    expect(catalogEndpoint(raw, { address: '10.9.9.9', port: '15433' }, 'f.yml')).toEqual({
      host: '10.9.9.9',
      port: 15433,
    });
  });

  it('refuses to guess an address for a wildcard listen without a vip section', () => {
    expect(failure(() => catalogEndpoint({}, {}, 'f.yml'))).toBe(
      'f.yml: router.listen is 0.0.0.0:5433 (every address) and there is no vip: section; ' +
        'pass --address with the address the Director connects to (the virtual IP)',
    );
  });

  it('says what is wrong with bad input, in one line', () => {
    expect(failure(() => catalogEndpoint({ vip: { address: 'nowhere' } }, {}, 'f.yml'))).toBe(
      'f.yml: vip.address: expected an IP address like 192.168.1.160, got "nowhere"',
    );
    expect(failure(() => parsePortFlag('70000'))).toBe('--port: expected a port number 1-65535, got "70000"');
    expect(failure(() => parsePortFlag('54x'))).toBe('--port: expected a port number 1-65535, got "54x"');
    expect(failure(() => catalogEndpoint({}, { address: 'a b' }, 'f.yml'))).toBe(
      '--address: expected a host name or IP address, got "a b"',
    );
    expect(failure(() => passwordFromEnv('NOT_SET_ANYWHERE', {}))).toBe(
      '--password-env: environment variable NOT_SET_ANYWHERE is not set',
    );
    expect(failure(() => passwordFromEnv('1bad', {}))).toBe(
      '--password-env: expected an environment variable name, got "1bad"',
    );
    expect(passwordFromEnv('PW', { PW: 'x' })).toBe('x');
    expect(passwordFromEnv(undefined, {})).toBeUndefined();
  });
});

describe('catalogResourceText', () => {
  const flags = { name: 'MyCatalog', dbname: 'bacula', user: 'bacula' };

  it('reads the router and vip sections of a patroni.yml', () => {
    const p = yml('node.yml', 'scope: x\nrouter:\n  listen: 0.0.0.0:5433\nvip:\n  address: 192.168.1.160\n');
    expect(catalogResourceText(p, flags)).toContain('  DB Address = "192.168.1.160"\n  DB Port = 5433\n');
  });

  it('reports a missing file, broken YAML and a bad router section', () => {
    expect(failure(() => catalogResourceText(join(dir, 'missing.yml'), flags))).toBe(
      `${join(dir, 'missing.yml')}: cannot read configuration: file not found`,
    );
    expect(failure(() => catalogResourceText(yml('list.yml', '- a\n'), flags))).toBe(
      `${join(dir, 'list.yml')}: expected a YAML mapping at the top level`,
    );
    expect(
      failure(() => catalogResourceText(yml('bad.yml', 'router:\n  listen: 0.0.0.0:99999\n'), flags)),
    ).toBe(`${join(dir, 'bad.yml')}: router.listen: expected host:port, got "0.0.0.0:99999"`);
    expect(
      failure(() =>
        catalogResourceText(yml('ok.yml', 'vip: {address: 10.0.0.1}\n'), { ...flags, name: ' ' }),
      ),
    ).toBe('--name: expected a name, got " "');
  });
});
