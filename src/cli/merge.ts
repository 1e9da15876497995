/**
 * `merge`: a base checkpoint with a LoRA adapter folded in, as a full Hugging Face checkpoint.
 *
 *   deno task merge --model BASE --adapter DIR --out DIR
 *
 * The adapter (PEFT layout, src/model/peft.ts) is checked against the base, W' = W + scaling B A is
 * computed for every adapted module (transposed for GPT-2's Conv1D), and the result is saved with the
 * base's config.json fields and side files (tokenizer, generation config), so it loads here and with
 * transformers' AutoModelForCausalLM like the base.
 */
import { Command, Options } from "@effect/cli";
import { Effect } from "effect";
import { useBackend } from "../backend/backend.ts";
import { disposeParams } from "../model/model.ts";
import { loadCheckpoint, saveCheckpoint } from "../model/checkpoint.ts";
import { mergeAdapter } from "../model/lora.ts";
import { loadAdapter } from "../model/peft.ts";

/** Loads `model`, applies and merges `adapter`, and saves the merged checkpoint into `out`. */
export const runMerge = (req: { readonly model: string; readonly adapter: string; readonly out: string }) =>
  Effect.acquireUseRelease(
    loadCheckpoint(req.model),
    (base) =>
      Effect.gen(function* () {
        const { adapter } = yield* loadAdapter(req.adapter, base.config, base.params);
        mergeAdapter(base.params, base.config);
        yield* saveCheckpoint(req.out, base.config, base.params, {}, {
          baseConfig: base.hfConfig,
          copySideFilesFrom: req.model,
        });
        return { modules: adapter.tensors.size / 2 };
      }),
    (base) => Effect.sync(() => disposeParams(base.params)),
  );

const model = Options.text("model").pipe(
  Options.withPseudoName("DIR"),
  Options.withDescription("the base Hugging Face checkpoint the adapter was trained on"),
);
const adapter = Options.text("adapter").pipe(
  Options.withPseudoName("DIR"),
  Options.withDescription("a LoRA adapter in PEFT's layout (adapter_config.json, adapter_model.safetensors)"),
);
const out = Options.text("out").pipe(
  Options.withPseudoName("DIR"),
  Options.withDescription("directory for the merged checkpoint (created if missing)"),
);

export const mergeCommand = Command.make("merge", { model, adapter, out }, (a) =>
  Effect.gen(function* () {
    // Merging is exact float64 arithmetic in JavaScript; the cpu backend only holds the tensors.
    yield* useBackend("cpu");
    const { modules } = yield* runMerge(a);
    console.log(`merged ${modules} LoRA modules of ${a.adapter} into ${a.model}: ${a.out}`);
  })).pipe(
    Command.withDescription(
      "fold a LoRA adapter (PEFT layout) into its base: a full Hugging Face checkpoint",
    ),
  );
