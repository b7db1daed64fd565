//! A hint for the model when a sandboxed command failed on a denial.

use super::{SandboxMode, SandboxPolicy};

/// What denials look like in a command's output.
const SIGNS: &[&str] = &[
    "Permission denied",
    "Read-only file system",
    "Operation not permitted",
    "EACCES",
    "EPERM",
    "EROFS",
];

/// Network failures a sandbox without network produces.
const NETWORK_SIGNS: &[&str] = &[
    "Network is unreachable",
    "Could not resolve host",
    "Temporary failure in name resolution",
    "Connection refused",
    "Name or service not known",
];

/// The hint to append to a failed command's output under `policy`, if the output shows
/// a denial the sandbox may have caused.
pub fn hint_for_output(policy: &SandboxPolicy, exit_code: i64, output: &str) -> Option<String> {
    if !policy.enabled() || exit_code == 0 {
        return None;
    }
    if SIGNS.iter().any(|s| output.contains(s)) {
        return Some(match policy.mode {
            SandboxMode::ReadOnly => "[Sandbox: this conversation is read-only (sandbox mode read-only): nothing can be written, the server's store and configuration are hidden. A permission error above may come from it.]".to_string(),
            _ => format!(
                "[Sandbox: Permission denied errors may come from the sandbox, which allows writes only inside the workspace ({}), $TMPDIR and $HOME, and hides the server's store, its configuration and other conversations' workspaces. Work inside the workspace instead.]",
                policy.workspace.display()
            ),
        });
    }
    if !policy.network && NETWORK_SIGNS.iter().any(|s| output.contains(s)) {
        return Some("[Sandbox: the network is off for this conversation (sandbox network = off): only loopback services started inside this conversation are reachable.]".to_string());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_permission_error_gets_the_hint_only_when_sandboxed_and_failed() {
        let mut p = SandboxPolicy::off(Path::new("/ws"));
        let out = "bash: /etc/x: Permission denied";
        assert_eq!(hint_for_output(&p, 1, out), None);
        p.mode = SandboxMode::WorkspaceWrite;
        assert!(hint_for_output(&p, 1, out)
            .unwrap()
            .contains("writes only inside the workspace"));
        assert_eq!(hint_for_output(&p, 0, out), None);
        assert_eq!(hint_for_output(&p, 1, "all fine"), None);
        p.network = false;
        assert!(
            hint_for_output(&p, 7, "curl: (7) Failed to connect: Connection refused")
                .unwrap()
                .contains("network is off")
        );
    }
}
