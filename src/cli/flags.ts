/** Small helpers and flags shared by the command-line flag groups and commands. */
import { Options } from "@effect/cli";
import { Effect, Option } from "effect";
import { BackendName } from "../backend/backend.ts";
import { InvalidConfig } from "../errors.ts";

/** An optional whole number, shown as N in the help (its description says the default). */
export const optionalInt = (name: string, description: string) =>
  Options.integer(name).pipe(
    Options.withPseudoName("N"),
    Options.withDescription(description),
    Options.optional,
  );

/** An optional number, shown as X in the help (its description says the default). */
export const optionalFloat = (name: string, description: string) =>
  Options.float(name).pipe(
    Options.withPseudoName("X"),
    Options.withDescription(description),
    Options.optional,
  );

/** Fails naming the first flag whose given value is not a finite positive number. */
export const requirePositive = (
  flags: ReadonlyArray<readonly [string, Option.Option<number>]>,
): Effect.Effect<void, InvalidConfig> =>
  Effect.gen(function* () {
    for (const [flag, value] of flags) {
      if (Option.isSome(value) && !(Number.isFinite(value.value) && value.value > 0)) {
        return yield* new InvalidConfig({ where: flag, reason: `must be positive, got ${value.value}` });
      }
    }
  });

/** --adapter, for the commands that run a model: a LoRA adapter (PEFT layout) applied to --model. */
export const adapter = Options.text("adapter").pipe(
  Options.withPseudoName("DIR"),
  Options.withDescription(
    "a LoRA adapter (PEFT layout: adapter_config.json, adapter_model.safetensors) to apply",
  ),
  Options.optional,
);

/** --backend, for every command that computes with a model (the launcher scopes ffi by its value). */
export const backend = Options.choice("backend", BackendName.literals).pipe(
  Options.withDescription(
    "tfjs backend: auto (fastest available), tensorflow (tfjs-node-gpu), cpu-blas (cpu + OpenBLAS), cpu, webgpu (WebGPU, never chosen by auto) (default auto)",
  ),
  Options.withDefault("auto" as const),
);
