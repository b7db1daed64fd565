import { describe, expect, it } from "vitest";
import { anchorAt, idRuns, indexAt, offsetsOf, rangeAt, topFor } from "../src/lib/virtual";

const keys = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `k${from + i}`);

describe("virtual list arithmetic", () => {
  it("places measured items at their heights and the rest at the estimate", () => {
    const off = offsetsOf(["a", "b", "c"], new Map([["b", 10]]), 50);
    expect([...off]).toEqual([0, 50, 60, 110]);
  });

  it("renders only the items that meet the viewport plus overscan", () => {
    const off = offsetsOf(keys(10_000), new Map(), 40);
    expect(rangeAt(off, 200_000, 800, 400)).toEqual({ start: 4990, end: 5031 });
    expect(rangeAt(off, 0, 800, 400)).toEqual({ start: 0, end: 31 });
    expect(rangeAt(off, 399_200, 800, 400)).toEqual({ start: 9970, end: 10_000 });
    expect(rangeAt(offsetsOf([], new Map(), 40), 0, 800, 400)).toEqual({ start: 0, end: 0 });
  });

  it("finds the item under a position, clamped to the list", () => {
    const off = offsetsOf(["a", "b", "c"], new Map(), 10);
    expect(indexAt(off, -5)).toBe(0);
    expect(indexAt(off, 10)).toBe(1);
    expect(indexAt(off, 29.9)).toBe(2);
    expect(indexAt(off, 1e9)).toBe(2);
  });

  it("keeps the item in view in place when older items are prepended", () => {
    const heights = new Map<string, number>();
    const before = keys(100, 900);
    const off1 = offsetsOf(before, heights, 30);
    const anchor = anchorAt(before, off1, 1234)!;
    expect(anchor).toEqual({ key: "k941", delta: 4 });
    const after = [...keys(100, 800), ...before];
    const off2 = offsetsOf(after, heights, 30);
    const top = topFor(anchor, new Map(after.map((k, i) => [k, i])), off2)!;
    expect(top).toBe(1234 + 100 * 30);
    expect(indexAt(off2, top)).toBe(after.indexOf("k941"));
  });

  it("keeps the item in view in place when an item above it is measured", () => {
    const heights = new Map<string, number>();
    const ks = keys(50);
    const anchor = anchorAt(ks, offsetsOf(ks, heights, 30), 600)!;
    heights.set("k3", 130);
    const top = topFor(anchor, new Map(ks.map((k, i) => [k, i])), offsetsOf(ks, heights, 30));
    expect(top).toBe(700);
  });

  it("has no anchor position for an item that is gone", () => {
    expect(topFor({ key: "gone", delta: 0 }, new Map(), offsetsOf([], new Map(), 1))).toBeNull();
  });

  it("writes ids as runs", () => {
    expect(idRuns([5, 0, 1, 2, 7, 8])).toBe("0-2 5 7-8");
    expect(idRuns([])).toBe("");
    expect(idRuns([3, 3, 4])).toBe("3-4");
  });
});
