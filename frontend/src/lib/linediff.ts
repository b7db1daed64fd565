// A line diff (Myers' O(ND) algorithm) and its unified-diff text, for the Changes panel:
// the server gives the file at HEAD and in the workspace, the UI shows what changed.

export type DiffOp = { kind: "ctx" | "add" | "del"; text: string };

/** Splits text into lines; a final newline does not make an extra empty line. */
export function splitLines(text: string): string[] {
  if (!text) return [];
  const lines = text.replace(/\r\n/g, "\n").split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines;
}

/** The edit script turning `a` into `b`, line by line (deletions before additions). */
export function diffLines(a: string[], b: string[]): DiffOp[] {
  // Common prefix and suffix need no search.
  let pre = 0;
  while (pre < a.length && pre < b.length && a[pre] === b[pre]) pre++;
  let suf = 0;
  while (suf < a.length - pre && suf < b.length - pre && a[a.length - 1 - suf] === b[b.length - 1 - suf]) suf++;
  const A = a.slice(pre, a.length - suf);
  const B = b.slice(pre, b.length - suf);
  const head: DiffOp[] = a.slice(0, pre).map((text) => ({ kind: "ctx", text }));
  const tail: DiffOp[] = a.slice(a.length - suf).map((text) => ({ kind: "ctx", text }));
  return [...head, ...myers(A, B), ...tail];
}

const MAX_EDITS = 4000;
const MAX_CELLS = 20_000_000;

function myers(a: string[], b: string[]): DiffOp[] {
  const n = a.length;
  const m = b.length;
  if (!n) return b.map((text) => ({ kind: "add", text }));
  if (!m) return a.map((text) => ({ kind: "del", text }));
  const max = n + m;
  const off = max;
  const v = new Int32Array(2 * max + 2);
  const trace: Int32Array[] = [];
  let found = false;
  for (let d = 0; d <= max && !found; d++) {
    // Very different large files: a replace-all is clearer than a slow search.
    if (d > MAX_EDITS || trace.length * (2 * max + 2) > MAX_CELLS) {
      return [...a.map((text) => ({ kind: "del" as const, text })), ...b.map((text) => ({ kind: "add" as const, text }))];
    }
    trace.push(v.slice());
    for (let k = -d; k <= d; k += 2) {
      let x = k === -d || (k !== d && v[off + k - 1] < v[off + k + 1]) ? v[off + k + 1] : v[off + k - 1] + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      v[off + k] = x;
      if (x >= n && y >= m) {
        found = true;
        break;
      }
    }
  }
  // Walk back through the saved frontiers.
  const ops: DiffOp[] = [];
  let x = n;
  let y = m;
  for (let d = trace.length - 1; d >= 0; d--) {
    const vd = trace[d];
    const k = x - y;
    const prevK = k === -d || (k !== d && vd[off + k - 1] < vd[off + k + 1]) ? k + 1 : k - 1;
    const prevX = d === 0 ? 0 : vd[off + prevK];
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) {
      ops.push({ kind: "ctx", text: a[x - 1] });
      x--;
      y--;
    }
    if (d === 0) break;
    if (x === prevX) ops.push({ kind: "add", text: b[y - 1] });
    else ops.push({ kind: "del", text: a[x - 1] });
    x = prevX;
    y = prevY;
  }
  ops.reverse();
  // Within each changed run, show deletions before additions.
  const out: DiffOp[] = [];
  let dels: DiffOp[] = [];
  let adds: DiffOp[] = [];
  const flush = () => {
    out.push(...dels, ...adds);
    dels = [];
    adds = [];
  };
  for (const op of ops) {
    if (op.kind === "del") dels.push(op);
    else if (op.kind === "add") adds.push(op);
    else {
      flush();
      out.push(op);
    }
  }
  flush();
  return out;
}

/**
 * A unified diff (hunks only, no file header) of two texts, with `context` lines around
 * each change. Empty when they are equal.
 */
export function unifiedDiff(original: string, modified: string, context = 3): string {
  const ops = diffLines(splitLines(original), splitLines(modified));
  const changed = ops.map((o, i) => (o.kind !== "ctx" ? i : -1)).filter((i) => i >= 0);
  if (!changed.length) return "";
  // Group changes whose context overlaps into hunks [start, end).
  const ranges: [number, number][] = [];
  for (const i of changed) {
    const s = Math.max(0, i - context);
    const e = Math.min(ops.length, i + 1 + context);
    const last = ranges[ranges.length - 1];
    if (last && s <= last[1]) last[1] = Math.max(last[1], e);
    else ranges.push([s, e]);
  }
  // Line numbers at each op.
  const oldNo: number[] = [];
  const newNo: number[] = [];
  let o = 1;
  let n = 1;
  for (const op of ops) {
    oldNo.push(o);
    newNo.push(n);
    if (op.kind !== "add") o++;
    if (op.kind !== "del") n++;
  }
  const out: string[] = [];
  for (const [s, e] of ranges) {
    const part = ops.slice(s, e);
    const oldLen = part.filter((p) => p.kind !== "add").length;
    const newLen = part.filter((p) => p.kind !== "del").length;
    const oldStart = oldLen ? oldNo[s] : oldNo[s] - 1;
    const newStart = newLen ? newNo[s] : newNo[s] - 1;
    out.push(`@@ -${oldStart},${oldLen} +${newStart},${newLen} @@`);
    for (const p of part) out.push((p.kind === "add" ? "+" : p.kind === "del" ? "-" : " ") + p.text);
  }
  return out.join("\n");
}
