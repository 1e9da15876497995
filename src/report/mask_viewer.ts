/**
 * The mask viewer: a few training examples, token by token, each token's background coloured by the loss
 * weight a stage put on it, one line per stage. It shows what a method trains on better than any
 * description: SFTKey's stage two lights up only the answer part, a mix mask shows two shades.
 *
 * A token with weight 0 gets no colour at all (prompt tokens are grey text), so a coloured token is
 * exactly a trained one; the weight itself is in the token's tooltip.
 */
import type { MaskView } from "./collect.ts";

export const escapeHtml = (s: string): string =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/** Background of a token of weight `w` when the largest weight shown is `max`; none for weight 0. */
export const weightColour = (w: number, max: number): string | undefined => {
  if (!(w > 0)) return undefined;
  const alpha = 0.2 + 0.8 * Math.min(1, w / Math.max(max, Number.EPSILON));
  return `rgba(214, 96, 28, ${alpha.toFixed(3)})`;
};

/** Visible stand-ins for characters that would otherwise vanish or break the line. */
const visible = (text: string): string => text.replace(/\n/g, "\u21b5").replace(/\t/g, "\u21e5");

const tokenSpan = (text: string, weight: number, prompt: boolean, max: number): string => {
  const shown = escapeHtml(visible(text));
  if (prompt) return `<span class="t p">${shown}</span>`;
  const colour = weightColour(weight, max);
  const title = `weight ${Number(weight.toFixed(4))}`;
  return colour === undefined
    ? `<span class="t" title="${title}">${shown}</span>`
    : `<span class="t w" style="background:${colour}" title="${title}">${shown}</span>`;
};

/** The largest weight any stage puts on any shown token (colours are relative to it, at least 1). */
const maxWeight = (views: ReadonlyArray<MaskView>): number =>
  Math.max(1, ...views.flatMap((v) => v.examples.flatMap((e) => e.flatMap((s) => s.weights))));

/** The viewer as an HTML fragment (its CSS is `MASK_VIEWER_CSS`). */
export const maskViewerHtml = (views: ReadonlyArray<MaskView>): string => {
  const max = maxWeight(views);
  const parts: string[] = [];
  for (const view of views) {
    parts.push(
      `<section class="mask-view"><h4>${escapeHtml(view.method)} on ${escapeHtml(view.dataset)}` +
        ` <small>(seed ${view.seed})</small></h4>`,
    );
    for (const ex of view.examples) {
      if (ex.length === 0) continue;
      parts.push(`<div class="example"><div class="source">${escapeHtml(ex[0].source)}</div>`);
      for (const stage of ex) {
        const tokens = stage.tokens.map((t, i) =>
          tokenSpan(t, stage.weights[i] ?? 0, i < stage.promptLength, max)
        );
        const trained = stage.weights.filter((w) => w > 0).length;
        // A stage trained on another example at this position (its own data) says which.
        const other = stage.source === ex[0].source ? "" : ` <small>${escapeHtml(stage.source)}</small>`;
        parts.push(
          `<div class="stage"><span class="stage-name">${escapeHtml(stage.stage)}` +
            ` <small>${trained} tokens</small>${other}</span><span class="tokens">${
              tokens.join("")
            }</span></div>`,
        );
      }
      parts.push(`</div>`);
    }
    parts.push(`</section>`);
  }
  const legend = [0.25, 0.5, 1].map((f) =>
    `<span class="t w" style="background:${weightColour(f * max, max)}">${
      Number((f * max).toFixed(2))
    }</span>`
  ).join(" ");
  return `<div class="mask-viewer"><p class="legend">Weight: <span class="t p">prompt</span> ` +
    `<span class="t">0</span> ${legend}</p>${parts.join("\n")}</div>`;
};

export const MASK_VIEWER_CSS = `
.mask-viewer .example { margin: 0 0 14px 0; padding: 6px 8px; border: 1px solid #e3e3e3; border-radius: 4px; }
.mask-viewer .source { color: #888; font-size: 11px; margin-bottom: 4px; }
.mask-viewer .stage { display: flex; gap: 10px; align-items: baseline; margin: 2px 0; }
.mask-viewer .stage-name { flex: 0 0 190px; font-size: 12px; color: #333; }
.mask-viewer .stage-name small { color: #888; }
.mask-viewer .tokens { font-family: Menlo, Consolas, monospace; font-size: 12px; line-height: 1.9; }
.mask-viewer .t { white-space: pre; padding: 1px 0; border-right: 1px solid #f0f0f0; }
.mask-viewer .t.p { color: #aaa; }
.mask-viewer .legend .t { font-family: Menlo, Consolas, monospace; padding: 1px 4px; }
`;
