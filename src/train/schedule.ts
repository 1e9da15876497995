/**
 * Learning-rate schedule: linear warmup, then cosine decay to minLrRatio * lr.
 *
 * Steps are 0-based optimizer steps. Warmup step s (s < warmupSteps) uses lr * (s + 1) / warmupSteps, so
 * the first step already learns (HF's schedule starts at exactly 0, wasting a step) and the last warmup
 * step reaches lr. After warmup, progress p = (s - warmupSteps) / (totalSteps - warmupSteps) runs from 0
 * to 1 and lr(s) = min + (lr - min) * (1 + cos(pi * p)) / 2 with min = minLrRatio * lr; steps past
 * totalSteps stay at min.
 */

export interface Schedule {
  /** Peak learning rate. */
  readonly lr: number;
  readonly warmupSteps: number;
  readonly totalSteps: number;
  /** Final learning rate as a fraction of `lr`, in [0, 1]. */
  readonly minLrRatio: number;
}

export const lrAt = (step: number, s: Schedule): number => {
  if (step < s.warmupSteps) return (s.lr * (step + 1)) / s.warmupSteps;
  const min = s.minLrRatio * s.lr;
  const decaySteps = Math.max(1, s.totalSteps - s.warmupSteps);
  const progress = Math.min(1, (step - s.warmupSteps) / decaySteps);
  return min + ((s.lr - min) * (1 + Math.cos(Math.PI * progress))) / 2;
};
