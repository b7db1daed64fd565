//! Path resolution and confinement: a user-given path becomes a physical path inside the
//! workspace root, or an error.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use super::{Workspace, WorkspaceError};

/// The path under which the sandbox (and the agent) sees the workspace root.
const SANDBOX_ROOT: &str = "/workspace";

/// How many symbolic links one resolution may follow before giving up (as Linux does).
const MAX_SYMLINKS: u32 = 40;

/// A resolved path: `rel` as the user named it (lexically normalized, relative to the root)
/// and `real`, the physical location (symlinks resolved) inside the root.
pub(super) struct Located {
    pub(super) rel: PathBuf,
    pub(super) real: PathBuf,
}

impl Workspace {
    /// Resolves a user-given path (absolute, or relative to the root; `/workspace/...` also
    /// means the root, as in OpenHands' sandbox) to a path inside the root. Rejects `..` that
    /// climbs out, absolute paths elsewhere, symlinks (at any component, including the final
    /// one, dangling or not) pointing outside, and NUL bytes. Percent-escapes are taken
    /// literally. Works for paths that do not exist yet: the result is physical for its
    /// existing part and the missing rest is plain names under it.
    pub(super) fn locate(&self, path: &str) -> Result<Located, WorkspaceError> {
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
}

/// Lexically normalizes an absolute path (`..` at `/` stays at `/`, like `os.path.normpath`).
pub(super) fn normalize_absolute(path: &Path) -> PathBuf {
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

#[cfg(test)]
mod tests {
    use super::super::test_support::{setup, setup_links, ESCAPES};
    use super::super::{Workspace, WorkspaceError};
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

    /// The physical path `path` resolves to.
    fn resolve(ws: &Workspace, path: &str) -> Result<PathBuf, WorkspaceError> {
        ws.locate(path).map(|l| l.real)
    }

    fn assert_outside<T: std::fmt::Debug>(r: Result<T, WorkspaceError>) {
        match r {
            Err(WorkspaceError::Outside(_)) => {}
            other => panic!("expected Outside, got {other:?}"),
        }
    }

    #[test]
    fn resolve_rejects_escapes() {
        let (_tmp, ws) = setup_links();
        for p in ESCAPES {
            assert_outside(resolve(&ws, p));
        }
        assert_outside(resolve(&ws, "dangling"));
        assert_outside(resolve(&ws, "dangling_rel"));
        let abs_outside = ws.root.parent().unwrap().join("outside/secret.txt");
        assert_outside(resolve(&ws, abs_outside.to_str().unwrap()));
        let sneaky = format!("{}/../outside", ws.root.display());
        assert_outside(resolve(&ws, &sneaky));
    }

    #[test]
    fn resolve_accepts_inside_paths() {
        let (_tmp, ws) = setup_links();
        let root = ws.root.to_path_buf();
        assert_eq!(resolve(&ws, "").unwrap(), root);
        assert_eq!(resolve(&ws, ".").unwrap(), root);
        assert_eq!(resolve(&ws, "/workspace").unwrap(), root);
        assert_eq!(resolve(&ws, "/workspace/").unwrap(), root);
        assert_eq!(resolve(&ws, "/workspace/a/b").unwrap(), root.join("a/b"));
        assert_eq!(resolve(&ws, "sub/../a").unwrap(), root.join("a"));
        assert_eq!(resolve(&ws, "./sub/").unwrap(), root.join("sub"));
        let abs = root.join("sub/inner.txt");
        assert_eq!(resolve(&ws, abs.to_str().unwrap()).unwrap(), abs);
        // Symlinks that stay inside resolve to their target.
        assert_eq!(resolve(&ws, "in_abs/inner.txt").unwrap(), abs);
        assert_eq!(resolve(&ws, "in_rel").unwrap(), abs);
        assert_eq!(
            resolve(&ws, "in_dangling").unwrap(),
            root.join("sub/later.txt")
        );
        // Not-yet-existing paths are fine.
        assert_eq!(
            resolve(&ws, "new/deep/file").unwrap(),
            root.join("new/deep/file")
        );
        // Percent-escapes are literal names.
        assert_eq!(resolve(&ws, "%2e%2e").unwrap(), root.join("%2e%2e"));
        assert_eq!(
            resolve(&ws, "%2e%2e/%2e%2e/etc/passwd").unwrap(),
            root.join("%2e%2e/%2e%2e/etc/passwd")
        );
    }

    #[test]
    fn resolve_rejects_nul_and_loops() {
        let (_tmp, ws) = setup();
        assert!(matches!(
            resolve(&ws, "a\0b"),
            Err(WorkspaceError::InvalidPath { .. })
        ));
        symlink("loop_b", ws.root.join("loop_a")).unwrap();
        symlink("loop_a", ws.root.join("loop_b")).unwrap();
        assert!(matches!(
            resolve(&ws, "loop_a/x"),
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
        assert_eq!(ws.root, fs::canonicalize(&real).unwrap());
        let via_alias = format!("{}/a.txt", link.display());
        assert_eq!(resolve(&ws, &via_alias).unwrap(), ws.root.join("a.txt"));
    }
}
