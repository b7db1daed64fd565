//! `GET select-file` and `POST upload-files`: reading a text file and writing an upload.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::{Workspace, WorkspaceError, MAX_TEXT_BYTES};

/// How many leading bytes are searched for a NUL byte to detect binary files.
const BINARY_SNIFF_BYTES: usize = 8 * 1024;

impl Workspace {
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
}

/// Reads a regular file of at most [`MAX_TEXT_BYTES`]; `shown` is the path as given.
pub(super) fn read_capped(shown: &str, real: &Path) -> Result<Vec<u8>, WorkspaceError> {
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

#[cfg(test)]
mod tests {
    use super::super::test_support::{setup, setup_links, write, ESCAPES};
    use super::*;

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

        let big = fs::File::create(ws.root.join("big.txt")).unwrap();
        big.set_len(MAX_TEXT_BYTES + 1).unwrap();
        match ws.read_text("big.txt") {
            Err(WorkspaceError::TooLarge { size, limit, .. }) => {
                assert_eq!(size, MAX_TEXT_BYTES + 1);
                assert_eq!(limit, MAX_TEXT_BYTES);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
        let exact = fs::File::create(ws.root.join("exact.txt")).unwrap();
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
        assert!(!ws.root.join(".git/config").exists());
        ws.write_upload("notgit/.gitignore", b"ok").unwrap();
    }

    #[test]
    fn write_upload_creates_dirs_and_stays_inside() {
        let (tmp, ws) = setup_links();
        let written = ws.write_upload("a.txt", b"one").unwrap();
        assert_eq!(written, ws.root.join("a.txt"));
        assert_eq!(fs::read(&written).unwrap(), b"one");
        let written = ws.write_upload("deep/er/b.bin", b"\0\x01").unwrap();
        assert_eq!(written, ws.root.join("deep/er/b.bin"));
        assert_eq!(fs::read(&written).unwrap(), b"\0\x01");
        ws.write_upload("a.txt", b"two").unwrap();
        assert_eq!(fs::read(ws.root.join("a.txt")).unwrap(), b"two");
        let written = ws.write_upload("/workspace/c.txt", b"c").unwrap();
        assert_eq!(written, ws.root.join("c.txt"));
        let written = ws.write_upload("%2e%2e", b"p").unwrap();
        assert_eq!(written, ws.root.join("%2e%2e"));
        // Through an inside symlink, dangling or not.
        ws.write_upload("in_abs/up.txt", b"u").unwrap();
        assert_eq!(fs::read(ws.root.join("sub/up.txt")).unwrap(), b"u");
        ws.write_upload("in_dangling", b"later").unwrap();
        assert_eq!(fs::read(ws.root.join("sub/later.txt")).unwrap(), b"later");

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
            format!("{}/../outside/new.txt", ws.root.display()),
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
}
