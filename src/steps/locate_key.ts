/**
 * Step `locateKey`: reads a JSONL data file in a declared format, validates every row, and finds the key
 * span (the final answer) in each response with the configured locator.
 *
 * It runs before tokenisation on purpose: the locator works on characters, and tokenise then cuts the
 * text at the key's boundaries so that the key tokens decode to exactly the key (see data/tokenise.ts).
 *
 * Examples whose key is not found are never passed on with an empty key: they are counted and reported
 * (the first few by file:line), then dropped or the step fails, as `onMissingKey` says.
 */
import { Effect, Schema } from "effect";
import { EmptyDataset, InvalidRow, KeyNotFound, type ToolkitError } from "../errors.ts";
import { DataFormat, defaultLocator, readExamples } from "../data/formats.ts";
import { answerPartStart, locateKey as locate, LocatorSpec } from "../data/locate.ts";
import { type LocatedRecord, writeJsonl } from "../data/records.ts";
import { writeFileAtomic } from "../io/fs.ts";
import { defineStep, type Step } from "../engine/step.ts";
import { OnProblem, SHOWN } from "./shared.ts";

export const LocateKeyConfig = Schema.Struct({
  format: DataFormat,
  /** Defaults to the format's own locator (answer tags, GSM8K `####`, answer field, last \boxed{}). */
  locator: Schema.optional(LocatorSpec),
  onMissingKey: Schema.optionalWith(OnProblem, { default: () => "fail" as const }),
  /**
   * Longest row accepted, in characters of prompt + response (default MAX_ROW_CHARS). A longer row is
   * almost surely a broken file (a whole corpus on one line) and would take minutes to tokenise.
   */
  maxRowChars: Schema.optional(Schema.Int.pipe(Schema.positive())),
});

/** Far beyond any context length trained here (a token covers a few characters). */
export const MAX_ROW_CHARS = 1_000_000;

/** The `locateKey` step: validate the data rows and find the key (answer) span in every response. */
export const locateKeyStep: Step<typeof LocateKeyConfig.Type, "data", ToolkitError> = defineStep({
  name: "locateKey",
  // 3: rows with several answer blocks or above maxRowChars are rejected.
  version: 3,
  description: "validate the data rows and find the key (answer) span in every response",
  config: LocateKeyConfig,
  inputs: ["data"] as const,
  run: (config, inputs, ctx) =>
    Effect.gen(function* () {
      const locator = config.locator ?? defaultLocator[config.format];
      const examples = yield* readExamples(inputs.data!, config.format);
      if (examples.length === 0) {
        return yield* new EmptyDataset({ what: inputs.data!, reason: "the file has no rows" });
      }
      const maxChars = config.maxRowChars ?? MAX_ROW_CHARS;
      const kept: LocatedRecord[] = [];
      const missing: string[] = [];
      for (const ex of examples) {
        const chars = ex.prompt.length + ex.response.length;
        if (chars > maxChars) {
          return yield* rowError(ex.source, `has ${chars} characters, more than maxRowChars ${maxChars}`);
        }
        // Two complete answer blocks make the key ambiguous: training on either one would be a guess.
        const blocks = locator.kind === "answer-tags"
          ? countOccurrences(ex.response, locator.close ?? "</Answer>")
          : 0;
        if (blocks > 1) {
          if (config.onMissingKey === "fail") {
            return yield* rowError(
              ex.source,
              `has ${blocks} answer blocks; the key is ambiguous`,
              "response",
            );
          }
          missing.push(ex.source);
          continue;
        }
        const span = locate(ex.response, locator, ex.answerField);
        if (!span || span.end <= span.start) {
          missing.push(ex.source);
          continue;
        }
        kept.push({
          source: ex.source,
          prompt: ex.prompt,
          response: ex.response,
          key: span,
          answer: ex.response.slice(span.start, span.end),
          answer_start: answerPartStart(ex.response, locator, span),
          ...(ex.chat === undefined ? {} : { chat: ex.chat }),
        });
      }
      if (missing.length > 0) {
        const problem = new KeyNotFound({
          locator: locator.kind,
          count: missing.length,
          total: examples.length,
          examples: missing.slice(0, SHOWN),
        });
        if (config.onMissingKey === "fail") return yield* problem;
        ctx.reporter.log(`[${ctx.node}] dropped ${describeMissing(problem)}`);
      }
      if (kept.length === 0) {
        return yield* new EmptyDataset({ what: inputs.data!, reason: "no example has a key span" });
      }
      yield* writeJsonl(`${ctx.dir}/located.jsonl`, kept);
      yield* writeFileAtomic(
        `${ctx.dir}/report.json`,
        JSON.stringify(
          { total: examples.length, kept: kept.length, missingKey: missing.length, missing },
          null,
          2,
        ),
      );
      ctx.reporter.log(
        `[${ctx.node}] ${kept.length}/${examples.length} examples have a key (${locator.kind})`,
      );
    }),
});

const describeMissing = (e: KeyNotFound) =>
  `${e.count} of ${e.total} examples without a key span (first: ${e.examples.join(", ")})`;

const countOccurrences = (text: string, needle: string): number => {
  let n = 0;
  for (let at = text.indexOf(needle); at >= 0; at = text.indexOf(needle, at + needle.length)) n++;
  return n;
};

/** An InvalidRow for an example whose source is `file:line`. */
const rowError = (source: string, reason: string, field?: string) => {
  const colon = source.lastIndexOf(":");
  return new InvalidRow({
    file: source.slice(0, colon),
    line: Number(source.slice(colon + 1)),
    field,
    reason,
  });
};
