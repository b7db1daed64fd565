import { describe, expect, it } from "vitest";
import { diffLines, splitLines, unifiedDiff } from "../src/lib/linediff";
import { acceptAttachments, MAX_IMAGE_BYTES, messageArgs } from "../src/lib/attachments";

/** Applies an edit script: the old side and the new side it describes. */
function sides(ops: ReturnType<typeof diffLines>) {
  return {
    a: ops.filter((o) => o.kind !== "add").map((o) => o.text),
    b: ops.filter((o) => o.kind !== "del").map((o) => o.text),
  };
}

describe("line diff", () => {
  it("splits lines without a phantom last line", () => {
    expect(splitLines("")).toEqual([]);
    expect(splitLines("a\nb\n")).toEqual(["a", "b"]);
    expect(splitLines("a\r\nb")).toEqual(["a", "b"]);
  });

  it("equal texts have no changes", () => {
    expect(diffLines(["a", "b"], ["a", "b"]).every((o) => o.kind === "ctx")).toBe(true);
    expect(unifiedDiff("a\nb\n", "a\nb\n")).toBe("");
  });

  it("a new file is all additions, a deleted one all deletions", () => {
    expect(unifiedDiff("", "hi\n")).toBe("@@ -0,0 +1,1 @@\n+hi");
    expect(unifiedDiff("x\ny\n", "")).toBe("@@ -1,2 +0,0 @@\n-x\n-y");
  });

  it("a changed line in the middle, with context", () => {
    const a = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
    const b = "1\n2\n3\n4\nfive\n6\n7\n8\n9\n";
    expect(unifiedDiff(a, b)).toBe("@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8");
  });

  it("distant changes make separate hunks", () => {
    const a = Array.from({ length: 20 }, (_, i) => `l${i + 1}`).join("\n");
    const b = a.replace("l2\n", "L2\n").replace("l18", "L18");
    const d = unifiedDiff(a, b, 1);
    expect(d.split("\n").filter((l) => l.startsWith("@@"))).toEqual(["@@ -1,3 +1,3 @@", "@@ -17,3 +17,3 @@"]);
  });

  it("is a minimal, valid edit script on mixed changes", () => {
    const a = ["a", "b", "c", "a", "b", "b", "a"];
    const b = ["c", "b", "a", "b", "a", "c"];
    const ops = diffLines(a, b);
    expect(sides(ops)).toEqual({ a, b });
    // The classic example: shortest edit script has 5 edits.
    expect(ops.filter((o) => o.kind !== "ctx").length).toBe(5);
  });

  it("round-trips random inputs", () => {
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    for (let t = 0; t < 200; t++) {
      const a = Array.from({ length: Math.floor(rnd() * 12) }, () => "xyz"[Math.floor(rnd() * 3)]);
      const b = Array.from({ length: Math.floor(rnd() * 12) }, () => "xyz"[Math.floor(rnd() * 3)]);
      expect(sides(diffLines(a, b))).toEqual({ a, b });
    }
  });
});

describe("attachments", () => {
  it("refuses images over 5 MB with a clear message and keeps the rest", () => {
    const big = { name: "big.png", type: "image/png", size: MAX_IMAGE_BYTES + 1 };
    const ok = { name: "ok.png", type: "image/png", size: 1000 };
    const doc = { name: "huge.log", type: "text/plain", size: MAX_IMAGE_BYTES * 3 };
    const r = acceptAttachments([big, ok, doc]);
    expect(r.accepted).toEqual([ok, doc]);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toMatch(/big\.png is too large.*at most 5 MB/);
  });

  it("builds the message args; uploaded files are appended to the content", () => {
    expect(messageArgs("hi")).toEqual({ content: "hi", image_urls: [], file_urls: [] });
    expect(messageArgs("look", ["data:image/png;base64,AA=="], ["/ws/a.txt", "/ws/b.md"])).toEqual({
      content: "look\n\nAttached files: /ws/a.txt, /ws/b.md",
      image_urls: ["data:image/png;base64,AA=="],
      file_urls: ["/ws/a.txt", "/ws/b.md"],
    });
    expect(messageArgs("", [], ["/ws/a.txt"]).content).toBe("Attached files: /ws/a.txt");
  });
});

describe("line diff limits", () => {
  it("falls back to replace-all on large, entirely different files", () => {
    const a = Array.from({ length: 6000 }, (_, i) => `a${i}`);
    const b = Array.from({ length: 6000 }, (_, i) => `b${i}`);
    const ops = diffLines(a, b);
    expect(ops.filter((o) => o.kind === "del")).toHaveLength(6000);
    expect(ops.filter((o) => o.kind === "add")).toHaveLength(6000);
  });
});
