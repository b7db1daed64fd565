//! Python cells (`run_ipython`): one IPython kernel per conversation, started on the
//! first cell in the workspace with the workspace's `python3`, driven over the Jupyter
//! messaging protocol (see docs/ipython.md).

mod kernel;
mod output;
mod spawn;

use super::sandbox::SandboxPolicy;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

use crate::events::{IPythonExtras, IPythonRunCellArgs, Observation, ObservationKind};
pub use kernel::{CellEnd, Kernel, KernelError, Limits};
pub use output::strip_ansi;

/// The interpreter the kernel runs with (looked up on the agent's `PATH`).
pub const PYTHON: &str = "python3";

/// What a `run_ipython` gets when no kernel can start here.
pub const NOT_AVAILABLE: &str = "IPython cells are not available: the workspace's Python (`python3`) cannot import `ipykernel`. Install it with `pip install ipykernel` (in the Python on the server's PATH) and restart the server, or run Python with execute_bash (for example `python3 script.py`).";

/// Whether a kernel can start: `python3 -c "import ipykernel"` succeeds with the agent's
/// environment. Probed once per process.
pub async fn available() -> bool {
    static PROBE: OnceCell<bool> = OnceCell::const_new();
    *PROBE
        .get_or_init(|| async {
            let probe = tokio::process::Command::new(PYTHON)
                .args(["-c", "import ipykernel"])
                .env_clear()
                .envs(super::child_env::from_server())
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .status();
            match tokio::time::timeout(Duration::from_secs(20), probe).await {
                Ok(Ok(status)) => status.success(),
                _ => false,
            }
        })
        .await
}

/// The kernels' connection files (they hold the signing keys; 0700).
fn runtime_dir() -> PathBuf {
    std::env::temp_dir().join(format!("openhands-kernels-{}", nix::unistd::getuid()))
}

/// The Python cells of one runtime.
pub struct IPython {
    workspace: PathBuf,
    /// The kernel's whole environment (the clean child environment and the marker).
    env: Vec<(String, String)>,
    default_timeout: Duration,
    no_change_timeout: Duration,
    kernel: std::sync::Mutex<Option<Arc<Kernel>>>,
    /// Held while the kernel is looked up or started, so only one starts at a time.
    starting: tokio::sync::Mutex<()>,
    /// The conversation's sandbox, which the kernel runs in like the shell.
    sandbox: SandboxPolicy,
}

/// Why cells cannot run in a sandbox without the network.
pub const NO_NETWORK: &str = "Python cells are not available with `[sandbox] network = off`: the kernel talks to the server over loopback TCP, which the sandbox's private network cuts. Run Python with execute_bash (`python3 script.py`) instead.";

/// Whether cells can run under `sandbox` (the kernel needs the server's loopback).
pub fn allowed_in(sandbox: &SandboxPolicy) -> bool {
    !sandbox.enabled() || sandbox.network
}

impl IPython {
    /// Cells for `workspace`; the kernel starts with the first one.
    pub fn new(
        workspace: &Path,
        env: Vec<(String, String)>,
        default_timeout: Duration,
        no_change_timeout: Duration,
        sandbox: SandboxPolicy,
    ) -> Self {
        IPython {
            sandbox,
            workspace: workspace.to_path_buf(),
            env,
            default_timeout,
            no_change_timeout,
            kernel: std::sync::Mutex::new(None),
            starting: tokio::sync::Mutex::new(()),
        }
    }

    fn current(&self) -> Option<Arc<Kernel>> {
        self.kernel.lock().ok().and_then(|k| k.clone())
    }

    /// The live kernel, started if there is none or the last one died; true when it
    /// replaced one that had died.
    async fn kernel(&self) -> Result<(Arc<Kernel>, bool, bool), KernelError> {
        let _one_at_a_time = self.starting.lock().await;
        let old = self.current();
        if let Some(k) = old.as_ref().filter(|k| !k.has_exited()) {
            return Ok((k.clone(), false, false));
        }
        let started = std::time::Instant::now();
        let confine = self.sandbox.prepare().map_err(KernelError::Sandbox)?;
        // A sandboxed kernel keeps its connection file (its signing key) in the
        // conversation's private temporary directory, which no other conversation sees.
        let dir = if self.sandbox.enabled() {
            self.sandbox.tmp.clone()
        } else {
            runtime_dir()
        };
        let fresh =
            Arc::new(Kernel::start(PYTHON, &self.workspace, &self.env, &dir, confine).await?);
        tracing::info!(
            pid = fresh.pid(),
            ms = started.elapsed().as_millis() as u64,
            "IPython kernel started"
        );
        if let Ok(mut slot) = self.kernel.lock() {
            *slot = Some(fresh.clone());
        }
        Ok((fresh, old.is_some(), true))
    }

    /// Runs one cell. `timeout` (seconds) is the action's hard timeout; without it the
    /// cell is also interrupted after `no_change_timeout` without output.
    /// The cell's printed output goes to `tap` as it is produced.
    pub async fn run(
        &self,
        args: &IPythonRunCellArgs,
        timeout: Option<f64>,
        tap: Option<&dyn crate::runtime::output_tap::OutputTap>,
    ) -> Observation {
        if !available().await {
            return Observation::error(NOT_AVAILABLE, "");
        }
        if !allowed_in(&self.sandbox) {
            return Observation::error(NO_NETWORK, "");
        }
        let (kernel, restarted, fresh) = match self.kernel().await {
            Ok(k) => k,
            Err(e) => {
                return Observation::error(format!("The IPython kernel could not start: {e}"), "")
            }
        };
        let hard = timeout
            .filter(|t| t.is_finite() && *t > 0.0)
            .map(|t| Duration::from_secs_f64(t.min(86_400.0)));
        let limits = Limits {
            soft: hard.is_none().then_some(self.no_change_timeout),
            hard: hard.unwrap_or(self.default_timeout),
        };
        if fresh && !args.kernel_init_code.trim().is_empty() {
            if let Err(e) = kernel.execute(&args.kernel_init_code, limits, None).await {
                tracing::warn!(error = %e, "kernel_init_code failed");
            }
        }
        match kernel.execute(&args.code, limits, tap).await {
            Ok(out) => {
                if matches!(out.end, CellEnd::Died(_) | CellEnd::Killed) {
                    kernel.kill();
                }
                let images = (!out.images.is_empty()).then(|| out.images.clone());
                Observation {
                    content: out.content(restarted),
                    kind: ObservationKind::RunIpython(IPythonExtras {
                        code: args.code.clone(),
                        image_urls: images,
                    }),
                }
            }
            Err(e) => {
                kernel.kill();
                Observation::error(
                    format!(
                        "The cell could not run: {e}. The next cell starts a new IPython kernel."
                    ),
                    "",
                )
            }
        }
    }

    /// Interrupts the running cell (Stop).
    pub fn interrupt(&self) {
        if let Some(k) = self.current() {
            k.interrupt();
        }
    }

    /// Kills the kernel (close, delete, shutdown).
    pub fn close(&self) {
        if let Some(k) = self.kernel.lock().ok().and_then(|mut k| k.take()) {
            k.kill();
        }
    }
}

#[cfg(test)]
mod tests;
