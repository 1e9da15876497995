/**
 * Command-line flags that adapt a pipeline to real data: `--locator` (with `--locator-pattern` for
 * `regex`) replaces the format's key locator for the gold responses and for generated answers;
 * `--max-length` bounds prompt + response in tokens; `--max-new-tokens` bounds generation.
 */
import { Options } from "@effect/cli";
import { Effect, Option } from "effect";
import type { LocatorSpec } from "../data/locate.ts";
import { InvalidConfig } from "../errors.ts";
import type { PipelineOptions } from "../../pipelines/data.ts";
import { optionalInt, requirePositive } from "./flags.ts";

const LOCATOR_KINDS = ["answer-tags", "gsm8k", "field", "boxed", "regex"] as const;
type LocatorKind = typeof LOCATOR_KINDS[number];

export const dataOptions = {
  locatorKind: Options.choice("locator", LOCATOR_KINDS).pipe(
    Options.withDescription(
      "how to find the key in gold responses and generations (default: the format's own: tags -> " +
        "answer-tags, gsm8k -> gsm8k, math -> boxed, reasoning/messages -> field)",
    ),
    Options.optional,
  ),
  locatorPattern: Options.text("locator-pattern").pipe(
    Options.withPseudoName("REGEX"),
    Options.withDescription(
      "with --locator regex: a JavaScript regular expression; its first group (or the whole match) is the key",
    ),
    Options.optional,
  ),
  maxLength: optionalInt(
    "max-length",
    "longest prompt + response in tokens (default 128); a key cut off fails the step",
  ),
  maxNewTokens: optionalInt(
    "max-new-tokens",
    "tokens generated per prompt when evaluating and sampling (default 64)",
  ),
};

export interface DataFlags {
  readonly locatorKind: Option.Option<LocatorKind>;
  readonly locatorPattern: Option.Option<string>;
  readonly maxLength: Option.Option<number>;
  readonly maxNewTokens: Option.Option<number>;
}

/** --locator and --locator-pattern as a LocatorSpec (undefined: the format's own). */
const locatorFromFlags = (kind: Option.Option<LocatorKind>, pattern: Option.Option<string>) =>
  Effect.gen(function* () {
    if (Option.isNone(kind)) {
      if (Option.isSome(pattern)) {
        return yield* new InvalidConfig({ where: "--locator-pattern", reason: "needs --locator regex" });
      }
      return undefined;
    }
    if (kind.value !== "regex") {
      if (Option.isSome(pattern)) {
        return yield* new InvalidConfig({
          where: "--locator-pattern",
          reason: "only --locator regex takes a pattern",
        });
      }
      return { kind: kind.value } as LocatorSpec;
    }
    if (Option.isNone(pattern)) {
      return yield* new InvalidConfig({ where: "--locator regex", reason: "needs --locator-pattern REGEX" });
    }
    try {
      new RegExp(pattern.value);
    } catch (e) {
      return yield* new InvalidConfig({
        where: "--locator-pattern",
        reason: `not a valid JavaScript regular expression (${(e as Error).message})`,
      });
    }
    // No group given: the locator keys on the first group when the pattern has one, else the whole match.
    return { kind: "regex", pattern: pattern.value } as LocatorSpec;
  });

/** The pipeline options the data flags ask for, checked. */
export const dataFromFlags = (
  a: DataFlags,
): Effect.Effect<Pick<PipelineOptions, "locator" | "maxLength" | "maxNewTokens">, InvalidConfig> =>
  Effect.gen(function* () {
    const locator = yield* locatorFromFlags(a.locatorKind, a.locatorPattern);
    yield* requirePositive([["--max-length", a.maxLength], ["--max-new-tokens", a.maxNewTokens]]);
    return {
      locator,
      maxLength: Option.getOrUndefined(a.maxLength),
      maxNewTokens: Option.getOrUndefined(a.maxNewTokens),
    };
  });
