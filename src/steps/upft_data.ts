/**
 * Step `upftData`: the training data of UPFT, "The First Few Tokens Are All You Need: An Efficient and
 * Effective Unsupervised Prefix Fine-Tuning Method for Reasoning Models" (Ji et al., arXiv 2503.02875).
 *
 * On a share `share` of the examples (default 0.9) the loss covers only the first `k` response tokens
 * (all of them when the response is shorter), the sequence ends there, and the prompt carries the paper's
 * prefix instruction; on the others the loss covers the whole response and the prompt is unchanged. Which examples get the
 * prefix treatment is a seeded hash of the prompt's token ids, so it is stable across runs, independent
 * of the data order and of the response (gold or sampled).
 *
 * The instruction is inserted after the rendered prompt and before the response: the prompt's ids are
 * decoded, the instruction and a newline appended, and the result encoded again; the response ids are
 * kept as they are, so key spans only shift.
 *
 * Output: masked.jsonl (the buildMasks format, one weight per token) and report.json.
 */
import { Effect, Schema } from "effect";
import { EmptyDataset, InvalidConfig, type ToolkitError } from "../errors.ts";
import { type MaskedRecord, readJsonl, type TokenRecord, writeJsonl } from "../data/records.ts";
import { hashUnit } from "../data/select.ts";
import { loadTokenizer, type TextTokenizer } from "../data/tokenizer.ts";
import { writeFileAtomic } from "../io/fs.ts";
import { defineStep, type Step } from "../engine/step.ts";

/** The paper's prefix instruction. */
export const UPFT_INSTRUCTION =
  "Please provide the initial step towards resolving the question. This step may serve as a foundation " +
  "but might not encompass the entire solution.";

/** Decoder of the step's config; the fields are documented on the interface `UpftDataConfig`. */
export const UpftDataConfig: Schema.Schema<UpftDataConfig> = Schema.Struct({
  /** Response tokens trained on prefix examples. */
  k: Schema.Int.pipe(Schema.positive()),
  /** Share of examples trained on their prefix only. */
  share: Schema.Number.pipe(Schema.between(0, 1)),
  seed: Schema.Int,
  instruction: Schema.String,
  /** Longest sequence allowed after the instruction is added (the tokenise step's maxLength). */
  maxLength: Schema.Int.pipe(Schema.positive()),
});

/**
 * The `upftData` step's config as plain data, spelled out for the API docs. The decoder of the same name must
 * agree with it: the compiler checks each field's type, though not an optional field absent on one side.
 */
export interface UpftDataConfig {
  /** Response tokens trained on prefix examples. */
  readonly k: number;
  /** Share of examples trained on their prefix only. */
  readonly share: number;
  /** Seed of the random choices. */
  readonly seed: number;
  /** Instruction added to the prompt of prefix examples. */
  readonly instruction: string;
  /** Longest sequence allowed after the instruction is added (the tokenise step's maxLength). */
  readonly maxLength: number;
}

/** True when the example with these prompt ids is trained on its prefix only. */
export const isPrefixExample = (seed: number, share: number, promptIds: ReadonlyArray<number>): boolean =>
  hashUnit(seed, promptIds) < share;

/**
 * One example's UPFT record and its weights, 0 on the prompt: a prefix example is its prompt with the
 * instruction and the first k response tokens, all weighted (its key and answer spans are clipped to
 * them); any other example is unchanged, with every response token weighted.
 */
export const upftRecord = (
  r: TokenRecord,
  tok: TextTokenizer,
  config: Pick<UpftDataConfig, "k" | "share" | "seed" | "instruction">,
): MaskedRecord & { readonly prefix: boolean } => {
  const prompt = r.input_ids.slice(0, r.prompt_length);
  const response = r.input_ids.slice(r.prompt_length);
  const prefix = isPrefixExample(config.seed, config.share, prompt);
  const newPrompt = prefix ? tok.encode(`${tok.decode(prompt)}${config.instruction}\n`) : prompt;
  const shift = newPrompt.length - prompt.length;
  const p = newPrompt.length;
  // A prefix example ends with its k trained tokens: under causal attention the tokens after them change
  // no logit the loss reads, so the sequence is cut there (the loss is the same; the instruction then
  // lengthens only short sequences, and training computes fewer positions).
  const ids = [...newPrompt, ...(prefix ? response.slice(0, config.k) : response)];
  const weights = ids.map((_, t) => (t >= Math.max(p, 1) ? 1 : 0));
  const clip = (t: number) => Math.min(t, ids.length);
  const move = (s: { start: number; end: number }) => ({
    start: clip(s.start + shift),
    end: clip(s.end + shift),
  });
  return {
    source: r.source,
    input_ids: ids,
    prompt_length: p,
    key: move(r.key),
    answer_part: move(r.answer_part),
    answer: r.answer,
    weights,
    prefix,
  };
};

/** The `upftData` step: UPFT: prefix-only loss and the prefix instruction on a seeded share of examples. */
export const upftDataStep: Step<typeof UpftDataConfig.Type, "tokens" | "tokenizer", ToolkitError> =
  defineStep({
    name: "upftData",
    version: 2, // 2: a prefix example ends after its k trained tokens
    description: "UPFT: prefix-only loss and the prefix instruction on a seeded share of examples",
    config: UpftDataConfig,
    inputs: ["tokens", "tokenizer"] as const,
    run: (config, inputs, ctx) =>
      Effect.gen(function* () {
        const tok = yield* loadTokenizer(inputs.tokenizer!);
        const rows = yield* readJsonl<TokenRecord>(`${inputs.tokens}/tokens.jsonl`);
        if (rows.length === 0) {
          return yield* new EmptyDataset({ what: inputs.tokens!, reason: "no examples" });
        }
        const out = rows.map((r) => upftRecord(r, tok, config));
        const longest = out.reduce((m, r) => Math.max(m, r.input_ids.length), 0);
        if (longest > config.maxLength) {
          return yield* new InvalidConfig({
            where: `${ctx.node}.config.instruction`,
            reason: `with the instruction (${tok.encode(config.instruction).length} tokens) a sequence has ` +
              `${longest} tokens, more than maxLength ${config.maxLength}; use a shorter instruction or a ` +
              `model with more positions`,
          });
        }
        yield* writeJsonl(`${ctx.dir}/masked.jsonl`, out);
        const weightSum = out.reduce((s, r) => s + r.weights.reduce((a, b) => a + b, 0), 0);
        // Of the responses as given (a prefix example's record keeps only its trained tokens).
        const responseTokens = rows.reduce((s, r) => s + r.input_ids.length - r.prompt_length, 0);
        const prefixExamples = out.filter((r) => r.prefix).length;
        const report = {
          examples: out.length,
          prefixExamples,
          k: config.k,
          share: config.share,
          weightSum,
          responseTokens,
          trainedShare: weightSum / responseTokens,
        };
        yield* writeFileAtomic(`${ctx.dir}/report.json`, JSON.stringify(report, null, 2));
        ctx.reporter.log(
          `[${ctx.node}] ${prefixExamples}/${out.length} examples trained on their first ${config.k} tokens; ` +
            `${weightSum} weighted tokens, ${(100 * report.trainedShare).toFixed(1)}% of response tokens`,
        );
      }),
  });
