/**
 * Slow tier (SFTKEY_SLOW=1): a Qwen2.5-0.5B-shaped random checkpoint (tools/make_shaped_checkpoint.ts
 * qwen05, 494 M parameters, 1.84 GiB of float32) trains 2 LoRA steps and saves its adapter within 8 GiB
 * of resident memory. Both run in child processes (tools/lora_memory.ts reports its own VmHWM), so this
 * test's memory does not count.
 */
import { assert, assertEquals } from "./assert.ts";

const slow = Deno.env.get("SFTKEY_SLOW") === "1";
const tool = (name: string) => new URL(`../tools/${name}`, import.meta.url).pathname;

const run = async (args: string[]) => {
  const out = await new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "inherit" }).output();
  assert(out.success, `deno ${args.join(" ")} failed`);
  return new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!;
};

Deno.test({
  name: "Qwen2.5-0.5B shape: 2 LoRA steps and the adapter saved within 8 GiB resident",
  ignore: !slow,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "qwen05-shaped-" });
    try {
      await run([
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "--allow-sys",
        tool("make_shaped_checkpoint.ts"),
        "qwen05",
        dir,
      ]);
      const r = JSON.parse(await run(["run", "-A", tool("lora_memory.ts"), dir, "lora"]));
      console.log(`Qwen2.5-0.5B shape, LoRA r 8: ${JSON.stringify(r)}`);
      assertEquals(r.mode, "lora");
      // r 8 on q, k, v, o, gate, up and down of 24 layers: 8 x (in + out) per module.
      const perLayer = 8 * ((896 + 896) + (896 + 128) * 2 + (896 + 896) + (896 + 4864) * 2 + (4864 + 896));
      assertEquals(r.trainableParams, 24 * perLayer);
      assertEquals(r.stepSeconds.length, 2);
      assert(Number.isFinite(r.loss) && Math.abs(r.loss - Math.log(151936)) < 0.5, `loss ${r.loss}`);
      assert(r.peakRssGiB < 8, `peak resident memory ${r.peakRssGiB} GiB exceeds 8 GiB`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
