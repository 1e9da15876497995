/**
 * The report's charts as Vega-Lite specs, rendered to SVG headlessly: vega-lite compiles a spec to a
 * Vega spec, a Vega View with renderer "none" lays it out without any canvas or DOM, and toSVG() writes
 * the scene graph as SVG markup that the report inlines.
 *
 * Text widths. Without a canvas (none exists under Deno) Vega estimates a label's width as
 * 0.8 x font size per character, about 1.5 times the real width of a sans-serif font: long labels were
 * cut with an ellipsis and legends were laid out far too wide. `installTextWidths` replaces that
 * estimate with per-character widths of a Helvetica-like font (measured widths, rounded to classes).
 */
import { Effect } from "effect";
import * as vega from "vega";
import * as vl from "vega-lite";
import { WriteFailed } from "../errors.ts";
import { writeFileAtomic } from "../io/fs.ts";

/** Width of each character class in units of the font size (Helvetica/Arial-like). */
const charWidth = (c: string): number => {
  if ("il.,:;|!'`".includes(c)) return 0.26;
  if ("fjtrI()[]{}/\\- ".includes(c)) return 0.33;
  if ("mwMW@%".includes(c)) return 0.85;
  if (c >= "A" && c <= "Z") return 0.68;
  if (c >= "0" && c <= "9") return 0.56;
  return 0.52;
};

export const estimateTextWidth = (text: string, fontSize: number): number =>
  [...text].reduce((w, c) => w + charWidth(c) * fontSize, 0);

let installed = false;

/** Replaces Vega's canvas-less width estimate (see the top of the file); idempotent. */
const installTextWidths = () => {
  if (installed) return;
  const metrics = (vega as unknown as {
    textMetrics: { width: (item: { fontSize?: number; text?: unknown }, text?: unknown) => number };
  }).textMetrics;
  metrics.width = (item, text) => {
    const value = text ?? item.text;
    const s = Array.isArray(value) ? value.join(" ") : value == null ? "" : String(value);
    return estimateTextWidth(s, item.fontSize ?? 11);
  };
  installed = true;
};

/** Renders a Vega-Lite spec to an SVG string, without a browser or canvas. */
export const renderSvg = async (spec: vl.TopLevelSpec): Promise<string> => {
  installTextWidths();
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
};

/** The files `writeChart(dir, base, ...)` writes: `<base>.svg` and `<base>.vl.json`. */
export const chartFiles = (base: string): readonly [string, string] => [`${base}.svg`, `${base}.vl.json`];

/** Writes `spec` rendered as `<dir>/<base>.svg` and the spec itself as `<dir>/<base>.vl.json`. */
export const writeChart = (
  dir: string,
  base: string,
  spec: vl.TopLevelSpec,
): Effect.Effect<void, WriteFailed> =>
  Effect.gen(function* () {
    const svg = yield* Effect.tryPromise({
      try: () => renderSvg(spec),
      catch: (e) => new WriteFailed({ path: `${dir}/${base}.svg`, reason: String(e) }),
    });
    yield* writeFileAtomic(`${dir}/${base}.svg`, svg);
    yield* writeFileAtomic(`${dir}/${base}.vl.json`, JSON.stringify(spec, null, 2) + "\n");
  });

/**
 * Prefixes the ids an SVG defines (Vega's clip paths are "clip1", "clip2", ... in every chart) and the
 * references to them, so that several charts inlined in one HTML page do not clip each other.
 */
export const scopeSvgIds = (svg: string, prefix: string): string =>
  svg.replace(/\bid="([^"]+)"/g, `id="${prefix}$1"`).replace(/url\(#([^)]+)\)/g, `url(#${prefix}$1)`)
    .replace(/href="#([^"]+)"/g, `href="#${prefix}$1"`);

export interface AccuracyPoint {
  readonly dataset: string;
  readonly model: string;
  readonly seed: number;
  readonly accuracy: number;
}

