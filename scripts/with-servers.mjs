#!/usr/bin/env node
/**
 * with-servers: start Redis, PostgreSQL and etcd on 127.0.0.1 in a throwaway folder, export their
 * URLs, run the given command, then stop the servers by PID and delete the folder (also when the
 * command fails or the script is interrupted).
 *
 *   node scripts/with-servers.mjs [--chromium] <command> [args...]
 *
 * Exported to the command: ROTA_TEST_REDIS_URL, ROTA_TEST_POSTGRES_URL, ROTA_TEST_ETCD_URL.
 * PostgreSQL runs with fsync, synchronous_commit and full_page_writes off for test speed;
 * ROTA_SERVERS_DURABLE=1 keeps its defaults (all on), as the benchmark does; it also keeps etcd's
 * fsync (off otherwise). initdb always runs with --no-sync (that only concerns the cluster's
 * creation). Redis runs without persistence (no RDB, no AOF) either way.
 * A URL already set in the environment is used as is (that server is not started).
 * Missing binaries are installed with apt-get when running as root. Ports are picked free, so a
 * reused machine with servers already listening does not break the run.
 * Under CI=true a server that does not come up fails the run; elsewhere it is reported loudly and
 * its variable is left unset, so the tests that need it skip with a line naming the variable.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CI = process.env.CI === 'true';
const DURABLE = process.env.ROTA_SERVERS_DURABLE === '1';
const PG_BIN = process.env.ROTA_PG_BIN ?? '/usr/lib/postgresql/15/bin';
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const log = (msg) => process.stderr.write(`[with-servers] ${msg}\n`);

// `--chromium`: also make sure Debian's chromium is installed (the dashboard test), up front, so
// a long apt-get does not run in the middle of timing-sensitive tests.
const wantChromium = process.argv[2] === '--chromium';
const command = process.argv.slice(wantChromium ? 3 : 2);
if (command.length === 0) {
  log('usage: with-servers.mjs <command> [args...]');
  process.exit(2);
}

function which(bin) {
  return spawnSync('sh', ['-c', `command -v ${bin}`], { encoding: 'utf8' }).stdout.trim() || null;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, check, timeoutMs = 30_000, child = null) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    // A server that exited (e.g. its port was taken meanwhile) will not come up: say so at once.
    if (child && child.exitCode !== null) throw new Error(`${what} exited with code ${child.exitCode}`);
    try {
      if (await check()) return true;
    } catch {
      // not up yet
    }
    await sleep(50);
  }
  throw new Error(`${what} did not become ready within ${timeoutMs} ms`);
}

function redisPing(port) {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let data = '';
    socket.setTimeout(1000, () => {
      socket.destroy();
      resolve(false);
    });
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      data += chunk;
      if (data.includes('\r\n')) {
        socket.destroy();
        resolve(data.startsWith('+PONG'));
      }
    });
    socket.on('error', () => resolve(false));
  });
}

// ---------------------------------------------------------------------------------------------

const needed = {
  redis: !process.env.ROTA_TEST_REDIS_URL,
  postgres: !process.env.ROTA_TEST_POSTGRES_URL,
  etcd: !process.env.ROTA_TEST_ETCD_URL,
};

function ensureInstalled() {
  const missing = [];
  if (needed.redis && !which('redis-server')) missing.push('redis-server');
  if (needed.etcd && !which('etcd')) missing.push('etcd-server', 'etcd-client');
  if (needed.postgres && !existsSync(join(PG_BIN, 'postgres'))) missing.push('postgresql');
  if (wantChromium && !process.env.ROTA_CHROMIUM && !existsSync('/usr/bin/chromium'))
    missing.push('chromium');
  if (missing.length === 0) return;
  if (!isRoot || !which('apt-get')) {
    log(`cannot install ${missing.join(', ')}: not root or no apt-get`);
    return;
  }
  log(`installing ${missing.join(', ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const opts = { stdio: ['ignore', 'ignore', 'inherit'], env };
  try {
    execFileSync('apt-get', ['update', '-qq'], opts);
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], opts);
  } catch (err) {
    log(`apt-get failed: ${err.message}`);
  }
}

const state = mkdtempSync(join(tmpdir(), 'rota-servers-'));
chmodSync(state, 0o755); // the postgres user must be able to enter it
const children = [];
let pgData = null;
let cleaned = false;

function signalAll(signal) {
  if (pgData) {
    // The postmaster runs under runuser: signal it directly, found by its pid file.
    try {
      const pid = Number(readFileSync(join(pgData, 'postmaster.pid'), 'utf8').split('\n')[0]);
      if (pid > 0) process.kill(pid, signal === 'SIGTERM' ? 'SIGINT' : signal);
    } catch {
      // already gone
    }
  }
  for (const child of children) {
    try {
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid, signal);
    } catch {
      // already gone
    }
  }
}

/** Stop every server (graceful, then SIGKILL after 5 s) and delete the state folder. */
async function shutdown() {
  if (cleaned) return;
  cleaned = true;
  signalAll('SIGTERM');
  const exited = children.map((c) =>
    c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise((r) => c.once('exit', r)),
  );
  const timer = new Promise((r) => setTimeout(r, 5000).unref());
  await Promise.race([Promise.all(exited), timer]);
  signalAll('SIGKILL');
  try {
    rmSync(state, { recursive: true, force: true });
  } catch {
    // best effort
  }
}

