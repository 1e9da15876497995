/**
 * The safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian header
 * length N, N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {..}},
 * then the raw little-endian tensor bytes, offsets relative to the end of the header.
 *
 * Reading accepts F32, F16 and BF16 (all widened to Float32Array). Writing produces F32 (or BF16 when asked,
 * rounded to nearest even) with tensors in sorted name order and a space-padded header, so equal weights
 * always give equal bytes.
 *
 * Everything about the header is validated before any tensor buffer is allocated, with the same rules
 * as the reference implementation (offsets in range, matching dtype and shape, no overlaps, no holes).
 */
import { Effect } from "effect";
import { CheckpointMalformed, FileUnreadable, WriteFailed } from "../errors.ts";

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

/** One tensor's header entry; offsets are relative to the start of the data section. */
export interface TensorEntry {
  readonly name: string;
  readonly dtype: string;
  readonly shape: number[];
  readonly begin: number;
  readonly end: number;
}

interface Header {
  readonly entries: TensorEntry[];
  readonly metadata: Record<string, string>;
}

type Fail = (reason: string) => Effect.Effect<never, CheckpointMalformed>;

/**
 * Reads the 8-byte prefix: the header length, checked against the file size before anything is read or
 * allocated for it.
 */
const headerLengthOf = (prefix: Uint8Array, fileSize: number, fail: Fail) =>
  Effect.gen(function* () {
    if (fileSize < 8) return yield* fail(`file is ${fileSize} bytes, too short for a safetensors header`);
    const view = new DataView(prefix.buffer, prefix.byteOffset, 8);
    const headerLength = view.getUint32(0, true) + view.getUint32(4, true) * 0x100000000;
    if (headerLength > fileSize - 8) {
      return yield* fail(`header length ${headerLength} runs past the end of the ${fileSize}-byte file`);
    }
    if (headerLength > MAX_HEADER) return yield* fail(`header length ${headerLength} is unreasonably large`);
    return headerLength;
  });

/**
 * Validates the header JSON against a data section of `dataLength` bytes: known dtypes, shapes whose byte
 * size matches the offsets, offsets in range, and tensors tiling the data without overlaps or holes.
 */
