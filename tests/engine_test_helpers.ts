/** Toy steps for engine tests: they count their runs so tests can assert what was recomputed. */
import { Effect, Schema } from "effect";
import { defineStep } from "../src/engine/step.ts";
import { FileUnreadable } from "../src/errors.ts";
import { type Reporter, silentReporter } from "../src/engine/progress.ts";

export const runs: Record<string, number> = {};
const bump = (name: string) => (runs[name] = (runs[name] ?? 0) + 1);

export const upper = defineStep({
  name: "upper",
  version: 1,
  description: "upper-cases a text file",
  config: Schema.Struct({ suffix: Schema.String }),
  inputs: ["text"] as const,
  run: (config, inputs, ctx) =>
    Effect.tryPromise({
      try: async () => {
        bump("upper");
        const text = await Deno.readTextFile(inputs.text!);
        await Deno.writeTextFile(`${ctx.dir}/out.txt`, text.toUpperCase() + config.suffix);
        // Run metadata differs between runs; it must not change downstream keys.
        await Deno.writeTextFile(`${ctx.dir}/run.meta.json`, JSON.stringify({ at: performance.now() }));
      },
      catch: (e) => new FileUnreadable({ path: String(inputs.text), reason: String(e) }),
    }),
});

export const count = defineStep({
  name: "count",
  version: 1,
  description: "counts characters of the upstream output",
  config: Schema.Struct({ scale: Schema.Number }),
  inputs: ["upper"] as const,
  run: (config, inputs, ctx) =>
    Effect.promise(async () => {
      bump("count");
      const text = await Deno.readTextFile(`${inputs.upper}/out.txt`);
      await Deno.writeTextFile(`${ctx.dir}/n.json`, JSON.stringify({ n: text.length * config.scale }));
    }),
});

/**
 * A reporter that "crashes" the process at item `at` of any long operation (an optimizer step of a
 * training stage, an update of an RL run): its progress callback throws, which stops the step after the
 * checkpoint before that item, as a crash would.
 */
export const crashingAt = (at: number): Reporter => ({
  ...silentReporter(),
  progress: () => ({
    update: (p) => {
      if (p.done === at) throw new Error("simulated crash");
    },
    finish: () => {},
  }),
});
