/**
 * `--lora` and its settings for every training node of a pipeline (src/steps/train.ts `lora`): `--lora-r`,
 * `--lora-alpha`, `--lora-dropout`, `--lora-targets` (comma-separated module names; default every block
 * projection of the architecture) and `--use-rslora`. Without `--lora` the training configs are
 * untouched (no `lora` field), so cache keys stay those of full fine-tuning.
 */
import { Options } from "@effect/cli";
import { Effect, Option } from "effect";
import { InvalidConfig } from "../errors.ts";
import type { LoraSettings } from "../model/lora.ts";
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
};

export interface LoraFlags {
  readonly lora: boolean;
  readonly loraR: Option.Option<number>;
  readonly loraAlpha: Option.Option<number>;
  readonly loraDropout: Option.Option<number>;
  readonly loraTargets: Option.Option<string>;
  readonly useRslora: boolean;
}

/** The LoRA settings the flags ask for, undefined without --lora; checked for range. */
export const loraFromFlags = (a: LoraFlags): Effect.Effect<LoraSettings | undefined, InvalidConfig> =>
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
    const r = Option.getOrElse(a.loraR, () => DEFAULT_LORA.r);
    const alpha = Option.getOrElse(a.loraAlpha, () => DEFAULT_LORA.alpha);
    const dropout = Option.getOrElse(a.loraDropout, () => DEFAULT_LORA.dropout);
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
    const targets = Option.map(
      a.loraTargets,
      (t) => t.split(",").map((s) => s.trim()).filter((s) => s !== ""),
    );
    if (Option.isSome(targets) && targets.value.length === 0) {
      return yield* new InvalidConfig({ where: "--lora-targets", reason: "names no module" });
    }
    return {
      r,
      alpha,
      dropout,
      ...(Option.isSome(targets) ? { targets: targets.value } : {}),
      ...(a.useRslora ? { useRslora: true } : {}),
    };
  });
