/**
 * The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian header
 * length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {..}},
 * then the raw little-endian tensor bytes, offsets relative to the end of the header.
 *
 * Reading accepts F32, F16 and BF16 (all widened to Float32Array). Writing produces F32 with tensors in
 * sorted name order and a space-padded header, so equal weights always give equal bytes.
 *
 * Everything about the header is validated before any tensor buffer is allocated, with the same rules
 * as the reference implementation (offsets in range, matching dtype and shape, no overlaps, no holes).
 */
import { Effect } from "effect";
import { CheckpointMalformed } from "../errors.ts";

export interface NamedTensor {
  readonly shape: ReadonlyArray<number>;
  readonly data: Float32Array;
}

export interface SafetensorsContents {
  /** Tensors by name, widened to float32. */
  readonly tensors: Map<string, NamedTensor>;
  /** The file's dtype per tensor name, as stored. */
  readonly dtypes: Map<string, string>;
  readonly metadata: Record<string, string>;
}

const BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2 };
/** Dtypes of the format we recognise but do not read, for a clearer message. */
const OTHER_DTYPES = new Set([
  "F64",
  "I64",
  "I32",
  "I16",
  "I8",
  "U64",
  "U32",
  "U16",
  "U8",
  "BOOL",
  "F8_E4M3",
  "F8_E5M2",
]);
/** Refuse absurd headers early (the reference implementation's limit is 100 MB). */
const MAX_HEADER = 100_000_000;

// Tensor bytes are copied to and from typed arrays directly (bit-exact, NaN payloads included), which
// assumes a little-endian host like every platform Deno runs on.
if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) throw new Error("safetensors: big-endian host");

/** IEEE half precision to float32 value (subnormals, infinities and NaN included). */
const halfToFloat = (h: number): number => {
  const sign = h & 0x8000 ? -1 : 1, exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
};

