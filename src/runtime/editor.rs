//! OpenHands' `str_replace_editor` (openhands-aci `OHEditor`) on the local filesystem.
//!
//! Commands: `view`, `create`, `str_replace`, `insert`, `undo_edit`, plus the plain
//! `read` and `write` used by `read`/`write` actions. Messages follow upstream wording so
//! that models trained against OpenHands see familiar text.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use similar::TextDiff;

/// Files larger than this are refused (upstream `MAX_FILE_SIZE_MB`).
const MAX_FILE_SIZE: u64 = 10 * 1024 * 1024;
/// How many leading bytes are checked for NUL when deciding whether a file is binary.
const BINARY_SNIFF_LEN: usize = 8 * 1024;
/// Lines of context shown around an edit.
const SNIPPET_CONTEXT: usize = 4;
/// Outputs longer than this many characters are clipped (upstream `MAX_RESPONSE_LEN_CHAR`).
const MAX_RESPONSE_CHARS: usize = 16_000;
/// Undo entries kept per file (upstream `max_history_per_file`).
const MAX_HISTORY_PER_FILE: usize = 10;

const FILE_TRUNCATED_NOTICE: &str = "<response clipped><NOTE>To save on context only part of this file has been shown to you. You should retry this tool after you have searched inside the file with `grep -n` in order to find the line numbers of what you are looking for.</NOTE>";
const DIRECTORY_TRUNCATED_NOTICE: &str = "<response clipped><NOTE>To save on context only part of this directory has been shown to you. You should use `ls -la` instead to view large directories incrementally.</NOTE>";
const CONTENT_TRUNCATED_NOTICE: &str = "<response clipped><NOTE>To save on context only part of the full response has been shown to you.</NOTE>";