const parseHeader = (json: Uint8Array, dataLength: number, fail: Fail) =>
  Effect.gen(function* () {
    let header: unknown;
    try {
      header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(json));
    } catch (e) {
      return yield* fail(`header is not valid UTF-8 JSON: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (typeof header !== "object" || header === null || Array.isArray(header)) {
      return yield* fail("header is not a JSON object");
    }
    let metadata: Record<string, string> = {};
    const entries: TensorEntry[] = [];
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
      // Multiplied step by step so a huge declared shape is refused before the product loses precision.
      let expected = BYTES[dtype];
      for (const d of shape) {
        expected *= d;
        if (expected > Number.MAX_SAFE_INTEGER) {
          return yield* fail(`tensor "${name}": shape [${shape.join(", ")}] is too large`);
        }
      }
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
    return { entries, metadata } satisfies Header;
  });

/** Widens one tensor's raw little-endian bytes (a fresh, 4-byte aligned copy for F32) to float32. */
const decodeTensor = (raw: Uint8Array, dtype: string): Float32Array => {
  if (dtype === "F32") return new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  const halves = new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2);
  const data = new Float32Array(halves.length);
  if (dtype === "F16") halves.forEach((h, i) => data[i] = halfToFloat(h));
  else {
    // bfloat16 is the top half of a float32.
    const bits = new Uint32Array(data.buffer);
    halves.forEach((h, i) => bits[i] = h << 16);
  }
  return data;
};

/** Parses safetensors bytes; `path` names the file in errors. */
export const parseSafetensors = (
  bytes: Uint8Array,
  path: string,
): Effect.Effect<SafetensorsContents, CheckpointMalformed> =>
  Effect.gen(function* () {
    const fail = (reason: string) => Effect.fail(new CheckpointMalformed({ path, reason }));
    const headerLength = yield* headerLengthOf(bytes, bytes.length, fail);
    const dataStart = 8 + headerLength;
    const { entries, metadata } = yield* parseHeader(
      bytes.subarray(8, dataStart),
      bytes.length - dataStart,
      fail,
    );
    const tensors = new Map<string, NamedTensor>();
    const dtypes = new Map<string, string>();
    for (const e of entries) {
      // A copy, so the result does not pin the whole file and is 4-byte aligned.
      tensors.set(e.name, {
        shape: e.shape,
        data: decodeTensor(bytes.slice(dataStart + e.begin, dataStart + e.end), e.dtype),
      });
      dtypes.set(e.name, e.dtype);
    }
    return { tensors, dtypes, metadata };
  });

const message = (e: unknown): string => e instanceof Error ? e.message : String(e);

/**
 * Reads a safetensors file tensor by tensor: the header is read and fully validated against the file's
 * size first (so a malformed file is refused after reading at most its header), then each tensor's bytes
 * are read straight into its own buffer; the whole file is never held in memory at once.
 */
export const readSafetensorsFile = (
  path: string,
): Effect.Effect<SafetensorsContents, CheckpointMalformed | FileUnreadable> =>
  Effect.acquireUseRelease(
    Effect.tryPromise({
      try: () => Deno.open(path, { read: true }),
      catch: (e) =>
        new FileUnreadable({
          path,
          reason: e instanceof Deno.errors.NotFound ? "file not found" : message(e),
        }),
    }),
    (file) =>
      Effect.gen(function* () {
        const fail = (reason: string) => Effect.fail(new CheckpointMalformed({ path, reason }));
        const readExactly = (into: Uint8Array, at: number) =>
          Effect.tryPromise({
            try: async () => {
              await file.seek(at, Deno.SeekMode.Start);
              let got = 0;
              while (got < into.length) {
                const n = await file.read(into.subarray(got));
                if (n === null) throw new Error(`unexpected end of file at byte ${at + got}`);
                got += n;
              }
            },
            catch: (e) => new FileUnreadable({ path, reason: message(e) }),
          });
        const size = (yield* Effect.tryPromise({
          try: () => file.stat(),
          catch: (e) => new FileUnreadable({ path, reason: message(e) }),
        })).size;
        const prefix = new Uint8Array(8);
        if (size >= 8) yield* readExactly(prefix, 0);
        const headerLength = yield* headerLengthOf(prefix, size, fail);
        const json = new Uint8Array(headerLength);
        yield* readExactly(json, 8);
        const dataStart = 8 + headerLength;
        const { entries, metadata } = yield* parseHeader(json, size - dataStart, fail);
        const tensors = new Map<string, NamedTensor>();
        const dtypes = new Map<string, string>();
        for (const e of entries) {
          const raw = new Uint8Array(e.end - e.begin);
          yield* readExactly(raw, dataStart + e.begin);
          tensors.set(e.name, { shape: e.shape, data: decodeTensor(raw, e.dtype) });
          dtypes.set(e.name, e.dtype);
        }
        return { tensors, dtypes, metadata } satisfies SafetensorsContents;
      }),
    (file) => Effect.sync(() => file.close()),
  );

/** The dtypes this writer produces. */
export type WriteDtype = "F32" | "BF16";

/**
 * float32 values as bfloat16 (the top 16 bits), rounded to nearest, ties to even, as PyTorch's
 * `tensor.to(torch.bfloat16)` does; NaN stays a (quiet) NaN.
 */
export const toBf16 = (data: Float32Array): Uint16Array => {
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  const out = new Uint16Array(data.length);
  for (let i = 0; i < bits.length; i++) {
    const u = bits[i];
    if ((u & 0x7fffffff) > 0x7f800000) out[i] = (u >>> 16) | 0x40;
    else out[i] = (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
  }
  return out;
};

/** The header a serialisation of `tensors` in `dtype` gets, and the data section's length. */
const headerFor = (
  tensors: ReadonlyMap<string, NamedTensor>,
  metadata: Record<string, string>,
  dtype: WriteDtype = "F32",
): { json: Uint8Array; names: string[]; dataLength: number } => {
  const width = BYTES[dtype];
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
    header[name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + width * t.data.length] };
    offset += width * t.data.length;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const prefixed = new Uint8Array(8 + json.length);
  const view = new DataView(prefixed.buffer);
  view.setUint32(0, json.length, true);
  view.setUint32(4, 0, true);
  prefixed.set(json, 8);
  return { json: prefixed, names, dataLength: offset };
};

const bytesOf = (data: Float32Array, dtype: WriteDtype = "F32") => {
  const typed = dtype === "BF16" ? toBf16(data) : data;
  return new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
};

/**
 * Writes `serializeSafetensors(tensors, metadata)`'s bytes to `path` atomically (temporary sibling, fsync,
 * rename) without building the whole file in memory: tensors are written straight from their arrays.
 */
export const writeSafetensorsFile = (
  path: string,
  tensors: ReadonlyMap<string, NamedTensor>,
  metadata: Record<string, string> = {},
  dtype: WriteDtype = "F32",
): Effect.Effect<void, WriteFailed> =>
  Effect.tryPromise({
    try: async () => {
      const { json, names } = headerFor(tensors, metadata, dtype);
      const tmp = `${path}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
      const file = await Deno.open(tmp, { write: true, create: true, truncate: true });
      try {
        const writeAll = async (bytes: Uint8Array) => {
          let written = 0;
          while (written < bytes.length) written += await file.write(bytes.subarray(written));
        };
        await writeAll(json);
        for (const name of names) await writeAll(bytesOf(tensors.get(name)!.data, dtype));
        await file.sync();
      } finally {
        file.close();
      }
      await Deno.rename(tmp, path);
    },
    catch: (e) => new WriteFailed({ path, reason: message(e) }),
  });

/**
 * Serialises tensors as float32 (or bfloat16): sorted names, contiguous data, header padded with spaces to
 * a multiple of 8 bytes (what the reference writer does, keeping the data aligned). Throws RangeError if a
 * tensor's data does not match its shape.
 */
export const serializeSafetensors = (
  tensors: ReadonlyMap<string, NamedTensor>,
  metadata: Record<string, string> = {},
  dtype: WriteDtype = "F32",
): Uint8Array => {
  const { json, names, dataLength } = headerFor(tensors, metadata, dtype);
  const out = new Uint8Array(json.length + dataLength);
  out.set(json);
  let at = json.length;
  for (const name of names) {
    const bytes = bytesOf(tensors.get(name)!.data, dtype);
    out.set(bytes, at);
    at += bytes.length;
  }
  return out;
};
