//! Starting the kernel process: the one place where the kernel's command line,
//! environment and working directory are decided, so a sandbox for the agent's
//! processes can be applied to it as to the shell.

use std::path::Path;
use std::process::Stdio;
use tokio::process::{Child, Command};

/// Starts `python -m ipykernel_launcher -f <connection_file>` in `cwd` with exactly the
/// environment `env` (the agent's clean child environment, runtime marker included), in
/// its own process group (so an interrupt or a kill reaches what a cell started too).
/// Its standard error is piped so a failed start can say why. The kernel gets no other
/// descriptor of the server (its database, its listening socket, locks it inherited),
/// and dies with the server even when the server is killed without cleaning up. It runs
/// in the conversation's sandbox (`confine`), as the shell does.
pub fn spawn_kernel(
    python: &str,
    connection_file: &Path,
    cwd: &Path,
    env: &[(String, String)],
    confine: crate::runtime::sandbox::Prepared,
) -> std::io::Result<Child> {
    let mut cmd = Command::new(python);
    cmd.args(["-m", "ipykernel_launcher", "-f"])
        .arg(connection_file)
        .current_dir(cwd)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // The conversation's sandbox first: it needs descriptors the step below closes.
    confine.apply_to(cmd.as_std_mut());
    // SAFETY: only async-signal-safe calls (prctl, close_range) between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Best effort (Linux 5.9+): descriptors the server did not mark close-on-exec.
            let _ = libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            Ok(())
        });
    }
    cmd.spawn()
}
