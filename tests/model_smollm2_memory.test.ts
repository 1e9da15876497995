/**
 * Slow tier (SFTKEY_SLOW=1): a SmolLM2-135M-shaped checkpoint (tools/make_shaped_checkpoint.ts smol, written by
 * a child process so its memory does not count here) loads, trains one optimizer step on a short batch
 * and saves within 8 GiB of resident memory. Prints the peak (VmHWM) and the sampled RSS maximum.
 */
import * as tf from "@tensorflow/tfjs";
import { Effect } from "effect";
import { loadCheckpoint, saveCheckpoint } from "../src/model/checkpoint.ts";
import { countParams, disposeParams } from "../src/model/model.ts";
import { AdamW } from "../src/train/adamw.ts";
import { Rng } from "../src/util/rng.ts";
import { optimizerStep } from "../src/train/step.ts";
import { assert, assertEquals } from "./assert.ts";

const slow = Deno.env.get("SFTKEY_SLOW") === "1";
const GiB = 1024 ** 3;

/** Peak resident set size of this process so far (Linux), in bytes. */
const peakRss = (): number | undefined => {
  try {
    const m = Deno.readTextFileSync("/proc/self/status").match(/VmHWM:\s+(\d+) kB/);
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
};

Deno.test({
  name: "SmolLM2-135M shape: load, one training step and save within 8 GiB resident",
  ignore: !slow,
  fn: async () => {
    await tf.setBackend("cpu");
    const dir = await Deno.makeTempDir({ prefix: "smollm2-shaped-" });
    try {
      const tool = new URL("../tools/make_shaped_checkpoint.ts", import.meta.url).pathname;
      const made = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-read",
          "--allow-write",
          "--allow-env",
          "--allow-sys",
          tool,
          "smol",
          `${dir}/base`,
        ],
        stdout: "piped",
        stderr: "inherit",
      }).output();
      assert(made.success, "make_shaped_checkpoint.ts failed");

      let sampled = Deno.memoryUsage().rss;
      const timer = setInterval(() => sampled = Math.max(sampled, Deno.memoryUsage().rss), 50);
      const started = performance.now();
      const { config, params, hfConfig } = await Effect.runPromise(loadCheckpoint(`${dir}/base`));
      const loaded = performance.now();
      assertEquals(countParams(config), 134_515_008);
      const rng = Rng.seeded(1);
      const seqLen = 32;
      const ids = Int32Array.from({ length: 2 * seqLen }, () => rng.int(config.vocabSize));
      const weights = Float32Array.from({ length: 2 * seqLen }, (_, i) => (i % seqLen < 8 ? 0 : 1));
      const optimizer = new AdamW(params);
      const result = optimizerStep(params, config, optimizer, [{ ids, weights, batch: 2, seqLen }], {
        lr: 1e-4,
        clipNorm: 1,
      });
      const trained = performance.now();
      assert(result.applied && Number.isFinite(result.loss), `step not applied: ${JSON.stringify(result)}`);
      // Random N(0, 0.02) weights predict nearly uniformly: the loss is close to ln(49152) = 10.8.
      assert(Math.abs(result.loss - Math.log(config.vocabSize)) < 0.5, `loss ${result.loss}`);
      await Effect.runPromise(saveCheckpoint(`${dir}/trained`, config, params, {}, { baseConfig: hfConfig }));
      const saved = performance.now();
      clearInterval(timer);
      sampled = Math.max(sampled, Deno.memoryUsage().rss);
      disposeParams(params);
      const peak = peakRss() ?? sampled;
      console.log(
        `SmolLM2-135M shape: peak RSS ${(peak / GiB).toFixed(2)} GiB (VmHWM), sampled max ` +
          `${(sampled / GiB).toFixed(2)} GiB; load ${((loaded - started) / 1000).toFixed(1)} s, one step ` +
          `(2 x ${seqLen} tokens) ${((trained - loaded) / 1000).toFixed(1)} s, save ` +
          `${((saved - trained) / 1000).toFixed(1)} s; loss ${result.loss.toFixed(3)}`,
      );
      assert(peak < 8 * GiB, `peak resident memory ${(peak / GiB).toFixed(2)} GiB exceeds 8 GiB`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
