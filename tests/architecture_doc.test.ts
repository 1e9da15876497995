/**
 * docs/architecture.md's "add a method" example works as written: its method file, taken from the page
 * (only its relative imports pointed at this checkout's pipelines/, since it is written to a temporary
 * directory), and its one line for pipelines/methods.ts, added to the registry, build a pipeline that
 * trains the new method on its mask and evaluates it.
 */
import { assert, assertEquals } from "./assert.ts";
import { PipelineBuilder, type StepNode } from "../src/engine/pipeline.ts";
import { prepareData } from "../pipelines/data.ts";
import { type Method, runMethods } from "../pipelines/method_context.ts";
import { methods } from "../pipelines/methods.ts";

const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** The body of the fenced block whose info string is `ts <attr>`, e.g. `ts file=pipelines/x.ts`. */
const block = (doc: string, attr: string): string => {
  const start = doc.indexOf("```ts " + attr + "\n");
  assert(start >= 0, `docs/architecture.md has no \`\`\`ts ${attr} block`);
  const body = doc.slice(start + attr.length + 7);
  return body.slice(0, body.indexOf("```"));
};

Deno.test("architecture doc: the toy method file plus its methods.ts line builds a pipeline that trains and evaluates it", async () => {
  const doc = await Deno.readTextFile(`${root}/docs/architecture.md`);
  const source = block(doc, "file=pipelines/answer_only.ts");
  const line = block(doc, "line=pipelines/methods.ts").trim();

  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/answer_only.ts`;
    await Deno.writeTextFile(file, source.replaceAll('from "./', `from "file://${root}/pipelines/`));
    const module: Record<string, unknown> = await import(`file://${file}`);

    // The methods.ts line: `"<label>": <export>,`, naming what the file exports.
    const entry = /^"([^"]+)": (\w+),$/.exec(line);
    assert(entry, `the methods.ts line is not a registry entry: ${line}`);
    const [, label, exported] = entry;
    assertEquals(typeof module[exported], "function", `the file exports no ${exported}`);
    const registry: Readonly<Record<string, Method>> = { ...methods, [label]: module[exported] as Method };
    assertEquals(Object.keys(registry).length, Object.keys(methods).length + 1, `${label} is already taken`);

    const p = new PipelineBuilder("toy");
    runMethods(p, prepareData(p, { quick: true }), [registry[label]]);
    const nodes = p.build().nodes;
    const steps = new Map(
      nodes.filter((n): n is StepNode => n.kind === "step").map((n) => [n.name, n] as const),
    );
    const trained = steps.get(label);
    assert(trained, `no node ${label} in ${[...steps.keys()].join(", ")}`);
    assertEquals(trained.step.name, "train");
    assertEquals(trained.inputs.data, "mask-answer");
    assertEquals(steps.get("mask-answer")?.config, { mask: { kind: "answer" } });
    const evaluated = steps.get(`eval-${label}`);
    assertEquals(evaluated?.step.name, "evaluate");
    assertEquals(evaluated?.inputs.model, label);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
