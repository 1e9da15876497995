/**
 * Streaming line I/O for files of any size. A JSONL corpus can be larger than V8's longest string
 * (~512 MiB) and than Deno.readFile's 2 GiB, so nothing here holds a whole file: `LineReader` reads
 * fixed-size chunks and hands out lines in batches, and `AtomicWriter` encodes and writes its text in
 * chunks to a temporary sibling that it renames into place only when complete (see fs.ts).
 */
import { createHash } from "node:crypto";
import { writeChunkOf } from "./fs.ts";

/** Bytes read per chunk, and roughly the text a batch of lines or a writer's buffer holds. */
const CHUNK = 1 << 20;

/** One line of a file, numbered from 1, without its line ending (LF or CRLF). */
export interface Line {
  readonly text: string;
  readonly line: number;
}

/** A line that is not valid UTF-8; `line` says which. */
export class LineDecodeError extends Error {
  constructor(readonly line: number) {
    super(`line ${line}: not valid UTF-8`);
  }
}

/**
 * Reads a file line by line in batches. Lines are split on bytes and each is decoded on its own with a
 * fatal UTF-8 decoder, so a multi-byte character split across two chunks is decoded whole, and invalid
 * bytes are reported at their line rather than replaced by U+FFFD. Blank lines are skipped but counted.
 */
export class LineReader {
  private readonly buf: Uint8Array;
  private readonly decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });
  /** Bytes of a line begun in an earlier chunk. */
  private carry: Uint8Array[] = [];
  private lineNo = 0;
  private done = false;

  private constructor(private readonly file: Deno.FsFile, chunkSize: number) {
    this.buf = new Uint8Array(chunkSize);
  }

  /** `chunkSize` is for tests, which make it tiny to put chunk boundaries everywhere. */
  static async open(path: string, chunkSize = CHUNK): Promise<LineReader> {
    const info = await Deno.stat(path);
    if (!info.isFile) throw new Error("not a regular file");
    return new LineReader(await Deno.open(path, { read: true }), chunkSize);
  }

  /** The next lines (at least one), or undefined at the end of the file. */
  async next(): Promise<Line[] | undefined> {
    const out: Line[] = [];
    while (out.length === 0 && !this.done) {
      const n = await this.file.read(this.buf);
      if (n === null) {
        this.done = true;
        if (this.carry.length > 0) this.emit(joined(this.carry), out);
        this.carry = [];
        break;
      }
      const chunk = this.buf.subarray(0, n);
      const last = chunk.lastIndexOf(0x0a);
      if (last < 0) {
        // The buffer is reused by the next read: keep a copy of the unfinished line.
        this.carry.push(chunk.slice());
        continue;
      }
      // Every complete line of the chunk (with the start carried over) is decoded in one call, which is
      // much cheaper than one call per line; only a failure is narrowed down to its line.
      this.carry.push(chunk.subarray(0, last));
      this.emitLines(joined(this.carry), out);
      this.carry = last + 1 < n ? [chunk.slice(last + 1)] : [];
    }
    return out.length > 0 ? out : undefined;
  }

  /** Lines of `bytes`, which end at a line end (the final newline excluded). */
  private emitLines(bytes: Uint8Array, out: Line[]) {
    let text: string;
    try {
      text = this.decoder.decode(bytes);
    } catch {
      // Invalid UTF-8 somewhere: decode line by line to name the line.
      let start = 0;
      for (let nl = bytes.indexOf(0x0a); nl >= 0; nl = bytes.indexOf(0x0a, start)) {
        this.emit(bytes.subarray(start, nl), out);
        start = nl + 1;
      }
      this.emit(bytes.subarray(start), out);
      return;
    }
    let start = 0;
    for (;;) {
      const nl = text.indexOf("\n", start);
      const end = nl < 0 ? text.length : nl;
      const line = ++this.lineNo;
      const body = end > start && text.charCodeAt(end - 1) === 0x0d
        ? text.slice(start, end - 1)
        : text.slice(start, end);
      if (body.trim().length > 0) out.push({ text: body, line });
      if (nl < 0) return;
      start = nl + 1;
    }
  }

  private emit(bytes: Uint8Array, out: Line[]) {
    const line = ++this.lineNo;
    const end = bytes.length > 0 && bytes[bytes.length - 1] === 0x0d ? bytes.length - 1 : bytes.length;
    let text: string;
    try {
      text = this.decoder.decode(bytes.subarray(0, end));
    } catch {
      throw new LineDecodeError(line);
    }
    if (text.trim().length > 0) out.push({ text, line });
  }

  close(): void {
    try {
      this.file.close();
    } catch {
      // Already closed.
    }
  }
}