// Last resort when the process exits some other way: kill synchronously, leave nothing running.
process.on('exit', () => {
  if (cleaned) return;
  signalAll('SIGKILL');
  try {
    rmSync(state, { recursive: true, force: true });
  } catch {
    // best effort
  }
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    shutdown().finally(() => process.exit(130));
  });
}

function startChild(name, bin, args, options = {}) {
  const out = join(state, `${name}.log`);
  writeFileSync(out, '');
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  const append = (chunk) => {
    try {
      writeFileSync(out, chunk, { flag: 'a' });
    } catch {
      // state folder removed during shutdown
    }
  };
  child.stdout.on('data', append);
  child.stderr.on('data', append);
  child.on('error', (err) => append(`spawn error: ${err.message}\n`));
  children.push(child);
  return { child, logFile: out };
}

function tail(file) {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-15).join('\n');
  } catch {
    return '(no log)';
  }
}

async function startRedis(attempt) {
  const bin = which('redis-server');
  if (!bin) throw new Error('redis-server is not installed');
  const port = await freePort();
  const dir = join(state, `redis-${attempt}`);
  execFileSync('mkdir', ['-p', dir]);
  const { child, logFile } = startChild('redis', bin, [
    '--bind',
    '127.0.0.1',
    '--port',
    String(port),
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    'no',
    '--daemonize',
    'no',
    '--protected-mode',
    'yes',
    '--maxmemory-policy',
    'noeviction',
  ]);
  try {
    await waitFor('redis', async () => child.exitCode === null && (await redisPing(port)), 15_000, child);
  } catch (err) {
    throw new Error(`${err.message}\n${tail(logFile)}`);
  }
  return `redis://127.0.0.1:${port}`;
}

async function startEtcd(attempt) {
  const bin = which('etcd');
  if (!bin) throw new Error('etcd is not installed');
  const client = await freePort();
  const peer = await freePort();
  const { child, logFile } = startChild('etcd', bin, [
    '--name',
    't',
    '--data-dir',
    join(state, `etcd-${attempt}`),
    '--listen-client-urls',
    `http://127.0.0.1:${client}`,
    '--advertise-client-urls',
    `http://127.0.0.1:${client}`,
    '--listen-peer-urls',
    `http://127.0.0.1:${peer}`,
    '--initial-advertise-peer-urls',
    `http://127.0.0.1:${peer}`,
    '--initial-cluster',
    `t=http://127.0.0.1:${peer}`,
    '--log-level',
    'warn',
    // Tests grant many short leases and compact on purpose; keep the defaults otherwise. Under
    // ROTA_SERVERS_DURABLE=1 etcd keeps its default fsync on every commit.
    ...(DURABLE ? [] : ['--unsafe-no-fsync']),
    // etcd's minimum lease TTL is 1.5 x the election timeout rounded up to a second: 2 s with the
    // defaults (100/1000 ms). 50/500 ms make it 1 s, so grant(1000) really gets 1 s.
    '--heartbeat-interval',
    '50',
    '--election-timeout',
    '500',
  ]);
  try {
    await waitFor(
      'etcd',
      async () => {
        if (child.exitCode !== null) return false;
        const res = await fetch(`http://127.0.0.1:${client}/health`);
        return (await res.text()).includes('"health":"true"');
      },
      20_000,
      child,
    );
  } catch (err) {
    throw new Error(`${err.message}\n${tail(logFile)}`);
  }
  return `etcd://127.0.0.1:${client}`;
}

