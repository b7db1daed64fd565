//! Workspaces for the unit tests of this module.

use std::fs;
use std::os::unix::fs::symlink;

use super::Workspace;

pub(super) fn setup() -> (tempfile::TempDir, Workspace) {
    let tmp = tempfile::tempdir().unwrap();
    let ws = Workspace::open(&tmp.path().join("ws")).unwrap();
    (tmp, ws)
}

pub(super) fn write(ws: &Workspace, rel: &str, content: &[u8]) {
    let p = ws.root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, content).unwrap();
}
/// A workspace with an escaping symlink as a directory (`etc`), as a file (`passwd`) and
/// dangling (`dangling`), plus links that stay inside.
pub(super) fn setup_links() -> (tempfile::TempDir, Workspace) {
    let (tmp, ws) = setup();
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("secret.txt"), "secret").unwrap();
    symlink("/etc", ws.root.join("etc")).unwrap();
    symlink("/etc/passwd", ws.root.join("passwd")).unwrap();
    symlink(&outside, ws.root.join("out")).unwrap();
    symlink("../outside/secret.txt", ws.root.join("rel_out")).unwrap();
    symlink(outside.join("new.txt"), ws.root.join("dangling")).unwrap();
    symlink("../outside/newdir/x", ws.root.join("dangling_rel")).unwrap();
    write(&ws, "sub/inner.txt", b"inner");
    symlink(ws.root.join("sub"), ws.root.join("in_abs")).unwrap();
    symlink("sub/inner.txt", ws.root.join("in_rel")).unwrap();
    symlink("sub/later.txt", ws.root.join("in_dangling")).unwrap();
    (tmp, ws)
}

pub(super) const ESCAPES: &[&str] = &[
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
