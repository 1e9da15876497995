/**
 * Every method by name, for pipelines that combine them (the comparison). Each is a `Method`: it adds
 * its training nodes and returns the models to evaluate. One method per file, citing its paper.
 */
import type { Method } from "./common.ts";
import { sft } from "./sft.ts";
import { sftkey } from "./sftkey.ts";

export const methods: Readonly<Record<string, Method>> = { sft, sftkey };
