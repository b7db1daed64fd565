//! `browse` actions: fetch a URL over HTTP(S) and return it as readable text.
//!
//! HTML is converted to markdown with `htmd`; text-like bodies (plain text, JSON, XML,
//! markdown, …) are returned as they are. Every failure becomes a [`Page`] with
//! `error: true` and a message a person (or model) can act on.

use std::error::Error as _;
use std::fmt::Write as _;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use htmd::element_handler::Handlers;
use htmd::{Element, HtmlToMarkdown};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use url::Url;

/// Characters of an error page's body shown after an HTTP error status.
const ERROR_EXCERPT_CHARS: usize = 2_000;
/// Leading bytes inspected when sniffing an untyped body.
const SNIFF_LEN: usize = 8 * 1024;
const EXAMPLE: &str = "Give a full http or https address, such as https://example.com/.";

/// The result of a browse: maps to the `browse` observation (content, extras.url, extras.error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The final URL after redirects (or the URL as given, if it was never fetched).
    pub url: String,
    /// The HTML `<title>`, if any.
    pub title: Option<String>,
    /// Markdown/text of the page, or the error message.
    pub content: String,
    /// True if the page could not be fetched or shown (`content` is then the reason).
    pub error: bool,
}

impl Page {
    fn failure(url: impl Into<String>, message: String) -> Self {
        Self {
            url: url.into(),
            title: None,
            content: message,
            error: true,
        }
    }
}

/// Time and size limits for one browse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrowseLimits {
    /// Overall deadline for connecting and reading the whole body.
    pub timeout: Duration,
    /// Bodies longer than this are cut here (and the content says so).
    pub max_bytes: usize,
}

impl Default for BrowseLimits {
    /// 30 s, 5 MiB.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_bytes: 5 * 1024 * 1024,
        }
    }
}

/// Fetches `url` (http/https only) with `client`, a timeout and a size cap, and returns it as markdown.
///
/// Redirects follow `client`'s policy (reqwest's default: at most 10); `Page::url` is the
/// final URL.
pub async fn browse(client: &reqwest::Client, url: &str, limits: BrowseLimits) -> Page {
    let target = match check_url(url) {
        Ok(target) => target,
        Err(message) => return Page::failure(url, message),
    };
    match tokio::time::timeout(limits.timeout, fetch(client, url, target, limits)).await {
        Ok(page) => page,
        Err(_) => Page::failure(url, timeout_message(limits.timeout, url)),
    }
}

/// Parses `raw` and accepts only http(s) URLs with a host; otherwise explains why not.
fn check_url(raw: &str) -> Result<Url, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(format!("No URL was given. {EXAMPLE}"));
    }
    match Url::parse(trimmed) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => {
            if url.host_str().is_none_or(str::is_empty) {
                Err(format!("\"{raw}\" has no host name. {EXAMPLE}"))
            } else {
                Ok(url)
            }
        }
        Ok(url) => {
            let mut message = format!("Only http and https URLs can be browsed, not \"{raw}\".");
            if url.scheme() == "file" {
                message.push_str(" To read a local file, use the file editor or a shell command.");
            } else if url.cannot_be_a_base()
                && !url.path().is_empty()
                && url.path().bytes().all(|b| b.is_ascii_digit())
            {
                // `localhost:3000` parses as scheme `localhost`.
                let _ = write!(message, " Did you mean \"http://{trimmed}\"?");
            }
            Err(message)
        }
        Err(url::ParseError::RelativeUrlWithoutBase)
            if !trimmed.contains(char::is_whitespace) && trimmed.contains('.') =>
        {
            Err(format!(
                "\"{raw}\" is not a full URL. Did you mean \"https://{trimmed}\"?"
            ))
        }
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            Err(format!("\"{raw}\" is not a valid URL. {EXAMPLE}"))
        }
        Err(e) => Err(format!("\"{raw}\" is not a valid URL ({e}). {EXAMPLE}")),
    }
}

/// What a response body is, judging by its content type (and, without one, its bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Html,
    Text,
    /// No content type: decide from the body.
    Unknown,
    /// Not something we can show; carries the MIME type.
    Other(String),
}

