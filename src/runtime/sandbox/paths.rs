//! The policy applied to file operations the server performs for the agent (read, write,
//! the editor), on the physical path: every symbolic link resolved, dangling ones too.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use thiserror::Error;

use super::{SandboxMode, SandboxPolicy};

/// What a file operation does to its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// A file operation the sandbox refuses; `Display` is the observation the model gets.
#[derive(Debug, Error)]
pub enum Denied {
    #[error("Permission denied: {path} is outside the workspace ({real}); the sandbox ({mode}) allows writes only inside the workspace {workspace}, the temporary directory $TMPDIR and the home directory $HOME. Write inside the workspace instead.")]
    Write {
        path: String,
        real: String,
        mode: &'static str,
        workspace: String,
    },
    #[error("Permission denied: the sandbox is read-only, no file can be written ({path}). Ask the user to change [sandbox] mode if the task needs writes.")]
    ReadOnly { path: String },
    #[error("Permission denied: {path} resolves to {real}, which the sandbox hides (the server's store and configuration, other conversations' workspaces).")]
    Hidden { path: String, real: String },
    #[error("Permission denied: {path} could not be resolved safely ({reason}).")]
    Unresolvable { path: String, reason: String },
}

/// How many symbolic links one resolution may follow (as Linux does).
const MAX_SYMLINKS: u32 = 40;

impl SandboxPolicy {
    /// Checks `path` (absolute) for `access` and returns its physical form.
    pub fn check(&self, path: &Path, access: Access) -> Result<PathBuf, Denied> {
        if !self.enabled() {
            return Ok(path.to_path_buf());
        }
        let shown = path.display().to_string();
        let real = physical(path).map_err(|reason| Denied::Unresolvable {
            path: shown.clone(),
            reason,
        })?;
        let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let kept: Vec<PathBuf> = self.kept().iter().map(|p| canonical(p)).collect();
        let inside_kept = kept.iter().any(|k| real.starts_with(k));
        match access {
            Access::Write => match self.mode {
                SandboxMode::ReadOnly => return Err(Denied::ReadOnly { path: shown }),
                SandboxMode::WorkspaceWrite if !inside_kept => {
                    return Err(Denied::Write {
                        path: shown,
                        real: real.display().to_string(),
                        mode: self.mode.as_str(),
                        workspace: canonical(&self.workspace).display().to_string(),
                    })
                }
                _ => {}
            },
            Access::Read => {
                let hidden = self.hidden.iter().any(|h| real.starts_with(canonical(h)));
                if hidden && !inside_kept {
                    return Err(Denied::Hidden {
                        path: shown,
                        real: real.display().to_string(),
                    });
                }
            }
        }
        Ok(real)
    }
}

/// Follows `path` from `/` like `realpath -m`: every existing symlink is resolved
/// (relative targets against their directory), a missing component and the rest are
/// appended as they are (`..` after it is applied lexically).
fn physical(path: &Path) -> Result<PathBuf, String> {
    if !path.is_absolute() {
        return Err("not an absolute path".into());
    }
    let mut out = PathBuf::from("/");
    let mut queue: VecDeque<OsString> = path
        .components()
        .filter(|c| !matches!(c, Component::RootDir))
        .map(|c| c.as_os_str().to_owned())
        .collect();
    let mut budget = MAX_SYMLINKS;
    let mut missing = false;
    while let Some(name) = queue.pop_front() {
        if name == "." || name.is_empty() {
            continue;
        }
        if name == ".." {
            out.pop();
            continue;
        }
        let candidate = out.join(&name);
        if missing {
            out = candidate;
            continue;
        }
        match std::fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() => {
                budget = budget
                    .checked_sub(1)
                    .ok_or("too many levels of symbolic links")?;
                let target = std::fs::read_link(&candidate).map_err(|e| e.to_string())?;
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
            Err(_) => {
                missing = true;
                out = candidate;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn policy(root: &Path, mode: SandboxMode) -> SandboxPolicy {
        let ws = root.join("store/workspaces/a");
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::create_dir_all(root.join("store/workspaces/b")).unwrap();
        std::fs::write(root.join("store/openhands.db"), "db").unwrap();
        SandboxPolicy {
            mode,
            network: true,
            workspace: ws,
            home: root.join("store/sandbox/a/home"),
            tmp: root.join("store/sandbox/a/tmp"),
            hidden: vec![root.join("store")],
        }
    }

    #[test]
    fn writes_through_symlinks_that_leave_the_workspace_are_denied() {
        let tmp = tempfile::tempdir().unwrap();
        let p = policy(tmp.path(), SandboxMode::WorkspaceWrite);
        symlink("/etc", p.workspace.join("etc")).unwrap();
        symlink("../b/x", p.workspace.join("sibling")).unwrap();
        symlink(
            tmp.path().join("nowhere/file"),
            p.workspace.join("dangling"),
        )
        .unwrap();
        for name in ["etc/passwd", "sibling", "dangling", "../b/y"] {
            let r = p.check(&p.workspace.join(name), Access::Write);
            assert!(matches!(r, Err(Denied::Write { .. })), "{name}: {r:?}");
        }
        assert!(p
            .check(&p.workspace.join("new/file"), Access::Write)
            .is_ok());
        assert!(p.check(&p.tmp.join("f"), Access::Write).is_ok());
    }

    #[test]
    fn the_store_is_hidden_from_reads_but_the_workspace_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let p = policy(tmp.path(), SandboxMode::WorkspaceWrite);
        symlink("../../openhands.db", p.workspace.join("db")).unwrap();
        for path in [
            p.workspace.join("db"),
            tmp.path().join("store/openhands.db"),
            tmp.path().join("store/workspaces/b"),
        ] {
            let r = p.check(&path, Access::Read);
            assert!(matches!(r, Err(Denied::Hidden { .. })), "{path:?}: {r:?}");
        }
        assert!(p.check(&p.workspace.join("a.txt"), Access::Read).is_ok());
        assert!(p.check(Path::new("/etc/hostname"), Access::Read).is_ok());
    }

    #[test]
    fn read_only_denies_every_write_and_off_denies_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let ro = policy(tmp.path(), SandboxMode::ReadOnly);
        assert!(matches!(
            ro.check(&ro.workspace.join("a"), Access::Write),
            Err(Denied::ReadOnly { .. })
        ));
        let off = policy(tmp.path(), SandboxMode::Off);
        assert!(off.check(Path::new("/etc/x"), Access::Write).is_ok());
        assert!(off
            .check(&tmp.path().join("store/openhands.db"), Access::Read)
            .is_ok());
    }

    #[test]
    fn symlink_loops_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let p = policy(tmp.path(), SandboxMode::WorkspaceWrite);
        symlink("b", p.workspace.join("a")).unwrap();
        symlink("a", p.workspace.join("b")).unwrap();
        assert!(matches!(
            p.check(&p.workspace.join("a/x"), Access::Write),
            Err(Denied::Unresolvable { .. })
        ));
    }
}
