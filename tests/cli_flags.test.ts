/**
 * The command-line flag groups. Budget flags (src/cli/budget_flags.ts): they reach the training nodes of a
 * shipped pipeline and of the comparison, a baseline gets the sum of the two stages, and bad values are
 * refused with the flag's name. Data flags (src/cli/data_flags.ts): a locator spec from --locator and
 * --locator-pattern, lengths, and the mistakes each is refused for.
 */
import { Effect, Exit, Option } from "effect";
import { type BudgetFlags, budgetFromFlags } from "../src/cli/budget_flags.ts";
import { dataFromFlags } from "../src/cli/data_flags.ts";
import { build as buildSftkey } from "../pipelines/sftkey.ts";
import { build as buildCompare } from "../pipelines/compare.ts";
import type { StepNode } from "../src/engine/pipeline.ts";
import type { TrainConfig } from "../src/steps/train.ts";
import { assert, assertEquals } from "./assert.ts";

const flags = (given: Partial<Record<keyof BudgetFlags, number>>): BudgetFlags => {
  const none = Option.none<number>();
  const all: Record<keyof BudgetFlags, Option.Option<number>> = {
    stageOneSteps: none,
    stageTwoSteps: none,
    lr: none,
    stageTwoLr: none,
    batchSize: none,
    microBatchSize: none,
    checkpointEvery: none,
    epochs: none,
    stageTwoEpochs: none,
    warmupRatio: none,
  };
  for (const [k, v] of Object.entries(given)) all[k as keyof BudgetFlags] = Option.some(v);
  return all;
};

const trainConfigs = (nodes: ReadonlyArray<unknown>) =>
  Object.fromEntries(
    (nodes as StepNode[]).filter((n) => n.kind === "step" && n.step.name === "train")
      .map((n) => [n.name, n.config as TrainConfig]),
  );

Deno.test("budget flags: steps, learning rates and batch reach the training nodes", async () => {
  assertEquals(await Effect.runPromise(budgetFromFlags(flags({}))), undefined);
  const budget = await Effect.runPromise(
    budgetFromFlags(flags({ stageOneSteps: 7, stageTwoSteps: 3, lr: 0.01, stageTwoLr: 2e-4, batchSize: 8 })),
  );
  const train = trainConfigs(buildSftkey({ budget }).nodes);
  assertEquals(train["sftkey-stage-one"].steps, 7);
  assertEquals(train["sftkey-stage-one"].lr, 0.01);
  assertEquals(train["sftkey-stage-two"].steps, 3);
  assertEquals(train["sftkey-stage-two"].lr, 2e-4);
  assertEquals(train["sft"].steps, 10);
  for (const c of Object.values(train)) assertEquals([c.batchSize, c.microBatchSize], [8, 8]);
  // The comparison takes them over its own halved budget.
  const compare = trainConfigs(buildCompare({ budget }).nodes);
  assertEquals(compare["arith/s0/sftkey/sftkey-stage-one"].steps, 7);
  assertEquals(compare["gsm8k/s2/sft/sft"].steps, 10);
});

Deno.test("budget flags: zero, negative and non-dividing values are refused naming the flag", async () => {
  const refused = async (given: Partial<Record<keyof BudgetFlags, number>>, flag: string) => {
    const exit = await Effect.runPromiseExit(budgetFromFlags(flags(given)));
    assert(Exit.isFailure(exit), JSON.stringify(given));
    assert(JSON.stringify(exit.cause).includes(flag), JSON.stringify(exit.cause));
  };
  await refused({ stageOneSteps: 0 }, "--stage-one-steps");
  await refused({ lr: -1e-3 }, "--lr");
  await refused({ stageTwoLr: Number.NaN }, "--stage-two-lr");
  await refused({ batchSize: 8, microBatchSize: 3 }, "--micro-batch-size");
});

Deno.test("data flags: --locator (with its pattern), --max-length and --max-new-tokens, and their mistakes", async () => {
  const none = Option.none<never>();
  const given = (
    locator?: string,
    pattern?: string,
    maxLength?: number,
  ) => ({
    locatorKind: locator === undefined ? none : Option.some(locator as "regex"),
    locatorPattern: pattern === undefined ? none : Option.some(pattern),
    maxLength: maxLength === undefined ? none : Option.some(maxLength),
    maxNewTokens: none,
    onMissingKey: none,
    onTruncatedKey: none,
  });
  assertEquals(await Effect.runPromise(dataFromFlags(given())), {
    locator: undefined,
    maxLength: undefined,
    maxNewTokens: undefined,
    onMissingKey: undefined,
    onTruncatedKey: undefined,
  });
  assertEquals(await Effect.runPromise(dataFromFlags(given("boxed", undefined, 512))), {
    locator: { kind: "boxed" },
    maxLength: 512,
    maxNewTokens: undefined,
    onMissingKey: undefined,
    onTruncatedKey: undefined,
  });
  assertEquals((await Effect.runPromise(dataFromFlags(given("regex", "#### (\\d+)")))).locator, {
    kind: "regex",
    pattern: "#### (\\d+)",
  });
  const refused = async (flags: ReturnType<typeof given>, where: string) => {
    const exit = await Effect.runPromiseExit(dataFromFlags(flags));
    assert(Exit.isFailure(exit) && JSON.stringify(exit.cause).includes(where), JSON.stringify(exit));
  };
  await refused(given("regex"), "--locator regex");
  await refused(given("regex", "("), "--locator-pattern");
  await refused(given("gsm8k", "x"), "--locator-pattern");
  await refused(given(undefined, "x"), "--locator-pattern");
  await refused(given(undefined, undefined, 0), "--max-length");
});