/// Errors the model/user sees as an error observation (Display = the message).
#[derive(Debug, thiserror::Error)]
pub enum EditorError {
    /// The path does not exist.
    #[error("The path {} does not exist. Please provide a valid path.", .0.display())]
    NotFound(PathBuf),
    /// A directory was given to a command that needs a file.
    #[error("The path {} is a directory and only the `view` command can be used on directories.", .0.display())]
    IsDirectory(PathBuf),
    /// The path exists but is neither a regular file nor a directory (FIFO, device, socket).
    #[error("The path {} is not a regular file and cannot be viewed or edited as text.", .0.display())]
    NotRegularFile(PathBuf),
    /// NUL bytes in the first 8 KiB, or not valid UTF-8.
    #[error("{} is a binary file and cannot be viewed or edited as text.", .0.display())]
    Binary(PathBuf),
    /// The file exceeds the 10 MiB limit.
    #[error("{} is too large ({size} bytes; the limit is 10 MiB).", .path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
    },
    /// `create` on a path that already exists.
    #[error("File already exists at: {}. Cannot overwrite files using command `create`.", .0.display())]
    AlreadyExists(PathBuf),
    /// A parameter is out of range or not allowed here.
    #[error("Invalid `{parameter}` parameter: {value}. {hint}")]
    InvalidParameter {
        /// The parameter's name, e.g. `view_range`.
        parameter: &'static str,
        /// The value as given, e.g. `[5, 2]`.
        value: String,
        /// What a valid value looks like.
        hint: String,
    },
    /// `str_replace` with an empty `old_str`.
    #[error("No replacement was performed, `old_str` is empty. Give a non-empty `old_str` that appears exactly once in {}.", .0.display())]
    EmptyOldStr(PathBuf),
    /// `str_replace` where `new_str` equals `old_str`.
    #[error("No replacement was performed. `new_str` and `old_str` must be different.")]
    SameOldNew,
    /// `old_str` does not occur in the file.
    #[error("No replacement was performed, old_str `{old_str}` did not appear verbatim in {}.", .path.display())]
    OldStrNotFound {
        /// The string searched for.
        old_str: String,
        /// The file.
        path: PathBuf,
    },
    /// `old_str` occurs more than once.
    #[error("No replacement was performed. Multiple occurrences of old_str `{old_str}` in lines {lines:?}. Please ensure it is unique.")]
    OldStrNotUnique {
        /// The string searched for.
        old_str: String,
        /// 1-based lines where an occurrence starts.
        lines: Vec<usize>,
    },
    /// `undo_edit` without a recorded edit.
    #[error("No edit history found for {}.", .0.display())]
    NoHistory(PathBuf),
    /// An I/O failure.
    #[error("Ran into {source} while trying to {action} {}", .path.display())]
    Io {
        /// What was being done, e.g. `read` or `write to`.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

impl EditorError {
    fn io(action: &'static str, path: &Path, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// What a successful edit reports (maps to the `edit` observation's content and extras).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditOutcome {
    /// The observation text shown to the model.
    pub content: String,
    /// Whether the file existed before the edit.
    pub prev_exist: bool,
    /// The file's text before the edit (`None` if it did not exist or was not text).
    pub old_content: Option<String>,
    /// The file's text after the edit (`None` if it no longer exists or is not text).
    pub new_content: Option<String>,
    /// Unified diff from the old to the new content.
    pub diff: String,
}

/// Per-conversation editor state (undo history per file).
#[derive(Debug, Default)]
pub struct Editor {
    /// Per file, the raw bytes before each edit (`None`: the file did not exist), oldest first.
    history: HashMap<PathBuf, Vec<Option<Vec<u8>>>>,
}

impl Editor {
    /// `view`: a file as `cat -n` output (optionally a 1-based inclusive line range, `-1` =
    /// to the end), or a directory listing two levels deep.
    pub fn view(&self, path: &Path, view_range: Option<[i64; 2]>) -> Result<String, EditorError> {
        let meta = metadata(path)?;
        if meta.is_dir() {
            if let Some(range) = view_range {
                return Err(EditorError::InvalidParameter {
                    parameter: "view_range",
                    value: format_range(range),
                    hint: "The `view_range` parameter is not allowed when `path` points to a directory.".into(),
                });
            }
            return view_directory(path);
        }
        let text = load_text(path, &meta)?;
        let lines = display_lines(&text);
        let header = format!(
            "Here's the result of running `cat -n` on {}:\n",
            path.display()
        );
        let Some(range) = view_range else {
            let body = number_lines(&lines, 1);
            return Ok(header + &truncate(body, FILE_TRUNCATED_NOTICE));
        };

        let [start, end] = range;
        let num_lines = lines.len() as i64;
        if start < 1 || start > num_lines {
            return Err(EditorError::InvalidParameter {
                parameter: "view_range",
                value: format_range(range),
                hint: format!(
                    "Its first element `{start}` should be within the range of lines of the file: [1, {num_lines}]."
                ),
            });
        }
        let mut warning = None;
        let end = if end == -1 {
            num_lines
        } else if end > num_lines {
            warning = Some(format!(
                "We only show up to {num_lines} since there's only {num_lines} lines in this file"
            ));
            num_lines
        } else {
            end
        };
        if end < start {
            return Err(EditorError::InvalidParameter {
                parameter: "view_range",
                value: format_range(range),
                hint: format!(
                    "Its second element `{end}` should be greater than or equal to the first element `{start}`."
                ),
            });
        }
        // Both bounds are now within 1..=num_lines.
        let (first, last) = (start as usize, end as usize);
        let body = number_lines(&lines[first - 1..last], first);
        let mut out = header + &truncate(body, FILE_TRUNCATED_NOTICE);
        if let Some(warning) = warning {
            let _ = write!(out, "\nNOTE: {warning}\n");
        }
        Ok(out)
    }

    /// `create`: writes a new file (creating parent directories); refuses existing paths.
    pub fn create(&mut self, path: &Path, file_text: &str) -> Result<EditOutcome, EditorError> {
        if fs::symlink_metadata(path).is_ok() {
            return Err(EditorError::AlreadyExists(path.to_path_buf()));
        }
        write_new(path, file_text.as_bytes())?;
        self.push_history(path, None);
        Ok(EditOutcome {
            content: format!("File created successfully at: {}", path.display()),
            prev_exist: false,
            old_content: None,
            new_content: Some(file_text.to_string()),
            diff: unified_diff(path, "", file_text),
        })
    }

    /// `str_replace`: replaces the single occurrence of `old_str` with `new_str`.
    pub fn str_replace(
        &mut self,
        path: &Path,
        old_str: &str,
        new_str: &str,
    ) -> Result<EditOutcome, EditorError> {
        let old_text = load_existing_file(path)?;
        if old_str.is_empty() {
            return Err(EditorError::EmptyOldStr(path.to_path_buf()));
        }
        if old_str == new_str {
            return Err(EditorError::SameOldNew);
        }
        let crlf = is_crlf(&old_text);
        let work = to_lf(&old_text, crlf);
        let needle = to_lf(old_str, crlf);
        let replacement = to_lf(new_str, crlf);

        let positions: Vec<usize> = work
            .match_indices(needle.as_str())
            .map(|(i, _)| i)
            .collect();
        let idx = match positions.as_slice() {
            [] => {
                return Err(EditorError::OldStrNotFound {
                    old_str: old_str.to_string(),
                    path: path.to_path_buf(),
                })
            }
            [idx] => *idx,
            _ => {
                let mut lines: Vec<usize> = positions.iter().map(|&i| line_of(&work, i)).collect();
                lines.dedup();
                return Err(EditorError::OldStrNotUnique {
                    old_str: old_str.to_string(),
                    lines,
                });
            }
        };

        let mut new_work = String::with_capacity(work.len() + replacement.len());
        new_work.push_str(&work[..idx]);
        new_work.push_str(&replacement);
        new_work.push_str(&work[idx + needle.len()..]);
        let new_text = from_lf(&new_work, crlf);
        write_existing(path, &new_text)?;
        self.push_history(path, Some(old_text.clone().into_bytes()));

        let first = line_of(&work, idx);
        let last = first + replacement.matches('\n').count();
        let snippet = snippet(&new_work, first, last);
        let content = format!(
            "The file {p} has been edited. Here's the result of running `cat -n` on a snippet of {p}:\n{snippet}\nReview the changes and make sure they are as expected. Edit the file again if necessary.",
            p = path.display()
        );
        Ok(edited(path, content, old_text, new_text))
    }

    /// `insert`: inserts `new_str` as whole lines after line `insert_line` (0 = at the top).
    pub fn insert(
        &mut self,
        path: &Path,
        insert_line: i64,
        new_str: &str,
    ) -> Result<EditOutcome, EditorError> {
        let old_text = load_existing_file(path)?;
        let crlf = is_crlf(&old_text);
        let work = to_lf(&old_text, crlf);
        let body = work.strip_suffix('\n').unwrap_or(&work);
        let mut lines: Vec<&str> = if work.is_empty() {
            Vec::new()
        } else {
            body.split('\n').collect()
        };
        let count = lines.len();
        if insert_line < 0 || insert_line > count as i64 {
            return Err(EditorError::InvalidParameter {
                parameter: "insert_line",
                value: insert_line.to_string(),
                hint: format!("It should be within the range of lines of the file: [0, {count}]"),
            });
        }
        let at = insert_line as usize;
        let inserted = to_lf(new_str, crlf);
        let new_lines: Vec<&str> = inserted.split('\n').collect();
        let added = new_lines.len();
        lines.splice(at..at, new_lines);
        let mut new_work = lines.join("\n");
        // An empty file counts as newline-terminated so the inserted text ends with one.
        if work.is_empty() || work.ends_with('\n') {
            new_work.push('\n');
        }
        let new_text = from_lf(&new_work, crlf);
        write_existing(path, &new_text)?;
        self.push_history(path, Some(old_text.clone().into_bytes()));

        let snippet = snippet(&new_work, at + 1, at + added);
        let content = format!(
            "The file {} has been edited. Here's the result of running `cat -n` on a snippet of the edited file:\n{snippet}\nReview the changes and make sure they are as expected (correct indentation, no duplicate lines, etc). Edit the file again if necessary.",
            path.display()
        );
        Ok(edited(path, content, old_text, new_text))
    }

    /// `undo_edit`: restores the file as it was before its last edit (deleting it if that
    /// edit created it).
    pub fn undo_edit(&mut self, path: &Path) -> Result<EditOutcome, EditorError> {
        let meta = metadata(path)?;
        if meta.is_dir() {
            return Err(EditorError::IsDirectory(path.to_path_buf()));
        }
        let Some(previous) = self.history.get(path).and_then(|h| h.last()).cloned() else {
            return Err(EditorError::NoHistory(path.to_path_buf()));
        };
        let current = if meta.len() <= MAX_FILE_SIZE {
            let bytes = fs::read(path).map_err(|e| EditorError::io("read", path, e))?;
            as_text(bytes)
        } else {
            None
        };

        let (content, restored) = match previous {
            Some(bytes) => {
                fs::write(path, &bytes).map_err(|e| EditorError::io("write to", path, e))?;
                let restored = as_text(bytes);
                let shown = match &restored {
                    Some(text) => format!(
                        "Here's the result of running `cat -n` on {}:\n{}",
                        path.display(),
                        truncate(number_lines(&display_lines(text), 1), FILE_TRUNCATED_NOTICE)
                    ),
                    None => "The restored file is not text, so it is not shown.".to_string(),
                };
                (
                    format!(
                        "Last edit to {} undone successfully. {shown}",
                        path.display()
                    ),
                    restored,
                )
            }
            None => {
                fs::remove_file(path).map_err(|e| EditorError::io("remove", path, e))?;
                (
                    format!(
                        "Last edit to {p} undone successfully. {p} did not exist before that edit, so it has been deleted.",
                        p = path.display()
                    ),
                    None,
                )
            }
        };
        if let Some(entries) = self.history.get_mut(path) {
            entries.pop();
            if entries.is_empty() {
                self.history.remove(path);
            }
        }
        let diff = unified_diff(
            path,
            current.as_deref().unwrap_or(""),
            restored.as_deref().unwrap_or(""),
        );
        Ok(EditOutcome {
            content,
            prev_exist: true,
            old_content: current,
            new_content: restored,
            diff,
        })
    }

    /// Plain read for `read` actions: lines [start, end) (0-based, end -1 = to the end), as text.
    pub fn read(&self, path: &Path, start: i64, end: i64) -> Result<String, EditorError> {
        let text = load_existing_file(path)?;
        if start <= 0 && end == -1 {
            return Ok(text);
        }
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let count = lines.len();
        let start = clamp_index(start, count);
        let end = if end == -1 {
            count
        } else {
            clamp_index(end, count)
        };
        if end <= start {
            return Ok(String::new());
        }
        Ok(lines[start..end].concat())
    }

    /// `write` action: creates parent directories; error if path is a directory.
    ///
    /// Replaces the whole file. The outcome's `content` is empty, like upstream's
    /// `FileWriteObservation`.
    pub fn write(&mut self, path: &Path, content: &str) -> Result<EditOutcome, EditorError> {
        let previous = match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => return Err(EditorError::IsDirectory(path.to_path_buf())),
            Ok(meta) if !meta.is_file() => {
                return Err(EditorError::NotRegularFile(path.to_path_buf()))
            }
            Ok(meta) if meta.len() > MAX_FILE_SIZE => Some(None),
            Ok(_) => Some(Some(
                fs::read(path).map_err(|e| EditorError::io("read", path, e))?,
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(EditorError::io("read", path, e)),
        };
        let prev_exist = previous.is_some();
        match &previous {
            Some(_) => write_existing(path, content)?,
            None => write_new(path, content.as_bytes())?,
        }
        let old_content = match previous {
            // Too large to keep: older undo entries no longer lead back to this file.
            Some(None) => {
                self.history.remove(path);
                None
            }
            Some(Some(bytes)) => {
                let text = as_text(bytes.clone());
                self.push_history(path, Some(bytes));
                text
            }
            None => {
                self.push_history(path, None);
                None
            }
        };
        let diff = unified_diff(path, old_content.as_deref().unwrap_or(""), content);
        Ok(EditOutcome {
            content: String::new(),
            prev_exist,
            old_content,
            new_content: Some(content.to_string()),
            diff,
        })
    }

    fn push_history(&mut self, path: &Path, previous: Option<Vec<u8>>) {
        let entries = self.history.entry(path.to_path_buf()).or_default();
        if entries.len() >= MAX_HISTORY_PER_FILE {
            entries.remove(0);
        }
        entries.push(previous);
    }
}

fn metadata(path: &Path) -> Result<fs::Metadata, EditorError> {
    fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => EditorError::NotFound(path.to_path_buf()),
        _ => EditorError::io("read", path, e),
    })
}

/// Reads an existing regular text file, enforcing the size and binary checks.
fn load_existing_file(path: &Path) -> Result<String, EditorError> {
    let meta = metadata(path)?;
    if meta.is_dir() {
        return Err(EditorError::IsDirectory(path.to_path_buf()));
    }
    load_text(path, &meta)
}

fn load_text(path: &Path, meta: &fs::Metadata) -> Result<String, EditorError> {
    if !meta.is_file() {
        return Err(EditorError::NotRegularFile(path.to_path_buf()));
    }
    if meta.len() > MAX_FILE_SIZE {
        return Err(EditorError::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
        });
    }
    let bytes = fs::read(path).map_err(|e| EditorError::io("read", path, e))?;
    as_text(bytes).ok_or_else(|| EditorError::Binary(path.to_path_buf()))
}