fn classify(mime: &str) -> Kind {
    match mime {
        "" => Kind::Unknown,
        "text/html" | "application/xhtml+xml" => Kind::Html,
        m if m.starts_with("text/") => Kind::Text,
        "application/json"
        | "application/xml"
        | "application/javascript"
        | "application/x-javascript"
        | "application/ecmascript"
        | "application/yaml"
        | "application/x-yaml"
        | "application/toml"
        | "application/x-ndjson"
        | "application/sql"
        | "application/graphql"
        | "application/x-sh" => Kind::Text,
        m if m.ends_with("+json") || m.ends_with("+xml") || m.ends_with("+yaml") => Kind::Text,
        other => Kind::Other(other.to_string()),
    }
}

fn sniff(bytes: &[u8]) -> Kind {
    let head = &bytes[..bytes.len().min(SNIFF_LEN)];
    let lower = String::from_utf8_lossy(&head[..head.len().min(1024)]).to_ascii_lowercase();
    let start = lower.trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n']);
    if start.starts_with("<!doctype html") || lower.contains("<html") {
        Kind::Html
    } else if head.contains(&0) || std::str::from_utf8(head).is_err_and(|e| e.error_len().is_some())
    {
        Kind::Other("application/octet-stream".to_string())
    } else {
        Kind::Text
    }
}

