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
import { DataFormat, defaultLocator, openExamples } from "../data/formats.ts";
import { answerPartStart, locateKey as locate, LocatorSpec } from "../data/locate.ts";
import { createJsonl, type LocatedRecord } from "../data/records.ts";
import { writeFileAtomic } from "../io/fs.ts";
import { defineStep, type Step } from "../engine/step.ts";
import { rowProgress } from "../engine/progress.ts";
import { OnProblem, SHOWN } from "./shared.ts";

/** Decoder of the step's config; the fields are documented on the interface `LocateKeyConfig`. */
export const LocateKeyConfig: Schema.Schema<
  LocateKeyConfig,
  Omit<LocateKeyConfig, "onMissingKey"> & { readonly onMissingKey?: "drop" | "fail" }
> = Schema.Struct({
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

/**
 * The `locateKey` step's config as plain data, spelled out for the API docs. The decoder of the same name must
 * agree with it: the compiler checks each field's type, though not an optional field absent on one side.
 */
export interface LocateKeyConfig {
  /** The data format, which also names the default locator. */
  readonly format: DataFormat;
  /** Defaults to the format's own locator (answer tags, GSM8K `####`, answer field, last \\boxed{}). */
  readonly locator?: LocatorSpec;
  /** What to do with a row whose key is not found: drop it (counted and reported) or fail (default). */
  readonly onMissingKey: "drop" | "fail";
  /** Longest row accepted, in characters of prompt + response (default MAX_ROW_CHARS). */
  readonly maxRowChars?: number;
}

/** Far beyond any context length trained here (a token covers a few characters). */
export const MAX_ROW_CHARS = 1_000_000;

/** The `locateKey` step: validate the data rows and find the key (answer) span in every response. */
export const locateKeyStep: Step<LocateKeyConfig, "data", ToolkitError> = defineStep({
  name: "locateKey",
  // 3: rows with several answer blocks or above maxRowChars are rejected.
  version: 3,
  description: "validate the data rows and find the key (answer) span in every response",
  config: LocateKeyConfig,
  inputs: ["data"] as const,
  run: (config, inputs, ctx) =>
    Effect.gen(function* () {
      const locator = config.locator ?? defaultLocator[config.format];
      const maxChars = config.maxRowChars ?? MAX_ROW_CHARS;
      // Streamed batch by batch: a corpus may be larger than memory or than one string may be.
      const reader = yield* openExamples(inputs.data!, config.format);
      const writer = yield* createJsonl(`${ctx.dir}/located.jsonl`);
      const missing: string[] = [];
      let total = 0;
      const streamed = rowProgress(ctx.reporter, `[${ctx.node}]`);
      for (let examples = yield* reader.next; examples !== undefined; examples = yield* reader.next) {
        streamed.add(examples.length);
        total += examples.length;
        const kept: LocatedRecord[] = [];
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
        yield* writer.write(kept);
      }
      streamed.finish();
      if (total === 0) {
        return yield* new EmptyDataset({ what: inputs.data!, reason: "the file has no rows" });
      }
      if (missing.length > 0) {
        const problem = new KeyNotFound({
          locator: locator.kind,
          count: missing.length,
          total,
          examples: missing.slice(0, SHOWN),
        });
        if (config.onMissingKey === "fail") return yield* problem;
        ctx.reporter.log(`[${ctx.node}] dropped ${describeMissing(problem)}`);
      }
      const kept = writer.count();
      if (kept === 0) {
        return yield* new EmptyDataset({ what: inputs.data!, reason: "no example has a key span" });
      }
      yield* writer.commit;
      yield* writeFileAtomic(
        `${ctx.dir}/report.json`,
        JSON.stringify(
          {
            total,
            kept,
            missingKey: missing.length,
            missing,
            // Only when rows were dropped (onMissingKey "drop"), so a run that drops nothing writes the
            // report it always wrote; the run's summary.json lists these.
            ...(missing.length > 0
              ? { dropped: { reason: `no key span (${locator.kind})`, count: missing.length, rows: missing } }
              : {}),
          },
          null,
          2,
        ),
      );
      ctx.reporter.log(
        `[${ctx.node}] ${kept}/${total} examples have a key (${locator.kind})`,
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
