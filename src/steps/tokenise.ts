/**
 * Step `tokenise`: turns located examples into token ids, segment-wise so that the key's character span
 * maps to token positions exactly (data/tokenise.ts), appending EOS and cutting at `maxLength`.
 *
 * An example whose key is cut off by `maxLength` is counted and reported, then dropped or the step fails
 * (`onTruncatedKey`): stage two must never train on a partial or empty key.
 */
import { Effect, Schema } from "effect";
import { EmptyDataset, KeyTruncated, type ToolkitError } from "../errors.ts";
import { createJsonl, type LocatedRecord, openJsonl, type TokenRecord } from "../data/records.ts";
import { PromptTemplate, tokeniseExample } from "../data/tokenise.ts";
import { loadTokenizer } from "../data/tokenizer.ts";
import { chatExample, type ChatTemplate, tokenizerChatTemplate } from "../data/chat.ts";
import { writeFileAtomic } from "../io/fs.ts";
import { defineStep, type Step } from "../engine/step.ts";
import { rowProgress } from "../engine/progress.ts";
import { OnProblem, SHOWN } from "./shared.ts";

/** Decoder of the step's config; the fields are documented on the interface `TokeniseConfig`. */
export const TokeniseConfig: Schema.Schema<
  TokeniseConfig,
  Omit<TokeniseConfig, "onTruncatedKey"> & { readonly onTruncatedKey?: "drop" | "fail" }
> = Schema.Struct({
  /** `{prompt}` is replaced by the example's prompt; the response follows the rendered template. */
  template: PromptTemplate,
  maxLength: Schema.Int.pipe(Schema.positive()),
  onTruncatedKey: Schema.optionalWith(OnProblem, { default: () => "fail" as const }),
});

/**
 * The `tokenise` step's config as plain data, spelled out for the API docs. The decoder of the same name must
 * agree with it: the compiler checks each field's type, though not an optional field absent on one side.
 */
export interface TokeniseConfig {
  /** `{prompt}` is replaced by the example's prompt; the response follows the rendered template. */
  readonly template: string;
  /** Longest sequence in tokens; longer examples are truncated. */
  readonly maxLength: number;
  /** What to do with an example whose key is cut off by truncation: drop it or fail (default). */
  readonly onTruncatedKey: "drop" | "fail";
}

/** The `tokenise` step: tokenise prompt, response and key segment-wise; append EOS; cut at maxLength. */
export const tokeniseStep: Step<typeof TokeniseConfig.Type, "examples" | "tokenizer", ToolkitError> =
  defineStep({
    name: "tokenise",
    // 3: prompts with `$'`, `$&`, ... are no longer rewritten by the template; messages data is supported.
    version: 3,
    description: "tokenise prompt, response and key segment-wise; append EOS; cut at maxLength",
    config: TokeniseConfig,
    inputs: ["examples", "tokenizer"] as const,
    run: (config, inputs, ctx) =>
      Effect.gen(function* () {
        const tok = yield* loadTokenizer(inputs.tokenizer!);
        // Streamed batch by batch (a corpus may be larger than memory or than one string may be).
        const reader = yield* openJsonl<LocatedRecord>(`${inputs.examples}/located.jsonl`);
        const writer = yield* createJsonl(`${ctx.dir}/tokens.jsonl`);
        // Compiled at the first "messages" record, so a template this toolkit cannot parse never blocks other
        // data.
        let chatTemplate: ChatTemplate | undefined;
        let chatTemplateCompiled = false;
        const cut: string[] = [];
        let truncated = 0;
        let tokens = 0;
        let total = 0;
        const streamed = rowProgress(ctx.reporter, `[${ctx.node}]`);
        for (let located = yield* reader.next; located !== undefined; located = yield* reader.next) {
          streamed.add(located.length);
          total += located.length;
          const kept: TokenRecord[] = [];
          for (const record of located) {
            // A "messages" record comes back with its prompt already rendered by the chat template.
            if (record.chat !== undefined && !chatTemplateCompiled) {
              chatTemplate = yield* tokenizerChatTemplate(tok);
              chatTemplateCompiled = true;
            }
            const ex = yield* chatExample(tok, chatTemplate, record);
            const template = ex.chat === undefined ? config.template : "{prompt}";
            const t = tokeniseExample(tok, ex, ex.key, { ...config, template, answerStart: ex.answer_start });
            if (t.truncated) truncated++;
            if (t.keyTruncated || !t.key || !t.answer || t.key.end <= t.key.start) {
              cut.push(ex.source);
              continue;
            }
            tokens += t.ids.length;
            kept.push({
              source: ex.source,
              input_ids: t.ids,
              prompt_length: t.promptLength,
              key: t.key,
              answer_part: t.answer,
              answer: ex.answer,
            });
          }
          yield* writer.write(kept);
        }
        streamed.finish();
        if (cut.length > 0) {
          const problem = new KeyTruncated({
            maxLength: config.maxLength,
            count: cut.length,
            total,
            examples: cut.slice(0, SHOWN),
          });
          if (config.onTruncatedKey === "fail") return yield* problem;
          ctx.reporter.log(
            `[${ctx.node}] dropped ${cut.length} of ${total} examples whose key is cut off by maxLength ` +
              `${config.maxLength} (first: ${cut.slice(0, SHOWN).join(", ")})`,
          );
        }
        const kept = writer.count();
        if (kept === 0) {
          return yield* new EmptyDataset({
            what: inputs.examples!,
            reason: "every key is cut off by maxLength",
          });
        }
        yield* writer.commit;
        const report = {
          examples: kept,
          droppedKeyTruncated: cut.length,
          truncatedSequences: truncated,
          meanTokens: tokens / kept,
          vocabSize: tok.vocabSize,
          eosId: tok.eosId,
          // Only when rows were dropped (onTruncatedKey "drop"), so a run that drops nothing writes the
          // report it always wrote; the run's summary.json lists these.
          ...(cut.length > 0
            ? {
              dropped: {
                reason: `key cut off by maxLength ${config.maxLength}`,
                count: cut.length,
                rows: cut,
              },
            }
            : {}),
        };
        yield* writeFileAtomic(`${ctx.dir}/report.json`, JSON.stringify(report, null, 2));
        ctx.reporter.log(
          `[${ctx.node}] ${kept} examples, ${report.meanTokens.toFixed(1)} tokens on average`,
        );
      }),
  });
