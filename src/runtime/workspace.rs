//! Workspace-confined file operations behind the per-conversation runtime routes
//! (`list-files`, `select-file`, `upload-files`, `zip-directory`, `git/changes`,
//! `git/diff`; docs/protocol.md).
//!
//! Every user-given path goes through [`Workspace::resolve`], which refuses anything that
//! would leave the workspace root: `..` that climbs out, absolute paths elsewhere, symbolic
//! links (at any component, existing or dangling) whose target lies outside, NUL bytes.
//! All functions are blocking; call them from `tokio::task::spawn_blocking`.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Cursor, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

/// Largest file [`Workspace::read_text`] and [`Workspace::git_diff`] will return (10 MiB).
pub const MAX_TEXT_BYTES: u64 = 10 * 1024 * 1024;

/// The path under which the sandbox (and the agent) sees the workspace root.
pub const SANDBOX_ROOT: &str = "/workspace";

/// How many symbolic links one resolution may follow before giving up (as Linux does).
const MAX_SYMLINKS: u32 = 40;

/// How many leading bytes are searched for a NUL byte to detect binary files.
const BINARY_SNIFF_BYTES: usize = 8 * 1024;

/// Why a workspace operation failed. `Display` is a message fit to show a user.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    /// The path leaves the workspace (`..`, an absolute path elsewhere, or a symlink).
    #[error("Path {0:?} is outside the workspace")]
    Outside(String),
    /// The path is malformed (NUL byte, empty name, symlink loop).
    #[error("Invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Nothing exists at the path.
    #[error("No such file or directory: {0}")]
    NotFound(String),
    /// The path names a directory (or other non-regular file) where a file is needed.
    #[error("{0} is not a regular file")]
    NotAFile(String),
    /// The path names a file where a directory is needed.
    #[error("{0} is not a directory")]
    NotADirectory(String),
    /// The file is not UTF-8 text.
    #[error("Unable to open binary file: {0}")]
    Binary(String),
    /// The file is larger than [`MAX_TEXT_BYTES`].
    #[error("File {path} is too large to open ({size} bytes; the limit is {limit} bytes)")]
    TooLarge {
        /// The path as given.
        path: String,
        /// The file's size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// The workspace is not (and contains no) git repository.
    #[error("Not a git repository")]
    NotGit,
    /// `git` failed or is missing.
    #[error("git failed: {0}")]
    Git(String),
    /// Building the zip archive failed.
    #[error("Unable to create the zip archive: {0}")]
    Zip(String),
    /// Any other I/O failure.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path as given.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl WorkspaceError {
    /// The HTTP status a route should answer with for this error.
    pub fn status_code(&self) -> u16 {
        match self {
            Self::Outside(_) => 403,
            Self::InvalidPath { .. } | Self::NotAFile(_) | Self::NotADirectory(_) => 400,
            Self::NotFound(_) | Self::NotGit => 404,
            Self::TooLarge { .. } => 413,
            Self::Binary(_) => 415,
            Self::Git(_) | Self::Zip(_) | Self::Io { .. } => 500,
        }
    }

    /// Maps an I/O error on the user-given `path`, turning "not found" into [`Self::NotFound`].
    fn io(path: &str, action: &str, source: io::Error) -> Self {
        match source.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => {
                Self::NotFound(path.to_string())
            }
            _ => Self::Io {
                context: format!("Unable to {action} {path}"),
                source,
            },
        }
    }
}

impl From<zip::result::ZipError> for WorkspaceError {
    fn from(e: zip::result::ZipError) -> Self {
        Self::Zip(e.to_string())
    }
}

/// One entry of `GET git/changes`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GitChange {
    /// `"M"`, `"A"` (also untracked), `"D"`, `"R"` (renamed, `path` is the new name) or `"U"` (conflict).
    pub status: String,
    /// Path relative to the workspace root, `/`-separated.
    pub path: String,
}

/// The body of `GET git/diff`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GitDiff {
    /// The file on disk (`""` if deleted).
    pub modified: String,
    /// The file at `HEAD` (`""` if new).
    pub original: String,
}

/// A directory that file operations may not leave.
#[derive(Clone, Debug)]
pub struct Workspace {
    /// Canonical (symlink-free, absolute) root.
    root: PathBuf,
    /// The root as given to [`Workspace::open`], made absolute; accepted as a prefix too.
    alias: PathBuf,
}

/// A resolved path: `rel` as the user named it (lexically normalized, relative to the root)
/// and `real`, the physical location (symlinks resolved) inside the root.
struct Located {
    rel: PathBuf,
    real: PathBuf,
}

impl Workspace {
    /// Creates the directory if needed and canonicalizes it.
    pub fn open(root: &Path) -> Result<Self, WorkspaceError> {
        let shown = root.display().to_string();
        fs::create_dir_all(root)
            .map_err(|e| WorkspaceError::io(&shown, "create the workspace directory", e))?;
        let canonical = fs::canonicalize(root)
            .map_err(|e| WorkspaceError::io(&shown, "open the workspace directory", e))?;
        if !canonical.is_dir() {
            return Err(WorkspaceError::NotADirectory(shown));
        }
        let alias = if root.is_absolute() {
            normalize_absolute(root)
        } else {
            canonical.clone()
        };
        Ok(Self {
            root: canonical,
            alias,
        })
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The root-relative, `/`-separated form of a path inside the root (`""` for the root).
    pub fn relative(&self, path: &Path) -> Option<String> {
        path.strip_prefix(&self.root).ok().map(slash_path)
    }

    /// How the sandbox names a path inside the root, e.g. `/workspace/a.txt`.
    pub fn sandbox_path(&self, path: &Path) -> Option<String> {
        let rel = self.relative(path)?;
        Some(if rel.is_empty() {
            SANDBOX_ROOT.to_string()
        } else {
            format!("{SANDBOX_ROOT}/{rel}")
        })
    }

    /// Resolves a user-given path (absolute, or relative to the root; `/workspace/...` also
    /// means the root, as in OpenHands' sandbox) to a path inside the root. Rejects `..` that
    /// climbs out, absolute paths elsewhere, symlinks (at any component, including the final
    /// one, dangling or not) pointing outside, and NUL bytes. Percent-escapes are taken
    /// literally. Works for paths that do not exist yet: the result is physical for its
    /// existing part and the missing rest is plain names under it.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, WorkspaceError> {
        self.locate(path).map(|l| l.real)
    }

    fn locate(&self, path: &str) -> Result<Located, WorkspaceError> {
        if path.contains('\0') {
            return Err(WorkspaceError::InvalidPath {
                path: path.to_string(),
                reason: "it contains a NUL byte",
            });
        }
        let outside = || WorkspaceError::Outside(path.to_string());
        let given = Path::new(path);
        let rel = if given.is_absolute() {
            let abs = normalize_absolute(given);
            [&self.root, &self.alias, Path::new(SANDBOX_ROOT)]
                .iter()
                .find_map(|prefix| abs.strip_prefix(prefix).ok())
                .map(Path::to_path_buf)
                .ok_or_else(outside)?
        } else {
            normalize_relative(given).ok_or_else(outside)?
        };
        let real = self.physical(path, &rel)?;
        if !real.starts_with(&self.root) {
            return Err(outside());
        }
        Ok(Located { rel, real })
    }

