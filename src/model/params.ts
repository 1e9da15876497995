/**
 * Model parameters: tfjs variables keyed by Hugging Face tensor name, in HF layouts, so a checkpoint maps
 * one to one to model.safetensors whatever the architecture.
 */
import * as tf from "@tensorflow/tfjs";

/** Trainable parameters by HF tensor name. */
export type Params = Map<string, tf.Variable>;

/** The parameter `name`; a RangeError names it when missing (a bug in a decoder's shape table). */
export const param = (params: Params, name: string): tf.Variable => {
  const v = params.get(name);
  if (v === undefined) throw new RangeError(`missing parameter ${name}`);
  return v;
};

/** Wraps Float32Arrays (taken, not copied) as parameters with the given names and shapes. */
export const wrapArrays = (
  shapes: ReadonlyMap<string, number[]>,
  arrays: ReadonlyMap<string, Float32Array>,
): Params => {
  const params: Params = new Map();
  for (const [name, shape] of shapes) {
    const data = arrays.get(name);
    if (data === undefined) throw new RangeError(`missing parameter ${name}`);
    params.set(name, tf.tidy(() => tf.variable(tf.tensor(data, shape, "float32"), true)));
  }
  return params;
};

/** Copies of the current parameter values, by name. */
export const paramsToArrays = (params: Params): Map<string, { shape: number[]; data: Float32Array }> =>
  new Map(
    [...params].map(([name, v]) => [name, { shape: [...v.shape], data: Float32Array.from(v.dataSync()) }]),
  );

/** Releases the parameters' memory. */
export const disposeParams = (params: Params): void => params.forEach((v) => v.dispose());
