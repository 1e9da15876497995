import { lrAt } from "../src/train/schedule.ts";
import { assertAlmostEquals } from "./assert.ts";

Deno.test("linear warmup then cosine decay to minLrRatio * lr", () => {
  const s = { lr: 1e-3, warmupSteps: 4, totalSteps: 14, minLrRatio: 0.1 };
  assertAlmostEquals(lrAt(0, s), 2.5e-4, 1e-12);
  assertAlmostEquals(lrAt(3, s), 1e-3, 1e-12);
  assertAlmostEquals(lrAt(4, s), 1e-3, 1e-12); // start of the decay
  assertAlmostEquals(lrAt(9, s), 1e-4 + 0.9e-3 / 2, 1e-12); // half way
  assertAlmostEquals(lrAt(14, s), 1e-4, 1e-12);
  assertAlmostEquals(lrAt(100, s), 1e-4, 1e-12);
  // no warmup, no floor
  assertAlmostEquals(lrAt(0, { lr: 1, warmupSteps: 0, totalSteps: 10, minLrRatio: 0 }), 1, 1e-12);
  assertAlmostEquals(lrAt(10, { lr: 1, warmupSteps: 0, totalSteps: 10, minLrRatio: 0 }), 0, 1e-12);
});