const FONT = { font: "Helvetica, Arial, sans-serif", labelFont: "Helvetica, Arial, sans-serif" };

const config = {
  background: "white",
  font: FONT.font,
  axis: { labelFontSize: 11, titleFontSize: 12 },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 400 },
  header: { labelFontSize: 13, labelFontWeight: "bold" as const, title: null },
  view: { stroke: "#ddd" },
};

/**
 * Accuracy per model and dataset: a bar at the mean over seeds, an error bar of +- one standard
 * deviation, and one dot per seed. `order` fixes the models' order on the axis.
 */
export const accuracySpec = (points: ReadonlyArray<AccuracyPoint>, order: ReadonlyArray<string>) => {
  const x = {
    field: "model",
    type: "nominal" as const,
    sort: [...order],
    title: null,
    axis: { labelAngle: -35, labelLimit: 200 },
  };
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    data: { values: points.map((p) => ({ ...p })) },
    facet: { column: { field: "dataset", type: "nominal", title: null } },
    spec: {
      width: Math.max(160, 34 * order.length),
      height: 220,
      layer: [
        {
          mark: { type: "bar", opacity: 0.75 },
          encoding: {
            x,
            y: {
              aggregate: "mean",
              field: "accuracy",
              type: "quantitative",
              title: "accuracy (mean over seeds)",
              scale: { domain: [0, 1] },
              axis: { format: "%" },
            },
            color: { field: "model", type: "nominal", sort: [...order], legend: null },
          },
        },
        {
          mark: { type: "errorbar", extent: "stdev", ticks: true, color: "black" },
          encoding: { x, y: { field: "accuracy", type: "quantitative", title: null } },
        },
        {
          mark: { type: "point", filled: true, color: "black", size: 18, opacity: 0.8 },
          encoding: {
            x,
            y: { field: "accuracy", type: "quantitative", title: null },
            tooltip: [{ field: "model" }, { field: "seed" }, { field: "accuracy", format: ".1%" }],
          },
        },
      ],
    },
    config,
  } as vl.TopLevelSpec;
};

export interface LossPoint {
  readonly dataset: string;
  readonly method: string;
  /** The stage's node label ("sftkey-stage-two"). */
  readonly stage: string;
  /** Optimizer step on the method's axis (a second stage continues where the first ended). */
  readonly step: number;
  /** Mean over seeds. */
  readonly loss: number;
}

/**
 * Training loss against optimizer steps: one panel per method (rows) and dataset (columns), one line per
 * stage. Each panel has its own y scale: the methods' objectives (cross entropy, total variation,
 * chi^2, ...) are on different scales, and a shared axis would flatten all but the largest.
 */
export const lossSpec = (points: ReadonlyArray<LossPoint>, methodOrder: ReadonlyArray<string>) =>
  ({
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    data: { values: points.map((p) => ({ ...p })) },
    facet: {
      row: { field: "method", type: "nominal", title: null, sort: [...methodOrder] },
      column: { field: "dataset", type: "nominal", title: null },
    },
    spec: {
      width: 380,
      height: 110,
      mark: { type: "line", strokeWidth: 1.5, clip: true },
      encoding: {
        x: {
          field: "step",
          type: "quantitative",
          title: "optimizer step (stages continue one another)",
          axis: { format: "d", tickMinStep: 1 },
        },
        y: {
          field: "loss",
          type: "quantitative",
          title: "training loss",
          // symlog: curves of objectives on very different scales (chi^2 beside total variation) in one
          // panel stay readable, and a loss of 0 is drawn rather than dropped as on a log scale.
          scale: { type: "symlog", zero: false },
          axis: { tickCount: 4 },
        },
        color: { field: "stage", type: "nominal", title: "stage", scale: { scheme: "category20" } },
      },
    },
    resolve: { scale: { y: "independent" } },
    config: { ...config, header: { ...config.header, labelAngle: 0, labelAlign: "left" as const } },
  }) as vl.TopLevelSpec;

