/**
 * `generate`: continue a prompt with a Hugging Face checkpoint directory.
 *
 *   deno task generate --model DIR (--prompt TEXT | --ids 1,2,3) --max-new-tokens N
 *                      [--temperature T --top-p P --seed S] [--stop STRING]... [--json]
 *                      [--backend auto|tensorflow|cpu-blas|cpu|webgpu]
 *
 * Temperature 0 (the default) is greedy. A row stops at an EOS id (config.json / generation_config.json
 * eos_token_id, else the tokenizer's), at a stop string, or after N tokens. With --json it prints
 * {"ids": [new token ids], "text": new text or null without a tokenizer}; the text ends before the
 * first stop string, the ids include the token that completed it.
 */
import { Command, Options } from "@effect/cli";
import { Effect, Option } from "effect";
import { useBackend } from "../backend/backend.ts";
import { InvalidConfig } from "../errors.ts";
import { generateAsync } from "../model/generate.ts";
import { Rng } from "../util/rng.ts";
import { adapter, backend } from "./flags.ts";
import { loadAdapter } from "../model/peft.ts";
import { checkLength, eosIds, inputIds, loadModelDir } from "./hf_model.ts";

export interface GenerateRequest {
  readonly model: string;
  readonly prompt?: string;
  readonly ids?: string;
  readonly maxNewTokens: number;
  /** A LoRA adapter directory applied to the model. */
  readonly adapter?: string;
  readonly temperature?: number;
  readonly topP?: number;
  readonly seed?: number;
  readonly stop?: ReadonlyArray<string>;
}

export interface GenerateResult {
  readonly ids: number[];
  readonly text: string | null;
}

/** Text up to (not including) the earliest stop string, and whether one occurred. */
const cutAtStop = (text: string, stops: ReadonlyArray<string>): { text: string; stopped: boolean } => {
  let at = -1;
  for (const s of stops) {
    const i = text.indexOf(s);
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at < 0 ? { text, stopped: false } : { text: text.slice(0, at), stopped: true };
};

/** The new tokens and text for one prompt. */
export const runGenerate = (req: GenerateRequest) =>
  Effect.scoped(Effect.gen(function* () {
    const invalid = (where: string, reason: string) => Effect.fail(new InvalidConfig({ where, reason }));
    const temperature = req.temperature ?? 0, topP = req.topP ?? 1, stops = req.stop ?? [];
    if (!Number.isInteger(req.maxNewTokens) || req.maxNewTokens < 0) {
      return yield* invalid("--max-new-tokens", `must be a non-negative integer, got ${req.maxNewTokens}`);
    }
    if (!(temperature >= 0 && Number.isFinite(temperature))) {
      return yield* invalid("--temperature", `must be >= 0, got ${temperature}`);
    }
    if (!(topP > 0 && topP <= 1)) return yield* invalid("--top-p", `must be in (0, 1], got ${topP}`);
    if (stops.some((s) => s === "")) return yield* invalid("--stop", "a stop string cannot be empty");
    const model = yield* loadModelDir(req.model);
    if (req.adapter !== undefined) yield* loadAdapter(req.adapter, model.config, model.params);
    if (stops.length > 0 && !model.tokenizer) {
      return yield* invalid(
        "--stop",
        `${req.model} has no tokenizer files, so stop strings cannot be matched`,
      );
    }
    const prompt = yield* inputIds(model, req.prompt, req.ids, { text: "--prompt", ids: "--ids" });
    yield* checkLength(model.config, prompt.length + req.maxNewTokens, "--max-new-tokens");
    const tokenizer = model.tokenizer;
    const eosId = yield* eosIds(model);
    // Asynchronous so that it also runs on webgpu (src/backend/webgpu.ts); the same tokens elsewhere.
    const [ids] = yield* Effect.promise(() =>
      generateAsync(model.params, model.config, [prompt], {
        maxNewTokens: req.maxNewTokens,
        eosId,
        temperature,
        topP,
        rng: Rng.seeded(req.seed ?? 0),
        shouldStop: stops.length > 0 && tokenizer
          ? (_row, tokens) => cutAtStop(tokenizer.decode(tokens), stops).stopped
          : undefined,
      })
    );
    const text = tokenizer ? cutAtStop(tokenizer.decode(ids), stops).text : null;
    return { ids, text } satisfies GenerateResult;
  }));

const model = Options.text("model").pipe(
  Options.withPseudoName("DIR"),
  Options.withDescription(
    "Hugging Face checkpoint directory (config.json, model.safetensors, tokenizer files)",
  ),
);
const prompt = Options.text("prompt").pipe(
  Options.withPseudoName("TEXT"),
  Options.withDescription("prompt text (encoded without special tokens)"),
  Options.optional,
);
const ids = Options.text("ids").pipe(
  Options.withPseudoName("IDS"),
  Options.withDescription("prompt token ids, e.g. 1,2,3"),
  Options.optional,
);
const maxNewTokens = Options.integer("max-new-tokens").pipe(
  Options.withPseudoName("N"),
  Options.withDescription("upper bound on new tokens (default 32)"),
  Options.withDefault(32),
);
const temperature = Options.float("temperature").pipe(
  Options.withPseudoName("T"),
  Options.withDescription("sampling temperature; 0 is greedy (default 0)"),
  Options.withDefault(0),
);
const topP = Options.float("top-p").pipe(
  Options.withPseudoName("P"),
  Options.withDescription("nucleus sampling: keep the most probable tokens up to this mass (default 1)"),
  Options.withDefault(1),
);
const seed = Options.integer("seed").pipe(
  Options.withPseudoName("N"),
  Options.withDescription("sampling seed (default 0)"),
  Options.withDefault(0),
);
// Optional around repeated: without it the usage shows "--stop TEXT..." as if it were required.
const stop = Options.text("stop").pipe(
  Options.withPseudoName("TEXT"),
  Options.withDescription("stop when the text contains this string (repeatable)"),
  Options.repeated,
  Options.optional,
  Options.map(Option.getOrElse((): ReadonlyArray<string> => [])),
);
const json = Options.boolean("json").pipe(Options.withDescription('print {"ids": [...], "text": "..."}'));

export const generateCommand = Command.make(
  "generate",
  { model, prompt, ids, maxNewTokens, temperature, topP, seed, stop, json, adapter, backend },
  (a) =>
    Effect.gen(function* () {
      yield* useBackend(a.backend);
      const result = yield* runGenerate({
        model: a.model,
        adapter: Option.getOrUndefined(a.adapter),
        prompt: Option.getOrUndefined(a.prompt),
        ids: Option.getOrUndefined(a.ids),
        maxNewTokens: a.maxNewTokens,
        temperature: a.temperature,
        topP: a.topP,
        seed: a.seed,
        stop: a.stop,
      });
      console.log(a.json ? JSON.stringify(result) : result.text ?? result.ids.join(","));
    }),
).pipe(Command.withDescription("continue a prompt with a Hugging Face checkpoint (greedy or sampled)"));
