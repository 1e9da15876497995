/**
 * `deno task bench [--json] [--backend NAME] [--models tiny,small,wide,smol,qwen05] [--reps N]`: training and generation
 * throughput of this project against PyTorch (tools/bench/torch_bench.py) on the same machine, in one run,
 * plus preprocessing throughput and peak resident memory.
 *
 * Every measurement runs in a child process of its own (this file with --item), so each one's peak
 * resident memory is its own and one model's garbage does not slow the next. Our side and PyTorch's run
 * alternately, one model at a time, so load from other processes on the machine hits both alike; each
 * figure is the median of several repetitions after a warm-up. The timed code is the project's own
 * (src/model, src/train), not a copy.
 */
import { Effect } from "effect";
import { type BackendName, useBackend } from "../src/backend/backend.ts";
import { installedMatmul } from "../src/backend/matmul.ts";
import { type BenchItem, runItem } from "./items.ts";
import { flag, median, round, runOurs, runTorch, torchAvailable } from "./runners.ts";
import { BENCH_MODELS, GENERATE, PREPROCESS, SGEMM, trainFlops } from "./models.ts";

/** Child mode: one measurement, printed as one JSON line. */
const child = async (item: BenchItem): Promise<void> => {
  const backend = await Effect.runPromise(useBackend(item.backend as BackendName));
  const result = await runItem(item, backend);
  console.log(JSON.stringify(result));
};

