/**
 * Test assertions. JSR (@std/assert) is unreachable from our machines, so these wrap node:assert,
 * which Deno ships, behind the familiar @std/assert names.
 */
import nodeAssert from "node:assert/strict";

export const assert: (value: unknown, message?: string) => asserts value = (value, message) =>
  nodeAssert.ok(value, message);

export const assertEquals = <T>(actual: T, expected: T, message?: string): void =>
  nodeAssert.deepStrictEqual(actual, expected, message);

export const assertNotEquals = <T>(actual: T, expected: T, message?: string): void =>
  nodeAssert.notDeepStrictEqual(actual, expected, message);

export const assertAlmostEquals = (actual: number, expected: number, tolerance = 1e-7, message?: string) => {
  if (!(Math.abs(actual - expected) <= tolerance)) {
    throw new nodeAssert.AssertionError({
      message: message ?? `expected ${actual} to be within ${tolerance} of ${expected}`,
      actual,
      expected,
    });
  }
};

const checkError = (
  e: unknown,
  // deno-lint-ignore no-explicit-any
  ErrorClass?: abstract new (...args: any[]) => unknown,
  includes?: string,
) => {
  if (ErrorClass && !(e instanceof ErrorClass)) {
    throw new nodeAssert.AssertionError({ message: `expected ${ErrorClass.name}, got ${e}` });
  }
  const text = e instanceof Error ? `${e.message} ${JSON.stringify(e)}` : JSON.stringify(e);
  if (includes && !text.includes(includes)) {
    throw new nodeAssert.AssertionError({ message: `expected error to mention "${includes}", got: ${text}` });
  }
  return e;
};

export const assertThrows = (
  fn: () => unknown,
  // deno-lint-ignore no-explicit-any
  ErrorClass?: abstract new (...args: any[]) => unknown,
  includes?: string,
): unknown => {
  try {
    fn();
  } catch (e) {
    return checkError(e, ErrorClass, includes);
  }
  throw new nodeAssert.AssertionError({ message: "expected function to throw" });
};

export const assertRejects = async (
  fn: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  ErrorClass?: abstract new (...args: any[]) => unknown,
  includes?: string,
): Promise<unknown> => {
  try {
    await fn();
  } catch (e) {
    return checkError(e, ErrorClass, includes);
  }
  throw new nodeAssert.AssertionError({ message: "expected promise to reject" });
};