/// The bytes as text, or `None` if they look binary (NUL early on, or invalid UTF-8).
fn as_text(bytes: Vec<u8>) -> Option<String> {
    let head = &bytes[..bytes.len().min(BINARY_SNIFF_LEN)];
    if head.contains(&0) {
        return None;
    }
    String::from_utf8(bytes).ok()
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<(), EditorError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| EditorError::io("create the parent directories of", path, e))?;
    }
    fs::write(path, bytes).map_err(|e| EditorError::io("write to", path, e))
}

fn write_existing(path: &Path, text: &str) -> Result<(), EditorError> {
    fs::write(path, text).map_err(|e| EditorError::io("write to", path, e))
}

fn edited(path: &Path, content: String, old_text: String, new_text: String) -> EditOutcome {
    let diff = unified_diff(path, &old_text, &new_text);
    EditOutcome {
        content,
        prev_exist: true,
        old_content: Some(old_text),
        new_content: Some(new_text),
        diff,
    }
}

fn unified_diff(path: &Path, old: &str, new: &str) -> String {
    let name = path.display().to_string();
    TextDiff::from_lines(old, new)
        .unified_diff()
        .header(&name, &name)
        .to_string()
}

/// True if the text uses CRLF line endings throughout (and has at least one).
fn is_crlf(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut seen = false;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            if i == 0 || bytes[i - 1] != b'\r' {
                return false;
            }
            seen = true;
        }
    }
    seen
}