async function startPostgres(attempt) {
  const postgres = join(PG_BIN, 'postgres');
  if (!existsSync(postgres)) throw new Error(`PostgreSQL is not installed in ${PG_BIN}`);
  const port = await freePort();
  pgData = join(state, `pg-${attempt}`);
  const asPg = isRoot ? ['runuser', '-u', 'postgres', '--'] : [];
  if (isRoot) execFileSync('install', ['-d', '-o', 'postgres', '-g', 'postgres', pgData]);
  else execFileSync('mkdir', ['-p', pgData]);
  const initdb = [
    ...asPg,
    join(PG_BIN, 'initdb'),
    '-D',
    pgData,
    '-A',
    'trust',
    '-U',
    'postgres',
    '--no-sync',
    '-E',
    'UTF8',
    '--locale=C',
  ];
  const init = spawnSync(initdb[0], initdb.slice(1), { encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr || init.stdout}`);
  const args = [
    ...asPg,
    postgres,
    '-D',
    pgData,
    '-c',
    'listen_addresses=127.0.0.1',
    '-p',
    String(port),
    '-k',
    pgData,
    // Test speed only (fsync, synchronous_commit and full_page_writes off). ROTA_SERVERS_DURABLE=1
    // keeps PostgreSQL's default durability instead (the benchmark runs that way).
    ...(DURABLE ? [] : ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off']),
    '-c',
    'max_connections=1000',
    '-c',
    'shared_buffers=128MB',
  ];
  const { child, logFile } = startChild('postgres', args[0], args.slice(1));
  const isReady = join(PG_BIN, 'pg_isready');
  try {
    await waitFor(
      'postgres',
      () =>
        child.exitCode === null &&
        spawnSync(isReady, ['-h', '127.0.0.1', '-p', String(port), '-q']).status === 0,
      30_000,
      child,
    );
  } catch (err) {
    throw new Error(`${err.message}\n${tail(logFile)}`);
  }
  return `postgres://postgres@127.0.0.1:${port}/postgres`;
}

async function main() {
  const started = Date.now();
  if (Object.values(needed).some(Boolean) || wantChromium) ensureInstalled();
  const env = { ...process.env };
  const tasks = [
    ['redis', 'ROTA_TEST_REDIS_URL', startRedis],
    ['postgres', 'ROTA_TEST_POSTGRES_URL', startPostgres],
    ['etcd', 'ROTA_TEST_ETCD_URL', startEtcd],
  ];
  const failures = [];
  await Promise.all(
    tasks.map(async ([name, variable, start]) => {
      if (!needed[name]) {
        log(`${name}: using ${variable}=${process.env[variable]}`);
        return;
      }
      try {
        // A free port can be taken by another process before the server binds it: try again on
        // fresh ports (and a fresh data folder).
        for (let attempt = 1; ; attempt++) {
          try {
            env[variable] = await start(attempt);
            break;
          } catch (err) {
            if (attempt >= 3) throw err;
            log(`${name} attempt ${attempt} failed (${err.message.split('\n')[0]}); retrying`);
          }
        }
        log(`${name}: ${env[variable]}`);
      } catch (err) {
        failures.push(name);
        log(`!!! ${name} did not start: ${err.message}`);
        log(`!!! tests that need ${name} will be skipped; set ${variable} to run them`);
      }
    }),
  );
  if (failures.length > 0 && CI) {
    log(`CI=true and ${failures.join(', ')} did not come up: failing the run`);
    await shutdown();
    process.exit(1);
  }
  log(`servers ready in ${Date.now() - started} ms`);
  const child = spawn(command[0], command.slice(1), { stdio: 'inherit', env });
  const code = await new Promise((resolve) => child.on('exit', (c, s) => resolve(c ?? (s ? 1 : 0))));
  await shutdown();
  process.exit(code);
}

main().catch(async (err) => {
  log(`failed: ${err.stack ?? err}`);
  await shutdown();
  process.exit(1);
});
