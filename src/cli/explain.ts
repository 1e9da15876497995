/** Turns a failed run into the one message a user acts on (or nothing, when @effect/cli printed it). */
import { Cause, Option } from "effect";
import { describeError, type ToolkitError } from "../errors.ts";
import type { StepFailed } from "../engine/runner.ts";

const TOOLKIT_TAGS = new Set([
  "FileUnreadable",
  "InvalidRow",
  "KeyNotFound",
  "KeyTruncated",
  "EmptyDataset",
  "TokenizerMismatch",
  "ChatTemplateInvalid",
  "CheckpointMalformed",
  "AdapterInvalid",
  "InvalidConfig",
  "NonFiniteLoss",
  "BackendUnavailable",
  "RunLocked",
  "ArtifactCorrupt",
  "WriteFailed",
  "PipelineInvalid",
]);

const tagOf = (e: unknown): string | undefined =>
  typeof e === "object" && e !== null && typeof (e as { _tag?: unknown })._tag === "string"
    ? (e as { _tag: string })._tag
    : undefined;

export const explainFailure = (cause: Cause.Cause<unknown>): string | undefined => {
  const failure = Cause.failureOption(cause);
  if (Option.isNone(failure)) {
    return `internal error (a bug; please report it with this trace):\n${Cause.pretty(cause)}`;
  }
  const e = failure.value;
  const tag = tagOf(e);
  if (tag === "StepFailed") {
    const sf = e as StepFailed;
    return `error: step "${sf.node}" failed: ${describeError(sf.error)}\n` +
      "Finished steps are cached; fix the cause and run the same command again to resume from this step.";
  }
  if (tag && TOOLKIT_TAGS.has(tag)) return `error: ${describeError(e as ToolkitError)}`;
  // @effect/cli's own validation errors (unknown option, bad value) are printed with the help already.
  if (tag === "ValidationError" || tag?.startsWith("Missing") || tag?.startsWith("Invalid")) return undefined;
  return `error: ${String(e)}`;
};