async fn fetch(client: &reqwest::Client, given: &str, target: Url, limits: BrowseLimits) -> Page {
    let host = describe_host(&target);
    let response = client
        .get(target)
        .header(
            ACCEPT,
            "text/html,application/xhtml+xml,text/plain;q=0.9,application/json;q=0.9,*/*;q=0.5",
        )
        .timeout(limits.timeout)
        .send()
        .await;
    let mut response = match response {
        Ok(response) => response,
        Err(e) => return Page::failure(given, describe_error(&e, given, &host, limits.timeout)),
    };
    let final_url = response.url().to_string();
    let status = response.status();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let charset = content_type
        .split(';')
        .skip(1)
        .filter_map(|p| p.trim().strip_prefix("charset="))
        .map(|c| c.trim_matches('"').to_string())
        .next();
    let status_line = format!(
        "HTTP {} {} for {final_url}.",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
    .replace("  ", " ");

    let mut kind = classify(&mime);
    if let Kind::Other(mime) = &kind {
        let message = if status.is_success() {
            format!(
                "Cannot show {final_url}: its content type is \"{mime}\", not a web page or text. \
                 Only HTML and text responses (plain text, JSON, XML, markdown) can be browsed; \
                 download the file with a shell command if you need it."
            )
        } else {
            status_line
        };
        return Page::failure(final_url, message);
    }

    let (bytes, truncated) = match read_capped(&mut response, limits.max_bytes).await {
        Ok(body) => body,
        Err(e) => {
            return Page::failure(final_url, describe_error(&e, given, &host, limits.timeout))
        }
    };
    if kind == Kind::Unknown {
        kind = sniff(&bytes);
        if let Kind::Other(_) = kind {
            let message = if status.is_success() {
                format!(
                    "Cannot show {final_url}: it has no content type and looks like binary data. \
                     Download it with a shell command if you need it."
                )
            } else {
                status_line
            };
            return Page::failure(final_url, message);
        }
    }
    let text = decode(&bytes, charset.as_deref(), truncated);

    let (title, body) = if kind == Kind::Html {
        match convert_guarded(text).await {
            Ok(converted) => converted,
            Err(message) => {
                return Page::failure(
                    final_url,
                    format!("Could not convert the page at {given} to text: {message}"),
                )
            }
        }
    } else {
        (None, text)
    };

    if !status.is_success() {
        let mut content = status_line;
        let excerpt = excerpt(&body, ERROR_EXCERPT_CHARS);
        if !excerpt.is_empty() {
            let _ = write!(content, " The server's response:\n\n{excerpt}");
        }
        return Page {
            url: final_url,
            title,
            content,
            error: true,
        };
    }

    let mut content = match &title {
        Some(t) if !body.starts_with(&format!("# {t}")) => format!("# {t}\n\n{body}"),
        _ => body,
    };
    if content.trim().is_empty() {
        content = format!("The page at {final_url} is empty.");
    }
    if truncated {
        let cap = human_size(limits.max_bytes);
        let _ = write!(
            content,
            "\n\n[Content truncated: the response is larger than the {cap} limit; only its first {cap} were read.]"
        );
    }
    Page {
        url: final_url,
        title,
        content,
        error: false,
    }
}

/// Reads at most `max` bytes of the body; the flag says whether there was more.
async fn read_capped(
    response: &mut reqwest::Response,
    max: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    let hint = response
        .content_length()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    let mut buf = Vec::with_capacity(hint.min(max));
    while let Some(chunk) = response.chunk().await? {
        let room = max - buf.len();
        if chunk.len() > room {
            buf.extend_from_slice(&chunk[..room]);
            return Ok((buf, true));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok((buf, false))
}

/// Decodes a body: UTF-8 (lossy), or Latin-1 when declared and not valid UTF-8. A multi-byte
/// character cut by truncation is dropped.
fn decode(bytes: &[u8], charset: Option<&str>, truncated: bool) -> String {
    let mut bytes = bytes;
    if truncated {
        if let Err(e) = std::str::from_utf8(bytes) {
            if e.error_len().is_none() {
                bytes = &bytes[..e.valid_up_to()];
            }
        }
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_string(),
        Err(_)
            if charset.is_some_and(|c| {
                matches!(
                    c.to_ascii_lowercase().as_str(),
                    "iso-8859-1" | "latin1" | "latin-1" | "windows-1252" | "cp1252" | "us-ascii"
                )
            }) =>
        {
            bytes.iter().map(|&b| char::from(b)).collect()
        }
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// HTML → (title, markdown), skipping scripts, styles and the head.
/// Elements nested deeper than this are refused before parsing: the parser and the
/// converter recurse per level.
pub const MAX_HTML_DEPTH: usize = 512;

/// How long one page's conversion may take.
const CONVERT_BUDGET: Duration = Duration::from_secs(10);

/// The stack of the conversion thread: generous, so that [`MAX_HTML_DEPTH`] levels
/// are far from its end (only the pages it touches are ever allocated).
const CONVERT_STACK: usize = 256 * 1024 * 1024;

/// Converts `html` on a thread of its own with a large stack, after a depth check, within
/// [`CONVERT_BUDGET`]: a hostile page becomes an error, never a crash or a stuck worker.
async fn convert_guarded(html: String) -> Result<(Option<String>, String), String> {
    let depth = nesting_depth(&html, MAX_HTML_DEPTH + 1);
    if depth > MAX_HTML_DEPTH {
        return Err(format!(
            "its elements are nested more than {MAX_HTML_DEPTH} levels deep, which this browser does not render. Fetch the raw HTML with a shell command (curl) if you need it."
        ));
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("html-to-markdown".into())
        .stack_size(CONVERT_STACK)
        .spawn(move || {
            let _ = tx.send(html_to_markdown(&html));
        })
        .map_err(|e| format!("no thread to convert it ({e})."))?;
    match tokio::time::timeout(CONVERT_BUDGET, rx).await {
        Ok(Ok(converted)) => Ok(converted),
        Ok(Err(_)) => Err("the converter failed.".into()),
        Err(_) => Err(format!(
            "converting it took longer than {} s. Fetch the raw HTML with a shell command (curl) if you need it.",
            CONVERT_BUDGET.as_secs()
        )),
    }
}

/// Elements that never hold others, or that the HTML parser closes by itself when the
/// next one starts: they do not deepen the tree.
const FLAT_ELEMENTS: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr", "p", "li", "td", "th", "tr", "option", "dt", "dd", "!doctype",
];

/// An upper estimate of how deeply `html`'s elements nest (open tags minus close tags,
/// skipping comments, raw text and elements that do not nest), stopping at `stop`.
pub fn nesting_depth(html: &str, stop: usize) -> usize {
    let bytes = html.as_bytes();
    let (mut i, mut depth, mut max) = (0usize, 0usize, 0usize);
    while let Some(off) = bytes[i..].iter().position(|b| *b == b'<') {
        i += off + 1;
        if bytes[i..].starts_with(b"!--") {
            i = html[i..].find("-->").map_or(bytes.len(), |e| i + e + 3);
            continue;
        }
        let closing = bytes.get(i) == Some(&b'/');
        let start = if closing { i + 1 } else { i };
        let name_len = bytes[start..]
            .iter()
            .position(|b| b.is_ascii_whitespace() || *b == b'>' || *b == b'/')
            .unwrap_or(bytes.len() - start);
        let name = html[start..start + name_len].to_ascii_lowercase();
        if name.is_empty() || !(name.as_bytes()[0].is_ascii_alphabetic() || name == "!doctype") {
            continue;
        }
        let end = bytes[start..]
            .iter()
            .position(|b| *b == b'>')
            .map_or(bytes.len(), |e| start + e);
        let self_closing = end > 0 && bytes.get(end - 1) == Some(&b'/');
        i = (end + 1).min(bytes.len());
        if FLAT_ELEMENTS.contains(&name.as_str()) || self_closing {
            continue;
        }
        if closing {
            depth = depth.saturating_sub(1);
            continue;
        }
        depth += 1;
        max = max.max(depth);
        if max >= stop {
            return max;
        }
        // Raw text: nothing inside is markup.
        if matches!(
            name.as_str(),
            "script" | "style" | "textarea" | "title" | "xmp"
        ) {
            let close = format!("</{name}");
            i = bytes[i..]
                .windows(close.len())
                .position(|w| w.eq_ignore_ascii_case(close.as_bytes()))
                .map_or(bytes.len(), |e| i + e);
        }
    }
    max
}

fn html_to_markdown(html: &str) -> (Option<String>, String) {
    let title: Arc<Mutex<Option<String>>> = Arc::default();
    let slot = Arc::clone(&title);
    let converter = HtmlToMarkdown::builder()
        .skip_tags(vec!["script", "style", "noscript", "template", "svg"])
        .add_handler(vec!["head"], |handlers: &dyn Handlers, element: Element| {
            // Walked only so the `title` handler sees the title; the head itself is dropped.
            handlers.walk_children(element.node);
            None
        })
        .add_handler(
            vec!["title"],
            move |handlers: &dyn Handlers, element: Element| {
                let text = handlers.walk_children(element.node).content;
                let text = unescape_markdown(&text)
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                if let Ok(mut slot) = slot.lock() {
                    if slot.is_none() && !text.is_empty() {
                        *slot = Some(text);
                    }
                }
                None
            },
        )
        .build();
    let markdown = converter.convert(html).unwrap_or_default();
    let title = title.lock().ok().and_then(|mut t| t.take());
    (title, collapse_blank_lines(markdown.trim()))
}

/// Removes htmd's backslash escapes (`\*` → `*`), for plain-text use such as the title.
fn unescape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek().is_some_and(char::is_ascii_punctuation) {
            continue;
        }
        out.push(c);
    }
    out
}

/// Collapses runs of blank lines into one.
fn collapse_blank_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines() {
        if line.trim().is_empty() {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
            out.push('\n');
        } else {
            blank_run = 0;
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out.truncate(out.trim_end().len());
    out
}

fn excerpt(text: &str, max_chars: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

fn human_size(bytes: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

fn human_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

fn timeout_message(timeout: Duration, url: &str) -> String {
    format!(
        "Timed out after {} fetching {url}. The site may be slow or unreachable; try again later or try another page.",
        human_duration(timeout)
    )
}

fn describe_host(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// Why a request failed, from the error's source chain.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    Timeout,
    Dns,
    Refused,
    Tls,
    Reset,
    Redirects,
    Other,
}

fn classify_failure(messages: &[String], kinds: &[io::ErrorKind], redirect: bool) -> Failure {
    let text = messages.join(": ").to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
    if kinds.contains(&io::ErrorKind::TimedOut) || has(&["timed out", "operation timed out"]) {
        Failure::Timeout
    } else if redirect || has(&["too many redirects", "redirect loop"]) {
        Failure::Redirects
    } else if kinds.contains(&io::ErrorKind::ConnectionRefused) || has(&["connection refused"]) {
        Failure::Refused
    } else if has(&[
        "dns error",
        "failed to lookup address",
        "name or service not known",
        "no address associated",
        "nodename nor servname",
        "temporary failure in name resolution",
    ]) {
        Failure::Dns
    } else if has(&[
        "certificate",
        "tls",
        "handshake",
        "alert",
        "corrupt message",
        "peer is incompatible",
    ]) {
        Failure::Tls
    } else if kinds.contains(&io::ErrorKind::ConnectionReset)
        || kinds.contains(&io::ErrorKind::ConnectionAborted)
        || has(&["connection reset", "connection closed"])
    {
        Failure::Reset
    } else {
        Failure::Other
    }
}

fn describe_error(e: &reqwest::Error, url: &str, host: &str, timeout: Duration) -> String {
    if e.is_timeout() {
        return timeout_message(timeout, url);
    }
    let mut messages = Vec::new();
    let mut kinds = Vec::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = e.source();
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            kinds.push(io.kind());
        }
        let text = err.to_string();
        if !messages.contains(&text) {
            messages.push(text);
        }
        source = err.source();
    }
    let detail = if messages.is_empty() {
        e.to_string()
    } else {
        messages.join(": ")
    };
    let cause = messages.last().cloned().unwrap_or_else(|| e.to_string());
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    match classify_failure(&messages, &kinds, e.is_redirect()) {
        Failure::Timeout => timeout_message(timeout, url),
        Failure::Dns => format!(
            "Could not resolve host \"{name}\" for {url}. Check the spelling of the domain name and that this machine has network access."
        ),
        Failure::Refused => format!(
            "Connection refused by {host} for {url}. Nothing is accepting connections there; check the address and port, and that the server is running."
        ),
        Failure::Tls => format!(
            "TLS error connecting to {host} for {url}: {cause}. The site's certificate may be invalid, expired or self-signed, or the server may not speak HTTPS on that port."
        ),
        Failure::Reset => format!(
            "The connection to {host} was closed unexpectedly while fetching {url} ({cause}). Try again later."
        ),
        Failure::Redirects => format!(
            "Too many redirects while fetching {url} (the limit is 10); the site may be in a redirect loop."
        ),
        Failure::Other => format!("Could not fetch {url}: {detail}."),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn nesting_depth_counts_what_nests_and_skips_what_does_not() {
        assert_eq!(
            nesting_depth(
                "<html><body><div><p>a<p>b<br><img src=x></div></body></html>",
                99
            ),
            3
        );
        assert_eq!(nesting_depth("<!-- <div><div><div> --><div></div>", 99), 1);
        assert_eq!(
            nesting_depth(
                "<script>if (a<b) { '<div><div>' }</script><span></span>",
                99
            ),
            1
        );
        assert_eq!(nesting_depth("<ul><li>a<li>b</ul><div/><x-y></x-y>", 99), 1);
        assert_eq!(nesting_depth("a < b and <3 <", 99), 0);
        let deep = "<div>".repeat(100_000);
        assert_eq!(nesting_depth(&deep, MAX_HTML_DEPTH + 1), MAX_HTML_DEPTH + 1);
        let unicode = "<div>é</div><p>ü<b>ß</b>".repeat(10);
        assert_eq!(nesting_depth(&unicode, 99), 1);
    }

    #[tokio::test]
    async fn deep_pages_are_refused_and_deep_but_allowed_ones_convert() {
        let refused = convert_guarded("<div>".repeat(5_000) + "x").await;
        assert!(refused.unwrap_err().contains("nested more than"));
        let html = format!(
            "{}deep text{}",
            "<div>".repeat(MAX_HTML_DEPTH - 5),
            "</div>".repeat(MAX_HTML_DEPTH - 5)
        );
        let (_, text) = convert_guarded(html).await.unwrap();
        assert!(text.contains("deep text"), "{text}");
    }

    use super::*;
    use axum::http::{header, StatusCode};
    use axum::response::{Html, IntoResponse, Redirect};
    use axum::routing::get;
    use axum::Router;
    use std::net::SocketAddr;

    const PAGE: &str = r#"<!DOCTYPE html>
<html><head><title>My *Test* Page</title>
<style>body { color: red; }</style>
<script>var secret = "do not show";</script>
</head>
<body><h1>Welcome</h1>
<p>Some <b>bold</b> text and a <a href="/next">link</a>.</p>
<script>console.log("hidden script");</script>
<noscript>Enable JavaScript</noscript>
<ul><li>one</li><li>two</li></ul>
</body></html>"#;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const BIG: usize = 6 * 1024 * 1024;
    const MIB: usize = 1024 * 1024;

    async fn serve() -> SocketAddr {
        let app = Router::new()
            .route("/page", get(|| async { Html(PAGE) }))
            .route("/text", get(|| async { "plain text body\nsecond line" }))
            .route(
                "/json",
                get(|| async {
                    ([(header::CONTENT_TYPE, "application/json")], r#"{"answer": 42}"#)
                }),
            )
            .route(
                "/missing",
                get(|| async {
                    (
                        StatusCode::NOT_FOUND,
                        Html("<html><head><title>Not here</title></head><body><h1>Page not found</h1><p>Try the home page.</p><script>x()</script></body></html>"),
                    )
                }),
            )
            .route(
                "/broken",
                get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "database is down") }),
            )
            .route(
                "/image.png",
                get(|| async { ([(header::CONTENT_TYPE, "image/png")], PNG) }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    "late"
                }),
            )
            .route("/redirect", get(|| async { Redirect::temporary("/text") }))
            .route("/loop", get(|| async { Redirect::temporary("/loop") }))
            .route("/big", get(|| async { "a".repeat(BIG) }))
            .route(
                "/latin1",
                get(|| async {
                    (
                        [(header::CONTENT_TYPE, "text/plain; charset=iso-8859-1")],
                        b"caf\xe9".as_slice(),
                    )
                }),
            )
            .route(
                "/bad-utf8",
                get(|| async {
                    (
                        [(header::CONTENT_TYPE, "text/plain")],
                        b"ok \xff\xfe end".as_slice(),
                    )
                }),
            )
            .route(
                "/untyped",
                get(|| async {
                    let mut response =
                        "<html><head><title>Untyped</title></head><body><p>hi</p></body></html>"
                            .into_response();
                    response.headers_mut().remove(header::CONTENT_TYPE);
                    response
                }),
            )
            .route(
                "/empty",
                get(|| async { ([(header::CONTENT_TYPE, "text/html")], "") }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        addr
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder().no_proxy().build().unwrap()
    }

    async fn get_page(path: &str, limits: BrowseLimits) -> (Page, String) {
        let addr = serve().await;
        let url = format!("http://{addr}{path}");
        (browse(&client(), &url, limits).await, url)
    }

    #[tokio::test]
    async fn html_page_becomes_markdown() {
        let (page, url) = get_page("/page", BrowseLimits::default()).await;
        assert!(!page.error, "{}", page.content);
        assert_eq!(page.url, url);
        assert_eq!(page.title.as_deref(), Some("My *Test* Page"));
        assert!(
            page.content
                .starts_with("# My *Test* Page\n\n# Welcome\n\nSome **bold** text"),
            "{}",
            page.content
        );
        assert!(page.content.contains("[link](/next)"), "{}", page.content);
        assert!(page.content.contains("one"));
        for hidden in ["secret", "hidden script", "color: red", "Enable JavaScript"] {
            assert!(
                !page.content.contains(hidden),
                "{hidden} leaked: {}",
                page.content
            );
        }
    }

    #[tokio::test]
    async fn text_page_is_returned_as_is() {
        let (page, _) = get_page("/text", BrowseLimits::default()).await;
        assert!(!page.error);
        assert_eq!(page.title, None);
        assert_eq!(page.content, "plain text body\nsecond line");
    }

    #[tokio::test]
    async fn json_is_returned_as_text() {
        let (page, _) = get_page("/json", BrowseLimits::default()).await;
        assert!(!page.error);
        assert_eq!(page.content, r#"{"answer": 42}"#);
    }

    #[tokio::test]
    async fn not_found_html_includes_excerpt() {
        let (page, url) = get_page("/missing", BrowseLimits::default()).await;
        assert!(page.error);
        assert_eq!(page.url, url);
        assert!(
            page.content
                .starts_with(&format!("HTTP 404 Not Found for {url}.")),
            "{}",
            page.content
        );
        assert!(page.content.contains("Page not found"), "{}", page.content);
        assert!(page.content.contains("Try the home page."));
        assert!(!page.content.contains("x()"));
        assert_eq!(page.title.as_deref(), Some("Not here"));
    }

    #[tokio::test]
    async fn server_error_with_text_body() {
        let (page, url) = get_page("/broken", BrowseLimits::default()).await;
        assert!(page.error);
        assert!(page
            .content
            .starts_with(&format!("HTTP 500 Internal Server Error for {url}.")));
        assert!(page.content.contains("database is down"));
    }

    #[tokio::test]
    async fn png_is_refused_naming_the_type() {
        let (page, url) = get_page("/image.png", BrowseLimits::default()).await;
        assert!(page.error);
        assert_eq!(page.url, url);
        assert!(page.content.contains("\"image/png\""), "{}", page.content);
        assert!(!page.content.contains("PNG"));
    }

    #[tokio::test]
    async fn slow_page_times_out() {
        let limits = BrowseLimits {
            timeout: Duration::from_millis(300),
            ..BrowseLimits::default()
        };
        let started = std::time::Instant::now();
        let (page, url) = get_page("/slow", limits).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(page.error);
        assert_eq!(page.url, url);
        assert!(
            page.content
                .starts_with(&format!("Timed out after 300 ms fetching {url}.")),
            "{}",
            page.content
        );
    }

    #[tokio::test]
    async fn redirect_reports_final_url() {
        let addr = serve().await;
        let page = browse(
            &client(),
            &format!("http://{addr}/redirect"),
            BrowseLimits::default(),
        )
        .await;
        assert!(!page.error, "{}", page.content);
        assert_eq!(page.url, format!("http://{addr}/text"));
        assert!(page.content.starts_with("plain text body"));
    }

    #[tokio::test]
    async fn redirect_loop_is_reported() {
        let (page, _) = get_page("/loop", BrowseLimits::default()).await;
        assert!(page.error);
        assert!(
            page.content.starts_with("Too many redirects"),
            "{}",
            page.content
        );
    }

    #[tokio::test]
    async fn big_body_is_truncated_at_the_cap() {
        let limits = BrowseLimits {
            max_bytes: MIB,
            ..BrowseLimits::default()
        };
        let (page, _) = get_page("/big", limits).await;
        assert!(!page.error);
        let notice = "\n\n[Content truncated: the response is larger than the 1 MiB limit; only its first 1 MiB were read.]";
        assert!(
            page.content.ends_with(notice),
            "{}",
            &page.content[page.content.len() - 200..]
        );
        assert_eq!(page.content.len(), MIB + notice.len());
        assert!(page.content.starts_with("aaaa"));
    }

    #[tokio::test]
    async fn body_exactly_at_cap_is_not_truncated() {
        let limits = BrowseLimits {
            max_bytes: BIG,
            ..BrowseLimits::default()
        };
        let (page, _) = get_page("/big", limits).await;
        assert_eq!(page.content.len(), BIG);
    }

    #[tokio::test]
    async fn invalid_utf8_is_decoded_lossily() {
        let (page, _) = get_page("/bad-utf8", BrowseLimits::default()).await;
        assert!(!page.error);
        assert_eq!(page.content, "ok \u{fffd}\u{fffd} end");
        let (page, _) = get_page("/latin1", BrowseLimits::default()).await;
        assert_eq!(page.content, "café");
    }

    #[tokio::test]
    async fn untyped_html_is_sniffed() {
        let (page, _) = get_page("/untyped", BrowseLimits::default()).await;
        assert!(!page.error, "{}", page.content);
        assert_eq!(page.title.as_deref(), Some("Untyped"));
        assert_eq!(page.content, "# Untyped\n\nhi");
    }

    #[tokio::test]
    async fn empty_page_says_so() {
        let (page, url) = get_page("/empty", BrowseLimits::default()).await;
        assert!(!page.error);
        assert_eq!(page.content, format!("The page at {url} is empty."));
    }

    #[tokio::test]
    async fn refused_url_forms() {
        let c = client();
        let cases = [
            ("file:///etc/passwd", "Only http and https URLs can be browsed, not \"file:///etc/passwd\"."),
            ("ftp://example.com/x", "Only http and https URLs can be browsed, not \"ftp://example.com/x\"."),
            ("not a url", "\"not a url\" is not a valid URL."),
            ("", "No URL was given."),
            ("   ", "No URL was given."),
            ("example.com/page", "\"example.com/page\" is not a full URL. Did you mean \"https://example.com/page\"?"),
            ("localhost:3000", "Did you mean \"http://localhost:3000\"?"),
            ("http://", "\"http://\" is not a valid URL"),
        ];
        for (given, expected) in cases {
            let page = browse(&c, given, BrowseLimits::default()).await;
            assert!(page.error, "{given}");
            assert_eq!(page.url, given);
            assert_eq!(page.title, None);
            assert!(page.content.contains(expected), "{given}: {}", page.content);
        }
    }

    #[tokio::test]
    async fn connection_refused() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}/");
        let page = browse(&client(), &url, BrowseLimits::default()).await;
        assert!(page.error);
        assert_eq!(page.url, url);
        assert!(
            page.content.starts_with(&format!(
                "Connection refused by 127.0.0.1:{port} for {url}."
            )),
            "{}",
            page.content
        );
    }

    #[tokio::test]
    async fn https_to_a_plain_http_server_is_a_tls_error() {
        let addr = serve().await;
        let url = format!("https://{addr}/text");
        let page = browse(&client(), &url, BrowseLimits::default()).await;
        assert!(page.error);
        assert!(
            page.content
                .starts_with(&format!("TLS error connecting to {addr} for {url}: ")),
            "{}",
            page.content
        );
    }

    #[test]
    fn failure_classification() {
        let chain = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            classify_failure(
                &chain(&[
                    "client error (Connect)",
                    "dns error",
                    "failed to lookup address information: Name or service not known"
                ]),
                &[],
                false
            ),
            Failure::Dns
        );
        assert_eq!(
            classify_failure(
                &chain(&[
                    "client error (Connect)",
                    "invalid peer certificate: UnknownIssuer"
                ]),
                &[io::ErrorKind::InvalidData],
                false
            ),
            Failure::Tls
        );
        assert_eq!(
            classify_failure(
                &chain(&["tcp connect error"]),
                &[io::ErrorKind::ConnectionRefused],
                false
            ),
            Failure::Refused
        );
        assert_eq!(
            classify_failure(&chain(&["x"]), &[io::ErrorKind::ConnectionReset], false),
            Failure::Reset
        );
        assert_eq!(
            classify_failure(&chain(&["x"]), &[], true),
            Failure::Redirects
        );
        assert_eq!(
            classify_failure(&chain(&["weird"]), &[], false),
            Failure::Other
        );
    }

    #[test]
    fn content_type_classification() {
        assert_eq!(classify("text/html"), Kind::Html);
        assert_eq!(classify("application/xhtml+xml"), Kind::Html);
        assert_eq!(classify("text/markdown"), Kind::Text);
        assert_eq!(classify("application/vnd.api+json"), Kind::Text);
        assert_eq!(classify("application/xml"), Kind::Text);
        assert_eq!(
            classify("application/pdf"),
            Kind::Other("application/pdf".into())
        );
        assert_eq!(
            classify("application/octet-stream"),
            Kind::Other("application/octet-stream".into())
        );
        assert_eq!(classify(""), Kind::Unknown);
        assert_eq!(sniff(b"  <!DOCTYPE html><p>x"), Kind::Html);
        assert_eq!(sniff(b"just words"), Kind::Text);
        assert!(matches!(sniff(b"\x89PNG\0\0"), Kind::Other(_)));
    }

    #[test]
    fn sizes_and_durations_read_well() {
        assert_eq!(human_size(5 * MIB), "5 MiB");
        assert_eq!(human_size(1536), "1536 bytes");
        assert_eq!(human_size(2048), "2 KiB");
        assert_eq!(human_duration(Duration::from_secs(30)), "30 s");
        assert_eq!(human_duration(Duration::from_millis(300)), "300 ms");
        assert_eq!(human_duration(Duration::from_millis(1500)), "1.5 s");
    }
}