const main = async (args: string[]) => {
  const itemArg = flag(args, "--item");
  if (itemArg !== undefined) return await child(JSON.parse(itemArg));

  const json = args.includes("--json");
  const log = (s: string) => json ? console.error(s) : console.log(s);
  const requested = (flag(args, "--backend") ?? "auto") as BackendName;
  const names = flag(args, "--models")?.split(",") ??
    BENCH_MODELS.filter((m) => m.inDefault).map((m) => m.name);
  const repsArg = flag(args, "--reps");
  const models = names.map((n) => {
    const m = BENCH_MODELS.find((x) => x.name === n);
    if (m === undefined) throw new Error(`unknown model ${n} (known: ${BENCH_MODELS.map((x) => x.name)})`);
    return m;
  });
  // Resolve the backend here once, so every child uses the same one (and "auto" is reported resolved).
  const backend = await Effect.runPromise(useBackend(requested));
  const torch = await torchAvailable();
  log(`backend: ${backend}${installedMatmul() ? ` (${installedMatmul()!.path})` : ""}`);
  log(torch.ok ? `reference: PyTorch ${torch.version}` : `reference: skipped, ${torch.reason}`);

  // The machine's sgemm speed, measured now, through the products our kernels use: the yardstick of
  // each training row's achieved GFLOP/s.
  const sgemmResult = await runOurs({ task: "sgemm", backend, size: SGEMM.size, reps: SGEMM.reps });
  const sgemmPeak = Math.max(...sgemmResult.samples);
  log(`sgemm peak: ${sgemmPeak.toFixed(1)} GFLOP/s (${SGEMM.size}^3, best of ${SGEMM.reps})`);
  const peak: Record<string, number | null> = {};
  const train: Record<string, unknown>[] = [];
  const generate: Record<string, unknown>[] = [];
  const reps = (fallback: number) => repsArg ? Number(repsArg) : fallback;

  for (const m of models) {
    const r = reps(m.trainReps);
    const ours = await runOurs({
      task: "train",
      backend,
      model: m.config,
      batch: m.batch,
      seq: m.seq,
      reps: r,
    });
    const theirs = torch.ok
      ? await runTorch({ task: "train", model: m.config, batch: m.batch, seq: m.seq, reps: r })
      : undefined;
    const x = median(ours.samples), y = theirs ? median(theirs.samples) : null;
    // tokens/s -> GFLOP/s through the step's flop count per token.
    const gflopPerToken = trainFlops(m.config, m.batch, m.seq) / (m.batch * m.seq) / 1e9;
    train.push({
      model: m.name,
      ours_tok_s: round(x),
      torch_tok_s: round(y),
      ratio: round(y ? x / y : null, 3),
      ours_gflop_s: round(x * gflopPerToken),
      torch_gflop_s: round(y === null ? null : y * gflopPerToken),
      ours_sgemm_share: round((x * gflopPerToken) / sgemmPeak, 3),
      torch_sgemm_share: round(y === null ? null : (y * gflopPerToken) / sgemmPeak, 3),
    });
    peak[`train_${m.name}_ours`] = round(ours.peakRssMb);
    peak[`train_${m.name}_torch`] = round(theirs?.peak_rss_mb ?? null);
    log(`train ${m.name}: ours ${x.toFixed(0)} tok/s, torch ${y?.toFixed(0) ?? "-"} tok/s`);

    for (const batch of GENERATE.batches) {
      const spec = { model: m.config, batch, prompt: GENERATE.prompt, newTokens: GENERATE.newTokens };
      const gr = reps(GENERATE.reps);
      const o = await runOurs({ task: "generate", backend, ...spec, reps: gr });
      const t = torch.ok ? await runTorch({ task: "generate", ...spec, reps: gr }) : undefined;
      const gx = median(o.samples), gy = t ? median(t.samples) : null;
      generate.push({
        model: m.name,
        batch,
        ours_tok_s: round(gx),
        torch_tok_s: round(gy),
        ratio: round(gy ? gx / gy : null, 3),
      });
      peak[`generate_${m.name}_b${batch}_ours`] = round(o.peakRssMb);
      peak[`generate_${m.name}_b${batch}_torch`] = round(t?.peak_rss_mb ?? null);
      log(
        `generate ${m.name} batch ${batch}: ours ${gx.toFixed(1)} tok/s, torch ${
          gy?.toFixed(1) ?? "-"
        } tok/s`,
      );
    }
  }

  let preprocess: number | null = null;
  try {
    Deno.statSync(PREPROCESS.data);
    Deno.statSync(PREPROCESS.tokenizer);
    const p = await runOurs({ task: "preprocess", backend, reps: reps(PREPROCESS.reps) });
    preprocess = round(median(p.samples));
    peak.preprocess = round(p.peakRssMb);
    log(`preprocess: ${preprocess} examples/s (${PREPROCESS.data})`);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    log(`preprocess: skipped, ${PREPROCESS.data} or ${PREPROCESS.tokenizer} is absent`);
  }

  const result = {
    backend,
    // Other processes on the machine slow both sides alike but add noise: the 1-minute load average at
    // the end of the run says how busy it was (2 means two cores' worth of runnable processes).
    load_avg_1m: round(Deno.loadavg()[0], 2),
    torch: torch.ok ? torch.version : null,
    sgemm_peak_gflop_s: round(sgemmPeak),
    train,
    generate,
    preprocess_examples_s: preprocess,
    peak_rss_mb: peak,
  };
  log(`load average (1 min) at the end: ${result.load_avg_1m}`);
  if (json) console.log(JSON.stringify(result));
  else {
    console.log(
      "\nmodel  task              ours tok/s  torch tok/s  ratio  GFLOP/s ours / torch (share of sgemm)",
    );
    for (const r of train) {
      console.log(
        `${String(r.model).padEnd(6)} train             ${String(r.ours_tok_s).padStart(10)}  ` +
          `${String(r.torch_tok_s ?? "-").padStart(11)}  ${String(r.ratio ?? "-").padEnd(5)}  ` +
          `${r.ours_gflop_s} (${r.ours_sgemm_share}) / ${r.torch_gflop_s ?? "-"} (${
            r.torch_sgemm_share ?? "-"
          })`,
      );
    }
    for (const r of generate) {
      console.log(
        `${String(r.model).padEnd(6)} generate batch ${String(r.batch).padEnd(2)} ` +
          `${String(r.ours_tok_s).padStart(10)}  ${String(r.torch_tok_s ?? "-").padStart(11)}  ${
            r.ratio ?? "-"
          }`,
      );
    }
  }
};

if (import.meta.main) await main(Deno.args);