/**
 * Lines of a file that hold more than whitespace (the lines LineReader returns), counted synchronously
 * chunk by chunk: for building a pipeline, which is synchronous, on files of any size. Only a line with
 * no visible ASCII keeps its non-ASCII bytes, to decide whether they are whitespace as String.trim sees it.
 */
export const countNonBlankLinesSync = (path: string, chunkSize = CHUNK): number => {
  const file = Deno.openSync(path, { read: true });
  try {
    const buf = new Uint8Array(chunkSize);
    const decoder = new TextDecoder();
    let count = 0;
    let visible = false;
    let high: number[] = [];
    const endLine = () => {
      if (visible || (high.length > 0 && decoder.decode(Uint8Array.from(high)).trim() !== "")) count++;
      visible = false;
      high = [];
    };
    for (let n = file.readSync(buf); n !== null; n = file.readSync(buf)) {
      const chunk = buf.subarray(0, n);
      for (let i = 0; i < n; i++) {
        if (visible) {
          // The rest of a visible line is skipped in one native search (a JSONL row is visible at "{").
          const nl = chunk.indexOf(0x0a, i);
          if (nl < 0) break;
          i = nl;
        }
        const b = chunk[i];
        if (b === 0x0a) endLine();
        else if (b >= 0x80) high.push(b);
        else if (b !== 0x20 && (b < 0x09 || b > 0x0d)) visible = true;
      }
    }
    endLine();
    return count;
  } finally {
    file.close();
  }
};

const joined = (parts: Uint8Array[]): Uint8Array => {
  if (parts.length === 1) return parts[0];
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

/**
 * Writes a file in chunks to a temporary sibling (`<path>.<pid>.<random>.tmp`, the name fs.ts's
 * `isTempFile` recognises) and renames it into place on `commit`, after an fsync: the file is absent or
 * complete under its final name, as with `writeFileAtomic`. `abort` removes the temporary file.
 */
export class AtomicWriter {
  private pending: string[] = [];
  private pendingChars = 0;
  private finished = false;
  private readonly encoder = new TextEncoder();

  private constructor(
    readonly path: string,
    private readonly tmp: string,
    private readonly file: Deno.FsFile,
  ) {}

  static async open(path: string): Promise<AtomicWriter> {
    const tmp = `${path}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`;
    return new AtomicWriter(path, tmp, await Deno.open(tmp, { write: true, create: true, truncate: true }));
  }

  async write(text: string): Promise<void> {
    this.pending.push(text);
    this.pendingChars += text.length;
    if (this.pendingChars >= CHUNK) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const bytes = this.encoder.encode(this.pending.join(""));
    this.pending = [];
    this.pendingChars = 0;
    const write = writeChunkOf();
    let written = 0;
    while (written < bytes.length) written += await write(this.file, bytes.subarray(written));
  }

  async commit(): Promise<void> {
    await this.flush();
    await this.file.sync();
    this.file.close();
    this.finished = true;
    await Deno.rename(this.tmp, this.path);
  }

  /** Drops the temporary file; does nothing after a successful commit. */
  async abort(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    try {
      this.file.close();
    } catch {
      // Already closed.
    }
    await Deno.remove(this.tmp).catch(() => {});
  }
}

/** SHA-256 of a file's bytes, read in chunks (files past 2 GiB, which Deno.readFile refuses, included). */
export const sha256File = async (path: string): Promise<string> => {
  const hash = createHash("sha256");
  using file = await Deno.open(path, { read: true });
  const buf = new Uint8Array(4 * CHUNK);
  for (let n = await file.read(buf); n !== null; n = await file.read(buf)) hash.update(buf.subarray(0, n));
  return hash.digest("hex");
};
