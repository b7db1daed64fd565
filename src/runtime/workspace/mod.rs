//! Workspace-confined file operations behind the per-conversation runtime routes
//! (`list-files`, `select-file`, `upload-files`, `zip-directory`, `git/changes`,
//! `git/diff`; docs/protocol.md).
//!
//! Every user-given path goes through `Workspace::locate` (`confine.rs`), which refuses
//! anything that would leave the workspace root: `..` that climbs out, absolute paths
//! elsewhere, symbolic links (at any component, existing or dangling) whose target lies
//! outside, NUL bytes. All functions are blocking; call them from
//! `tokio::task::spawn_blocking`.
//!
//! - `confine.rs`: path resolution and confinement;
//! - `listing.rs`: directory listing with `.gitignore`;
//! - `files.rs`: reading a text file and writing an upload;
//! - `archive.rs`: the workspace as a zip archive;
//! - `git.rs`: changes and diffs, without running anything the repository configures.

mod archive;
mod confine;
mod files;
mod git;
mod listing;
#[cfg(test)]
mod test_support;

pub use git::{GitChange, GitDiff};

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Largest file [`Workspace::read_text`] and [`Workspace::git_diff`] will return (10 MiB).
pub const MAX_TEXT_BYTES: u64 = 10 * 1024 * 1024;

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

/// A directory that file operations may not leave.
#[derive(Clone, Debug)]
pub struct Workspace {
    /// Canonical (symlink-free, absolute) root.
    root: PathBuf,
    /// The root as given to [`Workspace::open`], made absolute; accepted as a prefix too.
    alias: PathBuf,
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
            confine::normalize_absolute(root)
        } else {
            canonical.clone()
        };
        Ok(Self {
            root: canonical,
            alias,
        })
    }

    /// The physical path of a user-given path inside the workspace (see `locate`), or
    /// an error if it leaves the workspace.
    pub fn real_path(&self, path: &str) -> Result<PathBuf, WorkspaceError> {
        self.locate(path).map(|l| l.real)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
