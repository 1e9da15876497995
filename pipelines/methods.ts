/**
 * Every method by name, for pipelines that combine them (the comparison). Each is a `Method`: it adds
 * its training nodes and returns the models to evaluate. One method per file, citing its paper.
 */
import type { Method } from "./method_context.ts";
import { cft } from "./cft.ts";
import { dft } from "./dft.ts";
import { fdiv, sftLowLr } from "./fdiv.ts";
import { mix } from "./mix.ts";
import { cotRl, rftt, rfttPrm, rfttSampling, rfttSft } from "./rftt.ts";
import { s3ft } from "./s3ft.ts";
import { sft } from "./sft.ts";
import { sftkey } from "./sftkey.ts";
import { upft, upftSelf } from "./upft.ts";

/** The registry: method name -> method. */
export const methods: Readonly<Record<string, Method>> = {
  sft,
  sftkey,
  mix,
  upft,
  "upft-self": upftSelf,
  cft,
  dft,
  s3ft,
  fdiv,
  "sft-lowlr": sftLowLr,
  "rftt-sft": rfttSft,
  rftt,
  "rftt-prm": rfttPrm,
  "rftt-sampling": rfttSampling,
  "cot-rl": cotRl,
};

/** The RFTT arms of the registry (pipelines/rftt.ts). */
export const RFTT_METHODS: ReadonlyArray<string> = [
  "rftt-sft",
  "rftt",
  "rftt-prm",
  "rftt-sampling",
  "cot-rl",
];
