/**
 * Library entry point: the building blocks pipelines are made of, for users who compose their own.
 * The command line lives in src/cli/main.ts (`deno task pipeline`).
 */
export * from "./src/errors.ts";
export { PipelineBuilder } from "./src/engine/pipeline.ts";
export type { Inputs, NodeRef, Pipeline, PipelineNode, SourceNode, StepNode } from "./src/engine/pipeline.ts";
export { defineStep } from "./src/engine/step.ts";
export type { AnyStep, Step, StepContext, StepOutcome } from "./src/engine/step.ts";
export { pipelineStatus, runPipeline, StepFailed } from "./src/engine/runner.ts";
export { ArtifactStore } from "./src/engine/store.ts";
export type { Lookup, Manifest } from "./src/engine/store.ts";
export type { FileStat } from "./src/engine/file_stats.ts";
export type { NodeRecord, NodeRunner, NodeStatus, RunOptions } from "./src/engine/runner.ts";
export { consoleReporter, silentReporter } from "./src/engine/progress.ts";
export type { Progress, ProgressUpdate, Reporter } from "./src/engine/progress.ts";
export { locateKeyStep } from "./src/steps/locate_key.ts";
export type { LocateKeyConfig } from "./src/steps/locate_key.ts";
export { tokeniseStep } from "./src/steps/tokenise.ts";
export type { TokeniseConfig } from "./src/steps/tokenise.ts";
export { buildMasksStep } from "./src/steps/build_masks.ts";
export type { BuildMasksConfig } from "./src/steps/build_masks.ts";
export { trainStep } from "./src/steps/train.ts";
export type { TrainConfig, TrainInput } from "./src/steps/train.ts";
export { evaluateStep } from "./src/steps/evaluate.ts";
export type { EvaluateConfig, EvaluateInput } from "./src/steps/evaluate.ts";
// Steps the other methods add: self-sampling (UPFT, S3FT), prefix data, critical tokens, S3FT targets.
export { sampleResponsesStep } from "./src/steps/sample_responses.ts";
export type { SampleResponsesConfig } from "./src/steps/sample_responses.ts";
export { upftDataStep } from "./src/steps/upft_data.ts";
export type { UpftDataConfig } from "./src/steps/upft_data.ts";
export { criticalTokensStep } from "./src/steps/critical_tokens.ts";
export type { CriticalTokensConfig } from "./src/steps/critical_tokens.ts";
export { s3ftSelectStep } from "./src/steps/s3ft_select.ts";
export type { S3ftSelectConfig } from "./src/steps/s3ft_select.ts";
export { takeRowsStep } from "./src/steps/take_rows.ts";
export type { TakeRowsConfig } from "./src/steps/take_rows.ts";
export { exportTrlStep } from "./src/steps/export_trl.ts";
// RFTT's building blocks: vocabulary growth, the functional-token grammar, tree search, the RL objective.
export { ADD_FUNCTIONAL_TOKENS, addTokensStep } from "./src/steps/add_tokens.ts";
export type { AddTokensConfig } from "./src/steps/add_tokens.ts";
export { TREE_SEARCH_DEFAULTS, treeSearchStep } from "./src/steps/tree_search.ts";
export type { TreeSearchConfig } from "./src/steps/tree_search.ts";
/** RFTT's functional tokens: the tags, their grammar (which tag may follow which), rendering and validating traces. */
export * as functionalTokens from "./src/data/functional_tokens.ts";
/** RFTT's Monte-Carlo tree search over functional-token steps, and the warm-up SFT traces from a tree. */
export * as rfttSearch from "./src/train/rftt_search.ts";
/** RFTT's RL objective: token rewards, REINFORCE++ and GRPO advantages, the PPO clipped loss. */
export * as rlLoss from "./src/train/rl_loss.ts";
/** One RL update on a batch of rollouts: reference log-probs, advantages, minibatched PPO-clip steps. */
export * as rlUpdate from "./src/train/rl_update.ts";
/** RFTT's RL rollouts: functional-token MCTS or plain sampling, outcome and process rewards, the RL log. */
export * as rlRollouts from "./src/train/rl_rollouts.ts";
export { RL_STEP_DEFAULTS, rlStep } from "./src/steps/rl.ts";
export type { RlConfig } from "./src/steps/rl.ts";
export { addRlCharts, RL_CHART, rlChartsStep } from "./src/steps/rl_charts.ts";
export type { RlChartsConfig } from "./src/steps/rl_charts.ts";
export { addScalingChart, SCALING_CHART, scalingChartStep } from "./src/steps/scaling_chart.ts";
export type { ScalingChartConfig } from "./src/steps/scaling_chart.ts";
export { DataFormat, readExamples } from "./src/data/formats.ts";
export { extractAnswer, locateKey, LocatorSpec, normaliseAnswer } from "./src/data/locate.ts";
export { buildMask, MaskSpec } from "./src/data/masks.ts";
export type { MixPart } from "./src/data/masks.ts";
export { loadTokenizer } from "./src/data/tokenizer.ts";
export { Architecture, ModelConfig } from "./src/model/config.ts";
export type { ModelConfigEncoded } from "./src/model/config.ts";
export { useBackend } from "./src/backend/backend.ts";
/** SFTKey: the method (`sftkey`) and its pipeline (`build`). */
export * as sftkey from "./pipelines/sftkey.ts";
export { methods } from "./pipelines/methods.ts";
export type { Data, LoraStageTwo, PipelineOptions } from "./pipelines/data.ts";
export type { Budget, BudgetOverrides, Regime } from "./pipelines/budget.ts";
/** LoRA settings of a training node (rank, alpha, dropout, target modules, rsLoRA). */
export type { LoraSettings } from "./src/model/lora.ts";
export { budget, describeBudget, FINE_TUNING, stepsForEpochs } from "./pipelines/budget.ts";
export type {
  AnswerJudging,
  Method,
  MethodContext,
  MethodModel,
  OwnEvaluation,
} from "./pipelines/method_context.ts";
export { prepareData } from "./pipelines/data.ts";
export { answerJudging, evaluate, methodContext, runMethods, train } from "./pipelines/method_context.ts";
/** The plain SFT baseline: the method (`sft`) and its pipeline (`build`). */
export * as sft from "./pipelines/sft.ts";