/** One value of an RL run's per-update log (the rl step's rl_log.jsonl). */
export interface RlPoint {
  /** The run's label ("rftt", "cot-rl"). */
  readonly arm: string;
  /** 1-based update. */
  readonly update: number;
  /** What is measured ("mean reward", "KL to reference", ...; or a functional tag). */
  readonly metric: string;
  readonly value: number;
}

/** The x axis of the RL charts: the update number. */
const UPDATE_AXIS = {
  field: "update",
  type: "quantitative",
  title: "RL update",
  axis: { format: "d", tickMinStep: 1 },
} as const;

/**
 * RL runs per update: one panel per metric (mean reward, KL to the reference, response length, clip
 * fraction, share reaching `<output>`), one line per run, each panel on its own y scale; below, the
 * functional tokens written per rollout, one panel per run, one line per tag.
 */
export const rlSpec = (
  metrics: ReadonlyArray<RlPoint>,
  tags: ReadonlyArray<RlPoint>,
  metricOrder: ReadonlyArray<string>,
) =>
  ({
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    vconcat: [
      {
        data: { values: metrics.map((p) => ({ ...p })) },
        facet: {
          row: {
            field: "metric",
            type: "nominal",
            title: null,
            sort: [...metricOrder],
            // Above each panel, not beside it, where the labels ran into the y axis.
            header: { labelOrient: "top", labelAnchor: "start", labelAngle: 0, labelFontWeight: "bold" },
          },
        },
        spec: {
          width: 380,
          height: 90,
          mark: { type: "line", strokeWidth: 1.5, point: { size: 12 } },
          encoding: {
            x: UPDATE_AXIS,
            y: {
              field: "value",
              type: "quantitative",
              title: null,
              scale: { zero: false },
              axis: { tickCount: 4 },
            },
            color: { field: "arm", type: "nominal", title: "run" },
          },
        },
        resolve: { scale: { y: "independent" } },
      },
      {
        data: { values: tags.map((p) => ({ ...p })) },
        facet: { column: { field: "arm", type: "nominal", title: null } },
        spec: {
          width: 180,
          height: 110,
          mark: { type: "line", strokeWidth: 1.5 },
          encoding: {
            x: UPDATE_AXIS,
            y: { field: "value", type: "quantitative", title: "tokens per rollout" },
            color: { field: "metric", type: "nominal", title: "tag", scale: { scheme: "category10" } },
          },
        },
      },
    ],
    // Runs and tags are different things: each gets its own colours and legend.
    resolve: { scale: { color: "independent" }, legend: { color: "independent" } },
    config: { ...config, header: { ...config.header, labelAngle: 0, labelAlign: "left" as const } },
  }) as vl.TopLevelSpec;

/** A model's accuracy with a majority vote over its first `n` sampled rollouts per prompt. */
export interface ScalingPoint {
  readonly model: string;
  readonly n: number;
  readonly accuracy: number;
}

/** Test-time scaling: majority-vote accuracy against the number of rollouts voted over, one line per model. */
export const scalingSpec = (points: ReadonlyArray<ScalingPoint>) =>
  ({
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    data: { values: points.map((p) => ({ ...p })) },
    width: 320,
    height: 180,
    mark: { type: "line", strokeWidth: 1.5, point: true },
    encoding: {
      x: {
        field: "n",
        type: "quantitative",
        title: "rollouts voted over",
        scale: { type: "log", base: 2 },
        axis: { values: [...new Set(points.map((p) => p.n))], format: "d" },
      },
      y: {
        field: "accuracy",
        type: "quantitative",
        title: "majority-vote accuracy",
        axis: { format: ".0%" },
      },
      color: { field: "model", type: "nominal", title: "model" },
    },
    config,
  }) as vl.TopLevelSpec;
