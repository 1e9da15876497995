/**
 * `deno task bench-sweep [--models small,wide] [--seqs 128,256,512,1024,2048] [--reps 2] [--out DIR]`:
 * what a training step costs against sequence length, ours against PyTorch in one run. For each model and
 * length: one sequence per step (batch 1), tokens/s (median of the timed steps after a warm-up) and the
 * process's peak resident memory, each measurement in a fresh process, the two sides alternating as in
 * bench/main.ts. Writes DIR/seq_sweep.json (the rows) and DIR/seq_sweep.svg (a Vega-Lite chart rendered
 * like the report's); DIR defaults to docs/. `--from DIR/seq_sweep.json` renders a measured sweep again.
 */
import { Effect } from "effect";
import type * as vl from "vega-lite";
import { type BackendName, useBackend } from "../src/backend/backend.ts";
import { renderSvg } from "../src/report/charts.ts";
import { BENCH_MODELS } from "./models.ts";
import { flag, median, round, runOurs, runTorch, torchAvailable } from "./runners.ts";

export interface SweepRow {
  readonly model: string;
  readonly side: "ours" | "PyTorch";
  readonly seq: number;
  readonly tokensPerSecond: number;
  readonly peakRssMb: number;
}

/** Tokens/s and peak RSS against sequence length, one line per model and side. */
export const sweepSpec = (rows: ReadonlyArray<SweepRow>, title: string): vl.TopLevelSpec => {
  const panel = (field: "tokensPerSecond" | "peakRssMb", axis: string) => ({
    width: 300,
    height: 220,
    mark: { type: "line" as const, point: { size: 25 } },
    encoding: {
      x: {
        field: "seq",
        type: "quantitative" as const,
        scale: { type: "log" as const, base: 2 },
        axis: { values: [...new Set(rows.map((r) => r.seq))], title: "sequence length (tokens, batch 1)" },
      },
      // Memory spans an order of magnitude: log; throughput stays within a few times: linear from 0.
      y: {
        field,
        type: "quantitative" as const,
        scale: field === "peakRssMb" ? { type: "log" as const } : { zero: true },
        title: axis,
      },
      color: { field: "model", type: "nominal" as const },
      strokeDash: {
        field: "side",
        type: "nominal" as const,
        scale: { domain: ["ours", "PyTorch"], range: [[1, 0], [5, 3]] },
        legend: null, // the title says which is which: a dash legend rendered without its strokes here
      },
      tooltip: [{ field: "model" }, { field: "side" }, { field: "seq" }, { field }],
    },
  });
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title,
    data: { values: rows as unknown as Record<string, unknown>[] },
    hconcat: [panel("tokensPerSecond", "training tokens/s"), panel("peakRssMb", "peak RSS (MiB)")],
  } as vl.TopLevelSpec;
};

const render = async (out: string, sweep: { backend: string; torch: string | null; rows: SweepRow[] }) => {
  const title = `Training cost against sequence length: ours (${sweep.backend}) solid, PyTorch ${
    sweep.torch ?? "-"
  } (1 thread) dashed`;
  await Deno.writeTextFile(`${out}/seq_sweep.svg`, await renderSvg(sweepSpec(sweep.rows, title)));
};

const main = async (args: string[]) => {
  const from = flag(args, "--from");
  if (from !== undefined) {
    // Re-renders a measured sweep (its JSON) without measuring again.
    const dir = from.slice(0, from.lastIndexOf("/") + 1) || ".";
    return await render(dir, JSON.parse(await Deno.readTextFile(from)));
  }
  const names = (flag(args, "--models") ?? "small,wide").split(",");
  const seqs = (flag(args, "--seqs") ?? "128,256,512,1024,2048").split(",").map(Number);
  const reps = Number(flag(args, "--reps") ?? 2);
  const out = flag(args, "--out") ?? new URL("../docs", import.meta.url).pathname;
  const backend = await Effect.runPromise(useBackend((flag(args, "--backend") ?? "auto") as BackendName));
  const torch = await torchAvailable();
  console.error(`backend: ${backend}; reference: ${torch.ok ? `PyTorch ${torch.version}` : torch.reason}`);
  const rows: SweepRow[] = [];
  for (const name of names) {
    const m = BENCH_MODELS.find((x) => x.name === name);
    if (m === undefined) throw new Error(`unknown model ${name} (known: ${BENCH_MODELS.map((x) => x.name)})`);
    for (const seq of seqs) {
      const spec = { model: m.config, batch: 1, seq, reps };
      const row = (side: SweepRow["side"], samples: number[], peakRssMb: number): SweepRow => ({
        model: name,
        side,
        seq,
        tokensPerSecond: round(median(samples))!,
        peakRssMb: round(peakRssMb)!,
      });
      const ours = await runOurs({ task: "train", backend, ...spec });
      rows.push(row("ours", ours.samples, ours.peakRssMb));
      if (torch.ok) {
        const t = await runTorch({ task: "train", ...spec });
        rows.push(row("PyTorch", t.samples, t.peak_rss_mb));
      }
      console.error(
        rows.slice(-2).map((r) =>
          `${r.model} ${r.side} ${r.seq}: ${r.tokensPerSecond} tok/s, ${r.peakRssMb} MiB`
        ).join("; "),
      );
    }
  }
  const load = round(Deno.loadavg()[0], 2);
  await Deno.mkdir(out, { recursive: true });
  const sweep = { backend, torch: torch.ok ? torch.version : null, load_avg_1m_at_end: load, rows };
  await Deno.writeTextFile(`${out}/seq_sweep.json`, JSON.stringify(sweep, null, 1) + "\n");
  await render(out, sweep);
  console.error(
    `load average (1 min) at the end: ${load}; wrote ${out}/seq_sweep.json and ${out}/seq_sweep.svg`,
  );
};

if (import.meta.main) await main(Deno.args);