fn to_lf(text: &str, crlf: bool) -> String {
    if crlf {
        text.replace("\r\n", "\n")
    } else {
        text.to_string()
    }
}

fn from_lf(text: &str, crlf: bool) -> String {
    if crlf {
        text.replace('\n', "\r\n")
    } else {
        text.to_string()
    }
}

/// 1-based line number of byte offset `idx`.
fn line_of(text: &str, idx: usize) -> usize {
    text[..idx].matches('\n').count() + 1
}

/// The file's lines as `cat -n` shows them: no terminators, no phantom line after a final
/// newline, a trailing `\r` dropped.
fn display_lines(text: &str) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    text.strip_suffix('\n')
        .unwrap_or(text)
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .collect()
}

/// `cat -n` formatting: the number right-aligned in 6 columns, a tab, the line, a newline.
fn number_lines(lines: &[&str], first: usize) -> String {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let _ = writeln!(out, "{:6}\t{line}", first + i);
    }
    out
}

/// Lines `first..=last` (1-based) of `text` with `SNIPPET_CONTEXT` lines around them,
/// numbered, joined by newlines (no trailing newline).
fn snippet(text: &str, first: usize, last: usize) -> String {
    let lines = display_lines(text);
    let from = first.saturating_sub(SNIPPET_CONTEXT).max(1);
    let to = (last + SNIPPET_CONTEXT).min(lines.len());
    if from > to {
        return String::new();
    }
    let mut out = number_lines(&lines[from - 1..to], from);
    out.pop();
    truncate(out, CONTENT_TRUNCATED_NOTICE)
}

fn truncate(mut text: String, notice: &str) -> String {
    if let Some((cut, _)) = text.char_indices().nth(MAX_RESPONSE_CHARS) {
        text.truncate(cut);
        text.push_str(notice);
    }
    text
}

fn format_range([a, b]: [i64; 2]) -> String {
    format!("[{a}, {b}]")
}

