//! `GET git/changes` and `GET git/diff`, run without any program the repository
//! configures (fsmonitor, hooks, external diff, filter drivers).

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use super::files::read_capped;
use super::{Workspace, WorkspaceError, MAX_TEXT_BYTES};

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

impl Workspace {
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
    use super::super::test_support::{setup, setup_links, write, ESCAPES};
    use super::*;

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

    fn git_repo() -> (tempfile::TempDir, Workspace) {
        let (tmp, ws) = setup();
        let root = ws.root.to_path_buf();
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
        let root = ws.root.to_path_buf();
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
        let root = ws.root.to_path_buf();
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
        let sub = Workspace::open(&ws.root.join("dir")).unwrap();
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
        let repo = plain.root.join("proj");
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
        let inner = ws.root.join("inner");
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
        let root = ws.root.to_path_buf();
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
        run_git(&ws.root, &["init", "-q"]);
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
        run_git(&ws.root, &["init", "-q"]);
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
