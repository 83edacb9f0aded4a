/** Helpers for the SQLite tests: temp folders and child processes acting on the same file. */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { setPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const ACTOR = join(import.meta.dirname, 'children', 'actor.ts');

// These tests and the children they start (which inherit the priority) burn CPU in bursts; at a
// lower priority they delay less the timers of timing-sensitive suites that `npm test` runs beside
// them on a small machine. They assert no timings themselves, only bounded waits.
try {
  setPriority(10);
} catch {
  // Not permitted here: run at normal priority.
}

/** A fresh temp folder, removed by `cleanup`. */
export function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'rota-sqlite-test-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface Actor {
  child: ChildProcessWithoutNullStreams;
  /** Resolves with the first line equal to `line` (e.g. `"ready"`). */
  waitFor(line: string): Promise<void>;
  /** Send a line on stdin. */
  send(line: string): void;
  /** The last JSON line printed, once the process exits (rejects after `timeoutMs`). */
  result<T = unknown>(timeoutMs?: number): Promise<T>;
}

/**
 * Start the actor child process: `node --import tsx actor.ts <args>`. With `obeyFileModes` a root
 * parent starts it without the capabilities that let root ignore file modes (via `setpriv`), so
 * read-only files and folders are read-only to it too.
 */
export function startActor(args: string[], options: { obeyFileModes?: boolean } = {}): Actor {
  const node = [process.execPath, '--import', 'tsx', ACTOR, ...args];
  const dropCaps = options.obeyFileModes === true && process.getuid?.() === 0;
  const caps = '-dac_override,-dac_read_search';
  const [command, ...rest] = dropCaps
    ? ['setpriv', `--inh-caps=${caps}`, `--bounding-set=${caps}`, '--', ...node]
    : node;
  const child = spawn(command as string, rest, { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters: { line: string; resolve: () => void }[] = [];
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += String(d);
  });
  createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(line);
    for (const w of [...waiters]) {
      if (JSON.stringify(w.line) === line) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    waitFor: (line) =>
      lines.includes(JSON.stringify(line))
        ? Promise.resolve()
        : new Promise<void>((resolve) => waiters.push({ line, resolve })),
    send: (line) => child.stdin.write(`${line}\n`),
    async result<T>(timeoutMs = 100_000) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          child.kill();
          reject(new Error(`actor ${args[0]} did not finish within ${timeoutMs} ms; stderr: ${stderr}`));
        }, timeoutMs);
      });
      try {
        await Promise.race([exited, timeout]);
      } finally {
        clearTimeout(timer);
      }
      const last = lines[lines.length - 1];
      if (last === undefined) throw new Error(`actor ${args[0]} printed nothing; stderr: ${stderr}`);
      return JSON.parse(last) as T;
    },
  };
}
