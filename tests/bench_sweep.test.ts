/**
 * The sequence-length sweep's chart (bench/sweep.ts): both panels, every series, log-2 lengths, rendered
 * to SVG headlessly like the report's charts.
 */
import { type SweepRow, sweepSpec } from "../bench/sweep.ts";
import { renderSvg } from "../src/report/charts.ts";
import { assert, assertEquals } from "./assert.ts";

Deno.test("bench sweep: the chart shows tokens/s and peak RSS against length for each model and side", async () => {
  const rows: SweepRow[] = [];
  for (const model of ["small", "wide"]) {
    for (const side of ["ours", "PyTorch"] as const) {
      for (const seq of [128, 256, 512]) {
        rows.push({
          model,
          side,
          seq,
          tokensPerSecond: seq / (side === "ours" ? 2 : 3),
          peakRssMb: 400 + seq,
        });
      }
    }
  }
  const spec = sweepSpec(rows, "sweep") as unknown as {
    hconcat: Array<{ encoding: { x: { axis: { values: number[] } }; y: { field: string } } }>;
  };
  assertEquals(spec.hconcat.map((p) => p.encoding.y.field), ["tokensPerSecond", "peakRssMb"]);
  assertEquals(spec.hconcat[0].encoding.x.axis.values, [128, 256, 512]);
  const svg = await renderSvg(sweepSpec(rows, "sweep"));
  for (const text of ["training tokens/s", "peak RSS (MiB)", "small", "wide", "2048"]) {
    if (text === "2048") assert(!svg.includes(">2048<"), "a length that was not measured is on the axis");
    else assert(svg.includes(text), `${text} missing from the chart`);
  }
});
