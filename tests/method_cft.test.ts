/**
 * CFT (arXiv 2510.10974): a token is critical when every replacement by the model's next-best tokens,
 * continued greedily, gives a wrong answer. A constructed case: solutions of three tokens [x, r, end]
 * whose answer is the middle token r. The "model" continues a perturbed prefix with the solution's own
 * remaining tokens (so a changed x or end leaves r, and the answer, intact, while a changed r is carried
 * into the answer). Exactly r must be critical, whatever the batch size, and every continuation counted.
 */
import {
  type CriticalSearch,
  findCriticalTokens,
  type Prefix,
  type Solution,
  topK,
} from "../src/steps/critical_tokens.ts";
import { assert, assertEquals } from "./assert.ts";

const solutions: Solution[] = [
  { prompt: [100, 101], response: [5, 7, 9] }, // answer 7
  { prompt: [102], response: [6, 3, 9] }, // answer 3
];
const gold = [7, 3];

const stub = (calls: number[]): CriticalSearch => ({
  // Two alternatives per position, never the token itself.
  alternatives: (s) => s.response.map((tok) => [tok + 10, tok + 20]),
  continueAll: (prefixes: ReadonlyArray<Prefix>) => {
    calls.push(prefixes.length);
    return prefixes.map((p) => {
      const s = solutions.find((s) => s.prompt.join() === p.prompt.join())!;
      return s.response.slice(p.response.length);
    });
  },
  correct: (i, response) => response[1] === gold[i],
});

Deno.test("cft: on a constructed case the answer-deciding token, and only it, is critical", () => {
  for (const batchSize of [1, 4, 100]) {
    const calls: number[] = [];
    const result = findCriticalTokens(solutions, stub(calls), batchSize);
    assertEquals(result.critical, [[false, true, false], [false, true, false]]);
    // Round one: 2 solutions x 3 positions; round two only for the positions still critical (r, twice).
    assertEquals(result.continuations, 8);
    assertEquals(calls.reduce((a, b) => a + b, 0), 8);
    assert(calls.every((n) => n <= batchSize), `calls ${calls} exceed ${batchSize}`);
  }
});

Deno.test("cft: one replacement that still reaches the answer makes a token non-critical", () => {
  const calls: number[] = [];
  const search = stub(calls);
  // For the first solution, the 2nd-best token at position 1 happens to be another way to the answer.
  const lenient: CriticalSearch = {
    ...search,
    correct: (i, response) => search.correct(i, response) || (i === 0 && response[1] === 17),
  };
  const result = findCriticalTokens(solutions, lenient, 5);
  assertEquals(result.critical, [[false, false, false], [false, true, false]]);
});

Deno.test("cft: topK lists the most probable tokens of a row, most probable first", () => {
  const logits = Float32Array.from([0.1, 3, -1, 2, 2.5, 0, /* row 1 */ 5, 4, 3, 2, 1, 0]);
  assertEquals(topK(logits, 0, 6, 3), [1, 4, 3]);
  assertEquals(topK(logits, 1, 6, 3), [0, 1, 2]);
});
