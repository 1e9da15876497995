/**
 * Canonical JSON and SHA-256 digests: the building blocks of cache keys. Canonical JSON sorts object
 * keys and drops `undefined`, so two configs that mean the same thing hash the same.
 */

export const canonicalJson = (value: unknown): string => JSON.stringify(sortKeys(value));

const sortKeys = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[k];
      if (v !== undefined) out[k] = sortKeys(v);
    }
    return out;
  }
  if (typeof value === "number" && !Number.isFinite(value)) {
    throw new Error(`cannot hash a non-finite number (${value})`);
  }
  return value;
};

const hex = (buf: ArrayBuffer): string =>
  Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");

export const sha256 = async (data: Uint8Array | string): Promise<string> => {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  return hex(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
};

/** Streams the file (see io/lines.ts): artifacts and checkpoints can be larger than one read may be. */
export { sha256File } from "../io/lines.ts";
