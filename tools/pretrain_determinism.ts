/**
 * Determinism check of `deno task pipeline pretrain`: recomputes the first 20 steps of each training leg in
 * the run directory of a finished run (the cached corpus, tokenizer and blocks are reused) and compares
 * their losses with the finished run's train_log.jsonl. Warm-up is 25 steps, so the learning rates of the
 * first 20 steps do not depend on a leg's length.
 *
 *   npx -y deno@2.9.6 run -A tools/pretrain_determinism.ts RUN_DIR
 */
import { Effect } from "effect";
import { useBackend } from "../src/backend/backend.ts";
import { validate } from "../src/engine/pipeline.ts";
import { runPipeline } from "../src/engine/runner.ts";
import { silentReporter } from "../src/engine/progress.ts";
import { storeFor } from "../src/cli/run.ts";
import { build } from "../pipelines/pretrain.ts";
const runDir = Deno.args[0] ?? "runs/pretrain";
const backend = await Effect.runPromise(useBackend("cpu-blas"));
const run = async (budget: { stageOneSteps?: number; stageTwoSteps?: number }, keep: string[]) => {
  const full = build({ budget });
  const p = validate({ ...full, nodes: full.nodes.filter((n) => keep.includes(n.name)) });
  const r = await Effect.runPromise(
    Effect.scoped(runPipeline(p, { store: storeFor(runDir), reporter: silentReporter(), backend })),
  );
  return r.outputs;
};
const rows = async (dir: string) =>
  (await Deno.readTextFile(`${dir}/train_log.jsonl`)).trim().split("\n").map((l) =>
    JSON.parse(l).loss as number
  );
const pre = ["corpus", "tokenizer", "corpus-tokens", "train-blocks"];
const fullRun = await run({}, [...pre, "base", "base-more"]);
const a = await run({ stageOneSteps: 20 }, [...pre, "base"]);
const b = await run({ stageTwoSteps: 20 }, [...pre, "base", "base-more"]);
for (
  const [name, short, long] of [["leg 1", a.get("base")!, fullRun.get("base")!], [
    "leg 2",
    b.get("base-more")!,
    fullRun.get("base-more")!,
  ]]
) {
  const x = await rows(short), y = (await rows(long)).slice(0, 20);
  const maxDiff = Math.max(...x.map((v, i) => Math.abs(v - y[i])));
  console.log(
    name,
    "identical:",
    JSON.stringify(x) === JSON.stringify(y),
    "max |diff|",
    maxDiff,
    "first",
    x[0],
    y[0],
    "last",
    x[19],
    y[19],
  );
}
