/**
 * Progress of long steps: a live, rewritten line on a terminal; plain periodic lines otherwise (CI logs,
 * files), so a log is readable and still shows that work is moving.
 */

/** Where a long step stands. */
export interface ProgressUpdate {
  /** Items (optimizer steps, examples) done so far. */
  readonly done: number;
  /** Items in all, when known before the end (a streamed file's rows are not). */
  readonly total?: number;
  /** The latest loss, when the step trains or scores. */
  readonly loss?: number;
  /** Loss-weighted tokens (or other items) processed per second. */
  readonly rate?: number;
  /** What `rate` counts (default "tok"). */
  readonly unit?: string;
}

/** One long operation's progress line. */
export interface Progress {
  /** Reports where the operation stands (printed at most every few seconds off a terminal). */
  update(p: ProgressUpdate): void;
  /** Ends the line: prints the last update. */
  finish(): void;
}

/** Where a run tells the user what it does: narrative lines and progress lines. */
export interface Reporter {
  /** A line of narrative output ("stage-one: cached", the final table, ...). */
  log(line: string): void;
  /** A progress line for one long operation, shown with `label`. */
  progress(label: string): Progress;
}

const fmtDuration = (s: number): string => {
  if (!Number.isFinite(s)) return "?";
  const m = Math.floor(s / 60);
  const sec = Math.round(s % 60);
  return m > 0 ? `${m}m${String(sec).padStart(2, "0")}s` : `${sec}s`;
};

const describe = (label: string, p: ProgressUpdate, elapsed: number): string => {
  const parts = [
    p.total === undefined ? `${label} ${p.done} ${p.unit ?? "tok"}` : `${label} ${p.done}/${p.total}`,
  ];
  if (p.loss !== undefined) parts.push(`loss ${p.loss.toFixed(4)}`);
  if (p.rate !== undefined) parts.push(`${p.rate.toFixed(0)} ${p.unit ?? "tok"}/s`);
  parts.push(`elapsed ${fmtDuration(elapsed)}`);
  if (p.total !== undefined) {
    parts.push(`ETA ${fmtDuration(p.done > 0 ? (elapsed / p.done) * (p.total - p.done) : NaN)}`);
  }
  return parts.join("  ");
};

const encoder = new TextEncoder();

/** Reports to the console: a rewritten line on a terminal, a line every `intervalSeconds` (10) otherwise. */
export const consoleReporter = (opts: { interactive?: boolean; intervalSeconds?: number } = {}): Reporter => {
  const interactive = opts.interactive ?? Deno.stderr.isTerminal();
  const interval = (opts.intervalSeconds ?? 10) * 1000;
  return {
    log: (line) => console.log(line),
    progress: (label) => {
      const start = performance.now();
      let lastPrint = 0;
      let last: ProgressUpdate | undefined;
      const print = (p: ProgressUpdate) => {
        const line = describe(label, p, (performance.now() - start) / 1000);
        if (interactive) Deno.stderr.writeSync(encoder.encode(`\r\x1b[2K${line}`));
        else console.log(`  ${line}`);
      };
      return {
        update: (p) => {
          last = p;
          const now = performance.now();
          if (interactive || now - lastPrint >= interval || p.done === p.total) {
            lastPrint = now;
            print(p);
          }
        },
        finish: () => {
          if (interactive && last) Deno.stderr.writeSync(encoder.encode("\n"));
        },
      };
    },
  };
};

/**
 * Progress of a step that streams rows whose count is not known in advance (the data steps): `add` after
 * each batch; the line shows rows done and rows per second.
 */
export const rowProgress = (
  reporter: Reporter,
  label: string,
): { add(rows: number): void; finish(): void } => {
  const progress = reporter.progress(label);
  const start = performance.now();
  let done = 0;
  return {
    add: (rows) => {
      done += rows;
      progress.update({
        done,
        rate: done / Math.max(1e-3, (performance.now() - start) / 1000),
        unit: "rows",
      });
    },
    finish: () => progress.finish(),
  };
};

/** A reporter that records lines instead of printing them (tests, library use). */
export const silentReporter = (lines: string[] = []): Reporter => ({
  log: (line) => void lines.push(line),
  progress: () => ({ update: () => {}, finish: () => {} }),
});
