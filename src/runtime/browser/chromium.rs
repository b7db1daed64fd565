//! Finding and starting headless Chromium, and ending it with everything it started.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::super::{child_env, process};

/// The variable that marks a browser's processes (its value is the browser's id).
const MARKER: &str = "OPENHANDS_BROWSER_ID";
/// How long Chromium may take to open its DevTools endpoint.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Where Debian, Ubuntu and Google install it.
const CANDIDATES: &[&str] = &[
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/bin/google-chrome",
    "/usr/bin/google-chrome-stable",
];

/// Why Chromium did not start.
#[derive(Debug, Error)]
pub enum LaunchError {
    #[error("Chromium could not be started ({path}): {source}")]
    Spawn {
        path: String,
        source: std::io::Error,
    },
    #[error("Chromium exited before opening its DevTools endpoint: {0}")]
    Exited(String),
    #[error("Chromium did not open its DevTools endpoint within {0} s")]
    Timeout(u64),
}

/// The Chromium executable: `CHROMIUM_PATH` if set, else the first one installed.
pub fn find() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM_PATH").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    CANDIDATES.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// A running headless Chromium; killed (with every process it started) when dropped.
pub struct Chromium {
    child: Child,
    id: String,
    profile: PathBuf,
    /// The browser's DevTools WebSocket address.
    pub ws_url: String,
}

impl Chromium {
    /// Starts `executable` headless, in `cwd`, with a fresh profile, and waits for its
    /// DevTools endpoint.
    pub async fn start(executable: &Path, cwd: &Path) -> Result<Chromium, LaunchError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let profile = std::env::temp_dir().join(format!("openhands-browser-{id}"));
        let mut command = Command::new(executable);
        command
            .args([
                "--headless",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--mute-audio",
                "--hide-scrollbars",
                "--window-size=1280,720",
                "--password-store=basic",
            ])
            .arg(format!("--user-data-dir={}", profile.display()));
        // Chromium's sandbox refuses to run as root.
        if nix::unistd::geteuid().is_root() {
            command.arg("--no-sandbox");
        }
        command
            .arg("about:blank")
            .current_dir(cwd)
            .env_clear()
            .envs(child_env::from_server())
            .env(MARKER, &id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        // SAFETY: only an async-signal-safe call between fork and exec.
        unsafe {
            command.pre_exec(|| {
                // If the server dies without cleaning up (SIGKILL), the browser dies too
                // (its helper processes exit when it does).
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|source| LaunchError::Spawn {
            path: executable.display().to_string(),
            source,
        })?;
        let Some(stderr) = child.stderr.take() else {
            return Err(LaunchError::Exited("no stderr".into()));
        };
        let mut lines = BufReader::new(stderr).lines();
        let mut seen = Vec::new();
        let found = tokio::time::timeout(START_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(at) = line.find("ws://") {
                    return Some(line[at..].trim().to_string());
                }
                if seen.len() < 20 {
                    seen.push(line);
                }
            }
            None
        })
        .await;
        let mut chromium = Chromium {
            child,
            id,
            profile,
            ws_url: String::new(),
        };
        match found {
            Ok(Some(url)) => {
                chromium.ws_url = url;
                // Keep draining stderr so Chromium never blocks on a full pipe.
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                Ok(chromium)
            }
            Ok(None) => Err(LaunchError::Exited(seen.join("\n"))),
            Err(_) => Err(LaunchError::Timeout(START_TIMEOUT.as_secs())),
        }
    }

    /// The browser's main process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// True once the main process has exited.
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// What kills this browser from elsewhere (while an action holds it).
    pub fn killer(&self) -> Killer {
        Killer {
            pid: self.child.id(),
            id: self.id.clone(),
        }
    }

    /// Kills the browser's process group and every process carrying its marker.
    pub fn kill(&mut self) {
        let _ = self.child.start_kill();
        self.killer().kill();
    }
}

/// Kills one browser's processes without owning them.
#[derive(Debug, Clone)]
pub struct Killer {
    pid: Option<u32>,
    id: String,
}

impl Killer {
    /// SIGKILLs the browser's process group and every process carrying its marker.
    pub fn kill(&self) {
        if let Some(pid) = self.pid.and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        process::kill_marked(MARKER, &self.id);
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        self.kill();
        let _ = self.child.try_wait();
        let profile = std::mem::take(&mut self.profile);
        // The profile is removed once the processes are gone (off the async threads).
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            let _ = std::fs::remove_dir_all(profile);
        });
    }
}
