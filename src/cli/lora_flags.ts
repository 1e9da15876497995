/**
 * `--lora` and its settings for every training node of a pipeline (src/steps/train.ts `lora`): `--lora-r`,
 * `--lora-alpha`, `--lora-dropout`, `--lora-targets` (comma-separated module names; default every block
 * projection of the architecture), `--use-rslora`, and `--lora-stage-two continue|new` (how a second
 * stage starts: stage one's adapter continued, the default, or a new adapter on stage one's merged model;
 * pipelines/data.ts loraStageTwo). Without `--lora` the training configs are untouched (no `lora`
 * field), so cache keys stay those of full fine-tuning.
 *
 * With `--adapter DIR` as the training start and `--lora`, training continues that adapter: its r, alpha,
 * targets, rsLoRA and dropout are the defaults, and a flag that contradicts them is an error.
 */
import { Options } from "@effect/cli";
import { Effect, Option } from "effect";
import {
  type AdapterInvalid,
  type CheckpointMalformed,
  type FileUnreadable,
  InvalidConfig,
} from "../errors.ts";
import { loadCheckpointConfig } from "../model/checkpoint.ts";
import { checkAdapter, readAdapter } from "../model/peft.ts";
import type { LoraSettings } from "../model/lora.ts";
import { LORA_STAGE_TWO, type LoraStageTwo } from "../../pipelines/data.ts";
import { optionalFloat, optionalInt } from "./flags.ts";

export const DEFAULT_LORA = { r: 8, alpha: 16, dropout: 0 } as const;

export const loraOptions = {
  lora: Options.boolean("lora").pipe(
    Options.withDescription("train LoRA adapters instead of every weight (PEFT layout, adapter/ per stage)"),
  ),
  loraR: optionalInt("lora-r", `LoRA rank (default ${DEFAULT_LORA.r})`),
  loraAlpha: optionalFloat("lora-alpha", `LoRA alpha; scaling = alpha / r (default ${DEFAULT_LORA.alpha})`),
  loraDropout: optionalFloat(
    "lora-dropout",
    `dropout on the LoRA input, in [0, 1) (default ${DEFAULT_LORA.dropout})`,
  ),
  loraTargets: Options.text("lora-targets").pipe(
    Options.withPseudoName("NAMES"),
    Options.withDescription(
      "comma-separated modules to adapt (default q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj; GPT-2 c_attn,c_proj,c_fc)",
    ),
    Options.optional,
  ),
  useRslora: Options.boolean("use-rslora").pipe(Options.withDescription("rsLoRA: scaling = alpha / sqrt(r)")),
  // Text, not a choice: a wrong value is then one typed line (InvalidConfig), not the whole usage.
  loraStageTwo: Options.text("lora-stage-two").pipe(
    Options.withPseudoName("continue|new"),
    Options.withDescription(
      "how a second stage starts under --lora: continue stage one's adapter (default), or a new adapter on stage one's merged model",
    ),
    Options.optional,
  ),
};

export interface LoraFlags {
  readonly lora: boolean;
  readonly loraR: Option.Option<number>;
  readonly loraAlpha: Option.Option<number>;
  readonly loraDropout: Option.Option<number>;
  readonly loraTargets: Option.Option<string>;
  readonly useRslora: boolean;
  readonly loraStageTwo: Option.Option<string>;
}

/**
 * An `--adapter` directory checked against `--model` before anything runs (a missing file, another
 * peft_type, a module or shape the model does not have), each failure one line naming the file; its
 * settings (the defaults of the --lora flags when training continues it).
 */
export const adapterAgainstModel = (
  dir: string,
  modelDir: string | undefined,
): Effect.Effect<
  { readonly dir: string; readonly settings: LoraSettings },
  InvalidConfig | AdapterInvalid | FileUnreadable | CheckpointMalformed
> =>
  Effect.gen(function* () {
    if (modelDir === undefined) {
      return yield* new InvalidConfig({
        where: "--adapter",
        reason: "needs --model, the base the adapter was trained on",
      });
    }
    const read = yield* readAdapter(dir);
    yield* checkAdapter(dir, read, (yield* loadCheckpointConfig(modelDir)).config);
    return { dir, settings: read.settings };
  });

