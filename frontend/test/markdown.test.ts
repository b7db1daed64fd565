import { describe, expect, it } from "vitest";
import { highlight, highlightFile, languageFor } from "../src/lib/highlight";
import { renderMarkdown } from "../src/lib/markdown";

describe("markdown is rendered safely", () => {
  it("shows raw HTML as text", () => {
    const html = renderMarkdown('<img src=x onerror="alert(1)"> <script>alert(2)</script> **bold**');
    expect(html).not.toContain("<img");
    expect(html).not.toContain("<script");
    expect(html).toContain("&lt;script&gt;");
    expect(html).toContain("<strong>bold</strong>");
  });

  it("does not make links of javascript: or data: URLs", () => {
    const html = renderMarkdown("[click](javascript:alert(1)) [d](data:text/html;base64,PHNjcmlwdD4=)");
    expect(html).not.toMatch(/href="javascript:/i);
    expect(html).not.toMatch(/href="data:/i);
  });

  it("opens links in a new tab without an opener", () => {
    const html = renderMarkdown("see https://example.com and [docs](https://docs.example.com)");
    expect(html).toContain('href="https://example.com"');
    expect(html).toContain('target="_blank"');
    expect(html).toContain('rel="noopener noreferrer nofollow"');
  });

  it("does not take file names for domains", () => {
    expect(renderMarkdown("write hello.py and main.rs")).not.toContain("<a ");
  });

  it("highlights fenced code, escaped", () => {
    const html = renderMarkdown("```python\nif x < 1:\n    print('<b>')\n```");
    expect(html).toContain('class="hljs-keyword"');
    expect(html).toContain("&lt;b&gt;");
    expect(html).not.toContain("<b>");
  });
});

describe("highlighting", () => {
  it("picks the language from the file name", () => {
    expect(languageFor("src/main.rs")).toBe("rust");
    expect(languageFor("a/b/App.tsx")).toBe("typescript");
    expect(languageFor("Dockerfile")).toBe("dockerfile");
    expect(languageFor("Makefile")).toBe("makefile");
    expect(languageFor("README")).toBeNull();
  });

  it("escapes unknown languages and HTML in code", () => {
    expect(highlight("<script>", null)).toBe("&lt;script&gt;");
    const { html, lang } = highlightFile("x.html", "<a href='#'>x</a>");
    expect(lang).toBe("xml");
    expect(html).not.toContain("<a href");
  });
});
