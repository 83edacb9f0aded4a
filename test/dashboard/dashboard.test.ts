/**
 * The dashboard end to end in real headless Chromium (Debian's `chromium`, driven by
 * playwright-core): the page shows every section, updates live without a reload, and its actions
 * (pause a schedule, run it now, cancel a task, stop a pool job) change both the page and the
 * store. Saves a screenshot to test-results/dashboard.png.
 *
 * The browser: `ROTA_CHROMIUM`, else /usr/bin/chromium, installed with apt-get when running as
 * root and missing. Under CI=true a missing browser fails the test; elsewhere it is skipped.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { test } from 'node:test';
import { chromium } from 'playwright-core';
import { startServer } from '../../src/http/server.js';
import { Rota } from '../../src/index.js';

function findChromium(): string | null {
  const candidates = [process.env.ROTA_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter(
    (p): p is string => typeof p === 'string' && p.length > 0,
  );
  const found = () => candidates.find((p) => existsSync(p)) ?? null;
  if (found()) return found();
  if (process.getuid?.() === 0) {
    const install = () =>
      spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'chromium'], {
        stdio: 'inherit',
        timeout: 600_000,
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
    if (install().status !== 0) {
      spawnSync('apt-get', ['update'], { stdio: 'inherit', timeout: 300_000 });
      install();
    }
  }
  return found();
}

const executablePath = findChromium();
const skip =
  executablePath === null && process.env.CI !== 'true'
    ? 'no Chromium (install Debian chromium or set ROTA_CHROMIUM)'
    : false;

test('dashboard: live sections and actions in headless Chromium', { skip, timeout: 60_000 }, async () => {
  assert.ok(executablePath, 'Chromium is required under CI=true (apt-get install chromium)');
  const rota = await Rota.connect({ store: `memory:dash-${process.pid}`, sessionTtl: 2000 });
  let runs = 0;
  await rota.schedules.register({ name: 'nightly', every: 3_600_000, description: 'hourly report' }, () => {
    runs++;
  });
  await rota.schedules.start();
  const { id: taskId } = await rota.tasks.enqueue('emails', { to: 'ada@example.com' });
  const pool = await rota.pool.join('streams', { workerTtl: 2000 });
  await pool.addWorker({ async start() {}, async stop() {} });
  await pool.dispatch('stream-1', 'x');
  await pool.dispatch('stream-2', 'y');
  const lock = await rota.cluster.lock('search-index');
  await rota.hosts.add('web', { max: 1 });

  const server = await startServer(rota, { port: 0, liveInterval: 50 });
  const browser = await chromium.launch({ executablePath: executablePath as string, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(server.url);

    // Every section is filled from the API.
    await page.locator('#members td', { hasText: rota.nodeId }).first().waitFor();
    await page.locator('#locks td', { hasText: 'search-index' }).waitFor();
    await page.locator('#hosts td', { hasText: 'web' }).waitFor();
    await page.locator('#schedules td', { hasText: 'nightly' }).first().waitFor();
    await page.locator('#counts td', { hasText: 'emails' }).waitFor();
    await page.locator('#pools .worker', { hasText: 'stream-1' }).waitFor();
    await page.locator(`#tasks code`, { hasText: taskId }).waitFor();
    await page.locator('#live.on').waitFor();

    // Pause: the button turns into Resume and the store says paused.
    await page.click('button[data-action="pause"][data-name="nightly"]');
    await page.locator('button[data-action="resume"][data-name="nightly"]').waitFor();
    assert.equal((await rota.schedules.get('nightly')).state, 'paused');
    await page.click('button[data-action="resume"][data-name="nightly"]');
    await page.locator('button[data-action="pause"][data-name="nightly"]').waitFor();
    assert.equal((await rota.schedules.get('nightly')).state, 'active');

    // Run now: one manual run happens and shows up in the recent runs.
    await page.click('button[data-action="run-now"][data-name="nightly"]');
    await page.locator('#schedules .chip', { hasText: 'manual' }).waitFor();
    assert.equal(runs, 1);

    // Cancel a task: the store has it cancelled, and the page offers Retry instead.
    await page.click(`button[data-action="cancel"][data-id="${taskId}"]`);
    await page.locator(`button[data-action="retry"][data-id="${taskId}"]`).waitFor();
    const cancelled = await rota.tasks.get(taskId);
    assert.equal(cancelled?.outcome, 'cancelled');

    // Stop a pool job: gone from the store and from the page.
    await page.click('button[data-action="stop-job"][data-key="stream-1"]');
    await page.locator('#pools .chip', { hasText: 'stream-1' }).waitFor({ state: 'detached' });
    assert.deepEqual(await pool.jobKeys({ fresh: true }), ['stream-2']);

    // Live without a reload: changes made elsewhere reach the page over SSE.
    const navigations: string[] = [];
    page.on('framenavigated', (f) => navigations.push(f.url()));
    await rota.tasks.enqueue('reports', { n: 1 });
    await page.locator('#counts td', { hasText: 'reports' }).waitFor({ timeout: 5000 });
    await lock.release();
    await page
      .locator('#locks td', { hasText: 'search-index' })
      .waitFor({ state: 'detached', timeout: 5000 });
    assert.deepEqual(navigations, []);

    mkdirSync('test-results', { recursive: true });
    await page.screenshot({ path: 'test-results/dashboard.png', fullPage: true });
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
    await server.close();
    await rota.close();
  }
});
