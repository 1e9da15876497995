/**
 * The model configuration (Llama architecture only) and its mapping to and from Hugging Face's
 * `LlamaForCausalLM` config.json, so checkpoints we write load in `transformers` and small HF Llama
 * checkpoints load here.
 */
import { Effect, Either, ParseResult, Schema } from "effect";
import { CheckpointMalformed, InvalidConfig } from "../errors.ts";

const PositiveInt = Schema.Int.pipe(Schema.positive());
const PositiveNumber = Schema.Number.pipe(Schema.positive(), Schema.finite());

export const ModelConfig = Schema.Struct({
  architecture: Schema.Literal("llama"),
  vocabSize: PositiveInt,
  hiddenSize: PositiveInt,
  numLayers: PositiveInt,
  numHeads: PositiveInt,
  numKvHeads: PositiveInt,
  intermediateSize: PositiveInt,
  maxPositions: PositiveInt,
  ropeTheta: Schema.optionalWith(PositiveNumber, { default: () => 10000 }),
  rmsNormEps: Schema.optionalWith(PositiveNumber, { default: () => 1e-5 }),
  tieEmbeddings: Schema.Boolean,
}).pipe(
  Schema.filter((c) => {
    if (c.hiddenSize % c.numHeads !== 0) {
      return {
        path: ["hiddenSize"],
        message: `hiddenSize ${c.hiddenSize} is not divisible by numHeads ${c.numHeads}`,
      };
    }
    if (c.numHeads % c.numKvHeads !== 0) {
      return {
        path: ["numKvHeads"],
        message: `numHeads ${c.numHeads} is not divisible by numKvHeads ${c.numKvHeads}`,
      };
    }
    // RoPE rotates the two halves of each head against each other.
    if ((c.hiddenSize / c.numHeads) % 2 !== 0) {
      return {
        path: ["numHeads"],
        message: `head dimension ${c.hiddenSize / c.numHeads} must be even (RoPE)`,
      };
    }
    return undefined;
  }),
);
export type ModelConfig = typeof ModelConfig.Type;

/** Size of one attention head. */
export const headDim = (c: ModelConfig): number => c.hiddenSize / c.numHeads;

const firstIssue = (error: ParseResult.ParseError): { path: string; message: string } => {
  const issue = ParseResult.ArrayFormatter.formatErrorSync(error)[0];
  return { path: issue?.path.join(".") ?? "", message: issue?.message ?? String(error) };
};

/**
 * Decodes and validates a model configuration (defaults filled in, unknown fields rejected).
 * `where` locates the configuration for the error message, e.g. "pipeline.json model".
 */
export const decodeModelConfig = (input: unknown, where: string): Effect.Effect<ModelConfig, InvalidConfig> =>
  Either.match(Schema.decodeUnknownEither(ModelConfig, { onExcessProperty: "error" })(input), {
    onRight: (c) => Effect.succeed(c),
    onLeft: (e) => {
      const { path, message } = firstIssue(e);
      return Effect.fail(new InvalidConfig({ where: path ? `${where} ${path}` : where, reason: message }));
    },
  });

/** The config.json `transformers` writes for an equivalent `LlamaForCausalLM`. */
export const toHfConfig = (c: ModelConfig): Record<string, unknown> => ({
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  vocab_size: c.vocabSize,
  hidden_size: c.hiddenSize,
  intermediate_size: c.intermediateSize,
  num_hidden_layers: c.numLayers,
  num_attention_heads: c.numHeads,
  num_key_value_heads: c.numKvHeads,
  head_dim: headDim(c),
  max_position_embeddings: c.maxPositions,
  rope_theta: c.ropeTheta,
  rope_scaling: null,
  rms_norm_eps: c.rmsNormEps,
  hidden_act: "silu",
  tie_word_embeddings: c.tieEmbeddings,
  attention_bias: false,
  mlp_bias: false,
  attention_dropout: 0.0,
  initializer_range: 0.02,
  torch_dtype: "float32",
  use_cache: true,
});

/** The fields of an HF Llama config.json we read; everything else is ignored. */
const HfLlamaConfig = Schema.Struct({
  architectures: Schema.optional(Schema.Array(Schema.String)),
  model_type: Schema.optional(Schema.String),
  vocab_size: Schema.Number,
  hidden_size: Schema.Number,
  intermediate_size: Schema.Number,
  num_hidden_layers: Schema.Number,
  num_attention_heads: Schema.Number,
  num_key_value_heads: Schema.optional(Schema.NullOr(Schema.Number)),
  head_dim: Schema.optional(Schema.NullOr(Schema.Number)),
  max_position_embeddings: Schema.optional(Schema.Number),
  rope_theta: Schema.optional(Schema.Number),
  rope_scaling: Schema.optional(Schema.Unknown),
  // transformers >= 5 moves rope_theta here: {"rope_type": "default", "rope_theta": ...}.
  rope_parameters: Schema.optional(Schema.Unknown),
  rms_norm_eps: Schema.optional(Schema.Number),
  hidden_act: Schema.optional(Schema.String),
  tie_word_embeddings: Schema.optional(Schema.Boolean),
  attention_bias: Schema.optional(Schema.Boolean),
  mlp_bias: Schema.optional(Schema.Boolean),
});

