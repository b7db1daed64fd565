//! The environment the agent's processes start from: a short allow-list of the server's
//! variables (never its secrets: `LLM_API_KEY`, `SESSION_API_KEY` and the like stay in the
//! server), the configured runtime variables and the user's secrets, and a marker that
//! finds every process of a runtime again, even one that left its session.

/// The variable that marks a runtime's processes (its value is the runtime's id).
pub const MARKER: &str = "OPENHANDS_RUNTIME_ID";

/// Server variables a shell needs to behave like the user's own; `LC_*` too.
const INHERITED: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "SHELL", "TMPDIR",
];

/// Whether the server's variable `name` is passed to the agent's processes.
pub fn inherited(name: &str) -> bool {
    INHERITED.contains(&name) || name.starts_with("LC_")
}

/// Marks every descriptor this process inherited beyond stdin, stdout and stderr
/// close-on-exec, so none reaches the agent's processes (a lock or socket of whatever
/// started the server would otherwise live on in a background job). Call it first thing,
/// before any thread starts.
pub fn stop_inheriting_descriptors() {
    #[cfg(target_os = "linux")]
    {
        const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
        // SAFETY: close_range only changes descriptor flags; no memory is passed.
        let done = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                3 as libc::c_uint,
                libc::c_uint::MAX,
                CLOSE_RANGE_CLOEXEC,
            )
        } == 0;
        if done {
            return;
        }
    }
    // Kernels without close_range: walk the open descriptors.
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        let fds: Vec<i32> = dir
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|fd| *fd > 2)
            .collect();
        for fd in fds {
            // SAFETY: setting FD_CLOEXEC on a descriptor number; a closed one fails harmlessly.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
}

/// The allow-listed variables of this process.
pub fn from_server() -> Vec<(String, String)> {
    std::env::vars().filter(|(k, _)| inherited(k)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_of_the_server_are_not_inherited() {
        for name in [
            "LLM_API_KEY",
            "SESSION_API_KEY",
            "AWS_SECRET_ACCESS_KEY",
            "GITHUB_TOKEN",
            "LD_PRELOAD",
            "FILE_STORE_PATH",
        ] {
            assert!(!inherited(name), "{name}");
        }
        for name in ["PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR"] {
            assert!(inherited(name), "{name}");
        }
    }
}
