// The arithmetic of a virtualised list with items of different heights: where each item
// starts (measured heights where known, an estimate elsewhere), which items a viewport
// shows, and where the scroll position must go so that an item stays put when items
// above it change (older ones prepended, estimates replaced by measurements).

/** Item tops: `offsets[i]` is where item i starts, `offsets[n]` the total height. */
export function offsetsOf(keys: readonly string[], heights: ReadonlyMap<string, number>, estimate: number): Float64Array {
  const out = new Float64Array(keys.length + 1);
  let y = 0;
  for (let i = 0; i < keys.length; i++) {
    out[i] = y;
    y += heights.get(keys[i]) ?? estimate;
  }
  out[keys.length] = y;
  return out;
}

/** The item under position `y` (clamped to the list). */
export function indexAt(offsets: Float64Array, y: number): number {
  const n = offsets.length - 1;
  if (n <= 0) return 0;
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (offsets[mid] <= y) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Items [start, end) that intersect [top - overscan, top + height + overscan]. */
export function rangeAt(offsets: Float64Array, top: number, height: number, overscan: number): { start: number; end: number } {
  const n = offsets.length - 1;
  if (n <= 0) return { start: 0, end: 0 };
  const start = indexAt(offsets, Math.max(0, top - overscan));
  const end = Math.min(n, indexAt(offsets, top + height + overscan) + 1);
  return { start, end };
}

/** Where the view stands: the first item in sight and how far into it the top is. */
export interface Anchor {
  key: string;
  delta: number;
}

export function anchorAt(keys: readonly string[], offsets: Float64Array, top: number): Anchor | null {
  if (!keys.length) return null;
  const i = indexAt(offsets, top);
  return { key: keys[i], delta: top - offsets[i] };
}

/** The scroll position that puts the anchor's item where it was (null: it is gone). */
export function topFor(anchor: Anchor, index: ReadonlyMap<string, number>, offsets: Float64Array): number | null {
  const i = index.get(anchor.key);
  return i === undefined ? null : Math.max(0, offsets[i] + anchor.delta);
}

/** Sorted non-negative integers as runs: [0,1,2,5,7,8] → "0-2 5 7-8". */
export function idRuns(ids: Iterable<number>): string {
  const sorted = [...ids].sort((a, b) => a - b);
  const parts: string[] = [];
  let i = 0;
  while (i < sorted.length) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] <= sorted[j] + 1) j++;
    parts.push(sorted[i] === sorted[j] ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(" ");
}
