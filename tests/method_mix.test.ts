/**
 * Mixed masks: the mix method's stage two weights thinking tokens lambda and answer tokens 1 (masks are
 * float weights that add up), and its stage one is SFTKey's own node config and inputs, so the
 * content-addressed cache trains it once when both run.
 */
import { Effect } from "effect";
import { answerPartStart, locateKey } from "../src/data/locate.ts";
import { buildMask, type MaskSpec } from "../src/data/masks.ts";
import { tokeniseExample } from "../src/data/tokenise.ts";
import { loadTokenizer } from "../src/data/tokenizer.ts";
import { PipelineBuilder, type StepNode } from "../src/engine/pipeline.ts";
import { prepareData, TEMPLATE } from "../pipelines/data.ts";
import { methodContext } from "../pipelines/method_context.ts";
import { mixWith } from "../pipelines/mix.ts";
import { sftkey } from "../pipelines/sftkey.ts";
import { assertEquals } from "./assert.ts";

const root = new URL("..", import.meta.url).pathname;

Deno.test("mix: stage one is SFTKey's node; stage two weights thinking lambda and answer 1", async () => {
  const p = new PipelineBuilder("t");
  const ctx = methodContext(p, prepareData(p, {}));
  sftkey(ctx);
  const labels = Object.keys(mixWith(0.25)(ctx));
  assertEquals(labels, ["mix0.25"]);
  const nodes = p.build().nodes as StepNode[];
  const node = (name: string) => nodes.find((n) => n.name === name)!;
  assertEquals(node("mix-stage-one").config, node("sftkey-stage-one").config);
  assertEquals(node("mix-stage-one").inputs, node("sftkey-stage-one").inputs);
  const stageTwo = node("mix0.25-stage-two");
  assertEquals(stageTwo.inputs.init, "mix-stage-one");
  const spec = (node(stageTwo.inputs.data).config as { mask: MaskSpec }).mask;

  const tok = await Effect.runPromise(loadTokenizer(`${root}/fixtures/arith/tokenizer.json`));
  const response = "<Thinking>9-3=6\n6+2=8</Thinking><Answer>8</Answer>";
  const key = locateKey(response, { kind: "answer-tags" })!;
  const ex = tokeniseExample(tok, { source: "t", prompt: "What is 9 - 3 + 2?", response }, key, {
    template: TEMPLATE,
    maxLength: 128,
    answerStart: answerPartStart(response, { kind: "answer-tags" }, key),
  });
  const mask = Array.from(buildMask(spec, ex));
  const expected = ex.ids.map((_, t) => (t < ex.promptLength ? 0 : t < ex.answer!.start ? 0.25 : 1));
  assertEquals(mask, expected);
});
