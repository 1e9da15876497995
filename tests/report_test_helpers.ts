/** A ModelResult for report tests: one model, one seed, its per-example results; the rest overridable. */
import type { ModelResult } from "../src/report/collect.ts";

export const modelResult = (
  model: string,
  seed: number,
  correct: number[],
  over: Partial<ModelResult> = {},
): ModelResult => ({
  dataset: "arith",
  method: model.split("-")[0],
  model,
  seed,
  accuracy: correct.reduce((a, b) => a + b, 0) / correct.length,
  format_rate: 1,
  key_loss: 0.1,
  n: correct.length,
  correct,
  sources: correct.map((_, i) => `test.jsonl:${i + 1}`),
  tokens: 100,
  seconds: 1,
  stages: [model],
  ...over,
});
