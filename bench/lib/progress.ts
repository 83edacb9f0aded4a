/** One progress bar for the whole run: what is running and how far along it is. */
import cliProgress from 'cli-progress';

export class Progress {
  #bar: cliProgress.SingleBar;
  #active = false;

  constructor(
    private readonly total: number,
    private readonly enabled = process.stderr.isTTY === true,
  ) {
    this.#bar = new cliProgress.SingleBar(
      {
        format: 'bench [{bar}] {value}/{total} steps | {step}',
        stream: process.stderr,
        hideCursor: true,
        clearOnComplete: true,
        noTTYOutput: !enabled,
        notTTYSchedule: 5000,
      },
      cliProgress.Presets.shades_classic,
    );
  }

  start(): void {
    this.#bar.start(this.total, 0, { step: 'starting' });
    this.#active = true;
  }

  /** Announce the step now running (also logged as a plain line when not on a terminal). */
  step(label: string): void {
    if (!this.#active) return;
    this.#bar.update({ step: label });
    if (!this.enabled) process.stderr.write(`bench: ${label}\n`);
  }

  done(): void {
    if (this.#active) this.#bar.increment();
  }

  stop(): void {
    if (!this.#active) return;
    this.#active = false;
    this.#bar.stop();
  }
}
