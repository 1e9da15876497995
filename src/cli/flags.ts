/** Small helpers shared by the command-line flag groups (data_flags.ts, budget_flags.ts). */
import { Options } from "@effect/cli";
import { Effect, Option } from "effect";
import { InvalidConfig } from "../errors.ts";

export const optionalInt = (name: string, description: string) =>
  Options.integer(name).pipe(Options.withDescription(description), Options.optional);

export const optionalFloat = (name: string, description: string) =>
  Options.float(name).pipe(Options.withDescription(description), Options.optional);

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
