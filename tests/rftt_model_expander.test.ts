/**
 * The model expander of RFTT's search: children ordered by the policy's probability of each allowed tag's
 * opening token, a step kept only when the model closes it with the tag's own closing token, and a search
 * with it yields grammar-valid traces whose nodes keep the model's own token ids; with a real (random)
 * checkpoint it runs end to end.
 */
import * as tf from "@tensorflow/tfjs";
import { assert, assertEquals } from "./assert.ts";
import { tinyConfig } from "./model_test_helpers.ts";
import { parseTrace, renderTrace } from "../src/data/functional_tokens.ts";
import { disposeParams, initParams } from "../src/model/model.ts";
import {
  modelExpander,
  modelPolicy,
  orderTags,
  type Policy,
  sampleTraces,
} from "../src/train/rftt_model_expander.ts";
import { search, segmentsOf } from "../src/train/rftt_search.ts";
import { Rng } from "../src/util/rng.ts";
import { grownArithTokenizer } from "./rftt_test_helpers.ts";

await tf.setBackend("cpu");

const { tok, ids, id, dir: tmp } = await grownArithTokenizer();

/** A scripted policy: the continuation depends on the opening tag the prompt ends with. */
const scripted = (scripts: Record<string, number[]>, prefer: string[]): Policy & { stops: boolean[] } => {
  const stops: boolean[] = [];
  return {
    stops,
    nextLogits: () => {
      const l = new Float32Array(tok.vocabSize);
      prefer.forEach((t, i) => l[id(t)] = 10 - i);
      return l;
    },
    continue: (prompts, stop) => {
      stops.push(stop(tok.eosId), stop(id("</verify>")), !stop(tok.encode("7")[0]));
      return prompts.map((p) => {
        // The prompt ends with "<tag>" "\n": find the opening token.
        const open = [...p].reverse().find((x) => x >= 324)!;
        return scripts[tok.decode([open])] ?? [tok.eosId];
      });
    },
  };
};

const nl = tok.encode("\n");

Deno.test("model expander: tags ordered by the policy, only properly closed steps kept", () => {
  const policy = scripted({
    "<next_step>": [...tok.encode("9-3=6"), ...nl, id("</next_step>")],
    "<subquestion>": [...tok.encode("What is 9 - 3?"), id("<verify>")], // another token: dropped
    "<analysis>": [...tok.encode("x"), ...nl, id("</clarify>")], // wrong closing tag: dropped
    "<clarify>": [...tok.encode("Compute it."), ...nl, id("</clarify>")],
    "<direct_answer>": [...tok.encode("9-3=6"), id("</direct_answer>")], // no newline before it: dropped
  }, ["<subquestion>", "<next_step>", "<clarify>"]);
  const ex = modelExpander(policy, tok, {
    promptIds: tok.encode("What is 9 - 3?\n"),
    maxStepTokens: 20,
    temperature: 0,
    judge: () => 1,
  });
  const kids = ex.expand(ex.root, [], ["clarify", "analysis", "subquestion", "next_step"], Rng.seeded(1));
  assertEquals(kids.map((k) => [k.tag, k.content]), [["next_step", "9-3=6"], ["clarify", "Compute it."]]);
  const after = ex.expand(kids[0].state, [kids[0]], ["next_step", "direct_answer"], Rng.seeded(1));
  assertEquals(after.map((k) => k.tag), ["next_step"]);
  // Stops at EOS and functional tokens, not at ordinary ones.
  assert(policy.stops.every((s) => s));
  const logits = new Float32Array(tok.vocabSize);
  logits[id("<verify>")] = 3;
  logits[id("<output>")] = 5;
  assertEquals(orderTags(logits, ["next_step", "verify", "output"], ids), ["output", "verify", "next_step"]);
});

Deno.test("model expander: a search with it yields grammar-valid traces judged by their answer", () => {
  const policy = scripted({
    "<next_step>": [...tok.encode("9-3=6"), ...nl, id("</next_step>")],
    "<output>": [...tok.encode("6"), ...nl, id("</output>")],
  }, ["<next_step>", "<output>"]);
  const ex = modelExpander(policy, tok, {
    promptIds: tok.encode("What is 9 - 3?\n"),
    maxStepTokens: 20,
    temperature: 0,
    judge: (a) => a === "6" ? 1 : 0,
  });
  const tree = search(ex, { rollouts: 8, maxDepth: 4, exploration: 2 }, Rng.seeded(2));
  const finished = tree.rollouts.filter((r) => r.path[r.path.length - 1].step!.tag === "output");
  assert(finished.length > 0);
  for (const r of finished) {
    const segs = segmentsOf(r.path);
    const text = renderTrace(segs);
    assert(parseTrace(text).ok);
    assertEquals(r.value, 1);
    // The node keeps the ids the model wrote: they decode to the trace, and exactly the generated ones
    // (content, newline, closing token) are marked sampled.
    const { ids: traceIds, sampled } = r.path[r.path.length - 1].step!.state;
    assertEquals(tok.decode(traceIds), text);
    const generated = traceIds.filter((_, k) => sampled[k]);
    const expected = segs.flatMap((s) => [...tok.encode(s.content), ...nl, id(`</${s.tag}>`)]);
    assertEquals(generated, expected);
  }
});

Deno.test("model expander: runs on a real (untrained) checkpoint", () => {
  const c = tinyConfig({ vocabSize: tok.vocabSize });
  const params = initParams(c, Rng.seeded(4));
  const ex = modelExpander(modelPolicy(params, c), tok, {
    promptIds: tok.encode("What is 1 + 2?\n"),
    maxStepTokens: 6,
    temperature: 0.7,
    judge: () => 1,
  });
  const tree = search(ex, { rollouts: 3, maxDepth: 3, exploration: 2 }, Rng.seeded(5));
  assertEquals(tree.rollouts.length, 3);
  // An untrained model almost never closes a step properly; whatever it did produce obeys the grammar.
  for (const r of tree.rollouts) for (const s of segmentsOf(r.path)) assert(s.content.length > 0);
  disposeParams(params);
  Deno.removeSync(tmp, { recursive: true });
});

Deno.test("plain sampling: whole responses, valid only as a complete trace ended by EOS", () => {
  const good = [...tok.encode("<next_step>\n9-3=6\n</next_step>\n<output>\n6\n</output>\n"), tok.eosId];
  const noEos = tok.encode("<next_step>\n9-3=6\n</next_step>\n<output>\n6\n</output>\n");
  const badGrammar = [...tok.encode("<output>\n6\n</output>\n"), tok.eosId];
  const scripts = [good, noEos, badGrammar];
  const seen: boolean[] = [];
  const policy: Policy = {
    nextLogits: () => new Float32Array(tok.vocabSize),
    continue: (prompts, stop) => {
      seen.push(stop(tok.eosId), !stop(id("</output>")));
      return prompts.map((_, i) => scripts[i]);
    },
  };
  const prompt = tok.encode("What is 9 - 3?\n");
  const out = sampleTraces(policy, tok, [prompt, prompt, prompt], 64, 1, Rng.seeded(3));
  assert(seen.every((s) => s), "stops at EOS only");
  assertEquals(out.map((o) => [o.valid, o.answer]), [[true, "6"], [false, undefined], [false, undefined]]);
  assertEquals(out[0].ids, good);
  assert(out[0].sampled.every((s) => s));
  assertEquals(out[0].text, "<next_step>\n9-3=6\n</next_step>\n<output>\n6\n</output>\n");
});
