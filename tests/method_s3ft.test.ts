/**
 * S3FT (arXiv 2502.08130): each branch is taken on a constructed case. Example 0: the model's own
 * response is accepted (self). Example 1: it is rejected, its paraphrase of the gold response accepted
 * (paraphrase). Example 2: both rejected (gold). Paraphrases are generated only for rejected examples.
 */
import { selectTargets } from "../src/steps/s3ft_select.ts";
import type { Generated } from "../src/steps/self_generation.ts";
import { assertEquals } from "./assert.ts";

const gen = (...ids: number[]): Generated => ({ ids, finished: true });
// The judge: a response is right when its last token is the gold answer.
const gold = [4, 5, 6];
const accepts = (i: number, g: Generated) => g.ids.at(-1) === gold[i];

Deno.test("s3ft: self, paraphrase and gold branches on a constructed case", () => {
  const own = [gen(1, 4), gen(1, 9), gen(2, 9)];
  const asked: number[][] = [];
  const paraphrase = (indices: ReadonlyArray<number>) => {
    asked.push([...indices]);
    return indices.map((i) => (i === 1 ? gen(7, 5) : gen(7, 0)));
  };
  const choices = selectTargets(own, paraphrase, accepts);
  assertEquals(choices.map((c) => c.branch), ["self", "paraphrase", "gold"]);
  assertEquals(choices[0].response, own[0]);
  assertEquals(choices[1].response, gen(7, 5));
  assertEquals(choices[2].response, undefined);
  assertEquals(asked, [[1, 2]]);
});

Deno.test("s3ft: no paraphrase is generated when every own response is accepted", () => {
  let called = false;
  const choices = selectTargets([gen(4), gen(5), gen(6)], () => {
    called = true;
    return [];
  }, accepts);
  assertEquals(choices.map((c) => c.branch), ["self", "self", "self"]);
  assertEquals(called, false);
});
