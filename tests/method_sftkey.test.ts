/**
 * SFTKey (arXiv 2512.21017) stage two, as the shipped method builds it: the mask its stage-two node
 * trains on is read from the pipeline, applied to a tokenised fixture example, and then the gradient of
 * the loss with respect to the logits is exactly zero at every position that does not predict an answer
 * token, and the loss equals the mean cross entropy over the answer tokens (computed here in float64).
 */
import * as tf from "@tensorflow/tfjs";
import { Effect } from "effect";
import { answerPartStart, locateKey } from "../src/data/locate.ts";
import { buildMask, type MaskSpec } from "../src/data/masks.ts";
import { tokeniseExample } from "../src/data/tokenise.ts";
import { loadTokenizer } from "../src/data/tokenizer.ts";
import { PipelineBuilder, type StepNode } from "../src/engine/pipeline.ts";
import { shiftedLoss } from "../src/train/loss.ts";
import { Rng } from "../src/util/rng.ts";
import { prepareData, TEMPLATE } from "../pipelines/data.ts";
import { methodContext } from "../pipelines/method_context.ts";
import { sftkey } from "../pipelines/sftkey.ts";
import { assert, assertAlmostEquals, assertEquals } from "./assert.ts";
import { softmax64 } from "./method_test_helpers.ts";

await tf.setBackend("cpu");
const root = new URL("..", import.meta.url).pathname;

/** The mask spec of the buildMasks node feeding `trainNode`. */
const maskOf = (nodes: ReadonlyArray<unknown>, trainNode: string): MaskSpec => {
  const steps = nodes as StepNode[];
  const train = steps.find((n) => n.name === trainNode)!;
  const masks = steps.find((n) => n.name === train.inputs.data)!;
  return (masks.config as { mask: MaskSpec }).mask;
};

Deno.test("sftkey stage two: zero gradient off the answer, loss = mean CE over the answer tokens", async () => {
  const p = new PipelineBuilder("t");
  const ctx = methodContext(p, prepareData(p, {}));
  sftkey(ctx);
  const spec = maskOf(p.build().nodes, "sftkey-stage-two");
  assertEquals(spec, { kind: "answer" });

  const tok = await Effect.runPromise(loadTokenizer(`${root}/fixtures/arith/tokenizer.json`));
  const line = (await Deno.readTextFile(`${root}/fixtures/arith/train.jsonl`)).split("\n")[0];
  const { prompt, response } = JSON.parse(line);
  const key = locateKey(response, { kind: "answer-tags" })!;
  const ex = tokeniseExample(tok, { source: "train.jsonl:1", prompt, response }, key, {
    template: TEMPLATE,
    maxLength: 128,
    answerStart: answerPartStart(response, { kind: "answer-tags" }, key),
  });
  const mask = buildMask(spec, ex);
  const T = ex.ids.length, V = tok.vocabSize;
  // The answer part is `<Answer>8</Answer>` and EOS: neither the prompt nor the thinking part.
  assertEquals(
    tok.decode(ex.ids.filter((_, t) => mask[t] > 0)),
    response.slice(response.indexOf("<Answer>")) + "<|endoftext|>",
  );

  const rng = Rng.seeded(5);
  const logits = Float32Array.from({ length: T * V }, () => 3 * rng.normal());
  let ce = 0, n = 0;
  for (let t = 1; t < T; t++) {
    if (mask[t] === 0) continue;
    ce += -Math.log(softmax64(logits.subarray((t - 1) * V, t * V))[ex.ids[t]]);
    n++;
  }
  tf.tidy(() => {
    const x = tf.tensor3d(logits, [1, T, V]);
    const ids = Int32Array.from(ex.ids);
    const f = (l: tf.Tensor) => shiftedLoss(l as tf.Tensor3D, ids, mask).loss;
    assertAlmostEquals(f(x).dataSync()[0], ce / n, 1e-5);
    const g = tf.grad(f)(x).dataSync();
    for (let t = 0; t < T; t++) {
      // Row t predicts ids[t + 1]; it matters only when that token is in the answer part.
      const row = g.subarray(t * V, (t + 1) * V);
      if (t + 1 < T && mask[t + 1] > 0) assert(row.some((v) => v !== 0), `row ${t} should have a gradient`);
      else assert(row.every((v) => v === 0), `row ${t} (not predicting an answer token) has a gradient`);
    }
  });
});
