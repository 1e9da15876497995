/**
 * Peak resident memory and speed of training steps on a checkpoint, full fine-tuning vs LoRA: each mode
 * runs in its own process (a peak, VmHWM, cannot be reset) that loads the checkpoint, runs STEPS
 * optimizer steps on a batch of 2 x 64 random tokens, saves what it trained (LoRA: the adapter in the PEFT
 * layout; full: the checkpoint) into a temporary directory, and prints one JSON line.
 *
 *   deno run -A tools/lora_memory.ts DIR            both modes, one child process each
 *   deno run -A tools/lora_memory.ts DIR full|lora  one mode in this process
 *
 * DIR: e.g. a SmolLM2-135M- or Qwen2.5-0.5B-shaped checkpoint from tools/make_shaped_checkpoint.ts. LoRA:
 * r 8, alpha 16, the default targets (every block projection).
 */
import { Effect } from "effect";
import { useBackend } from "../src/backend/backend.ts";
import { loadCheckpoint, saveCheckpoint } from "../src/model/checkpoint.ts";
import { attachFreshAdapter, defaultTargets, trainableParams } from "../src/model/lora.ts";
import { saveAdapter } from "../src/model/peft.ts";
import { paramShapes } from "../src/model/model.ts";
import { AdamW } from "../src/train/adamw.ts";
import { optimizerStep } from "../src/train/step.ts";
import { Rng } from "../src/util/rng.ts";

const STEPS = 2, BATCH = 2, SEQ = 64;

const peakRss = (): number => {
  const m = Deno.readTextFileSync("/proc/self/status").match(/VmHWM:\s+(\d+) kB/);
  return m ? Number(m[1]) * 1024 : NaN;
};

const [dir, mode] = Deno.args;
if (!dir) throw new Error("usage: tools/lora_memory.ts DIR [full|lora]");
if (mode === undefined) {
  for (const m of ["full", "lora"]) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL(import.meta.url).pathname, dir, m],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    console.log(new TextDecoder().decode(out.stdout).trim().split("\n").at(-1));
  }
} else {
  const backend = await Effect.runPromise(useBackend((Deno.env.get("SFTKEY_BACKEND") ?? "cpu") as "cpu"));
  const { config, params, hfConfig } = await Effect.runPromise(loadCheckpoint(dir));
  const lora = { r: 8, alpha: 16, dropout: 0 };
  if (mode === "lora") attachFreshAdapter(params, config, paramShapes(config), lora, Rng.seeded(1));
  const trainable = trainableParams(params);
  const optimizer = new AdamW(trainable);
  const rng = Rng.seeded(2);
  const ids = Int32Array.from({ length: BATCH * SEQ }, () => rng.int(config.vocabSize));
  const weights = Float32Array.from({ length: BATCH * SEQ }, (_, i) => (i % SEQ === 0 ? 0 : 1));
  const times: number[] = [];
  let tokens = 0, loss = 0;
  for (let s = 0; s < STEPS; s++) {
    const t0 = performance.now();
    const r = optimizerStep(params, config, optimizer, [{ ids, weights, batch: BATCH, seqLen: SEQ }], {
      lr: 1e-4,
      clipNorm: 1,
    });
    times.push((performance.now() - t0) / 1000);
    tokens = r.tokens;
    loss = r.loss;
  }
  const out = await Deno.makeTempDir({ prefix: "lora-memory-" });
  const t0 = performance.now();
  await Effect.runPromise(
    mode === "lora"
      ? saveAdapter(out, config, params, lora, defaultTargets(config), dir)
      : saveCheckpoint(out, config, params, {}, { baseConfig: hfConfig }),
  );
  const saveSeconds = (performance.now() - t0) / 1000;
  await Deno.remove(out, { recursive: true });
  const trainableCount = [...trainable.values()].reduce((n, v) => n + v.size, 0);
  console.log(JSON.stringify({
    mode,
    backend,
    trainableParams: trainableCount,
    peakRssGiB: +(peakRss() / 1024 ** 3).toFixed(3),
    stepSeconds: times.map((t) => +t.toFixed(2)),
    saveSeconds: +saveSeconds.toFixed(2),
    tokensPerSecond: +(tokens / times.at(-1)!).toFixed(1),
    loss: +loss.toFixed(4),
  }));
}