/** Our field names in HF's spelling, for error messages about a config.json. */
const HF_NAMES: Record<string, string> = {
  vocabSize: "vocab_size",
  hiddenSize: "hidden_size",
  numLayers: "num_hidden_layers",
  numHeads: "num_attention_heads",
  numKvHeads: "num_key_value_heads",
  intermediateSize: "intermediate_size",
  maxPositions: "max_position_embeddings",
  ropeTheta: "rope_theta",
  rmsNormEps: "rms_norm_eps",
};

/**
 * Reads an HF config.json object (already JSON-parsed) into a ModelConfig. `path` names the file for
 * errors. Missing optional fields take `LlamaConfig`'s defaults (note: rms_norm_eps defaults to 1e-6
 * there, not our 1e-5). Anything this implementation would silently compute differently (rope scaling,
 * biases, another activation or architecture, a head_dim that is not hidden/heads) is refused.
 */
export const fromHfConfig = (json: unknown, path: string): Effect.Effect<ModelConfig, CheckpointMalformed> =>
  Effect.gen(function* () {
    const fail = (reason: string) => Effect.fail(new CheckpointMalformed({ path, reason }));
    const decoded = Schema.decodeUnknownEither(HfLlamaConfig)(json);
    if (Either.isLeft(decoded)) {
      const { path: field, message } = firstIssue(decoded.left);
      return yield* fail(`config.json${field ? ` field "${field}"` : ""}: ${message}`);
    }
    const hf = decoded.right;
    if (hf.architectures !== undefined) {
      if (!hf.architectures.includes("LlamaForCausalLM")) {
        return yield* fail(
          `architectures ${JSON.stringify(hf.architectures)} is not supported (only LlamaForCausalLM)`,
        );
      }
    } else if (hf.model_type !== "llama") {
      return yield* fail(
        `model_type ${
          JSON.stringify(hf.model_type ?? null)
        } is not supported (only "llama" / LlamaForCausalLM)`,
      );
    }
    const act = hf.hidden_act ?? "silu";
    if (act !== "silu") return yield* fail(`hidden_act "${act}" is not supported (only "silu")`);
    if (hf.rope_scaling !== undefined && hf.rope_scaling !== null) {
      return yield* fail(`rope_scaling ${JSON.stringify(hf.rope_scaling)} is not supported (only null)`);
    }
    let ropeTheta = hf.rope_theta ?? 10000;
    if (hf.rope_parameters !== undefined && hf.rope_parameters !== null) {
      const rp = hf.rope_parameters as Record<string, unknown>;
      if (typeof rp !== "object" || (rp.rope_type ?? "default") !== "default") {
        return yield* fail(
          `rope_parameters ${JSON.stringify(rp)} is not supported (only rope_type "default")`,
        );
      }
      if (typeof rp.rope_theta === "number") ropeTheta = rp.rope_theta;
    }
    if (hf.attention_bias === true) return yield* fail("attention_bias true is not supported");
    if (hf.mlp_bias === true) return yield* fail("mlp_bias true is not supported");
    if (
      hf.head_dim !== undefined && hf.head_dim !== null &&
      hf.head_dim * hf.num_attention_heads !== hf.hidden_size
    ) {
      return yield* fail(
        `head_dim ${hf.head_dim} differs from hidden_size / num_attention_heads ` +
          `(${hf.hidden_size} / ${hf.num_attention_heads}); not supported`,
      );
    }
    const candidate = {
      architecture: "llama",
      vocabSize: hf.vocab_size,
      hiddenSize: hf.hidden_size,
      numLayers: hf.num_hidden_layers,
      numHeads: hf.num_attention_heads,
      numKvHeads: hf.num_key_value_heads ?? hf.num_attention_heads,
      intermediateSize: hf.intermediate_size,
      maxPositions: hf.max_position_embeddings ?? 2048,
      ropeTheta,
      rmsNormEps: hf.rms_norm_eps ?? 1e-6,
      tieEmbeddings: hf.tie_word_embeddings ?? false,
    };
    return yield* decodeModelConfig(candidate, "").pipe(
      Effect.mapError((e) => {
        const field = e.where.trim();
        return new CheckpointMalformed({ path, reason: `${HF_NAMES[field] ?? field}: ${e.reason}` });
      }),
    );
  });
