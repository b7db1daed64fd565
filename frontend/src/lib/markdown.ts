// Markdown for chat messages. Raw HTML is disabled (it is shown as text), link targets
// are checked by markdown-it (no javascript:, vbscript:, file: or non-image data: URLs),
// and code blocks go through the highlighter, which escapes. The output is therefore
// safe to insert as HTML.

import MarkdownIt from "markdown-it";
import { escapeHtml, highlight } from "./highlight";

const md: MarkdownIt = new MarkdownIt({
  html: false,
  linkify: true,
  breaks: true,
  typographer: false,
  highlight: (code: string, lang: string) => highlight(code, lang || null) || escapeHtml(code),
});

// Only explicit links (scheme or www.): "hello.py" is a file name, not a domain.
md.linkify.set({ fuzzyLink: false, fuzzyEmail: false });

// Links open in a new tab without handing it our window.
const defaultLinkOpen =
  md.renderer.rules.link_open ??
  ((tokens: any, idx: number, options: any, _env: any, self: any) => self.renderToken(tokens, idx, options));
md.renderer.rules.link_open = (tokens, idx, options, env, self) => {
  tokens[idx].attrSet("target", "_blank");
  tokens[idx].attrSet("rel", "noopener noreferrer nofollow");
  return defaultLinkOpen(tokens, idx, options, env, self);
};

export function renderMarkdown(text: string): string {
  return md.render(text ?? "");
}