/** `--lora-stage-two`: undefined when not given; needs --lora. */
export const loraStageTwoFromFlags = (a: LoraFlags): Effect.Effect<LoraStageTwo | undefined, InvalidConfig> =>
  Effect.gen(function* () {
    if (Option.isNone(a.loraStageTwo)) return undefined;
    const v = a.loraStageTwo.value;
    if (!a.lora) return yield* new InvalidConfig({ where: "--lora-stage-two", reason: "needs --lora" });
    if (!(LORA_STAGE_TWO as ReadonlyArray<string>).includes(v)) {
      return yield* new InvalidConfig({
        where: "--lora-stage-two",
        reason: `must be ${LORA_STAGE_TWO.join(" or ")}, got ${JSON.stringify(v)}`,
      });
    }
    return v as LoraStageTwo;
  });

/** `--lora-targets` as a sorted comma-separated list (how an adapter's targets are compared with it). */
const targetList = (t: string): string =>
  t.split(",").map((s) => s.trim()).filter((s) => s !== "").toSorted().join(",");

/**
 * The LoRA settings the flags ask for, undefined without --lora; checked for range. `adapter` (the
 * settings of an --adapter to continue, and its directory) gives the defaults instead of DEFAULT_LORA,
 * and a flag that contradicts it is an InvalidConfig.
 */
export const loraFromFlags = (
  a: LoraFlags,
  adapter?: { readonly dir: string; readonly settings: LoraSettings },
): Effect.Effect<LoraSettings | undefined, InvalidConfig> =>
  Effect.gen(function* () {
    const given: Array<[string, boolean]> = [
      ["--lora-r", Option.isSome(a.loraR)],
      ["--lora-alpha", Option.isSome(a.loraAlpha)],
      ["--lora-dropout", Option.isSome(a.loraDropout)],
      ["--lora-targets", Option.isSome(a.loraTargets)],
      ["--use-rslora", a.useRslora],
    ];
    if (!a.lora) {
      const stray = given.find(([, g]) => g);
      if (stray) return yield* new InvalidConfig({ where: stray[0], reason: "needs --lora" });
      return undefined;
    }
    const from = adapter?.settings;
    if (adapter && from) {
      const clash = (
        [
          ["--lora-r", Option.getOrUndefined(a.loraR), from.r],
          ["--lora-alpha", Option.getOrUndefined(a.loraAlpha), from.alpha],
          ["--use-rslora", a.useRslora || undefined, from.useRslora ?? false],
          // Compared as sorted lists; an adapter whose target_modules is a pattern has no list to compare.
          [
            "--lora-targets",
            from.targets ? Option.getOrUndefined(Option.map(a.loraTargets, targetList)) : undefined,
            from.targets?.toSorted().join(","),
          ],
        ] as const
      ).find(([, given, has]) => given !== undefined && given !== has);
      if (clash) {
        return yield* new InvalidConfig({
          where: clash[0],
          reason: `the adapter to continue (${adapter.dir}) has ${clash[2]}; leave the flag out or give that`,
        });
      }
    }
    const r = Option.getOrElse(a.loraR, () => from?.r ?? DEFAULT_LORA.r);
    const alpha = Option.getOrElse(a.loraAlpha, () => from?.alpha ?? DEFAULT_LORA.alpha);
    const dropout = Option.getOrElse(a.loraDropout, () => from?.dropout ?? DEFAULT_LORA.dropout);
    if (!(Number.isInteger(r) && r > 0)) {
      return yield* new InvalidConfig({ where: "--lora-r", reason: `must be a positive integer, got ${r}` });
    }
    if (!(alpha > 0 && Number.isFinite(alpha))) {
      return yield* new InvalidConfig({ where: "--lora-alpha", reason: `must be positive, got ${alpha}` });
    }
    if (!(dropout >= 0 && dropout < 1)) {
      return yield* new InvalidConfig({
        where: "--lora-dropout",
        reason: `must be in [0, 1), got ${dropout}`,
      });
    }
    const targets = Option.orElse(
      Option.map(a.loraTargets, (t) => t.split(",").map((s) => s.trim()).filter((s) => s !== "")),
      () => Option.fromNullable(from?.targets),
    );
    if (Option.isSome(targets) && targets.value.length === 0) {
      return yield* new InvalidConfig({ where: "--lora-targets", reason: "names no module" });
    }
    return {
      r,
      alpha,
      dropout,
      ...(Option.isSome(targets) ? { targets: targets.value } : {}),
      ...(a.useRslora || from?.useRslora ? { useRslora: true } : {}),
    };
  });
