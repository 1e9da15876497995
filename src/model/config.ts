/**
 * The model configuration and its mapping to and from Hugging Face config.json for the architectures
 * this toolkit computes exactly: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM (q/k/v biases),
 * Qwen3ForCausalLM (per-head q/k RMSNorm) and GPT2LMHeadModel. Checkpoints we write load in
 * `transformers`, and HF checkpoints of these families load here; anything we would compute differently
 * (rope scaling, other activations, unexpected biases, a sliding window we cannot honour) is refused.
 */
import { Effect, Either, ParseResult, Schema } from "effect";
import { CheckpointMalformed, InvalidConfig } from "../errors.ts";

const PositiveInt = Schema.Int.pipe(Schema.positive());
const PositiveNumber = Schema.Number.pipe(Schema.positive(), Schema.finite());

/**
 * The decoder families. "llama", "mistral", "qwen2" and "qwen3" share one pre-norm RMSNorm/RoPE/SwiGLU
 * decoder (qwen2 adds q/k/v biases, qwen3 adds q/k norms); "gpt2" is LayerNorm, learned positions, GELU.
 */
export const Architecture = Schema.Literal("llama", "mistral", "qwen2", "qwen3", "gpt2");
export type Architecture = typeof Architecture.Type;

/** @internal The schema's inferred type; use `ModelConfig`. */
const ModelConfigSchema = Schema.Struct({
  architecture: Architecture,
  vocabSize: PositiveInt,
  hiddenSize: PositiveInt,
  numLayers: PositiveInt,
  numHeads: PositiveInt,
  /** Key/value heads (grouped-query attention); equal to numHeads for gpt2. */
  numKvHeads: PositiveInt,
  /** Width of the MLP's hidden layer (gpt2: n_inner, 4 * hidden by default). */
  intermediateSize: PositiveInt,
  /** Positions the model computes (gpt2: the size of its position table). */
  maxPositions: PositiveInt,
  /** RoPE base (unused by gpt2). */
  ropeTheta: Schema.optionalWith(PositiveNumber, { default: () => 10000 }),
  /** Epsilon of every norm layer: RMSNorm, or LayerNorm for gpt2 (layer_norm_epsilon). */
  rmsNormEps: Schema.optionalWith(PositiveNumber, { default: () => 1e-5 }),
  tieEmbeddings: Schema.Boolean,
  /** Size of one attention head when it is not hiddenSize / numHeads (Qwen3, some Mistrals). */
  headDim: Schema.optional(PositiveInt),
  /**
   * Sliding-window attention span (mistral, qwen2 with use_sliding_window). Within the window it equals
   * full causal attention, so sequences longer than this are refused rather than computed differently.
   */
  slidingWindow: Schema.optional(PositiveInt),
}).pipe(
  Schema.filter((c) => {
    if (c.headDim === undefined && c.hiddenSize % c.numHeads !== 0) {
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
    if (c.architecture === "gpt2") {
      if (c.numKvHeads !== c.numHeads) {
        return {
          path: ["numKvHeads"],
          message: "gpt2 has no grouped-query attention (numKvHeads = numHeads)",
        };
      }
      if (c.headDim !== undefined && c.headDim * c.numHeads !== c.hiddenSize) {
        return { path: ["headDim"], message: "gpt2 heads must split hiddenSize exactly" };
      }
      return undefined;
    }
    // RoPE rotates the two halves of each head against each other.
    const hd = c.headDim ?? c.hiddenSize / c.numHeads;
    if (hd % 2 !== 0) {
      return { path: ["numHeads"], message: `head dimension ${hd} must be even (RoPE)` };
    }
    return undefined;
  }),
);
/** A model's architecture and sizes as plain data (read from and written to HF config.json). */
export type ModelConfig = typeof ModelConfigSchema.Type;
/** Decoder for model configs in step configuration. */
export const ModelConfig: Schema.Schema<ModelConfig, typeof ModelConfigSchema.Encoded> = ModelConfigSchema;

/** Positions this implementation computes exactly: maxPositions, capped by a sliding window. */
export const contextLength = (c: ModelConfig): number =>
  Math.min(c.maxPositions, c.slidingWindow ?? Infinity);

/** Size of one attention head. */
export const headDim = (c: ModelConfig): number => c.headDim ?? c.hiddenSize / c.numHeads;

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

/** HF class name and model_type of each architecture. */
const HF_CLASS: Record<Architecture, [string, string]> = {
  llama: ["LlamaForCausalLM", "llama"],
  mistral: ["MistralForCausalLM", "mistral"],
  qwen2: ["Qwen2ForCausalLM", "qwen2"],
  qwen3: ["Qwen3ForCausalLM", "qwen3"],
  gpt2: ["GPT2LMHeadModel", "gpt2"],
};

/**
 * The config.json `transformers` writes for the equivalent model. Fields of `base` (the config.json a
 * checkpoint was loaded from: token ids, generation settings, ...) are kept unless this model's own
 * fields say otherwise.
 */
export const toHfConfig = (c: ModelConfig, base: Record<string, unknown> = {}): Record<string, unknown> => {
  const [cls, modelType] = HF_CLASS[c.architecture];
  const common = { architectures: [cls], model_type: modelType, vocab_size: c.vocabSize };
  if (c.architecture === "gpt2") {
    return {
      ...base,
      ...common,
      n_positions: c.maxPositions,
      n_embd: c.hiddenSize,
      n_layer: c.numLayers,
      n_head: c.numHeads,
      n_inner: c.intermediateSize,
      activation_function: "gelu_new",
      layer_norm_epsilon: c.rmsNormEps,
      tie_word_embeddings: c.tieEmbeddings,
      scale_attn_weights: true,
      scale_attn_by_inverse_layer_idx: false,
      reorder_and_upcast_attn: false,
      initializer_range: 0.02,
      torch_dtype: "float32",
      use_cache: true,
    };
  }
  const family: Record<string, unknown> = {
    ...common,
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
    attention_dropout: 0.0,
    initializer_range: 0.02,
    torch_dtype: "float32",
    use_cache: true,
  };
  switch (c.architecture) {
    case "llama":
      return { ...base, ...family, attention_bias: false, mlp_bias: false };
    case "mistral":
      return { ...base, ...family, sliding_window: c.slidingWindow ?? null };
    case "qwen2":
    case "qwen3":
      return {
        ...base,
        ...family,
        ...(c.architecture === "qwen3" ? { attention_bias: false } : {}),
        use_sliding_window: c.slidingWindow !== undefined,
        sliding_window: c.slidingWindow ?? null,
        max_window_layers: c.numLayers,
      };
  }
};

const OptionalInt = Schema.optional(Schema.NullOr(Schema.Number));

/** The fields of a Llama-family config.json we read; everything else is ignored. */
const HfLlamaConfig = Schema.Struct({
  vocab_size: Schema.Number,
  hidden_size: Schema.Number,
  intermediate_size: Schema.Number,
  num_hidden_layers: Schema.Number,
  num_attention_heads: Schema.Number,
  num_key_value_heads: OptionalInt,
  head_dim: OptionalInt,
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
  sliding_window: OptionalInt,
  use_sliding_window: Schema.optional(Schema.Boolean),
});

/** The fields of a GPT-2 config.json we read. */
const HfGpt2Config = Schema.Struct({
  vocab_size: Schema.Number,
  n_positions: Schema.Number,
  n_embd: Schema.Number,
  n_layer: Schema.Number,
  n_head: Schema.Number,
  n_inner: OptionalInt,
  activation_function: Schema.optional(Schema.String),
  layer_norm_epsilon: Schema.optional(Schema.Number),
  tie_word_embeddings: Schema.optional(Schema.Boolean),
  scale_attn_weights: Schema.optional(Schema.Boolean),
  scale_attn_by_inverse_layer_idx: Schema.optional(Schema.Boolean),
  add_cross_attention: Schema.optional(Schema.Boolean),
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
  headDim: "head_dim",
  slidingWindow: "sliding_window",
};
const GPT2_NAMES: Record<string, string> = {
  vocabSize: "vocab_size",
  hiddenSize: "n_embd",
  numLayers: "n_layer",
  numHeads: "n_head",
  intermediateSize: "n_inner",
  maxPositions: "n_positions",
  rmsNormEps: "layer_norm_epsilon",
};

/** Which architecture a config.json declares (architectures[] first, model_type otherwise). */
const architectureOf = (json: Record<string, unknown>): Architecture | string => {
  const supported = Object.keys(HF_CLASS) as Architecture[];
  const classes = json.architectures;
  if (Array.isArray(classes)) {
    const found = supported.find((a) => classes.includes(HF_CLASS[a][0]));
    return found ?? `architectures ${JSON.stringify(classes)}`;
  }
  const found = supported.find((a) => HF_CLASS[a][1] === json.model_type);
  return found ?? `model_type ${JSON.stringify(json.model_type ?? null)}`;
};

const supportedList = Object.values(HF_CLASS).map(([cls]) => cls).join(", ");

/**
 * Reads an HF config.json object (already JSON-parsed) into a ModelConfig. `path` names the file for
 * errors. Missing optional fields take the HF config class's defaults (note: rms_norm_eps defaults to
 * 1e-6 there, not our 1e-5; Mistral's sliding_window defaults to 4096, Qwen3's head_dim to 128).
 * Anything this implementation would silently compute differently is refused.
 */
export const fromHfConfig = (json: unknown, path: string): Effect.Effect<ModelConfig, CheckpointMalformed> =>
  Effect.gen(function* () {
    const fail = (reason: string) => Effect.fail(new CheckpointMalformed({ path, reason }));
    if (typeof json !== "object" || json === null || Array.isArray(json)) {
      return yield* fail("config.json is not a JSON object");
    }
    const declared = architectureOf(json as Record<string, unknown>);
    if (!(declared in HF_CLASS)) {
      return yield* fail(`${declared} is not supported (supported: ${supportedList})`);
    }
    const arch = declared as Architecture;
    const decodeFields = <A, I>(schema: Schema.Schema<A, I>) => {
      const decoded = Schema.decodeUnknownEither(schema)(json);
      if (Either.isRight(decoded)) return Effect.succeed(decoded.right);
      const { path: field, message } = firstIssue(decoded.left);
      return fail(`config.json${field ? ` field "${field}"` : ""}: ${message}`);
    };
    let candidate: Record<string, unknown>;
    let names = HF_NAMES;
    if (arch === "gpt2") {
      const hf = yield* decodeFields(HfGpt2Config);
      const act = hf.activation_function ?? "gelu_new";
      // Both are the tanh approximation of GELU; the exact (erf) "gelu" and others are not implemented.
      if (act !== "gelu_new" && act !== "gelu_pytorch_tanh") {
        return yield* fail(
          `activation_function "${act}" is not supported (only "gelu_new" / "gelu_pytorch_tanh")`,
        );
      }
      if (hf.scale_attn_weights === false) return yield* fail("scale_attn_weights false is not supported");
      if (hf.scale_attn_by_inverse_layer_idx === true) {
        return yield* fail("scale_attn_by_inverse_layer_idx true is not supported");
      }
      if (hf.add_cross_attention === true) return yield* fail("add_cross_attention true is not supported");
      names = GPT2_NAMES;
      candidate = {
        architecture: "gpt2",
        vocabSize: hf.vocab_size,
        hiddenSize: hf.n_embd,
        numLayers: hf.n_layer,
        numHeads: hf.n_head,
        numKvHeads: hf.n_head,
        intermediateSize: hf.n_inner ?? 4 * hf.n_embd,
        maxPositions: hf.n_positions,
        rmsNormEps: hf.layer_norm_epsilon ?? 1e-5,
        tieEmbeddings: hf.tie_word_embeddings ?? true,
      };
    } else {
      const hf = yield* decodeFields(HfLlamaConfig);
      const act = hf.hidden_act ?? "silu";
      if (act !== "silu" && act !== "swish") {
        return yield* fail(`hidden_act "${act}" is not supported (only "silu")`);
      }
      const isDefaultRope = (r: unknown) =>
        typeof r === "object" && r !== null && ((r as Record<string, unknown>).rope_type ??
            (r as Record<string, unknown>).type ?? "default") === "default";
      if (hf.rope_scaling !== undefined && hf.rope_scaling !== null && !isDefaultRope(hf.rope_scaling)) {
        return yield* fail(`rope_scaling ${JSON.stringify(hf.rope_scaling)} is not supported (only null)`);
      }
      let ropeTheta = hf.rope_theta ?? 10000;
      if (hf.rope_parameters !== undefined && hf.rope_parameters !== null) {
        const rp = hf.rope_parameters as Record<string, unknown>;
        if (!isDefaultRope(rp)) {
          return yield* fail(
            `rope_parameters ${JSON.stringify(rp)} is not supported (only rope_type "default")`,
          );
        }
        if (typeof rp.rope_theta === "number") ropeTheta = rp.rope_theta;
      }
      // Qwen2 always has q/k/v biases (and no attention_bias field); elsewhere biases are not implemented.
      if (arch !== "qwen2" && hf.attention_bias === true) {
        return yield* fail(`attention_bias true is not supported for ${HF_CLASS[arch][0]}`);
      }
      if (hf.mlp_bias === true) return yield* fail("mlp_bias true is not supported");
      const heads = hf.num_attention_heads;
      const defaultHeadDim = arch === "qwen3" ? 128 : hf.hidden_size / heads;
      const hd = hf.head_dim ?? defaultHeadDim;
      let slidingWindow: number | null | undefined;
      if (arch === "mistral") {
        slidingWindow = hf.sliding_window === undefined ? 4096 : hf.sliding_window;
      } else if ((arch === "qwen2" || arch === "qwen3") && hf.use_sliding_window === true) {
        slidingWindow = hf.sliding_window;
      }
      candidate = {
        architecture: arch,
        vocabSize: hf.vocab_size,
        hiddenSize: hf.hidden_size,
        numLayers: hf.num_hidden_layers,
        numHeads: heads,
        numKvHeads: hf.num_key_value_heads ?? heads,
        intermediateSize: hf.intermediate_size,
        maxPositions: hf.max_position_embeddings ??
          { llama: 2048, mistral: 131072, qwen2: 32768, qwen3: 32768 }[arch],
        ropeTheta,
        rmsNormEps: hf.rms_norm_eps ?? 1e-6,
        tieEmbeddings: hf.tie_word_embeddings ?? false,
        // Written only when it differs, so plain configs stay equal to ones built by hand.
        ...(hd * heads !== hf.hidden_size ? { headDim: hd } : {}),
        ...(slidingWindow === null || slidingWindow === undefined ? {} : { slidingWindow }),
      };
    }
    return yield* decodeModelConfig(candidate, "").pipe(
      Effect.mapError((e) => {
        const field = e.where.trim();
        return new CheckpointMalformed({ path, reason: `${names[field] ?? field}: ${e.reason}` });
      }),
    );
  });
