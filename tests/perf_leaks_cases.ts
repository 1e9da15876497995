/** The cases tests/perf_leaks.test.ts checks and tests/perf_leaks_probe.ts measures. */
import { countParams } from "../src/model/model.ts";
import { tinyConfig } from "./model_test_helpers.ts";

export const leakConfig = tinyConfig({
  hiddenSize: 64,
  intermediateSize: 172,
  vocabSize: 256,
  numHeads: 4,
  numKvHeads: 2,
});

/** What a step or call that kept one JS copy of the weights (or gradients) would leak: 0.47 MiB here. */
export const weightsCopy = countParams(leakConfig) * 4;

export interface LeakCase {
  readonly path: "cpu" | "cpu-blas";
  readonly kind: "train" | "generate";
  readonly warm: number;
  readonly window: number;
  /** The leak the bound is derived from, bytes per call. */
  readonly leak: number;
  /** Bytes actually leaked per call in this case: 0 (the real check) or `leak` (the bound's demonstration). */
  readonly leaked: number;
}

export interface LeakResult extends LeakCase {
  /** The median rise of live memory over the three windows, bytes. */
  readonly rise: number;
  /** Change of the live tensor count after the warm-up (0 when none). */
  readonly tensorDrift: number;
}

/**
 * A leak of `leak` bytes per call raises live memory by `leak * window` per window; the limit is half
 * that, so such a leak crosses it, while a process without one stays within a few KiB.
 */
export const limitOf = (c: LeakCase) => (c.leak * c.window) / 2;

export const leakCases = (slow: boolean, withBlas: boolean): LeakCase[] =>
  (withBlas ? ["cpu", "cpu-blas"] as const : ["cpu"] as const).flatMap((path) =>
    (["train", "generate"] as const).flatMap((kind) => {
      const [warm, window] = kind === "train" ? (slow ? [150, 120] : [2, 4]) : (slow ? [10, 15] : [1, 2]);
      return [0, weightsCopy].map((leaked) => ({ path, kind, warm, window, leak: weightsCopy, leaked }));
    })
  );
