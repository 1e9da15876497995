/**
 * Issue 3's end-to-end case: the sftkey pipeline (both stages and the SFT baseline) on real GSM8K rows in
 * their own format, tokenised with GPT-2's tokenizer.json, starting from a Hugging Face checkpoint
 * directory (GPT2LMHeadModel layout: config.json + model.safetensors, written here with random weights at a
 * tiny width but GPT-2's full 50257-token vocabulary). Checks that every step ran, that the trained stage
 * two is itself an HF checkpoint of the same architecture with the tokenizer beside it, and that its masks put weight on exactly
 * the GSM8K answer tokens. Skips when ../shared/data is absent.
 */
import { Effect } from "effect";
import { assert, assertEquals } from "./assert.ts";
import { runAndSummarise } from "../src/cli/run.ts";
import { useBackend } from "../src/backend/backend.ts";
import { build } from "../pipelines/sftkey.ts";
import { saveCheckpoint } from "../src/model/checkpoint.ts";
import { disposeParams, initParams } from "../src/model/model.ts";
import type { ModelConfig } from "../src/model/config.ts";
import { Rng } from "../src/util/rng.ts";
import { loadTokenizer } from "../src/data/tokenizer.ts";

const shared = new URL("../../shared/data/", import.meta.url).pathname;
const present = await Deno.stat(shared).then(() => true, () => false);
if (!present) console.log(`${shared} absent: the GSM8K + GPT-2 + HF checkpoint pipeline test is skipped`);

const GPT2_TINY: ModelConfig = {
  architecture: "gpt2",
  vocabSize: 50257,
  hiddenSize: 32,
  numLayers: 1,
  numHeads: 2,
  numKvHeads: 2,
  intermediateSize: 128,
  maxPositions: 512,
  ropeTheta: 10000,
  rmsNormEps: 1e-5,
  tieEmbeddings: true,
};

const quietly = <A>(f: () => Promise<A>): Promise<A> => {
  const log = console.log;
  console.log = () => {};
  return f().finally(() => (console.log = log));
};

Deno.test({
  name: "pipeline: sftkey on GSM8K rows with the GPT-2 tokenizer, from an HF checkpoint directory",
  ignore: !present,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const rows = (file: string, n: number) => {
      const lines = Deno.readTextFileSync(`${shared}gsm8k/${file}`).split("\n").slice(0, n);
      Deno.writeTextFileSync(`${dir}/${file}`, lines.join("\n") + "\n");
      return `${dir}/${file}`;
    };
    const model = `${dir}/gpt2-tiny`;
    const params = initParams(GPT2_TINY, Rng.seeded(0));
    await Effect.runPromise(
      saveCheckpoint(model, GPT2_TINY, params, {}, {
        baseConfig: { bos_token_id: 50256, eos_token_id: 50256 },
      })
        .pipe(Effect.ensuring(Effect.sync(() => disposeParams(params)))),
    );
    const tokenizer = `${shared}tokenizers/gpt2/tokenizer.json`;
    const runDir = `${dir}/run`;
    const summary = await quietly(() =>
      Effect.runPromise(Effect.flatMap(useBackend("cpu"), (backend) =>
        runAndSummarise(
          build({
            train: rows("train.jsonl", 16),
            test: rows("test.jsonl", 4),
            format: "gsm8k",
            tokenizer,
            model,
            maxLength: 512,
            maxNewTokens: 8,
            budget: {
              stageOneSteps: 2,
              stageTwoSteps: 2,
              train: { batchSize: 4, microBatchSize: 4, warmupSteps: 1 },
            },
          }),
          { runDir, force: [], backend },
        )))
    );
    assert(summary.steps.every((s) => s.status === "ran"), JSON.stringify(summary.steps));
    assertEquals(Object.keys(summary.models).sort(), ["sft", "sftkey-stage-one", "sftkey-stage-two"]);
    for (const [name, m] of Object.entries(summary.models)) assertEquals(m.n, 4, name);

    // Stage two's output is an HF checkpoint of the starting architecture.
    const stageTwo = summary.steps.find((s) => s.name === "sftkey-stage-two")!;
    const out = `${runDir}/artifacts/train/${stageTwo.key}/model`;
    const config = JSON.parse(Deno.readTextFileSync(`${out}/config.json`));
    assertEquals(config.architectures, ["GPT2LMHeadModel"]);
    assertEquals(config.vocab_size, 50257);
    assert((await Deno.stat(`${out}/model.safetensors`)).size > 50257 * 32 * 4);
    assertEquals(Deno.readTextFileSync(`${out}/tokenizer.json`), Deno.readTextFileSync(tokenizer));

    // The test set's key mask covers exactly the tokens of the text after "#### ".
    const testSet = summary.steps.find((s) => s.name === "test-set")!;
    const masked = Deno.readTextFileSync(`${runDir}/artifacts/buildMasks/${testSet.key}/masked.jsonl`)
      .trim().split("\n").map((l) => JSON.parse(l) as { input_ids: number[]; weights: number[] });
    const tok = await Effect.runPromise(loadTokenizer(tokenizer));
    const answers = Deno.readTextFileSync(`${dir}/test.jsonl`).trim().split("\n")
      .map((l) => (JSON.parse(l).answer as string).split("#### ").at(-1)!.trim());
    masked.forEach((row, i) => {
      const keyIds = row.input_ids.filter((_, t) => row.weights[t] > 0);
      assertEquals(tok.decode(keyIds), answers[i]);
    });
  },
});
