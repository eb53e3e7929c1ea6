/**
 * The dashboard in a real browser (Debian's headless Chromium driven by playwright-core) against a
 * real three-node cluster: the page shows the members, a switchover made through the page's dialog
 * moves the leader, and the page follows it. `PGHA_UPDATE_SCREENSHOT=1` also saves the final
 * screenshot as docs/dashboard.png.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { waitFor } from '../support/postgres.js';

/** The page's DOM, as far as the callbacks run in the browser below use it. */
interface PageElement {
  textContent: string | null;
  className: string;
  getAttribute(name: string): string | null;
}
declare const document: {
  querySelector(selector: string): PageElement | null;
  querySelectorAll(selector: string): { length: number };
};

const CHROMIUM = process.env.PGHA_CHROMIUM ?? '/usr/bin/chromium';
const SCREENSHOT = join(import.meta.dirname, '..', '..', 'docs', 'dashboard.png');
const AUTH = { username: 'admin', password: 'dashboard-pw' };

let c: TestCluster;
let browser: Browser;
let page: Page;
const outDir = mkdtempSync(join(tmpdir(), 'pgha-ui-test-'));

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} is missing: run scripts/setup (apt-get install chromium)`);
  c = await startCluster({
    nodes: 3,
    ttl: 10,
    loopWait: 1,
    retryTimeout: 3,
    edit: (cfg) => {
      (cfg.restapi as Record<string, unknown>).authentication = AUTH;
    },
  });
  for (const n of c.nodes) c.startAgent(n.name);
  await c.waitHealthy(2, 90_000);
  browser = await chromium.launch({ executablePath: CHROMIUM });
  page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
});

afterAll(async () => {
  await browser?.close().catch(() => undefined);
  await c?.stop();
  rmSync(outDir, { recursive: true, force: true });
});

/** Roles the page shows, by member name. */
async function shownRoles(): Promise<Record<string, string>> {
  return page.$$eval('#members-body tr', (rows: PageElement[]) =>
    Object.fromEntries(
      rows.map((r) => [r.getAttribute('data-member') ?? '', r.getAttribute('data-role') ?? '']),
    ),
  );
}

/** Waits until the activity list's newest finished entry contains `text`; returns that entry. */
async function activity(text: string, timeout = 60_000): Promise<string> {
  const handle = await page.waitForFunction(
    (t) => {
      const li = document.querySelector('#activity li.ok, #activity li.error');
      return li?.textContent?.includes(t) ? li.className + ': ' + li.textContent : null;
    },
    text,
    { timeout },
  );
  return (await handle.jsonValue()) as string;
}

describe('dashboard at GET /ui', () => {
  const errors: string[] = [];
  let leader = '';
  let server = '';

  it('shows the three members with roles, states and a lag chart', async () => {
    leader = (await c.readCluster()).leader!.name;
    // Served by a replica: the page works from any member, not only the leader.
    server = c.nodes.find((n) => n.name !== leader)!.name;
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      // Refusals (401, 400, ...) are expected answers; Chromium logs each as a failed resource.
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
    });
    await page.goto(`http://127.0.0.1:${c.node(server).apiPort}/ui`);
    await page.waitForFunction(() => document.querySelectorAll('#members-body tr').length === 3);
    expect(await page.textContent('#scope')).toBe('demo');
    const roles = await shownRoles();
    expect(Object.keys(roles).sort()).toEqual(['pg1', 'pg2', 'pg3']);
    expect(roles[leader]).toBe('leader');
    expect(await page.textContent(`#members-body tr[data-member="${leader}"] .state`)).toBe('running');
    expect(await page.textContent('#served-by')).toContain(`served by ${server}`);
    // A few seconds of samples, with some writes so the replicas have something to catch up on.
    await c.query(leader, 'CREATE TABLE ui_load (id int, pad text)');
    for (let i = 0; i < 4; i++) {
      await c.query(
        leader,
        "INSERT INTO ui_load SELECT g, repeat('x', 200) FROM generate_series(1, 40000) g",
      );
      await page.waitForTimeout(1000);
    }
    expect(await page.locator('#lag-chart polyline').count()).toBeGreaterThanOrEqual(2);
  });

  it('switches over through the page (asking for credentials) and follows the new leader', async () => {
    const candidate = c.nodes.map((n) => n.name).find((n) => n !== leader)!;
    await page.click('#switchover-btn');
    await page.selectOption('#so-candidate', candidate);
    await page.click('#so-submit');
    // No credentials yet: the API answers 401 and the page asks for them, then retries.
    await page.waitForSelector('#login-dialog[open]');
    expect(await page.textContent('#login-why')).toContain('no auth header received');
    await page.fill('#login-user', AUTH.username);
    await page.fill('#login-pass', AUTH.password);
    await page.click('#login-submit');
    expect(await activity(`switched over to "${candidate}"`)).toMatch(/^ok/);
    expect(await page.textContent('#auth-state')).toBe(`signed in as ${AUTH.username}`);

    await waitFor(
      `${candidate} to lead`,
      async () => ((await c.readCluster()).leader?.name === candidate ? true : null),
      60_000,
    );
    await c.waitHealthy(2, 90_000);
    // The page follows: new leader, former leader streaming, the switchover in the history.
    await page.waitForFunction(
      ([now, old]) =>
        document.querySelector(`#members-body tr[data-member="${now}"]`)?.getAttribute('data-role') ===
          'leader' &&
        document.querySelector(`#members-body tr[data-member="${old}"] .state`)?.textContent ===
          'streaming' &&
        document.querySelectorAll('#history-body tr').length > 0,
      [candidate, leader],
      { timeout: 30_000 },
    );
    expect((await shownRoles())[candidate]).toBe('leader');
    expect(await page.textContent(`#members-body tr[data-member="${candidate}"] .role`)).toBe('Leader');
    expect(await page.textContent('#history-body tr:first-child')).toContain(candidate);
    await page.waitForTimeout(2000); // a little more of the lag chart for the picture
    const shot = await page.screenshot({ fullPage: true });
    writeFileSync(join(outDir, 'dashboard.png'), shot);
    if (process.env.PGHA_UPDATE_SCREENSHOT === '1') writeFileSync(SCREENSHOT, shot);
    leader = candidate;
  });

  it("pauses, shows a refusal with the API's reason, and resumes", async () => {
    await page.click('#pause-btn');
    await page.waitForSelector('#pause-state:not([hidden])', { timeout: 15_000 });
    expect((await c.readCluster()).config?.value.pause).toBe(true);
    // While paused, a switchover needs a named candidate: Patroni's refusal text, shown as is.
    await page.click('#switchover-btn');
    await page.selectOption('#so-candidate', '');
    await page.click('#so-submit');
    expect(await activity('refused')).toBe(
      'error: ' +
        (await page.textContent('#activity li.error time')) +
        ` switchover from ${leader} refused (HTTP 400): Switchover is possible only to a specific candidate in a paused state`,
    );
    expect(await page.textContent('#flash-text')).toContain('in a paused state');
    await page.click('#resume-btn');
    await page.waitForSelector('#pause-state', { state: 'hidden', timeout: 15_000 });
    expect((await c.readCluster()).config?.value.pause).toBeUndefined();
  });

  it('shows a scheduled switchover and cancels it', async () => {
    const candidate = c.nodes.map((n) => n.name).find((n) => n !== leader)!;
    await page.click('#switchover-btn');
    await page.selectOption('#so-candidate', candidate);
    // datetime-local is in the browser's local time: ten minutes from now.
    const when = await page.evaluate(() => {
      const d = new Date(Date.now() + 10 * 60_000);
      const p = (n: number) => String(n).padStart(2, '0');
      return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
    });
    await page.fill('#so-when', when);
    await page.click('#so-submit');
    expect(await activity('Switchover scheduled')).toMatch(/^ok/);
    await page.waitForSelector('#scheduled li[data-kind="switchover"]', { timeout: 15_000 });
    expect(await page.textContent('#scheduled li[data-kind="switchover"]')).toContain(
      `from ${leader} to ${candidate}`,
    );
    await page.click('#scheduled li[data-kind="switchover"] button');
    expect(await activity('scheduled switchover deleted')).toMatch(/^ok/);
    await page.waitForSelector('#scheduled li[data-kind="switchover"]', {
      state: 'detached',
      timeout: 15_000,
    });
    expect((await c.readCluster()).leader?.name).toBe(leader);
  });

  it('restarts a replica through its own agent (forwarded by the serving agent)', async () => {
    const replica = c.nodes.map((n) => n.name).find((n) => n !== leader && n !== server)!;
    const pidBefore = c.postmasterPid(replica);
    await page.click(`#members-body tr[data-member="${replica}"] button[data-action="restart"]`);
    await page.waitForSelector('#confirm-dialog[open]');
    await page.click('#confirm-ok');
    expect(await activity(`restart ${replica}`, 90_000)).toBe(
      'ok: ' +
        (await page.textContent('#activity li.ok time')) +
        ` restart ${replica}: restarted successfully`,
    );
    expect(c.postmasterPid(replica)).not.toBe(pidBefore);
    // Reinitialize is a replica's action only: the leader's row has no such button.
    expect(
      await page
        .locator(`#members-body tr[data-member="${leader}"] button[data-action="reinitialize"]`)
        .count(),
    ).toBe(0);
    expect(errors, errors.join('\n')).toEqual([]);
  });
});
