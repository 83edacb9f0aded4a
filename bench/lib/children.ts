/**
 * Child Rota nodes (bench/children/node.ts, run with tsx) and their line reports. Every child is
 * remembered and SIGKILLed when the benchmark exits, however it exits.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const NODE = fileURLToPath(new URL('../children/node.ts', import.meta.url));
const live = new Set<ChildProcess>();

function killAll(): void {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}
process.on('exit', killAll);

export interface Child {
  readonly name: string;
  readonly pid: number;
  /** Every stdout line so far. */
  readonly lines: string[];
  /** The first line (already seen or to come) matching `pattern`; rejects after `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs?: number, from?: number): Promise<string>;
  send(line: string): void;
  kill(signal?: NodeJS.Signals): void;
  readonly exited: Promise<void>;
}

/** Start one child node with `role` and `env`; resolves once it printed `READY`. */
export async function startNode(
  name: string,
  role: string,
  env: Record<string, string>,
  readyTimeoutMs = 60_000,
): Promise<Child> {
  const proc = spawn(process.execPath, ['--import', 'tsx', NODE], {
    env: { ...process.env, ...env, ROLE: role, ROTA_NODE_ID: name },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  live.add(proc);
  const lines: string[] = [];
  const waiters: { pattern: RegExp; from: number; resolve: (line: string) => void }[] = [];
  let stderr = '';
  proc.stderr!.on('data', (chunk) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  createInterface({ input: proc.stdout! }).on('line', (line) => {
    lines.push(line);
    for (const w of [...waiters]) {
      if (lines.length - 1 >= w.from && w.pattern.test(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  const exited = new Promise<void>((resolve) =>
    proc.on('exit', () => {
      live.delete(proc);
      resolve();
    }),
  );
  const child: Child = {
    name,
    pid: proc.pid as number,
    lines,
    exited,
    send(line) {
      proc.stdin!.write(`${line}\n`);
    },
    kill(signal = 'SIGKILL') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    },
    waitFor(pattern, timeoutMs = 30_000, from = 0) {
      const seen = lines.slice(from).find((l) => pattern.test(l));
      if (seen) return Promise.resolve(seen);
      return new Promise<string>((resolve, reject) => {
        const waiter = {
          pattern,
          from,
          resolve: (line: string) => {
            clearTimeout(timer);
            resolve(line);
          },
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`${name}: no line matching ${pattern} within ${timeoutMs} ms; stderr: ${stderr}`));
        }, timeoutMs);
        waiters.push(waiter);
        void exited.then(() => {
          if (!waiters.includes(waiter)) return;
          waiters.splice(waiters.indexOf(waiter), 1);
          clearTimeout(timer);
          reject(new Error(`${name} exited before a line matching ${pattern}; stderr: ${stderr}`));
        });
      });
    },
  };
  try {
    await child.waitFor(/^READY/, readyTimeoutMs);
  } catch (err) {
    child.kill();
    throw err;
  }
  return child;
}

/** SIGTERM the children, SIGKILL any still running after `graceMs`. */
export async function stopAll(children: Child[], graceMs = 5000): Promise<void> {
  for (const c of children) c.kill('SIGTERM');
  const timer = new Promise<void>((r) => setTimeout(r, graceMs).unref());
  await Promise.race([Promise.all(children.map((c) => c.exited)), timer]);
  for (const c of children) c.kill('SIGKILL');
  await Promise.all(children.map((c) => c.exited));
}