    /// Follows `rel` (plain names only) from the root like `realpath -m`: every existing
    /// symlink is resolved (relative targets against their directory, `..` physically), a
    /// missing component and everything after it is appended as is.
    fn physical(&self, shown: &str, rel: &Path) -> Result<PathBuf, WorkspaceError> {
        let mut out = self.root.clone();
        let mut queue: VecDeque<OsString> =
            rel.components().map(|c| c.as_os_str().to_owned()).collect();
        let mut budget = MAX_SYMLINKS;
        while let Some(name) = queue.pop_front() {
            if name == "." || name.is_empty() {
                continue;
            }
            if name == ".." {
                out.pop();
                continue;
            }
            let candidate = out.join(&name);
            match fs::symlink_metadata(&candidate) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    budget = budget.checked_sub(1).ok_or(WorkspaceError::InvalidPath {
                        path: shown.to_string(),
                        reason: "too many levels of symbolic links",
                    })?;
                    let target = fs::read_link(&candidate)
                        .map_err(|e| WorkspaceError::io(shown, "read the link", e))?;
                    if target.is_absolute() {
                        out = PathBuf::from("/");
                    }
                    for part in target.components().rev() {
                        match part {
                            Component::RootDir | Component::Prefix(_) => {}
                            other => queue.push_front(other.as_os_str().to_owned()),
                        }
                    }
                }
                Ok(_) => out = candidate,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                    ) =>
                {
                    out = candidate
                }
                Err(e) => return Err(WorkspaceError::io(shown, "access", e)),
            }
        }
        Ok(out)
    }

    /// `GET list-files?path=dir`: direct children of `dir` (root if `None`), directories first
    /// then files, each sorted case-insensitively; directories end with `/`; paths relative
    /// to the root (`src/`, `src/main.rs`); `.gitignore` files from the root down applied;
    /// `.git` and symlinks leading outside (or nowhere) never listed.
    pub fn list_files(&self, dir: Option<&str>) -> Result<Vec<String>, WorkspaceError> {
        let shown = dir.unwrap_or(".");
        let loc = match dir {
            None => Located {
                rel: PathBuf::new(),
                real: self.root.clone(),
            },
            Some(d) => self.locate(d)?,
        };
        let meta = fs::metadata(&loc.real).map_err(|e| WorkspaceError::io(shown, "list", e))?;
        if !meta.is_dir() {
            return Err(WorkspaceError::NotADirectory(shown.to_string()));
        }
        let matchers = self.gitignores_down_to(&loc.real);
        let reader = fs::read_dir(&loc.real).map_err(|e| WorkspaceError::io(shown, "list", e))?;
        let mut dirs = Vec::new();
        let mut files = Vec::new();
        for entry in reader {
            let entry = entry.map_err(|e| WorkspaceError::io(shown, "list", e))?;
            let name = entry.file_name();
            if name == ".git" {
                continue;
            }
            let path = entry.path();
            let Ok(link_meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            let is_dir = if link_meta.file_type().is_symlink() {
                match fs::canonicalize(&path) {
                    Ok(target) if target.starts_with(&self.root) => target.is_dir(),
                    _ => continue,
                }
            } else {
                link_meta.is_dir()
            };
            if self.is_ignored(&matchers, &path, is_dir) {
                continue;
            }
            let mut shown_entry = slash_path(&loc.rel.join(&name));
            if is_dir {
                shown_entry.push('/');
                dirs.push(shown_entry);
            } else {
                files.push(shown_entry);
            }
        }
        let by_name = |a: &String, b: &String| {
            a.to_lowercase()
                .cmp(&b.to_lowercase())
                .then_with(|| a.cmp(b))
        };
        dirs.sort_by(by_name);
        files.sort_by(by_name);
        dirs.extend(files);
        Ok(dirs)
    }

    /// Matchers for the `.gitignore` of the root and of every directory down to `dir`
    /// (shallowest first). Unreadable or partly invalid files are used as far as possible.
    fn gitignores_down_to(&self, dir: &Path) -> Vec<(PathBuf, Gitignore)> {
        let mut dirs: Vec<&Path> = dir
            .ancestors()
            .take_while(|d| d.starts_with(&self.root))
            .collect();
        dirs.reverse();
        dirs.into_iter()
            .filter_map(|d| {
                let file = d.join(".gitignore");
                // Only a regular file that is (or links to something) inside the root.
                let real = fs::canonicalize(&file).ok()?;
                if !real.starts_with(&self.root) || !real.is_file() {
                    return None;
                }
                let mut builder = GitignoreBuilder::new(d);
                // A partly invalid file still yields its valid patterns.
                let _ = builder.add(&file);
                builder.build().ok().map(|gi| (d.to_path_buf(), gi))
            })
            .collect()
    }

    /// Whether `path` or one of its directories below the root is ignored; the deepest
    /// `.gitignore` with an opinion decides, as in git.
    fn is_ignored(&self, matchers: &[(PathBuf, Gitignore)], path: &Path, is_dir: bool) -> bool {
        let mut current = Some(path);
        let mut current_is_dir = is_dir;
        while let Some(p) = current {
            if p == self.root || !p.starts_with(&self.root) {
                break;
            }
            for (dir, gi) in matchers.iter().rev() {
                if p == dir || !p.starts_with(dir) {
                    continue;
                }
                match gi.matched(p, current_is_dir) {
                    Match::Ignore(_) => return true,
                    Match::Whitelist(_) => break,
                    Match::None => {}
                }
            }
            current = p.parent();
            current_is_dir = true;
        }
        false
    }

    /// `GET select-file?file=…`: the UTF-8 text of a file. [`WorkspaceError::Binary`] if a NUL
    /// byte is in the first 8 KiB or the file is not valid UTF-8; [`WorkspaceError::TooLarge`]
    /// over [`MAX_TEXT_BYTES`].
    pub fn read_text(&self, file: &str) -> Result<String, WorkspaceError> {
        let loc = self.locate(file)?;
        let bytes = read_capped(file, &loc.real)?;
        let sniff = &bytes[..bytes.len().min(BINARY_SNIFF_BYTES)];
        if sniff.contains(&0) {
            return Err(WorkspaceError::Binary(file.to_string()));
        }
        String::from_utf8(bytes).map_err(|_| WorkspaceError::Binary(file.to_string()))
    }

    /// `POST upload-files`: writes `bytes` to `name` (a file name or relative path) inside the
    /// root, creating parent directories and replacing an existing file; returns the absolute
    /// path written. Rejects names that escape or that name a directory.
    pub fn write_upload(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, WorkspaceError> {
        if name.trim().is_empty() {
            return Err(WorkspaceError::InvalidPath {
                path: name.to_string(),
                reason: "the file name is empty",
            });
        }
        let loc = self.locate(name)?;
        if loc.real == self.root || loc.real.is_dir() {
            return Err(WorkspaceError::NotAFile(name.to_string()));
        }
        // A repository's `.git` holds configuration that runs programs (hooks, filters):
        // nothing from outside the conversation may land there.
        let inside = loc.real.strip_prefix(&self.root).unwrap_or(&loc.real);
        if inside.components().any(|c| {
            c.as_os_str()
                .to_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(".git"))
        }) {
            return Err(WorkspaceError::InvalidPath {
                path: name.to_string(),
                reason: "uploads cannot write into a .git folder",
            });
        }
        if let Some(parent) = loc.real.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| WorkspaceError::io(name, "create the folder for", e))?;
        }
        fs::write(&loc.real, bytes).map_err(|e| WorkspaceError::io(name, "write", e))?;
        Ok(loc.real)
    }

    /// `GET zip-directory`: the whole workspace as a deflated zip held in memory. `.git` is
    /// left out at any depth; symlinks to files inside the root are stored as the file's
    /// content, other symlinks, special files and unreadable files are skipped.
    pub fn zip(&self) -> Result<Vec<u8>, WorkspaceError> {
        Ok(self.zip_to(Cursor::new(Vec::new()))?.into_inner())
    }

    /// The same archive written to `out` (a file, so that a big workspace is never held
    /// in memory).
    pub fn zip_to<W: io::Write + io::Seek>(&self, out: W) -> Result<W, WorkspaceError> {
        let mut writer = ZipWriter::new(out);
        self.zip_dir(&mut writer, &self.root, "")?;
        Ok(writer.finish()?)
    }

    fn zip_dir<W: io::Write + io::Seek>(
        &self,
        writer: &mut ZipWriter<W>,
        dir: &Path,
        prefix: &str,
    ) -> Result<(), WorkspaceError> {
        let shown = if prefix.is_empty() { "." } else { prefix };
        let mut entries: Vec<(OsString, PathBuf)> = fs::read_dir(dir)
            .map_err(|e| WorkspaceError::io(shown, "read the folder", e))?
            .filter_map(Result::ok)
            .map(|e| (e.file_name(), e.path()))
            .collect();
        entries.sort();
        for (name, path) in entries {
            if name == ".git" {
                continue;
            }
            let rel = format!("{prefix}{}", name.to_string_lossy());
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                writer.add_directory(format!("{rel}/"), zip_options(&meta))?;
                self.zip_dir(writer, &path, &format!("{rel}/"))?;
            } else if meta.is_file() {
                zip_file(writer, &path, &rel, &meta)?;
            } else if meta.file_type().is_symlink() {
                if let Ok(target) = fs::canonicalize(&path) {
                    if target.starts_with(&self.root) {
                        if let Ok(target_meta) = fs::metadata(&target) {
                            if target_meta.is_file() {
                                zip_file(writer, &target, &rel, &target_meta)?;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// `GET git/changes`: changes against `HEAD` from `git status --porcelain` of the
    /// repository holding the root (limited to the root) and of repositories in its direct
    /// subdirectories, as upstream does; untracked = `"A"`, renamed = `"R"` with the new
    /// path; sorted by path. [`WorkspaceError::NotGit`] if there is no repository at all.
    pub fn git_changes(&self) -> Result<Vec<GitChange>, WorkspaceError> {
        let nested: Vec<String> = fs::read_dir(&self.root)
            .map_err(|e| WorkspaceError::io(".", "read the folder", e))?
            .filter_map(Result::ok)
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .filter(|e| fs::symlink_metadata(e.path().join(".git")).is_ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        let mut found_repo = false;
        let mut changes = Vec::new();
        match repo_changes(&self.root) {
            Ok(list) => {
                found_repo = true;
                changes.extend(list.into_iter().filter(|c| {
                    !nested
                        .iter()
                        .any(|n| c.path == *n || c.path.starts_with(&format!("{n}/")))
                }));
            }
            Err(WorkspaceError::NotGit) => {}
            Err(e) => return Err(e),
        }
        for n in &nested {
            match repo_changes(&self.root.join(n)) {
                Ok(list) => {
                    found_repo = true;
                    changes.extend(list.into_iter().map(|c| GitChange {
                        status: c.status,
                        path: format!("{n}/{}", c.path),
                    }));
                }
                Err(WorkspaceError::NotGit) => {}
                Err(e) => return Err(e),
            }
        }
        if !found_repo {
            return Err(WorkspaceError::NotGit);
        }
        changes.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(changes)
    }

    /// `GET git/diff?path=…`: the file at `HEAD` (`""` if new or there is no commit yet) and
    /// on disk (`""` if deleted), both decoded lossily as UTF-8.
    pub fn git_diff(&self, path: &str) -> Result<GitDiff, WorkspaceError> {
        let loc = self.locate(path)?;
        if loc.real == self.root || loc.real.is_dir() {
            return Err(WorkspaceError::NotAFile(path.to_string()));
        }
        // Run git from the nearest existing directory so that nested repositories work and
        // deleted folders do not matter.
        let mut dir = loc.real.parent().unwrap_or(&self.root);
        while !dir.is_dir() && dir != self.root {
            dir = dir.parent().unwrap_or(&self.root);
        }
        let rest = loc.real.strip_prefix(dir).unwrap_or(&loc.real);
        let inside = git(dir, &["rev-parse", "--is-inside-work-tree"])?;
        if !inside.status.success() {
            return Err(not_git_or(&inside));
        }
        let mut spec = OsString::from("HEAD:./");
        spec.push(rest.as_os_str());
        let shown = git(dir, &[OsStr::new("cat-file"), OsStr::new("blob"), &spec])?;
        let original = if shown.status.success() {
            if shown.stdout.len() as u64 > MAX_TEXT_BYTES {
                return Err(WorkspaceError::TooLarge {
                    path: path.to_string(),
                    size: shown.stdout.len() as u64,
                    limit: MAX_TEXT_BYTES,
                });
            }
            String::from_utf8_lossy(&shown.stdout).into_owned()
        } else {
            String::new()
        };
        let modified = match read_capped(path, &loc.real) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(WorkspaceError::NotFound(_)) => String::new(),
            Err(e) => return Err(e),
        };
        Ok(GitDiff { modified, original })
    }
}

/// Lexically normalizes an absolute path (`..` at `/` stays at `/`, like `os.path.normpath`).
fn normalize_absolute(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// Lexically normalizes a relative path; `None` if a `..` climbs above its start.
fn normalize_relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// A relative path as a `/`-separated string.
fn slash_path(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Reads a regular file of at most [`MAX_TEXT_BYTES`]; `shown` is the path as given.
fn read_capped(shown: &str, real: &Path) -> Result<Vec<u8>, WorkspaceError> {
    let meta = fs::metadata(real).map_err(|e| WorkspaceError::io(shown, "open", e))?;
    if !meta.is_file() {
        return Err(WorkspaceError::NotAFile(shown.to_string()));
    }
    let too_large = |size| WorkspaceError::TooLarge {
        path: shown.to_string(),
        size,
        limit: MAX_TEXT_BYTES,
    };
    if meta.len() > MAX_TEXT_BYTES {
        return Err(too_large(meta.len()));
    }
    let file = fs::File::open(real).map_err(|e| WorkspaceError::io(shown, "open", e))?;
    // Re-check the opened handle: the path may have been swapped since the check above.
    let opened = file
        .metadata()
        .map_err(|e| WorkspaceError::io(shown, "open", e))?;
    if !opened.is_file() {
        return Err(WorkspaceError::NotAFile(shown.to_string()));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_TEXT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| WorkspaceError::io(shown, "read", e))?;
    if bytes.len() as u64 > MAX_TEXT_BYTES {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Zip entry options for a file or directory with the given metadata.
fn zip_options(meta: &fs::Metadata) -> SimpleFileOptions {
    use std::os::unix::fs::PermissionsExt;
    let mut options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .unix_permissions(meta.permissions().mode() & 0o7777)
        .large_file(meta.len() >= u64::from(u32::MAX));
    if let Some(time) = meta.modified().ok().and_then(zip_time) {
        options = options.last_modified_time(time);
    }
    options
}

/// Adds the regular file at `path` under the entry name `rel`; unreadable files are skipped.
fn zip_file<W: io::Write + io::Seek>(
    writer: &mut ZipWriter<W>,
    path: &Path,
    rel: &str,
    meta: &fs::Metadata,
) -> Result<(), WorkspaceError> {
    let mut file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Ok(()),
        Err(e) => return Err(WorkspaceError::io(rel, "read", e)),
    };
    writer.start_file(rel, zip_options(meta))?;
    io::copy(&mut file, writer).map_err(|e| WorkspaceError::io(rel, "read", e))?;
    writer
        .flush()
        .map_err(|e| WorkspaceError::io(rel, "compress", e))?;
    Ok(())
}

/// A modification time as a zip (MS-DOS, here UTC) timestamp; `None` outside 1980–2107.
fn zip_time(time: SystemTime) -> Option<DateTime> {
    let secs = time.duration_since(UNIX_EPOCH).ok()?.as_secs();
    let days = i64::try_from(secs / 86_400).ok()?;
    let rem = secs % 86_400;
    // Civil-from-days (H. Hinnant), valid for the proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    DateTime::from_date_and_time(
        u16::try_from(year).ok()?,
        u8::try_from(month).ok()?,
        u8::try_from(day).ok()?,
        u8::try_from(rem / 3_600).ok()?,
        u8::try_from(rem % 3_600 / 60).ok()?,
        u8::try_from(rem % 60).ok()?,
    )
    .ok()
}

/// The filter drivers a repository's configuration defines (`filter.<name>.*`).
fn filter_drivers(dir: &Path) -> Vec<String> {
    let Ok(out) = git_command(dir)
        .args(["config", "--name-only", "--get-regexp", r"^filter\."])
        .output()
    else {
        return Vec::new();
    };
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|key| key.strip_prefix("filter.")?.rsplit_once('.'))
        .map(|(name, _)| name.to_string())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// `git -C dir` without prompts, optional locks or inherited repository overrides, and
/// with nothing the repository configures that runs a program: no fsmonitor, no hooks.
fn git_command(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(dir)
        .args(["-c", "core.fsmonitor=false", "-c", "core.quotepath=off"])
        .args(["-c", "core.hooksPath=/dev/null", "-c", "diff.external="])
        .env("GIT_OPTIONAL_LOCKS", "0")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_OBJECT_DIRECTORY")
        .env_remove("GIT_COMMON_DIR")
        .env_remove("GIT_CONFIG_PARAMETERS")
        .stdin(Stdio::null());
    cmd
}

/// Runs `git -C dir args…` for the REST routes. A repository may configure filter
/// drivers (run on checkout, status and diff, picked by `.gitattributes`): each one is
/// replaced by `cat`, so opening an untrusted repository's changes runs nothing of it.
fn git<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> Result<Output, WorkspaceError> {
    let mut cmd = git_command(dir);
    for name in filter_drivers(dir) {
        for (key, value) in [
            ("clean", "cat"),
            ("smudge", "cat"),
            ("process", ""),
            ("required", "false"),
        ] {
            cmd.arg("-c").arg(format!("filter.{name}.{key}={value}"));
        }
    }
    cmd.args(args).output().map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            WorkspaceError::Git("the git program is not installed".to_string())
        } else {
            WorkspaceError::Git(format!("unable to run git: {e}"))
        }
    })
}

/// [`WorkspaceError::NotGit`] for "not a git repository", else the git error message.
fn not_git_or(output: &Output) -> WorkspaceError {
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("not a git repository") {
        WorkspaceError::NotGit
    } else {
        WorkspaceError::Git(stderr.trim().to_string())
    }
}

/// Changes of the repository holding `dir`, limited to `dir`, paths relative to `dir`.
fn repo_changes(dir: &Path) -> Result<Vec<GitChange>, WorkspaceError> {
    let prefix_out = git(dir, &["rev-parse", "--show-prefix"])?;
    if !prefix_out.status.success() {
        return Err(not_git_or(&prefix_out));
    }
    let prefix = String::from_utf8_lossy(&prefix_out.stdout)
        .trim_end_matches(['\n', '\r'])
        .to_string();
    let status = git(
        dir,
        &[
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--ignore-submodules=all",
            "--",
            ".",
        ],
    )?;
    if !status.status.success() {
        return Err(not_git_or(&status));
    }
    Ok(parse_porcelain(&status.stdout)
        .into_iter()
        .filter_map(|c| {
            let path = c.path.strip_prefix(&prefix)?.to_string();
            (!path.is_empty()).then_some(GitChange { path, ..c })
        })
        .collect())
}

/// Parses `git status --porcelain=v1 -z` output into upstream's status letters.
fn parse_porcelain(raw: &[u8]) -> Vec<GitChange> {
    let mut records = raw.split(|b| *b == 0).filter(|r| !r.is_empty());
    let mut changes = Vec::new();
    while let Some(record) = records.next() {
        if record.len() < 4 {
            continue;
        }
        let (x, y) = (record[0], record[1]);
        let path = String::from_utf8_lossy(&record[3..]).into_owned();
        if matches!(x, b'R' | b'C') || matches!(y, b'R' | b'C') {
            // In -z mode the source path of a rename or copy follows as its own record.
            records.next();
        }
        let status = match (x, y) {
            (b'?', b'?') => "A",
            (b'!', b'!') => continue,
            (b'U', _) | (_, b'U') | (b'A', b'A') | (b'D', b'D') => "U",
            (b'R', _) | (_, b'R') => "R",
            (b'C', _) | (_, b'C') => "A",
            (b'A', b'D') => continue,
            (b'A', _) => "A",
            (b'D', _) | (_, b'D') => "D",
            _ => "M",
        };
        changes.push(GitChange {
            status: status.to_string(),
            path,
        });
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn setup() -> (tempfile::TempDir, Workspace) {
        let tmp = tempfile::tempdir().unwrap();
        let ws = Workspace::open(&tmp.path().join("ws")).unwrap();
        (tmp, ws)
    }

    fn write(ws: &Workspace, rel: &str, content: &[u8]) {
        let p = ws.root().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    fn run_git(dir: &Path, args: &[&str]) {
        let out = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["-c", "user.email=a@b", "-c", "user.name=n"])
            .args([
                "-c",
                "init.defaultBranch=main",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn assert_outside<T: std::fmt::Debug>(r: Result<T, WorkspaceError>) {
        match r {
            Err(WorkspaceError::Outside(_)) => {}
            other => panic!("expected Outside, got {other:?}"),
        }
    }

    /// A workspace with an escaping symlink as a directory (`etc`), as a file (`passwd`) and
    /// dangling (`dangling`), plus links that stay inside.
    fn setup_links() -> (tempfile::TempDir, Workspace) {
        let (tmp, ws) = setup();
        let outside = tmp.path().join("outside");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("secret.txt"), "secret").unwrap();
        symlink("/etc", ws.root().join("etc")).unwrap();
        symlink("/etc/passwd", ws.root().join("passwd")).unwrap();
        symlink(&outside, ws.root().join("out")).unwrap();
        symlink("../outside/secret.txt", ws.root().join("rel_out")).unwrap();
        symlink(outside.join("new.txt"), ws.root().join("dangling")).unwrap();
        symlink("../outside/newdir/x", ws.root().join("dangling_rel")).unwrap();
        write(&ws, "sub/inner.txt", b"inner");
        symlink(ws.root().join("sub"), ws.root().join("in_abs")).unwrap();
        symlink("sub/inner.txt", ws.root().join("in_rel")).unwrap();
        symlink("sub/later.txt", ws.root().join("in_dangling")).unwrap();
        (tmp, ws)
    }

    const ESCAPES: &[&str] = &[
        "..",
        "../x",
        "a/../../x",
        "sub/../../x",
        "/etc/passwd",
        "/etc",
        "/workspace/../etc",
        "/workspace/../etc/passwd",
        "/workspaces/x",
        "etc",
        "etc/passwd",
        "etc/../etc/passwd",
        "passwd",
        "out/secret.txt",
        "rel_out",
        "/workspace/etc/passwd",
        "./sub/../etc/hostname",
    ];

    #[test]
    fn resolve_rejects_escapes() {
        let (_tmp, ws) = setup_links();
        for p in ESCAPES {
            assert_outside(ws.resolve(p));
        }
        assert_outside(ws.resolve("dangling"));
        assert_outside(ws.resolve("dangling_rel"));
        let abs_outside = ws.root().parent().unwrap().join("outside/secret.txt");
        assert_outside(ws.resolve(abs_outside.to_str().unwrap()));
        let sneaky = format!("{}/../outside", ws.root().display());
        assert_outside(ws.resolve(&sneaky));
    }

    #[test]
    fn resolve_accepts_inside_paths() {
        let (_tmp, ws) = setup_links();
        let root = ws.root().to_path_buf();
        assert_eq!(ws.resolve("").unwrap(), root);
        assert_eq!(ws.resolve(".").unwrap(), root);
        assert_eq!(ws.resolve("/workspace").unwrap(), root);
        assert_eq!(ws.resolve("/workspace/").unwrap(), root);
        assert_eq!(ws.resolve("/workspace/a/b").unwrap(), root.join("a/b"));
        assert_eq!(ws.resolve("sub/../a").unwrap(), root.join("a"));
        assert_eq!(ws.resolve("./sub/").unwrap(), root.join("sub"));
        let abs = root.join("sub/inner.txt");
        assert_eq!(ws.resolve(abs.to_str().unwrap()).unwrap(), abs);
        // Symlinks that stay inside resolve to their target.
        assert_eq!(ws.resolve("in_abs/inner.txt").unwrap(), abs);
        assert_eq!(ws.resolve("in_rel").unwrap(), abs);
        assert_eq!(
            ws.resolve("in_dangling").unwrap(),
            root.join("sub/later.txt")
        );
        // Not-yet-existing paths are fine.
        assert_eq!(
            ws.resolve("new/deep/file").unwrap(),
            root.join("new/deep/file")
        );
        // Percent-escapes are literal names.
        assert_eq!(ws.resolve("%2e%2e").unwrap(), root.join("%2e%2e"));
        assert_eq!(
            ws.resolve("%2e%2e/%2e%2e/etc/passwd").unwrap(),
            root.join("%2e%2e/%2e%2e/etc/passwd")
        );
    }

    #[test]
    fn resolve_rejects_nul_and_loops() {
        let (_tmp, ws) = setup();
        assert!(matches!(
            ws.resolve("a\0b"),
            Err(WorkspaceError::InvalidPath { .. })
        ));
        symlink("loop_b", ws.root().join("loop_a")).unwrap();
        symlink("loop_a", ws.root().join("loop_b")).unwrap();
        assert!(matches!(
            ws.resolve("loop_a/x"),
            Err(WorkspaceError::InvalidPath { .. })
        ));
    }

    #[test]
    fn open_accepts_a_symlinked_root_and_its_alias() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        fs::create_dir(&real).unwrap();
        let link = tmp.path().join("link");
        symlink(&real, &link).unwrap();
        let ws = Workspace::open(&link).unwrap();
        assert_eq!(ws.root(), fs::canonicalize(&real).unwrap());
        let via_alias = format!("{}/a.txt", link.display());
        assert_eq!(ws.resolve(&via_alias).unwrap(), ws.root().join("a.txt"));
        assert_eq!(
            ws.sandbox_path(&ws.root().join("a/b.txt")).as_deref(),
            Some("/workspace/a/b.txt")
        );
        assert_eq!(ws.sandbox_path(ws.root()).as_deref(), Some("/workspace"));
    }

    #[test]
    fn error_messages_are_readable() {
        assert_eq!(
            WorkspaceError::Outside("../x".into()).to_string(),
            "Path \"../x\" is outside the workspace"
        );
        assert_eq!(
            WorkspaceError::Binary("a.png".into()).to_string(),
            "Unable to open binary file: a.png"
        );
        assert_eq!(WorkspaceError::NotGit.to_string(), "Not a git repository");
        assert_eq!(WorkspaceError::Binary("x".into()).status_code(), 415);
        assert_eq!(WorkspaceError::Outside("x".into()).status_code(), 403);
    }

    #[test]
    fn list_files_orders_and_marks_directories() {
        let (_tmp, ws) = setup();
        write(&ws, "b.txt", b"");
        write(&ws, "A.txt", b"");
        write(&ws, "c.md", b"");
        write(&ws, ".env", b"");
        write(&ws, "src/main.rs", b"");
        write(&ws, "src/lib/mod.rs", b"");
        write(&ws, "Docs/x", b"");
        fs::create_dir(ws.root().join("empty")).unwrap();
        assert_eq!(
            ws.list_files(None).unwrap(),
            vec!["Docs/", "empty/", "src/", ".env", "A.txt", "b.txt", "c.md"]
        );
        assert_eq!(
            ws.list_files(Some("src")).unwrap(),
            vec!["src/lib/", "src/main.rs"]
        );
        assert_eq!(
            ws.list_files(Some("src/")).unwrap(),
            vec!["src/lib/", "src/main.rs"]
        );
        assert_eq!(
            ws.list_files(Some("/workspace/src/lib")).unwrap(),
            vec!["src/lib/mod.rs"]
        );
        assert_eq!(ws.list_files(Some("empty")).unwrap(), Vec::<String>::new());
        assert!(matches!(
            ws.list_files(Some("b.txt")),
            Err(WorkspaceError::NotADirectory(_))
        ));
        assert!(matches!(
            ws.list_files(Some("missing")),
            Err(WorkspaceError::NotFound(_))
        ));
    }

    #[test]
    fn list_files_applies_gitignore_and_hides_git() {
        let (_tmp, ws) = setup();
        write(
            &ws,
            ".gitignore",
            b"*.log\nbuild/\n/top_only.txt\n!keep.log\n",
        );
        write(&ws, ".git/HEAD", b"ref: refs/heads/main\n");
        write(&ws, "a.log", b"");
        write(&ws, "keep.log", b"");
        write(&ws, "top_only.txt", b"");
        write(&ws, "build/out.o", b"");
        write(&ws, "src/x.log", b"");
        write(&ws, "src/top_only.txt", b"");
        write(&ws, "src/build/y", b"");
        write(&ws, "src/gen.rs", b"");
        write(&ws, "src/.gitignore", b"gen.rs\n");
        write(&ws, "src/deep/gen.rs", b"");
        write(&ws, "src/deep/ok.rs", b"");
        write(&ws, "other/gen.rs", b"");
        write(&ws, "sub/.git", b"gitdir: ../.git/modules/sub\n");
        assert_eq!(
            ws.list_files(None).unwrap(),
            vec!["other/", "src/", "sub/", ".gitignore", "keep.log"]
        );
        assert_eq!(
            ws.list_files(Some("src")).unwrap(),
            vec!["src/deep/", "src/.gitignore", "src/top_only.txt"]
        );
        assert_eq!(
            ws.list_files(Some("src/deep")).unwrap(),
            vec!["src/deep/ok.rs"]
        );
        assert_eq!(ws.list_files(Some("other")).unwrap(), vec!["other/gen.rs"]);
        assert_eq!(ws.list_files(Some("sub")).unwrap(), Vec::<String>::new());
        // An ignored directory listed explicitly shows nothing, as upstream.
        assert_eq!(ws.list_files(Some("build")).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn list_files_rejects_escapes_and_hides_outside_links() {
        let (_tmp, ws) = setup_links();
        for p in ESCAPES {
            match ws.list_files(Some(p)) {
                Err(WorkspaceError::Outside(_)) => {}
                other => panic!("{p}: expected Outside, got {other:?}"),
            }
        }
        assert!(matches!(
            ws.list_files(Some("a\0")),
            Err(WorkspaceError::InvalidPath { .. })
        ));
        assert_eq!(
            ws.list_files(None).unwrap(),
            vec!["in_abs/", "sub/", "in_rel"]
        );
        assert_eq!(
            ws.list_files(Some("in_abs")).unwrap(),
            vec!["in_abs/inner.txt"]
        );
        fs::create_dir(ws.root().join("%2e%2e")).unwrap();
        write(&ws, "%2e%2e/f", b"");
        assert_eq!(ws.list_files(Some("%2e%2e")).unwrap(), vec!["%2e%2e/f"]);
    }

    #[test]
    fn read_text_reads_and_refuses() {
        let (_tmp, ws) = setup_links();
        write(&ws, "hello.txt", "héllo\n".as_bytes());
        write(&ws, "%2e%2e", b"literal");
        assert_eq!(ws.read_text("hello.txt").unwrap(), "héllo\n");
        assert_eq!(ws.read_text("/workspace/hello.txt").unwrap(), "héllo\n");
        assert_eq!(ws.read_text("%2e%2e").unwrap(), "literal");
        assert_eq!(ws.read_text("in_rel").unwrap(), "inner");
        assert_eq!(ws.read_text("in_abs/inner.txt").unwrap(), "inner");
        for p in ESCAPES {
            match ws.read_text(p) {
                Err(WorkspaceError::Outside(_)) => {}
                other => panic!("{p}: expected Outside, got {other:?}"),
            }
        }
        assert!(matches!(
            ws.read_text("hello.txt\0"),
            Err(WorkspaceError::InvalidPath { .. })
        ));
        assert!(matches!(
            ws.read_text("%2e%2e/%2e%2e/etc/passwd"),
            Err(WorkspaceError::NotFound(_))
        ));
        assert!(matches!(
            ws.read_text("missing.txt"),
            Err(WorkspaceError::NotFound(_))
        ));
        assert!(matches!(
            ws.read_text("sub"),
            Err(WorkspaceError::NotAFile(_))
        ));
    }

    #[test]
    fn read_text_detects_binary_and_large_files() {
        let (_tmp, ws) = setup();
        write(&ws, "nul.bin", b"abc\0def");
        write(&ws, "latin1.txt", b"caf\xe9");
        let err = ws.read_text("nul.bin").unwrap_err();
        assert_eq!(err.to_string(), "Unable to open binary file: nul.bin");
        assert!(matches!(
            ws.read_text("latin1.txt"),
            Err(WorkspaceError::Binary(_))
        ));
        // A NUL byte after the first 8 KiB in an otherwise valid file is still text.
        let mut late = vec![b'a'; BINARY_SNIFF_BYTES];
        late.push(0);
        write(&ws, "late.txt", &late);
        assert_eq!(
            ws.read_text("late.txt").unwrap().len(),
            BINARY_SNIFF_BYTES + 1
        );

        let big = fs::File::create(ws.root().join("big.txt")).unwrap();
        big.set_len(MAX_TEXT_BYTES + 1).unwrap();
        match ws.read_text("big.txt") {
            Err(WorkspaceError::TooLarge { size, limit, .. }) => {
                assert_eq!(size, MAX_TEXT_BYTES + 1);
                assert_eq!(limit, MAX_TEXT_BYTES);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        let exact = fs::File::create(ws.root().join("exact.txt")).unwrap();
        exact.set_len(MAX_TEXT_BYTES).unwrap();
        // Exactly at the limit is read (and is binary, being all NULs).
        assert!(matches!(
            ws.read_text("exact.txt"),
            Err(WorkspaceError::Binary(_))
        ));
    }

    #[test]
    fn uploads_cannot_write_into_a_git_folder() {
        let (_tmp, ws) = setup_links();
        for name in [
            ".git/config",
            "sub/.git/hooks/pre-commit",
            ".GIT/info/attributes",
            "/workspace/.git/x",
        ] {
            assert!(
                matches!(
                    ws.write_upload(name, b"x"),
                    Err(WorkspaceError::InvalidPath { .. })
                ),
                "{name}"
            );
        }
        assert!(!ws.root().join(".git/config").exists());
        ws.write_upload("notgit/.gitignore", b"ok").unwrap();
    }

    #[test]
    fn write_upload_creates_dirs_and_stays_inside() {
        let (tmp, ws) = setup_links();
        let written = ws.write_upload("a.txt", b"one").unwrap();
        assert_eq!(written, ws.root().join("a.txt"));
        assert_eq!(fs::read(&written).unwrap(), b"one");
        let written = ws.write_upload("deep/er/b.bin", b"\0\x01").unwrap();
        assert_eq!(written, ws.root().join("deep/er/b.bin"));
        assert_eq!(fs::read(&written).unwrap(), b"\0\x01");
        ws.write_upload("a.txt", b"two").unwrap();
        assert_eq!(fs::read(ws.root().join("a.txt")).unwrap(), b"two");
        let written = ws.write_upload("/workspace/c.txt", b"c").unwrap();
        assert_eq!(written, ws.root().join("c.txt"));
        let written = ws.write_upload("%2e%2e", b"p").unwrap();
        assert_eq!(written, ws.root().join("%2e%2e"));
        // Through an inside symlink, dangling or not.
        ws.write_upload("in_abs/up.txt", b"u").unwrap();
        assert_eq!(fs::read(ws.root().join("sub/up.txt")).unwrap(), b"u");
        ws.write_upload("in_dangling", b"later").unwrap();
        assert_eq!(fs::read(ws.root().join("sub/later.txt")).unwrap(), b"later");

        // Every escape here aims at the temporary `outside` directory, never at system
        // files, so that a regression cannot damage the machine when tests run as root.
        let outside = tmp.path().join("outside");
        let abs_new = outside.join("new.txt").display().to_string();
        let escapes = [
            "../outside/new.txt".to_string(),
            "sub/../../outside/new.txt".to_string(),
            "a/../../outside/new.txt".to_string(),
            abs_new.clone(),
            format!("/workspace/..{abs_new}"),
            format!("{}/../outside/new.txt", ws.root().display()),
            "out/new.txt".to_string(),
            "out/newdir/x".to_string(),
            "out/secret.txt".to_string(),
            "rel_out".to_string(),
            "dangling".to_string(),
            "dangling_rel".to_string(),
        ];
        for p in &escapes {
            match ws.write_upload(p, b"x") {
                Err(WorkspaceError::Outside(_)) => {}
                other => panic!("{p}: expected Outside, got {other:?}"),
            }
        }
        assert!(!outside.join("new.txt").exists());
        assert!(!outside.join("newdir").exists());
        assert_eq!(fs::read(outside.join("secret.txt")).unwrap(), b"secret");
        assert!(matches!(
            ws.write_upload("x\0y", b""),
            Err(WorkspaceError::InvalidPath { .. })
        ));
        assert!(matches!(
            ws.write_upload("", b""),
            Err(WorkspaceError::InvalidPath { .. })
        ));
        assert!(matches!(
            ws.write_upload("sub", b""),
            Err(WorkspaceError::NotAFile(_))
        ));
        assert!(matches!(
            ws.write_upload("/workspace", b""),
            Err(WorkspaceError::NotAFile(_))
        ));
    }

    #[test]
    fn zip_round_trip() {
        let (tmp, ws) = setup();
        write(&ws, "README.md", b"# hi\n");
        write(&ws, "src/main.rs", b"fn main() {}\n");
        write(&ws, ".git/HEAD", b"ref: refs/heads/main\n");
        write(&ws, "nested/.git/config", b"[core]\n");
        write(&ws, "nested/code.py", b"print(1)\n");
        fs::create_dir(ws.root().join("empty")).unwrap();
        let outside = tmp.path().join("secret.txt");
        fs::write(&outside, b"secret").unwrap();
        symlink(&outside, ws.root().join("leak")).unwrap();
        symlink("/etc", ws.root().join("etc")).unwrap();
        symlink("README.md", ws.root().join("readme_link")).unwrap();

        let bytes = ws.zip().unwrap();
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let mut names: Vec<String> = archive.file_names().map(str::to_string).collect();
        names.sort();
        assert_eq!(
            names,
            vec![
                "README.md",
                "empty/",
                "nested/",
                "nested/code.py",
                "readme_link",
                "src/",
                "src/main.rs"
            ]
        );
        let mut content = String::new();
        archive
            .by_name("src/main.rs")
            .unwrap()
            .read_to_string(&mut content)
            .unwrap();
        assert_eq!(content, "fn main() {}\n");
        let mut linked = String::new();
        archive
            .by_name("readme_link")
            .unwrap()
            .read_to_string(&mut linked)
            .unwrap();
        assert_eq!(linked, "# hi\n");
        let entry = archive.by_name("README.md").unwrap();
        assert_eq!(entry.compression(), CompressionMethod::Deflated);
        assert!(entry.last_modified().is_some_and(|t| t.year() >= 2024));
    }

    #[test]
    fn zip_time_converts_known_dates() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(951_782_400 + 3_661); // 2000-02-29 01:01:01
        let dt = zip_time(t).unwrap();
        assert_eq!(
            (
                dt.year(),
                dt.month(),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second()
            ),
            (2000, 2, 29, 1, 1, 0) // zip stores seconds in steps of two
        );
        assert!(zip_time(UNIX_EPOCH).is_none());
    }

    fn git_repo() -> (tempfile::TempDir, Workspace) {
        let (tmp, ws) = setup();
        let root = ws.root().to_path_buf();
        run_git(&root, &["init", "-q"]);
        write(&ws, "keep.txt", b"keep\n");
        write(&ws, "modify.txt", b"old\n");
        write(&ws, "delete.txt", b"gone\n");
        write(&ws, "rename_me.txt", b"same content here\n");
        write(&ws, "dir/inner.txt", b"inner\n");
        run_git(&root, &["add", "-A"]);
        run_git(&root, &["commit", "-q", "-m", "init"]);
        (tmp, ws)
    }

    fn change(status: &str, path: &str) -> GitChange {
        GitChange {
            status: status.into(),
            path: path.into(),
        }
    }

    #[test]
    fn git_routes_run_no_program_the_repository_configures() {
        let (tmp, ws) = git_repo();
        let root = ws.root().to_path_buf();
        let marker = |what: &str| tmp.path().join(format!("ran-{what}"));
        for (key, what) in [
            ("filter.evil.clean", "clean"),
            ("filter.evil.smudge", "smudge"),
            ("filter.evil.process", "process"),
            ("filter.x.y.clean", "dotted"),
            ("diff.evil.textconv", "textconv"),
            ("core.fsmonitor", "fsmonitor"),
        ] {
            let cmd = format!("touch {}; cat", marker(what).display());
            run_git(&root, &["config", key, &cmd]);
        }
        fs::create_dir_all(root.join(".git/info")).unwrap();
        fs::write(
            root.join(".git/info/attributes"),
            "* filter=evil diff=evil\n",
        )
        .unwrap();
        fs::write(root.join(".gitattributes"), "*.txt filter=x.y\n").unwrap();
        fs::write(root.join("modify.txt"), "new\n").unwrap();
        let changes = ws.git_changes().unwrap();
        assert!(changes.contains(&change("M", "modify.txt")), "{changes:?}");
        let diff = ws.git_diff("modify.txt").unwrap();
        assert_eq!(
            (diff.original.as_str(), diff.modified.as_str()),
            ("old\n", "new\n")
        );
        for what in [
            "clean",
            "smudge",
            "process",
            "dotted",
            "textconv",
            "fsmonitor",
        ] {
            assert!(
                !marker(what).exists(),
                "git ran the repository's {what} program"
            );
        }
        // The same repository does run them with plain git: the test can fail.
        let _ = Command::new("git")
            .arg("-C")
            .arg(&root)
            .args(["diff", "--stat"])
            .output();
        assert!(marker("process").exists() || marker("clean").exists());
    }

    #[test]
    fn git_changes_reports_statuses() {
        let (_tmp, ws) = git_repo();
        let root = ws.root().to_path_buf();
        assert_eq!(ws.git_changes().unwrap(), vec![]);
        write(&ws, "modify.txt", b"new\n");
        write(&ws, "new dir/added.txt", b"added\n");
        write(&ws, "staged.txt", b"staged\n");
        run_git(&root, &["add", "staged.txt"]);
        fs::remove_file(root.join("delete.txt")).unwrap();
        run_git(&root, &["mv", "rename_me.txt", "renamed.txt"]);
        assert_eq!(
            ws.git_changes().unwrap(),
            vec![
                change("D", "delete.txt"),
                change("M", "modify.txt"),
                change("A", "new dir/added.txt"),
                change("R", "renamed.txt"),
                change("A", "staged.txt"),
            ]
        );
    }

    #[test]
    fn git_changes_in_a_subdirectory_and_nested_repos() {
        // The workspace is a subdirectory of a repository.
        let (_tmp, ws) = git_repo();
        write(&ws, "dir/inner.txt", b"changed\n");
        write(&ws, "modify.txt", b"outside the sub-workspace\n");
        let sub = Workspace::open(&ws.root().join("dir")).unwrap();
        assert_eq!(sub.git_changes().unwrap(), vec![change("M", "inner.txt")]);
        assert_eq!(
            sub.git_diff("inner.txt").unwrap(),
            GitDiff {
                original: "inner\n".into(),
                modified: "changed\n".into()
            }
        );

        // A plain workspace holding cloned repositories, as upstream supports.
        let (_tmp2, plain) = setup();
        let repo = plain.root().join("proj");
        fs::create_dir(&repo).unwrap();
        run_git(&repo, &["init", "-q"]);
        write(&plain, "proj/a.txt", b"a\n");
        run_git(&repo, &["add", "-A"]);
        run_git(&repo, &["commit", "-q", "-m", "init"]);
        write(&plain, "proj/a.txt", b"b\n");
        write(&plain, "loose.txt", b"not in any repo\n");
        assert_eq!(
            plain.git_changes().unwrap(),
            vec![change("M", "proj/a.txt")]
        );
        assert_eq!(
            plain.git_diff("proj/a.txt").unwrap(),
            GitDiff {
                original: "a\n".into(),
                modified: "b\n".into()
            }
        );
    }

    #[test]
    fn git_changes_with_a_repo_inside_the_workspace_repo() {
        let (_tmp, ws) = git_repo();
        let inner = ws.root().join("inner");
        fs::create_dir(&inner).unwrap();
        run_git(&inner, &["init", "-q"]);
        write(&ws, "inner/x.txt", b"x\n");
        run_git(&inner, &["add", "-A"]);
        run_git(&inner, &["commit", "-q", "-m", "init"]);
        write(&ws, "inner/x.txt", b"y\n");
        write(&ws, "inner/new.txt", b"n\n");
        write(&ws, "modify.txt", b"new\n");
        assert_eq!(
            ws.git_changes().unwrap(),
            vec![
                change("A", "inner/new.txt"),
                change("M", "inner/x.txt"),
                change("M", "modify.txt"),
            ]
        );
        assert_eq!(ws.git_diff("inner/x.txt").unwrap().original, "x\n");
    }

    #[test]
    fn git_outside_a_repo_is_not_git() {
        let (_tmp, ws) = setup();
        write(&ws, "a.txt", b"a");
        assert!(matches!(ws.git_changes(), Err(WorkspaceError::NotGit)));
        assert!(matches!(ws.git_diff("a.txt"), Err(WorkspaceError::NotGit)));
    }

    #[test]
    fn git_diff_for_modified_new_deleted() {
        let (_tmp, ws) = git_repo();
        let root = ws.root().to_path_buf();
        write(&ws, "modify.txt", b"new\n");
        write(&ws, "fresh.txt", b"fresh\n");
        fs::remove_file(root.join("delete.txt")).unwrap();
        fs::remove_dir_all(root.join("dir")).unwrap();
        run_git(&root, &["mv", "rename_me.txt", "renamed.txt"]);
        let diff = |p| ws.git_diff(p).unwrap();
        assert_eq!(
            diff("modify.txt"),
            GitDiff {
                original: "old\n".into(),
                modified: "new\n".into()
            }
        );
        assert_eq!(
            diff("/workspace/fresh.txt"),
            GitDiff {
                original: String::new(),
                modified: "fresh\n".into()
            }
        );
        assert_eq!(
            diff("delete.txt"),
            GitDiff {
                original: "gone\n".into(),
                modified: String::new()
            }
        );
        assert_eq!(
            diff("dir/inner.txt"),
            GitDiff {
                original: "inner\n".into(),
                modified: String::new()
            }
        );
        assert_eq!(
            diff("renamed.txt"),
            GitDiff {
                original: String::new(),
                modified: "same content here\n".into()
            }
        );
        assert_eq!(
            diff("keep.txt"),
            GitDiff {
                original: "keep\n".into(),
                modified: "keep\n".into()
            }
        );
        assert!(matches!(ws.git_diff("."), Err(WorkspaceError::NotAFile(_))));
    }

    #[test]
    fn git_diff_rejects_escapes() {
        let (_tmp, ws) = setup_links();
        run_git(ws.root(), &["init", "-q"]);
        for p in ESCAPES {
            match ws.git_diff(p) {
                Err(WorkspaceError::Outside(_)) => {}
                other => panic!("{p}: expected Outside, got {other:?}"),
            }
        }
        assert!(matches!(
            ws.git_diff("a\0b"),
            Err(WorkspaceError::InvalidPath { .. })
        ));
        assert_eq!(
            ws.git_diff("%2e%2e").unwrap(),
            GitDiff {
                original: String::new(),
                modified: String::new()
            }
        );
    }

    #[test]
    fn git_diff_without_commits_has_empty_original() {
        let (_tmp, ws) = setup();
        run_git(ws.root(), &["init", "-q"]);
        write(&ws, "a.txt", b"a\n");
        assert_eq!(
            ws.git_diff("a.txt").unwrap(),
            GitDiff {
                original: String::new(),
                modified: "a\n".into()
            }
        );
        assert_eq!(ws.git_changes().unwrap(), vec![change("A", "a.txt")]);
    }

    #[test]
    fn porcelain_parsing() {
        let raw = b" M a\0?? b\0R  new\0old\0UU c\0AD d\0D  e\0AM f\0C  g\0h\0";
        assert_eq!(
            parse_porcelain(raw),
            vec![
                change("M", "a"),
                change("A", "b"),
                change("R", "new"),
                change("U", "c"),
                change("D", "e"),
                change("A", "f"),
                change("A", "g"),
            ]
        );
    }
}
