/**
 * Step `tokenise`: turns located examples into token ids, segment-wise so that the key's character span
 * maps to token positions exactly (data/tokenise.ts), appending EOS and cutting at `maxLength`.
 *
 * An example whose key is cut off by `maxLength` is counted and reported, then dropped or the step fails
 * (`onTruncatedKey`): stage two must never train on a partial or empty key.
 */
import { Effect, Schema } from "effect";
import { EmptyDataset, KeyTruncated, type ToolkitError } from "../errors.ts";
import { type LocatedRecord, readJsonl, type TokenRecord, writeJsonl } from "../data/records.ts";
import { PromptTemplate, tokeniseExample } from "../data/tokenise.ts";
import { loadTokenizer } from "../data/tokenizer.ts";
import { chatExample, tokenizerChatTemplate } from "../data/chat.ts";
import { writeFileAtomic } from "../io/fs.ts";
import { defineStep, type Step } from "../engine/step.ts";
import { OnProblem, SHOWN } from "./shared.ts";

export const TokeniseConfig = Schema.Struct({
  /** `{prompt}` is replaced by the example's prompt; the response follows the rendered template. */
  template: PromptTemplate,
  maxLength: Schema.Int.pipe(Schema.positive()),
  onTruncatedKey: Schema.optionalWith(OnProblem, { default: () => "fail" as const }),
});

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
        const located = yield* readJsonl<LocatedRecord>(`${inputs.examples}/located.jsonl`);
        // Compiled only for "messages" data, so a template this toolkit cannot parse never blocks other data.
        const chatTemplate = located.some((r) => r.chat !== undefined)
          ? yield* tokenizerChatTemplate(tok)
          : undefined;
        const kept: TokenRecord[] = [];
        const cut: string[] = [];
        let truncated = 0;
        let tokens = 0;
        for (const record of located) {
          // A "messages" record comes back with its prompt already rendered by the chat template.
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
        if (cut.length > 0) {
          const problem = new KeyTruncated({
            maxLength: config.maxLength,
            count: cut.length,
            total: located.length,
            examples: cut.slice(0, SHOWN),
          });
          if (config.onTruncatedKey === "fail") return yield* problem;
          ctx.reporter.log(
            `[${ctx.node}] dropped ${cut.length} of ${located.length} examples whose key is cut off by maxLength ` +
              `${config.maxLength} (first: ${cut.slice(0, SHOWN).join(", ")})`,
          );
        }
        if (kept.length === 0) {
          return yield* new EmptyDataset({
            what: inputs.examples!,
            reason: "every key is cut off by maxLength",
          });
        }
        yield* writeJsonl(`${ctx.dir}/tokens.jsonl`, kept);
        const report = {
          examples: kept.length,
          droppedKeyTruncated: cut.length,
          truncatedSequences: truncated,
          meanTokens: tokens / kept.length,
          vocabSize: tok.vocabSize,
          eosId: tok.eosId,
        };
        yield* writeFileAtomic(`${ctx.dir}/report.json`, JSON.stringify(report, null, 2));
        ctx.reporter.log(
          `[${ctx.node}] ${kept.length} examples, ${report.meanTokens.toFixed(1)} tokens on average`,
        );
      }),
  });