/** Parses safetensors bytes; `path` names the file in errors. */
export const parseSafetensors = (
  bytes: Uint8Array,
  path: string,
): Effect.Effect<SafetensorsContents, CheckpointMalformed> =>
  Effect.gen(function* () {
    const fail = (reason: string) => Effect.fail(new CheckpointMalformed({ path, reason }));
    if (bytes.length < 8) {
      return yield* fail(`file is ${bytes.length} bytes, too short for a safetensors header`);
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const headerLength = view.getUint32(0, true) + view.getUint32(4, true) * 0x100000000;
    if (headerLength > bytes.length - 8) {
      return yield* fail(`header length ${headerLength} runs past the end of the ${bytes.length}-byte file`);
    }
    if (headerLength > MAX_HEADER) return yield* fail(`header length ${headerLength} is unreasonably large`);
    let header: unknown;
    try {
      header = JSON.parse(
        new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + headerLength)),
      );
    } catch (e) {
      return yield* fail(`header is not valid UTF-8 JSON: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (typeof header !== "object" || header === null || Array.isArray(header)) {
      return yield* fail("header is not a JSON object");
    }
    const dataStart = 8 + headerLength, dataLength = bytes.length - dataStart;

    let metadata: Record<string, string> = {};
    const entries: Array<{ name: string; dtype: string; shape: number[]; begin: number; end: number }> = [];
    for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
      if (name === "__metadata__") {
        if (
          typeof raw !== "object" || raw === null || Array.isArray(raw) ||
          !Object.values(raw).every((v) => typeof v === "string")
        ) {
          return yield* fail("__metadata__ must be an object of strings");
        }
        metadata = raw as Record<string, string>;
        continue;
      }
      const info = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
      if (typeof info !== "object" || info === null) {
        return yield* fail(`tensor "${name}": entry is not an object`);
      }
      const { dtype, shape, data_offsets: offsets } = info;
      if (typeof dtype !== "string") return yield* fail(`tensor "${name}": missing dtype`);
      if (!(dtype in BYTES)) {
        return yield* fail(
          `tensor "${name}": ${OTHER_DTYPES.has(dtype) ? "unsupported" : "unknown"} dtype ${dtype} ` +
            "(supported: F32, F16, BF16)",
        );
      }
      const isIndex = (x: unknown): x is number => typeof x === "number" && Number.isSafeInteger(x) && x >= 0;
      if (!Array.isArray(shape) || !shape.every(isIndex)) {
        return yield* fail(`tensor "${name}": shape must be an array of non-negative integers`);
      }
      if (
        !Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex) || offsets[0] > offsets[1]
      ) {
        return yield* fail(`tensor "${name}": data_offsets must be [begin, end] with 0 <= begin <= end`);
      }
      const [begin, end] = offsets as [number, number];
      if (end > dataLength) {
        return yield* fail(
          `tensor "${name}": data_offsets [${begin}, ${end}] run past the ${dataLength} data bytes`,
        );
      }
      const expected = shape.reduce((a: number, b: number) => a * b, 1) * BYTES[dtype];
      if (end - begin !== expected) {
        return yield* fail(
          `tensor "${name}": ${end - begin} bytes for ${dtype} shape [${
            shape.join(", ")
          }] (expected ${expected})`,
        );
      }
      entries.push({ name, dtype, shape, begin, end });
    }
    entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
    let covered = 0;
    for (const e of entries) {
      if (e.begin < covered) return yield* fail(`tensor "${e.name}" overlaps the previous tensor's bytes`);
      if (e.begin > covered) {
        return yield* fail(`bytes ${covered}..${e.begin} of the data belong to no tensor`);
      }
      covered = e.end;
    }
    if (covered !== dataLength) {
      return yield* fail(`the last ${dataLength - covered} data bytes belong to no tensor`);
    }

    const tensors = new Map<string, NamedTensor>();
    const dtypes = new Map<string, string>();
    for (const e of entries) {
      // A copy, so the result does not pin the whole file and is 4-byte aligned.
      const raw = bytes.slice(dataStart + e.begin, dataStart + e.end);
      let data: Float32Array;
      if (e.dtype === "F32") data = new Float32Array(raw.buffer);
      else {
        const halves = new Uint16Array(raw.buffer);
        data = new Float32Array(halves.length);
        if (e.dtype === "F16") halves.forEach((h, i) => data[i] = halfToFloat(h));
        else {
          // bfloat16 is the top half of a float32.
          const bits = new Uint32Array(data.buffer);
          halves.forEach((h, i) => bits[i] = h << 16);
        }
      }
      tensors.set(e.name, { shape: e.shape, data });
      dtypes.set(e.name, e.dtype);
    }
    return { tensors, dtypes, metadata };
  });

/**
 * Serialises float32 tensors: sorted names, contiguous data, header padded with spaces to a multiple of
 * 8 bytes (what the reference writer does, keeping the data aligned). Throws RangeError if a tensor's
 * data does not match its shape.
 */
export const serializeSafetensors = (
  tensors: ReadonlyMap<string, NamedTensor>,
  metadata: Record<string, string> = {},
): Uint8Array => {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) {
    header.__metadata__ = Object.fromEntries(Object.keys(metadata).sort().map((k) => [k, metadata[k]]));
  }
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    if (t.shape.reduce((a, b) => a * b, 1) !== t.data.length) {
      throw new RangeError(
        `tensor ${name}: ${t.data.length} values do not fill shape [${t.shape.join(", ")}]`,
      );
    }
    header[name] = { dtype: "F32", shape: [...t.shape], data_offsets: [offset, offset + 4 * t.data.length] };
    offset += 4 * t.data.length;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + offset);
  const view = new DataView(out.buffer);
  view.setUint32(0, json.length, true);
  view.setUint32(4, 0, true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const name of names) {
    const { data } = tensors.get(name)!;
    out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), at);
    at += data.byteLength;
  }
  return out;
};
