/**
 * Every failure a user can act on, one tagged class each. Steps fail with these in their typed error
 * channel; the CLI turns each into one clear message (see `describeError`) and a non-zero exit.
 *
 * `where` fields follow the `file:line` (or `file:line field`) convention so a user can jump to the
 * offending row in an editor.
 */
import { Schema } from "effect";

/** A file or directory could not be read (missing, a directory where a file was expected, permissions). */
export class FileUnreadable extends Schema.TaggedError<FileUnreadable>()("FileUnreadable", {
  path: Schema.String,
  reason: Schema.String,
}) {}

/** A data row is not valid JSON or does not match the declared format's schema. */
export class InvalidRow extends Schema.TaggedError<InvalidRow>()("InvalidRow", {
  file: Schema.String,
  line: Schema.Number,
  field: Schema.optional(Schema.String),
  reason: Schema.String,
}) {}

/** Examples whose key span could not be found (policy "fail"); `examples` lists the first few as file:line. */
export class KeyNotFound extends Schema.TaggedError<KeyNotFound>()("KeyNotFound", {
  locator: Schema.String,
  count: Schema.Number,
  total: Schema.Number,
  examples: Schema.Array(Schema.String),
}) {}

/** Examples whose key span is cut off by the maximum sequence length (policy "fail"). */
export class KeyTruncated extends Schema.TaggedError<KeyTruncated>()("KeyTruncated", {
  maxLength: Schema.Number,
  count: Schema.Number,
  total: Schema.Number,
  examples: Schema.Array(Schema.String),
}) {}

/** After dropping invalid examples nothing is left to train or evaluate on. */
export class EmptyDataset extends Schema.TaggedError<EmptyDataset>()("EmptyDataset", {
  what: Schema.String,
  reason: Schema.String,
}) {}

/** The tokenizer file is malformed or does not belong to the model (vocabulary size mismatch, ...). */
export class TokenizerMismatch extends Schema.TaggedError<TokenizerMismatch>()("TokenizerMismatch", {
  path: Schema.String,
  reason: Schema.String,
}) {}

/**
 * A chat template cannot render a conversation: it does not parse, raises, exceeds the render limits, or
 * renders the prompt so that it is not a prefix of the whole conversation. `example` is file:line when one
 * row triggered it.
 */
export class ChatTemplateInvalid extends Schema.TaggedError<ChatTemplateInvalid>()("ChatTemplateInvalid", {
  template: Schema.String,
  example: Schema.optional(Schema.String),
  reason: Schema.String,
}) {}

/** A checkpoint directory or file is malformed (bad config.json, safetensors header, missing tensors, ...). */
export class CheckpointMalformed extends Schema.TaggedError<CheckpointMalformed>()("CheckpointMalformed", {
  path: Schema.String,
  reason: Schema.String,
}) {}

/** A configuration value is invalid (unknown field, out of range, wrong type). */
export class InvalidConfig extends Schema.TaggedError<InvalidConfig>()("InvalidConfig", {
  where: Schema.String,
  reason: Schema.String,
}) {}

/** The loss became NaN or infinite; the last good checkpoint is kept. */
export class NonFiniteLoss extends Schema.TaggedError<NonFiniteLoss>()("NonFiniteLoss", {
  step: Schema.Number,
  loss: Schema.Number,
  checkpoint: Schema.String,
}) {}

/** The requested compute backend cannot be loaded here. */
export class BackendUnavailable extends Schema.TaggedError<BackendUnavailable>()("BackendUnavailable", {
  backend: Schema.String,
  reason: Schema.String,
}) {}

/** Another live process holds the run directory. */
export class RunLocked extends Schema.TaggedError<RunLocked>()("RunLocked", {
  path: Schema.String,
  pid: Schema.Number,
}) {}

/** A cached artifact does not match its manifest (truncated, flipped bytes, missing file). */
export class ArtifactCorrupt extends Schema.TaggedError<ArtifactCorrupt>()("ArtifactCorrupt", {
  path: Schema.String,
  reason: Schema.String,
}) {}

/** Writing an artifact or checkpoint failed (disk full, permissions). Nothing half-written is left visible. */
export class WriteFailed extends Schema.TaggedError<WriteFailed>()("WriteFailed", {
  path: Schema.String,
  reason: Schema.String,
}) {}

/** A pipeline definition is inconsistent (cycle, missing input, duplicate step name). */
export class PipelineInvalid extends Schema.TaggedError<PipelineInvalid>()("PipelineInvalid", {
  pipeline: Schema.String,
  reason: Schema.String,
}) {}

/** Every error a user can act on. */
export type ToolkitError =
  | FileUnreadable
  | InvalidRow
  | KeyNotFound
  | KeyTruncated
  | EmptyDataset
  | TokenizerMismatch
  | ChatTemplateInvalid
  | CheckpointMalformed
  | InvalidConfig
  | NonFiniteLoss
  | BackendUnavailable
  | RunLocked
  | ArtifactCorrupt
  | WriteFailed
  | PipelineInvalid;

const list = (xs: ReadonlyArray<string>) => xs.length ? ` (first: ${xs.join(", ")})` : "";

/** One line a user can act on, for each error. */
export const describeError = (e: ToolkitError): string => {
  switch (e._tag) {
    case "FileUnreadable":
      return `cannot read ${e.path}: ${e.reason}`;
    case "InvalidRow":
      return `${e.file}:${e.line}${e.field ? ` field "${e.field}"` : ""}: ${e.reason}`;
    case "KeyNotFound":
      return `key span not found by locator "${e.locator}" in ${e.count} of ${e.total} examples${
        list(e.examples)
      }; fix the data, choose another locator (--locator), or set onMissingKey to "drop"`;
    case "KeyTruncated":
      return `key span cut off by maxLength ${e.maxLength} in ${e.count} of ${e.total} examples${
        list(e.examples)
      }; raise maxLength (--max-length) or set onTruncatedKey to "drop"`;
    case "EmptyDataset":
      return `no examples left in ${e.what}: ${e.reason}`;
    case "TokenizerMismatch":
      return `tokenizer ${e.path}: ${e.reason}`;
    case "ChatTemplateInvalid":
      return `chat template of ${e.template}${e.example ? ` on ${e.example}` : ""}: ${e.reason}`;
    case "CheckpointMalformed":
      return `checkpoint ${e.path}: ${e.reason}`;
    case "InvalidConfig":
      return `invalid configuration at ${e.where}: ${e.reason}`;
    case "NonFiniteLoss":
      return `loss became ${e.loss} at optimizer step ${e.step}; training stopped, last good checkpoint kept at ${e.checkpoint}`;
    case "BackendUnavailable":
      return `backend "${e.backend}" is not available: ${e.reason}`;
    case "RunLocked":
      return `run directory ${e.path} is locked by pid ${e.pid}; wait for it to finish or stop it`;
    case "ArtifactCorrupt":
      return `artifact ${e.path} is corrupt: ${e.reason}`;
    case "WriteFailed":
      return `could not write ${e.path}: ${e.reason}`;
    case "PipelineInvalid":
      return `pipeline "${e.pipeline}" is invalid: ${e.reason}`;
  }
};
