/**
 * A dedicated etcd for tests that kill, restart or cut off the server (never the shared one), and
 * a TCP proxy in front of it whose connections a test can drop. Loopback only, free ports, its own
 * data folder, stopped by PID.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** True when an etcd binary is on the PATH. */
export function etcdInstalled(): boolean {
  return spawnSync('sh', ['-c', 'command -v etcd'], { encoding: 'utf8' }).stdout.trim() !== '';
}

export class EtcdServer {
  readonly dir = mkdtempSync(join(tmpdir(), 'rota-etcd-test-'));
  clientPort = 0;
  peerPort = 0;
  #child: ChildProcess | null = null;

  get url(): string {
    return `etcd://127.0.0.1:${this.clientPort}`;
  }

  async start(): Promise<void> {
    if (this.clientPort === 0) {
      this.clientPort = await freePort();
      this.peerPort = await freePort();
    }
    const client = `http://127.0.0.1:${this.clientPort}`;
    const peer = `http://127.0.0.1:${this.peerPort}`;
    this.#child = spawn(
      'etcd',
      [
        '--name',
        'd',
        '--data-dir',
        join(this.dir, 'data'),
        '--listen-client-urls',
        client,
        '--advertise-client-urls',
        client,
        '--listen-peer-urls',
        peer,
        '--initial-advertise-peer-urls',
        peer,
        '--initial-cluster',
        `d=${peer}`,
        '--log-level',
        'error',
        '--heartbeat-interval',
        '50',
        '--election-timeout',
        '500',
      ],
      { stdio: 'ignore' },
    );
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      try {
        const res = await fetch(`${client}/health`);
        if ((await res.text()).includes('"health":"true"')) return;
      } catch {
        // not up yet
      }
      if (this.#child.exitCode !== null) throw new Error(`etcd exited with ${this.#child.exitCode}`);
      await sleep(50);
    }
    throw new Error('the dedicated etcd did not become healthy within 20 s');
  }

  /** Kill the server without warning (SIGKILL) and wait until it is gone. */
  async kill(): Promise<void> {
    const child = this.#child;
    this.#child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
  }

  async destroy(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A TCP proxy whose connections can be cut (and new ones refused) on demand. */
export class CuttableProxy {
  port = 0;
  #server: Server | null = null;
  #sockets = new Set<Socket>();
  #open = true;
  readonly #target: number;

  constructor(targetPort: number) {
    this.#target = targetPort;
  }

  get url(): string {
    return `etcd://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.port = await freePort();
    this.#server = createServer((inbound) => {
      if (!this.#open) {
        inbound.destroy();
        return;
      }
      const outbound = tcpConnect(this.#target, '127.0.0.1');
      for (const s of [inbound, outbound]) {
        this.#sockets.add(s);
        s.on('close', () => this.#sockets.delete(s));
        s.on('error', () => {
          inbound.destroy();
          outbound.destroy();
        });
      }
      inbound.pipe(outbound);
      outbound.pipe(inbound);
    });
    await new Promise<void>((resolve) => this.#server?.listen(this.port, '127.0.0.1', resolve));
  }

  /** Drop every connection and refuse new ones until {@link resume}. */
  cut(): void {
    this.#open = false;
    for (const s of this.#sockets) s.destroy();
  }

  resume(): void {
    this.#open = true;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
  }
}
