//! What a cell produced, kept within limits, and how it reads in the observation.

use std::sync::LazyLock;

use super::kernel::CellEnd;

/// Text kept for one cell; beyond it the middle is dropped.
const MAX_TEXT: usize = 2 * 1024 * 1024;
/// Images kept for one cell.
const MAX_IMAGES: usize = 16;
/// Largest image kept (base64 characters).
const MAX_IMAGE: usize = 8 * 1024 * 1024;

/// ANSI escape sequences (CSI and OSC) as IPython writes them in tracebacks.
static ANSI: LazyLock<Option<regex::Regex>> = LazyLock::new(|| {
    regex::Regex::new(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)").ok()
});

/// Removes ANSI escape sequences.
pub fn strip_ansi(text: &str) -> String {
    match ANSI.as_ref() {
        Some(re) => re.replace_all(text, "").into_owned(),
        None => text.to_string(),
    }
}

/// The outputs of one cell, in the order the kernel sent them.
#[derive(Debug)]
pub struct CellOutput {
    text: String,
    dropped: usize,
    /// `data:image/png;base64,…` URLs.
    pub images: Vec<String>,
    images_dropped: usize,
    pub end: CellEnd,
}

impl Default for CellOutput {
    fn default() -> Self {
        CellOutput {
            text: String::new(),
            dropped: 0,
            images: Vec::new(),
            images_dropped: 0,
            end: CellEnd::Finished,
        }
    }
}

impl CellOutput {
    /// Appends text; past [`MAX_TEXT`] the middle is dropped (head and tail are kept).
    pub fn push_text(&mut self, text: &str) {
        self.text.push_str(text);
        if self.text.len() > MAX_TEXT {
            let head = floor_boundary(&self.text, MAX_TEXT / 4);
            let tail = floor_boundary(&self.text, self.text.len() - MAX_TEXT / 2);
            self.dropped += tail - head;
            self.text.replace_range(head..tail, "");
        }
    }

    /// Keeps a base64 PNG (within the count and size limits).
    pub fn push_image(&mut self, base64: &str) {
        let data = base64.trim();
        if self.images.len() >= MAX_IMAGES || data.len() > MAX_IMAGE {
            self.images_dropped += 1;
            return;
        }
        self.images.push(format!("data:image/png;base64,{data}"));
    }

    /// The observation's content: the text without ANSI escapes, a note when the cell
    /// printed nothing, what was dropped, how it ended, then each image as a markdown
    /// image (the Python server's form, which the UI renders).
    pub fn content(&self, restarted: bool) -> String {
        let mut text = strip_ansi(&self.text);
        if self.dropped > 0 {
            let head = floor_boundary(&text, MAX_TEXT / 4);
            text.insert_str(
                head,
                &format!(
                    "\n[... {} bytes of output were dropped ...]\n",
                    self.dropped
                ),
            );
        }
        if text.trim().is_empty() && self.images.is_empty() && self.end == CellEnd::Finished {
            text = "[Code executed successfully with no output]".into();
        }
        let mut parts: Vec<String> = Vec::new();
        if restarted {
            parts.push("[The previous IPython kernel had died, so this cell ran in a new one: variables and imports of earlier cells are gone.]".into());
        }
        let text = text.trim_end_matches('\n');
        if !text.is_empty() {
            parts.push(text.to_string());
        }
        if self.images_dropped > 0 {
            parts.push(format!(
                "[{} image(s) were left out: at most {MAX_IMAGES} images of at most {} MiB each are kept.]",
                self.images_dropped,
                MAX_IMAGE / (1024 * 1024)
            ));
        }
        parts.extend(end_note(&self.end));
        parts.extend(self.images.iter().map(|url| format!("![image]({url})")));
        parts.join("\n")
    }
}

/// What the model should know about how the cell ended.
fn end_note(end: &CellEnd) -> Option<String> {
    match end {
        CellEnd::Finished => None,
        CellEnd::Silent(d) => Some(format!(
            "[The cell produced no new output for {} seconds and was interrupted (KeyboardInterrupt); variables defined before are kept. For long computations print progress, or pass a larger `timeout`.]",
            d.as_secs()
        )),
        CellEnd::TimedOut(d) => Some(format!(
            "[Execution timed out ({} seconds) and the cell was interrupted (KeyboardInterrupt); variables defined before are kept.]",
            d.as_secs()
        )),
        CellEnd::Stopped => Some("[The cell was interrupted by the user (Stop).]".into()),
        CellEnd::Killed => Some("[The cell did not stop when interrupted, so the IPython kernel was killed; the next cell starts a new kernel without the earlier variables and imports.]".into()),
        CellEnd::Died(why) => Some(format!(
            "[The IPython kernel died while running this cell ({why}). The next cell starts a new kernel without the earlier variables and imports.]"
        )),
    }
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_colours_are_stripped_from_tracebacks() {
        assert_eq!(
            strip_ansi("\x1b[0;31mZeroDivisionError\x1b[0m: division by zero"),
            "ZeroDivisionError: division by zero"
        );
    }

    #[test]
    fn huge_text_keeps_head_and_tail_and_says_what_was_dropped() {
        let mut out = CellOutput::default();
        out.push_text("START");
        for _ in 0..(3 * MAX_TEXT / 1000) {
            out.push_text(&"é".repeat(500));
        }
        out.push_text("END");
        let content = out.content(false);
        assert!(content.len() < MAX_TEXT + 200);
        assert!(content.starts_with("START") && content.ends_with("END"));
        assert!(content.contains("bytes of output were dropped"));
    }

    #[test]
    fn a_silent_cell_says_it_ran_and_images_become_markdown() {
        let out = CellOutput::default();
        assert_eq!(
            out.content(false),
            "[Code executed successfully with no output]"
        );
        let mut out = CellOutput::default();
        out.push_image("iVBORw0KGgo=\n");
        assert_eq!(
            out.content(false),
            "![image](data:image/png;base64,iVBORw0KGgo=)"
        );
        assert_eq!(
            out.images,
            vec!["data:image/png;base64,iVBORw0KGgo=".to_string()]
        );
    }
}
