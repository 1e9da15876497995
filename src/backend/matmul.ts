/**
 * The hook through which src/model/kernels.ts sends its matrix products to a faster implementation
 * (today: OpenBLAS, ./blas.ts) when one is installed, keeping its plain JavaScript loops otherwise.
 *
 * Products below MIN_WORK multiply-adds stay in JavaScript: there the FFI call and BLAS's packing cost
 * more than the product itself. Which side computes a product depends on its shape only, so a run is
 * deterministic either way. Unlike the JavaScript loop, BLAS does not promise that a row's result is
 * bit-identical whatever the other rows of the product are (its summation order depends on the shape);
 * results then agree to float rounding only (see README, "Performance").
 */
import type { Blas, StridedGemm } from "./blas.ts";

type F32 = Float32Array;

/** Multiply-adds (m * n * k) below which a product stays in JavaScript. */
export const MIN_WORK = 4096;

let installed: Blas | undefined;

/** Sends large products to `blas` from now on; `undefined` goes back to the JavaScript loops. */
export const installMatmul = (blas: Blas | undefined): void => {
  installed = blas;
};

/** The BLAS products go to, if any. */
export const installedMatmul = (): Blas | undefined => installed;

/**
 * C [m, n] = op(A) op(B) through the installed BLAS (see Blas.gemm for the layouts), or undefined when
 * none is installed or the product is too small to gain from it: the caller then computes it itself.
 */
export const fastGemm = (
  a: F32,
  b: F32,
  m: number,
  n: number,
  k: number,
  transA: boolean,
  transB: boolean,
): F32 | undefined =>
  installed !== undefined && m * n * k >= MIN_WORK
    ? installed.gemm(a, b, m, n, k, transA, transB)
    : undefined;

/**
 * Strided products (Blas.gemmStrided) through the installed BLAS, or undefined when none is installed:
 * attention then takes its JavaScript path. Used only where every product is large enough to gain
 * (m * n * k >= MIN_WORK, decided by shape, so a run is deterministic either way).
 */
export const stridedGemm = (m: number, n: number, k: number): ((g: StridedGemm) => void) | undefined =>
  installed !== undefined && m * n * k >= MIN_WORK ? installed.gemmStrided : undefined;
