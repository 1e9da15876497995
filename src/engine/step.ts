/**
 * A step: one box of the data flow. It declares what the engine needs to cache it — a name, a version
 * (bump it when the step's semantics change, so old artifacts stop matching), its config as an
 * effect/Schema (validated, and canonically encoded into the cache key) and the names of its inputs —
 * and a `run` Effect that writes its output files into the working directory it is given.
 *
 * The engine, not the step, decides whether to run it (see runner.ts). Resources a step opens (files,
 * tensors) are scoped: `run` executes inside a Scope that closes when the step ends, however it ends.
 */
import type { Effect, Schema, Scope } from "effect";
import type { Reporter } from "./progress.ts";

/** What the engine gives a step's `run` besides its config and inputs. */
export interface StepContext {
  /** The working directory: every file written here becomes part of the artifact. */
  readonly dir: string;
  /** The working directory holds what an interrupted earlier attempt of this very step left. */
  readonly resumed: boolean;
  /** The pipeline node this run belongs to (for messages). */
  readonly node: string;
  /** Where to print lines and progress. */
  readonly reporter: Reporter;
  /** The compute backend in use, recorded in outputs. */
  readonly backend: string;
}

/** What a step reports back; `resumed` is shown in the summary as status "resumed". */
export interface StepOutcome {
  readonly resumed?: boolean;
}

/** A cached, content-addressed unit of work with config `C`, input names `I` and errors `E`. */
export interface Step<C, I extends string, E> {
  /** Part of the cache key and the store path. */
  readonly name: string;
  /** Part of the cache key: bump it when the output for the same config and inputs changes. */
  readonly version: number;
  /** One line, shown by `status`. */
  readonly description: string;
  /** Validates the config; its encoded form goes into the cache key. */
  // deno-lint-ignore no-explicit-any
  readonly config: Schema.Schema<C, any, never>;
  /** Names of the inputs (other nodes' outputs), as `run` receives them. */
  readonly inputs: ReadonlyArray<I>;
  /** Inputs that may be left unconnected (e.g. a starting checkpoint). */
  readonly optionalInputs?: ReadonlyArray<I>;
  /** Keep the working directory of an interrupted attempt (training checkpoints) instead of wiping it. */
  readonly resumable?: boolean;
  /** Writes metrics.json whose fields the summary shows. */
  readonly producesMetrics?: boolean;
  /**
   * Files of the artifact that a run copies into the run directory when it ends (a report a user opens
   * without looking up the artifact's key).
   */
  readonly publishes?: ReadonlyArray<string>;
  /** Writes the artifact into `ctx.dir`; runs in a scope that closes when the step ends. */
  readonly run: (
    config: C,
    inputs: Readonly<Record<I, string | undefined>>,
    ctx: StepContext,
  ) => Effect.Effect<StepOutcome | void, E, Scope.Scope>;
}

/** A step of any config, inputs and errors (as pipelines hold them). */
// deno-lint-ignore no-explicit-any
export type AnyStep = Step<any, string, any>;

/** Declares a step (an identity function that infers `C`, `I` and `E`). */
export const defineStep = <C, I extends string, E>(step: Step<C, I, E>): Step<C, I, E> => step;
