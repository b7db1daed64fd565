//! `GET zip-directory`: the workspace as a zip archive.

use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

use super::{Workspace, WorkspaceError};

impl From<zip::result::ZipError> for WorkspaceError {
    fn from(e: zip::result::ZipError) -> Self {
        Self::Zip(e.to_string())
    }
}

impl Workspace {
    /// `GET zip-directory`: the whole workspace as a deflated zip written to `out` (a file,
    /// so that a big workspace is never held in memory). `.git` is left out at any depth;
    /// symlinks to files inside the root are stored as the file's content, other symlinks,
    /// special files and unreadable files are skipped.
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

#[cfg(test)]
mod tests {
    use super::super::test_support::{setup, write};
    use super::*;
    use std::io::{Cursor, Read};
    use std::os::unix::fs::symlink;

    #[test]
    fn zip_round_trip() {
        let (tmp, ws) = setup();
        write(&ws, "README.md", b"# hi\n");
        write(&ws, "src/main.rs", b"fn main() {}\n");
        write(&ws, ".git/HEAD", b"ref: refs/heads/main\n");
        write(&ws, "nested/.git/config", b"[core]\n");
        write(&ws, "nested/code.py", b"print(1)\n");
        fs::create_dir(ws.root.join("empty")).unwrap();
        let outside = tmp.path().join("secret.txt");
        fs::write(&outside, b"secret").unwrap();
        symlink(&outside, ws.root.join("leak")).unwrap();
        symlink("/etc", ws.root.join("etc")).unwrap();
        symlink("README.md", ws.root.join("readme_link")).unwrap();

        let bytes = ws.zip_to(Cursor::new(Vec::new())).unwrap();
        let mut archive = zip::ZipArchive::new(bytes).unwrap();
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
}
