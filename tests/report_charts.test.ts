/**
 * Vega-Lite specs render to SVG headlessly under Deno (no canvas, no DOM), with one mark per datum where
 * expected, and long labels are not cut short by Vega's canvas-less text width estimate.
 */
import { assert, assertEquals } from "./assert.ts";
import { accuracySpec, estimateTextWidth, lossSpec, renderSvg, scopeSvgIds } from "../src/report/charts.ts";

/** The SVG markup of the mark group whose class contains `cls`, up to the next mark group. */
const marksOf = (svg: string, cls: string): string[] =>
  [...svg.matchAll(new RegExp(`<g class="mark-[a-z]+ role-mark ${cls}"[^>]*>(.*?)</g>`, "gs"))].map((m) =>
    m[1]
  );

const count = (s: string, re: RegExp) => (s.match(re) ?? []).length;

Deno.test("charts: the accuracy chart renders one bar per dataset and model and one dot per seed", async () => {
  const models = ["sft", "sftkey-stage-one", "sftkey-stage-two"];
  const points = ["arith", "gsm8k"].flatMap((dataset) =>
    models.flatMap((model, m) =>
      [0, 1, 2].map((seed) => ({ dataset, model, seed, accuracy: 0.2 * m + 0.05 * seed }))
    )
  );
  const svg = await renderSvg(accuracySpec(points, models));
  assert(svg.startsWith("<svg"), svg.slice(0, 80));
  // One bar group per facet cell (dataset), three bars in each.
  const bars = marksOf(svg, "child_layer_0_marks");
  assertEquals(bars.length, 2);
  assertEquals(bars.map((b) => count(b, /<path /g)), [3, 3]);
  // Dots: one per seed and model.
  const dots = marksOf(svg, "child_layer_2_marks");
  assertEquals(dots.map((d) => count(d, /<path /g)), [9, 9]);
  // Both facet headers and every model name appear as text.
  for (const label of ["arith", "gsm8k", ...models]) assert(svg.includes(`>${label}</text>`), label);
});

Deno.test("charts: the loss chart has a panel per method and dataset, a line per stage; labels stay whole", async () => {
  const stages = {
    sft: ["sft"],
    sftkey: ["sftkey-stage-one", "sftkey-stage-two"],
    fdiv: ["fdiv-hellinger-long-name"],
  };
  const points = ["arith", "gsm8k"].flatMap((dataset) =>
    Object.entries(stages).flatMap(([method, labels]) =>
      labels.flatMap((stage, k) =>
        Array.from(
          { length: 20 },
          (_, i) => ({ dataset, method, stage, step: i + 1 + 20 * k, loss: 4 / (i + 1) }),
        )
      )
    )
  );
  const svg = await renderSvg(lossSpec(points, Object.keys(stages)));
  // Vega draws each series of a line mark as its own mark group: 2 datasets x 4 stages, one path each.
  const lines = marksOf(svg, "child_marks");
  assertEquals(lines.length, 8);
  assert(lines.every((l) => count(l, /<path /g) === 1));
  for (const label of [...Object.keys(stages), ...Object.values(stages).flat()]) {
    assert(svg.includes(`>${label}</text>`), `label "${label}" missing or cut`);
  }
  assert(!svg.includes("\u2026"), "a label was truncated with an ellipsis");
});

Deno.test("charts: text width estimate is close to a sans-serif font's widths", () => {
  // Helvetica at 10px: "sftkey-stage-two" is about 78px wide; Vega's fallback would say 128px.
  const w = estimateTextWidth("sftkey-stage-two", 10);
  assert(w > 65 && w < 95, `${w}`);
  assert(estimateTextWidth("WWW", 10) > estimateTextWidth("iii", 10));
});

Deno.test("charts: ids and their references are scoped per chart", () => {
  const svg =
    '<svg><clipPath id="clip1"><path/></clipPath><g clip-path="url(#clip1)"></g><use href="#clip1"/></svg>';
  assertEquals(
    scopeSvgIds(svg, "loss-"),
    '<svg><clipPath id="loss-clip1"><path/></clipPath><g clip-path="url(#loss-clip1)"></g><use href="#loss-clip1"/></svg>',
  );
});
