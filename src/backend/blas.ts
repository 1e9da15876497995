/**
 * Single-precision matrix products through a system OpenBLAS (cblas_sgemm) over Deno FFI.
 *
 * Why: the model's time on the cpu backend is matrix products, and a tuned BLAS does them about ten
 * times faster than the best plain JavaScript loop (src/model/kernels.ts). It is optional: it needs the
 * library (Debian: libopenblas0-serial or libopenblas0-pthread) and the --allow-ffi permission, and
 * everything works without it.
 *
 * Threads: the serial build is preferred. On the 2-vCPU machines we measured, OpenBLAS's threaded build
 * with 2 threads was slower than 1 thread for the model's shapes (the vCPUs do not give two cores' worth
 * of throughput), and the serial build has no thread start-up cost per call.
 */

type F32 = Float32Array;

/** Where Debian and Ubuntu put OpenBLAS, serial build first (see the file comment). */
export const BLAS_CANDIDATES: ReadonlyArray<string> = ["x86_64", "aarch64"].flatMap((arch) => [
  `/usr/lib/${arch}-linux-gnu/openblas-serial/libopenblas.so.0`,
  `/usr/lib/${arch}-linux-gnu/openblas-pthread/libopenblas.so.0`,
  `/usr/lib/${arch}-linux-gnu/openblas-openmp/libopenblas.so.0`,
  `/usr/lib/${arch}-linux-gnu/libopenblas.so.0`,
]);

const symbols = {
  cblas_sgemm: {
    // order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc
    parameters: [
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "f32",
      "buffer",
      "i32",
      "buffer",
      "i32",
      "f32",
      "buffer",
      "i32",
    ],
    result: "void",
  },
  openblas_set_num_threads: { parameters: ["i32"], result: "void", optional: true },
} as const;

const ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112;

/** A loaded BLAS: C = op(A) op(B) on row-major float32 matrices. */
export interface Blas {
  /** The library file that was loaded. */
  readonly path: string;
  /**
   * C [m, n] = op(A) op(B), with op(A) [m, k] and op(B) [k, n]; transA means A is stored [k, m], transB
   * that B is stored [n, k]. Writes into `c` when given (it must hold m * n values).
   */
  gemm(a: F32, b: F32, m: number, n: number, k: number, transA: boolean, transB: boolean, c?: F32): F32;
  /**
   * cblas_sgemm with explicit leading dimensions: C = op(A) op(B) + beta C on blocks of larger row-major
   * matrices. `a`, `b` and `c` start at the block's first element (a subarray); lda, ldb and ldc are the
   * row lengths of the matrices they are stored in. Lets attention read one head's columns of the
   * [tokens, heads * headDim] activations, and write into them, without copying blocks out and back.
   */
  gemmStrided(g: StridedGemm): void;
  /** Closes the library; the object must not be used afterwards. */
  close(): void;
}

/** Why a BLAS could not be loaded: one line a user can act on. */
/** The arguments of Blas.gemmStrided (row-major, alpha 1). */
export interface StridedGemm {
  readonly transA: boolean;
  readonly transB: boolean;
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly a: F32;
  readonly lda: number;
  readonly b: F32;
  readonly ldb: number;
  /** 0 overwrites C, 1 adds into it. */
  readonly beta: number;
  readonly c: F32;
  readonly ldc: number;
}

/** Elements a row-major [rows, cols] block with leading dimension `ld` spans from its first element. */
const span = (rows: number, cols: number, ld: number) =>
  rows === 0 || cols === 0 ? 0 : (rows - 1) * ld + cols;

export class BlasUnavailable extends Error {
  override readonly name = "BlasUnavailable";
}

const ffiAllowed = (path: string): boolean => {
  try {
    return Deno.permissions.querySync({ name: "ffi", path }).state === "granted";
  } catch {
    return false;
  }
};

const exists = (path: string): boolean => {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
};

/** Where the loader looks: `explicit` alone when given, else BLAS_CANDIDATES in order. */
const blasCandidates = (
  explicit?: string,
): ReadonlyArray<string> => (explicit ? [explicit] : BLAS_CANDIDATES);

/** The library the loader opens: `explicit` when given, else the first of BLAS_CANDIDATES; undefined if absent. */
export const findBlas = (explicit?: string): string | undefined => blasCandidates(explicit).find(exists);

/**
 * Opens the first OpenBLAS found (`path`, else the environment variable SFTKEY_BLAS_LIB, else
 * BLAS_CANDIDATES). Throws BlasUnavailable naming what is missing: the library or the FFI permission.
 */
export const loadBlas = (path?: string, threads = 1): Blas => {
  const fromEnv = (() => {
    try {
      return Deno.env.get("SFTKEY_BLAS_LIB");
    } catch {
      return undefined; // no --allow-env: use the candidates
    }
  })();
  const explicit = path || fromEnv;
  const candidates = blasCandidates(explicit);
  const found = findBlas(explicit);
  if (found === undefined) {
    throw new BlasUnavailable(
      `no OpenBLAS library found (looked for ${candidates.join(", ")}); on Debian/Ubuntu: ` +
        "apt-get install libopenblas0-serial",
    );
  }
  if (!ffiAllowed(found)) {
    throw new BlasUnavailable(
      `${found} is present but loading it needs the FFI permission: run with --allow-ffi=${found} ` +
        "(deno task pipeline grants it for Debian's OpenBLAS directories)",
    );
  }
  let lib: Deno.DynamicLibrary<typeof symbols>;
  try {
    lib = Deno.dlopen(found, symbols);
  } catch (e) {
    throw new BlasUnavailable(`could not load ${found}: ${e instanceof Error ? e.message : String(e)}`);
  }
  lib.symbols.openblas_set_num_threads?.(threads);
  const sgemm = lib.symbols.cblas_sgemm;
  return {
    path: found,
    gemm: (a, b, m, n, k, transA, transB, c = new Float32Array(m * n)) => {
      if (a.length < m * k || b.length < k * n || c.length < m * n) {
        throw new RangeError(`gemm: arrays too small for [${m}, ${k}] x [${k}, ${n}]`);
      }
      if (m === 0 || n === 0) return c;
      if (k === 0) return c.fill(0, 0, m * n);
      sgemm(
        ROW_MAJOR,
        transA ? TRANS : NO_TRANS,
        transB ? TRANS : NO_TRANS,
        m,
        n,
        k,
        1,
        a,
        transA ? m : k,
        b,
        transB ? k : n,
        0,
        c,
        n,
      );
      return c;
    },
    gemmStrided: (g) => {
      const [ar, ac] = g.transA ? [g.k, g.m] : [g.m, g.k];
      const [br, bc] = g.transB ? [g.n, g.k] : [g.k, g.n];
      // The library reads and writes through raw pointers: check every block lies inside its array.
      if (
        ac > g.lda || bc > g.ldb || g.n > g.ldc || g.a.length < span(ar, ac, g.lda) ||
        g.b.length < span(br, bc, g.ldb) || g.c.length < span(g.m, g.n, g.ldc)
      ) {
        throw new RangeError(
          `gemmStrided: blocks do not fit their arrays for [${g.m}, ${g.k}] x [${g.k}, ${g.n}]`,
        );
      }
      if (g.m === 0 || g.n === 0) return;
      sgemm(
        ROW_MAJOR,
        g.transA ? TRANS : NO_TRANS,
        g.transB ? TRANS : NO_TRANS,
        g.m,
        g.n,
        g.k,
        1,
        g.a,
        g.lda,
        g.b,
        g.ldb,
        g.beta,
        g.c,
        g.ldc,
      );
    },
    close: () => lib.close(),
  };
};
