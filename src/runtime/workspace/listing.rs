//! `GET list-files`: a directory's children, with `.gitignore` applied.

use std::fs;
use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;

use super::confine::Located;
use super::{Workspace, WorkspaceError};

impl Workspace {
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
}

/// A relative path as a `/`-separated string.
fn slash_path(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{setup, setup_links, write, ESCAPES};
    use super::super::WorkspaceError;
    use std::fs;

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
        fs::create_dir(ws.root.join("empty")).unwrap();
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
        fs::create_dir(ws.root.join("%2e%2e")).unwrap();
        write(&ws, "%2e%2e/f", b"");
        assert_eq!(ws.list_files(Some("%2e%2e")).unwrap(), vec!["%2e%2e/f"]);
    }
}
