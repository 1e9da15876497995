/**
 * The report names models that behaved identically for every seed (same per-example results and key loss):
 * DFT and total variation are such a pair (their gradients coincide), and the reader should be told rather
 * than left to wonder why two rows match to the last digit.
 */
import { identicalModels } from "../src/report/analyse.ts";
import { modelResult } from "./report_test_helpers.ts";
import { assertEquals } from "./assert.ts";

const result = (model: string, seed: number, keyLoss: number, correct: number[], dataset = "arith") =>
  modelResult(model, seed, correct, { dataset, key_loss: keyLoss });

Deno.test("identical models: same results and key loss on every seed are grouped, nothing else is", () => {
  const models = [
    result("dft", 0, 7.9, [0, 1, 0]),
    result("dft", 1, 8.1, [0, 0, 0]),
    result("fdiv-tv", 0, 7.9, [0, 1, 0]),
    result("fdiv-tv", 1, 8.1, [0, 0, 0]),
    // Same accuracy and key loss, but right on another example: not the same model.
    result("sft", 0, 7.9, [1, 0, 0]),
    result("sft", 1, 8.1, [0, 0, 0]),
    // Same answers, key loss differs in the last digits: not the same model.
    result("cft", 0, 7.9000001, [0, 1, 0]),
    result("cft", 1, 8.1, [0, 0, 0]),
    // Identical on one seed only.
    result("mix", 0, 7.9, [0, 1, 0]),
    result("mix", 1, 8.2, [0, 0, 0]),
    // The same numbers on another dataset are another dataset's business.
    result("dft", 0, 7.9, [0, 1, 0], "gsm8k"),
  ];
  assertEquals(identicalModels(models), [{ dataset: "arith", models: ["dft", "fdiv-tv"] }]);
  assertEquals(identicalModels(models.filter((m) => m.model !== "fdiv-tv")), []);
});