fn clamp_index(i: i64, len: usize) -> usize {
    usize::try_from(i.max(0)).map_or(len, |i| i.min(len))
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

fn view_directory(path: &Path) -> Result<String, EditorError> {
    let read = |dir: &Path| -> io::Result<Vec<(PathBuf, bool)>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if is_hidden(&name) {
                continue;
            }
            let child = dir.join(&name);
            // Follow symlinks like `find -L`.
            let is_dir = fs::metadata(&child).is_ok_and(|m| m.is_dir());
            out.push((child, is_dir));
        }
        Ok(out)
    };
    let hidden = fs::read_dir(path)
        .map_err(|e| EditorError::io("list", path, e))?
        .filter_map(Result::ok)
        .filter(|e| is_hidden(&e.file_name()))
        .count();
    let children = read(path).map_err(|e| EditorError::io("list", path, e))?;
    let mut entries = Vec::new();
    for (child, is_dir) in children {
        if is_dir {
            // Unreadable subdirectories are listed without their contents.
            entries.extend(read(&child).unwrap_or_default());
        }
        entries.push((child, is_dir));
    }
    entries.sort_by(|a, b| a.0.as_os_str().cmp(b.0.as_os_str()));

    let mut listing = format!("{}/\n", path.display());
    for (entry, is_dir) in &entries {
        let _ = writeln!(
            listing,
            "{}{}",
            entry.display(),
            if *is_dir { "/" } else { "" }
        );
    }
    listing.pop();
    let mut out = format!(
        "Here's the files and directories up to 2 levels deep in {}, excluding hidden items:\n{}",
        path.display(),
        truncate(listing, DIRECTORY_TRUNCATED_NOTICE)
    );
    if hidden > 0 {
        let _ = write!(
            out,
            "\n\n{hidden} hidden files/directories in this directory are excluded. You can use 'ls -la {}' to see them.",
            path.display()
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Editor) {
        (tempfile::tempdir().unwrap(), Editor::default())
    }

    fn write(path: &Path, text: &str) {
        fs::write(path, text).unwrap();
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap()
    }

    fn ten_lines(dir: &Path) -> PathBuf {
        let p = dir.join("ten.txt");
        let text: String = (1..=10).map(|i| format!("line {i}\n")).collect();
        write(&p, &text);
        p
    }

    #[test]
    fn view_whole_file() {
        let (dir, ed) = setup();
        let p = dir.path().join("a.py");
        write(&p, "print(1)\n\tindented\n");
        let out = ed.view(&p, None).unwrap();
        assert_eq!(
            out,
            format!(
                "Here's the result of running `cat -n` on {}:\n     1\tprint(1)\n     2\t\tindented\n",
                p.display()
            )
        );
    }

    #[test]
    fn view_empty_file() {
        let (dir, ed) = setup();
        let p = dir.path().join("e.txt");
        write(&p, "");
        let out = ed.view(&p, None).unwrap();
        assert_eq!(
            out,
            format!(
                "Here's the result of running `cat -n` on {}:\n",
                p.display()
            )
        );
    }

    #[test]
    fn view_range_variants() {
        let (dir, ed) = setup();
        let p = ten_lines(dir.path());
        let out = ed.view(&p, Some([3, 4])).unwrap();
        assert!(
            out.ends_with(":\n     3\tline 3\n     4\tline 4\n"),
            "{out}"
        );
        let out = ed.view(&p, Some([9, -1])).unwrap();
        assert!(
            out.ends_with(":\n     9\tline 9\n    10\tline 10\n"),
            "{out}"
        );
        let out = ed.view(&p, Some([10, 20])).unwrap();
        assert!(out.contains("    10\tline 10\n"));
        assert!(out
            .ends_with("\nNOTE: We only show up to 10 since there's only 10 lines in this file\n"));
    }

    #[test]
    fn view_range_errors() {
        let (dir, ed) = setup();
        let p = ten_lines(dir.path());
        let err = ed.view(&p, Some([5, 2])).unwrap_err().to_string();
        assert_eq!(err, "Invalid `view_range` parameter: [5, 2]. Its second element `2` should be greater than or equal to the first element `5`.");
        let err = ed.view(&p, Some([0, 3])).unwrap_err().to_string();
        assert_eq!(err, "Invalid `view_range` parameter: [0, 3]. Its first element `0` should be within the range of lines of the file: [1, 10].");
        let err = ed.view(&p, Some([11, -1])).unwrap_err().to_string();
        assert!(err.contains(
            "Its first element `11` should be within the range of lines of the file: [1, 10]."
        ));
        let err = ed.view(&p, Some([2, -5])).unwrap_err().to_string();
        assert!(err.contains("Its second element `-5`"));
    }

    #[test]
    fn view_directory_listing() {
        let (dir, ed) = setup();
        let root = dir.path();
        fs::create_dir_all(root.join("src/deep/deeper")).unwrap();
        fs::create_dir_all(root.join(".git/objects")).unwrap();
        write(&root.join("src/main.rs"), "");
        write(&root.join("src/.hidden"), "");
        write(&root.join("src/deep/too_deep.rs"), "");
        write(&root.join("b.txt"), "");
        write(&root.join(".env"), "");
        let out = ed.view(root, None).unwrap();
        let r = root.display();
        assert_eq!(
            out,
            format!(
                "Here's the files and directories up to 2 levels deep in {r}, excluding hidden items:\n\
                 {r}/\n{r}/b.txt\n{r}/src/\n{r}/src/deep/\n{r}/src/main.rs\n\n\
                 2 hidden files/directories in this directory are excluded. You can use 'ls -la {r}' to see them."
            )
        );
    }

    #[test]
    fn view_directory_rejects_range() {
        let (dir, ed) = setup();
        let err = ed.view(dir.path(), Some([1, 2])).unwrap_err().to_string();
        assert_eq!(err, "Invalid `view_range` parameter: [1, 2]. The `view_range` parameter is not allowed when `path` points to a directory.");
    }

    #[test]
    fn view_truncates_huge_output() {
        let (dir, ed) = setup();
        let p = dir.path().join("big.txt");
        write(&p, &format!("{}\n", "x".repeat(100)).repeat(500));
        let out = ed.view(&p, None).unwrap();
        assert!(out.ends_with(FILE_TRUNCATED_NOTICE));
        assert!(out.chars().count() < MAX_RESPONSE_CHARS + 400);
    }

    #[test]
    fn create_new_file_with_parents_and_undo() {
        let (dir, mut ed) = setup();
        let p = dir.path().join("new/sub/file.txt");
        let out = ed.create(&p, "hello\n").unwrap();
        assert_eq!(
            out.content,
            format!("File created successfully at: {}", p.display())
        );
        assert!(!out.prev_exist);
        assert_eq!(out.old_content, None);
        assert_eq!(out.new_content.as_deref(), Some("hello\n"));
        assert!(out.diff.contains("+hello"), "{}", out.diff);
        assert!(out
            .diff
            .starts_with(&format!("--- {}\n+++ {}\n", p.display(), p.display())));
        assert_eq!(read(&p), "hello\n");

        let undo = ed.undo_edit(&p).unwrap();
        assert!(!p.exists());
        assert!(undo.content.starts_with(&format!(
            "Last edit to {} undone successfully.",
            p.display()
        )));
        assert_eq!(undo.old_content.as_deref(), Some("hello\n"));
        assert_eq!(undo.new_content, None);
    }

    #[test]
    fn create_refuses_existing() {
        let (dir, mut ed) = setup();
        let p = dir.path().join("a.txt");
        write(&p, "x");
        let err = ed.create(&p, "y").unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "File already exists at: {}. Cannot overwrite files using command `create`.",
                p.display()
            )
        );
        let err = ed.create(dir.path(), "y").unwrap_err();
        assert!(matches!(err, EditorError::AlreadyExists(_)));
        assert_eq!(read(&p), "x");
    }

    #[test]
    fn str_replace_success_snippet_and_undo() {
        let (dir, mut ed) = setup();
        let p = ten_lines(dir.path());
        let before = read(&p);
        let out = ed
            .str_replace(&p, "line 6\n", "six\nsix and a half\n")
            .unwrap();
        let ps = p.display();
        assert_eq!(
            out.content,
            format!(
                "The file {ps} has been edited. Here's the result of running `cat -n` on a snippet of {ps}:\n\
                 \u{20}    2\tline 2\n     3\tline 3\n     4\tline 4\n     5\tline 5\n     6\tsix\n     7\tsix and a half\n     8\tline 7\n     9\tline 8\n    10\tline 9\n    11\tline 10\n\
                 Review the changes and make sure they are as expected. Edit the file again if necessary."
            )
        );
        assert!(out.prev_exist);
        assert_eq!(out.old_content.as_deref(), Some(before.as_str()));
        assert_eq!(out.new_content.as_deref(), Some(read(&p).as_str()));
        assert!(
            out.diff.contains("-line 6\n+six\n+six and a half\n"),
            "{}",
            out.diff
        );

        let undo = ed.undo_edit(&p).unwrap();
        assert_eq!(read(&p), before);
        assert!(undo.content.starts_with(&format!(
            "Last edit to {ps} undone successfully. Here's the result of running `cat -n` on {ps}:\n     1\tline 1\n"
        )));
        assert_eq!(undo.new_content.as_deref(), Some(before.as_str()));
        assert!(undo.diff.contains("+line 6"));
        let err = ed.undo_edit(&p).unwrap_err().to_string();
        assert_eq!(err, format!("No edit history found for {ps}."));
    }

    #[test]
    fn str_replace_not_found() {
        let (dir, mut ed) = setup();
        let p = ten_lines(dir.path());
        let err = ed.str_replace(&p, "nope", "x").unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "No replacement was performed, old_str `nope` did not appear verbatim in {}.",
                p.display()
            )
        );
    }

    #[test]
    fn str_replace_multiple() {
        let (dir, mut ed) = setup();
        let p = dir.path().join("m.txt");
        write(&p, "a\nb\nfoo\nc\nd\ne\nfoo foo\n");
        let err = ed.str_replace(&p, "foo", "bar").unwrap_err().to_string();
        assert_eq!(err, "No replacement was performed. Multiple occurrences of old_str `foo` in lines [3, 7]. Please ensure it is unique.");
        assert_eq!(read(&p), "a\nb\nfoo\nc\nd\ne\nfoo foo\n");
    }

    #[test]
    fn str_replace_empty_and_same() {
        let (dir, mut ed) = setup();
        let p = ten_lines(dir.path());
        assert!(matches!(
            ed.str_replace(&p, "", "x"),
            Err(EditorError::EmptyOldStr(_))
        ));
        assert!(matches!(
            ed.str_replace(&p, "line 1", "line 1"),
            Err(EditorError::SameOldNew)
        ));
        assert!(matches!(ed.undo_edit(&p), Err(EditorError::NoHistory(_))));
    }

    #[test]
    fn str_replace_deletion_with_empty_new_str() {
        let (dir, mut ed) = setup();
        let p = dir.path().join("d.txt");
        write(&p, "keep\ndrop\nkeep2\n");
        ed.str_replace(&p, "drop\n", "").unwrap();
        assert_eq!(read(&p), "keep\nkeep2\n");
    }

    #[test]
    fn insert_variants_and_undo() {
        let (dir, mut ed) = setup();
        let p = dir.path().join("i.txt");
        write(&p, "a\nb\nc\n");
        let out = ed.insert(&p, 0, "top").unwrap();
        assert_eq!(read(&p), "top\na\nb\nc\n");
        assert_eq!(
            out.content,
            format!(
                "The file {} has been edited. Here's the result of running `cat -n` on a snippet of the edited file:\n\
                 \u{20}    1\ttop\n     2\ta\n     3\tb\n     4\tc\n\
                 Review the changes and make sure they are as expected (correct indentation, no duplicate lines, etc). Edit the file again if necessary.",
                p.display()
            )
        );
        assert_eq!(out.old_content.as_deref(), Some("a\nb\nc\n"));
        assert_eq!(out.new_content.as_deref(), Some("top\na\nb\nc\n"));
        assert!(out.diff.contains("+top"));

        ed.insert(&p, 4, "x\n\ty").unwrap();
        assert_eq!(read(&p), "top\na\nb\nc\nx\n\ty\n");
        ed.insert(&p, 2, "mid").unwrap();
        assert_eq!(read(&p), "top\na\nmid\nb\nc\nx\n\ty\n");

        ed.undo_edit(&p).unwrap();
        assert_eq!(read(&p), "top\na\nb\nc\nx\n\ty\n");
        ed.undo_edit(&p).unwrap();
        ed.undo_edit(&p).unwrap();
        assert_eq!(read(&p), "a\nb\nc\n");
    }

    #[test]
    fn insert_snippet_window() {
        let (dir, mut ed) = setup();
        let p = ten_lines(dir.path());
        let out = ed.insert(&p, 5, "new").unwrap();
        let snippet: Vec<&str> = out
            .content
            .lines()
            .skip(1)
            .take_while(|l| !l.starts_with("Review"))
            .collect();
        assert_eq!(snippet.first(), Some(&"     2\tline 2"));
        assert_eq!(snippet.get(4), Some(&"     6\tnew"));
        assert_eq!(snippet.last(), Some(&"    10\tline 9"));
    }

    #[test]
    fn insert_out_of_range() {
        let (dir, mut ed) = setup();
        let p = ten_lines(dir.path());
        let err = ed.insert(&p, 11, "x").unwrap_err().to_string();
        assert_eq!(err, "Invalid `insert_line` parameter: 11. It should be within the range of lines of the file: [0, 10]");
        let err = ed.insert(&p, -1, "x").unwrap_err().to_string();
        assert!(err.starts_with("Invalid `insert_line` parameter: -1."));
    }

    #[test]
    fn insert_into_empty_file() {
        let (dir, mut ed) = setup();
        let p = dir.path().join("e.txt");
        write(&p, "");
        ed.insert(&p, 0, "first").unwrap();
        assert_eq!(read(&p), "first\n");
    }

    #[test]
    fn no_trailing_newline_is_preserved() {
        let (dir, mut ed) = setup();
        let p = dir.path().join("n.txt");
        write(&p, "a\nb");
        let out = ed.view(&p, None).unwrap();
        assert!(out.ends_with("     1\ta\n     2\tb\n"));
        ed.insert(&p, 2, "c").unwrap();
        assert_eq!(read(&p), "a\nb\nc");
        ed.insert(&p, 1, "x").unwrap();
        assert_eq!(read(&p), "a\nx\nb\nc");
        ed.str_replace(&p, "c", "d").unwrap();
        assert_eq!(read(&p), "a\nx\nb\nd");
        ed.undo_edit(&p).unwrap();
        assert_eq!(read(&p), "a\nx\nb\nc");
    }

    #[test]
    fn crlf_files_keep_crlf() {
        let (dir, mut ed) = setup();
        let p = dir.path().join("w.txt");
        write(&p, "one\r\ntwo\r\nthree\r\n");
        let out = ed.view(&p, None).unwrap();
        assert!(
            out.ends_with("     1\tone\n     2\ttwo\n     3\tthree\n"),
            "{out:?}"
        );
        // A multi-line old_str written with LF still matches a CRLF file.
        let out = ed.str_replace(&p, "one\ntwo", "uno\ndos").unwrap();
        assert_eq!(read(&p), "uno\r\ndos\r\nthree\r\n");
        assert!(out.content.contains("     1\tuno\n     2\tdos\n"));
        ed.insert(&p, 3, "four\nfive").unwrap();
        assert_eq!(read(&p), "uno\r\ndos\r\nthree\r\nfour\r\nfive\r\n");
        ed.undo_edit(&p).unwrap();
        ed.undo_edit(&p).unwrap();
        assert_eq!(read(&p), "one\r\ntwo\r\nthree\r\n");
        assert_eq!(ed.read(&p, 1, 2).unwrap(), "two\r\n");
    }

    #[test]
    fn mixed_line_endings_are_left_alone() {
        let (dir, mut ed) = setup();
        let p = dir.path().join("mixed.txt");
        write(&p, "a\r\nb\nc\r\n");
        ed.str_replace(&p, "b", "B").unwrap();
        assert_eq!(read(&p), "a\r\nB\nc\r\n");
    }

    #[test]
    fn unicode_content() {
        let (dir, mut ed) = setup();
        let p = dir.path().join("u.txt");
        write(&p, "héllo wörld\n日本語テキスト\n🦀 crab\n");
        let out = ed.view(&p, Some([2, 3])).unwrap();
        assert!(out.ends_with("     2\t日本語テキスト\n     3\t🦀 crab\n"));
        ed.str_replace(&p, "日本語", "にほんご").unwrap();
        assert_eq!(read(&p), "héllo wörld\nにほんごテキスト\n🦀 crab\n");
        ed.insert(&p, 1, "ünïcödé").unwrap();
        assert_eq!(ed.read(&p, 1, 2).unwrap(), "ünïcödé\n");
        ed.undo_edit(&p).unwrap();
        ed.undo_edit(&p).unwrap();
        assert_eq!(read(&p), "héllo wörld\n日本語テキスト\n🦀 crab\n");
    }

    #[test]
    fn tabs_are_kept() {
        let (dir, mut ed) = setup();
        let p = dir.path().join("t.go");
        write(&p, "func f() {\n\treturn 1\n}\n");
        ed.str_replace(&p, "\treturn 1", "\treturn 2").unwrap();
        assert_eq!(read(&p), "func f() {\n\treturn 2\n}\n");
    }

    #[test]
    fn missing_path_errors() {
        let (dir, mut ed) = setup();
        let p = dir.path().join("missing.txt");
        let msg = format!(
            "The path {} does not exist. Please provide a valid path.",
            p.display()
        );
        assert_eq!(ed.view(&p, None).unwrap_err().to_string(), msg);
        assert_eq!(ed.str_replace(&p, "a", "b").unwrap_err().to_string(), msg);
        assert_eq!(ed.insert(&p, 0, "a").unwrap_err().to_string(), msg);
        assert_eq!(ed.undo_edit(&p).unwrap_err().to_string(), msg);
        assert_eq!(ed.read(&p, 0, -1).unwrap_err().to_string(), msg);
    }

    #[test]
    fn directory_errors() {
        let (dir, mut ed) = setup();
        let p = dir.path();
        let msg = format!(
            "The path {} is a directory and only the `view` command can be used on directories.",
            p.display()
        );
        assert_eq!(ed.str_replace(p, "a", "b").unwrap_err().to_string(), msg);
        assert_eq!(ed.insert(p, 0, "a").unwrap_err().to_string(), msg);
        assert_eq!(ed.undo_edit(p).unwrap_err().to_string(), msg);
        assert_eq!(ed.read(p, 0, -1).unwrap_err().to_string(), msg);
        assert_eq!(ed.write(p, "x").unwrap_err().to_string(), msg);
    }

    #[test]
    fn binary_files_are_refused() {
        let (dir, mut ed) = setup();
        let nul = dir.path().join("nul.bin");
        fs::write(&nul, b"abc\0def").unwrap();
        let latin1 = dir.path().join("latin1.txt");
        fs::write(&latin1, b"caf\xe9\n").unwrap();
        for p in [&nul, &latin1] {
            let msg = format!(
                "{} is a binary file and cannot be viewed or edited as text.",
                p.display()
            );
            assert_eq!(ed.view(p, None).unwrap_err().to_string(), msg);
            assert_eq!(ed.str_replace(p, "a", "b").unwrap_err().to_string(), msg);
            assert_eq!(ed.insert(p, 0, "x").unwrap_err().to_string(), msg);
            assert_eq!(ed.read(p, 0, -1).unwrap_err().to_string(), msg);
        }
    }

    #[test]
    fn large_files_are_refused() {
        let (dir, mut ed) = setup();
        let p = dir.path().join("big.txt");
        let f = fs::File::create(&p).unwrap();
        f.set_len(MAX_FILE_SIZE + 1).unwrap();
        let msg = format!(
            "{} is too large (10485761 bytes; the limit is 10 MiB).",
            p.display()
        );
        assert_eq!(ed.view(&p, None).unwrap_err().to_string(), msg);
        assert_eq!(ed.str_replace(&p, "a", "b").unwrap_err().to_string(), msg);
        assert_eq!(ed.read(&p, 0, -1).unwrap_err().to_string(), msg);
    }

    #[test]
    fn read_line_ranges() {
        let (dir, ed) = setup();
        let p = ten_lines(dir.path());
        assert_eq!(ed.read(&p, 0, -1).unwrap(), read(&p));
        assert_eq!(ed.read(&p, 0, 2).unwrap(), "line 1\nline 2\n");
        assert_eq!(ed.read(&p, 8, -1).unwrap(), "line 9\nline 10\n");
        assert_eq!(ed.read(&p, 8, 100).unwrap(), "line 9\nline 10\n");
        assert_eq!(ed.read(&p, -3, 1).unwrap(), "line 1\n");
        assert_eq!(ed.read(&p, 5, 5).unwrap(), "");
        assert_eq!(ed.read(&p, 20, -1).unwrap(), "");
    }

    #[test]
    fn write_new_and_existing_with_undo() {
        let (dir, mut ed) = setup();
        let p = dir.path().join("w/x/y.txt");
        let out = ed.write(&p, "first\n").unwrap();
        assert_eq!(out.content, "");
        assert!(!out.prev_exist);
        assert_eq!(out.old_content, None);
        assert_eq!(out.new_content.as_deref(), Some("first\n"));
        let out = ed.write(&p, "second\n").unwrap();
        assert!(out.prev_exist);
        assert_eq!(out.old_content.as_deref(), Some("first\n"));
        assert!(out.diff.contains("-first\n+second\n"));
        assert_eq!(read(&p), "second\n");

        let undo = ed.undo_edit(&p).unwrap();
        assert_eq!(read(&p), "first\n");
        assert_eq!(undo.old_content.as_deref(), Some("second\n"));
        ed.undo_edit(&p).unwrap();
        assert!(!p.exists());
    }

    #[test]
    fn write_over_binary_can_be_undone() {
        let (dir, mut ed) = setup();
        let p = dir.path().join("b.bin");
        fs::write(&p, b"\x89PNG\0\x01").unwrap();
        let out = ed.write(&p, "text").unwrap();
        assert!(out.prev_exist);
        assert_eq!(out.old_content, None);
        let undo = ed.undo_edit(&p).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"\x89PNG\0\x01");
        assert_eq!(undo.new_content, None);
    }

    #[test]
    fn undo_history_is_per_file_and_bounded() {
        let (dir, mut ed) = setup();
        let a = dir.path().join("a.txt");
        let b = dir.path().join("b.txt");
        write(&a, "0\n");
        write(&b, "b\n");
        for i in 1..=12 {
            ed.str_replace(&a, &format!("{}\n", i - 1), &format!("{i}\n"))
                .unwrap();
        }
        ed.str_replace(&b, "b", "B").unwrap();
        ed.undo_edit(&b).unwrap();
        assert_eq!(read(&b), "b\n");
        for _ in 0..MAX_HISTORY_PER_FILE {
            ed.undo_edit(&a).unwrap();
        }
        assert_eq!(read(&a), "2\n");
        assert!(matches!(ed.undo_edit(&a), Err(EditorError::NoHistory(_))));
    }
}
