//! The sandbox every process of a conversation's runtime starts in (the shell, and any
//! other child the runtime spawns), and the same policy for the file operations the server
//! performs for the agent.
//!
//! A [`SandboxPolicy`] says what one conversation may touch. [`SandboxPolicy::prepare`]
//! does the work that may allocate (opening paths, building the Landlock ruleset) in the
//! server; [`Prepared::apply_to`] installs a `pre_exec` step that, in the forked child
//! and with raw system calls only, enters fresh user and mount namespaces (and a network
//! namespace when the network is off), hides the store and the configuration, drops every
//! capability, sets `no_new_privs` and enforces the Landlock ruleset. Everything the child
//! starts afterwards (`setsid`, double forks, `nohup`) inherits all of it.
//!
//! Usage for any child process of a runtime:
//!
//! ```ignore
//! let prepared = policy.prepare()?;            // in the server, before spawning
//! let mut cmd = std::process::Command::new("python3");
//! prepared.apply_to(&mut cmd);                 // env (HOME, TMPDIR, …) + pre_exec
//! let child = cmd.spawn()?;                    // tokio: apply_to(cmd.as_std_mut())
//! ```
//!
//! See docs/sandbox.md for how it works and what it does not cover.

mod child;
mod denial;
mod paths;
mod rules;
mod support;

pub use denial::hint_for_output;
pub use paths::{Access, Denied};
pub use support::{support, Support};

use serde::{Deserialize, Serialize};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// What the agent's processes may touch (`[sandbox] mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxMode {
    /// Read the system, write the workspace and the conversation's private home and
    /// temporary directory; the store and the configuration are hidden.
    #[default]
    WorkspaceWrite,
    /// Read the system (store and configuration hidden), write nothing.
    ReadOnly,
    /// No sandbox: the agent has the server user's rights.
    Off,
}

impl SandboxMode {
    /// The name used in configuration and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxMode::WorkspaceWrite => "workspace-write",
            SandboxMode::ReadOnly => "read-only",
            SandboxMode::Off => "off",
        }
    }
}

/// Why a sandbox could not be set up.
#[derive(Debug, Error)]
pub enum SandboxError {
    #[error("cannot prepare the sandbox directory {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot build the Landlock ruleset: {0}")]
    Landlock(String),
    #[error("a sandbox path contains a NUL byte: {0}")]
    Nul(String),
}

/// What one conversation's processes and file operations may touch.
#[derive(Debug, Clone)]
pub struct SandboxPolicy {
    pub mode: SandboxMode,
    /// Whether processes reach the network; off = a private network namespace with
    /// only its own loopback.
    pub network: bool,
    /// The conversation's workspace.
    pub workspace: PathBuf,
    /// The conversation's private home (`HOME`; `XDG_CACHE_HOME` is beneath it).
    pub home: PathBuf,
    /// The conversation's private temporary directory (`TMPDIR`).
    pub tmp: PathBuf,
    /// Paths the agent must not see: the store directory, the configuration file.
    pub hidden: Vec<PathBuf>,
}

impl SandboxPolicy {
    /// No sandbox, for `workspace` (tests and tools that run the runtime directly).
    pub fn off(workspace: &Path) -> Self {
        SandboxPolicy {
            mode: SandboxMode::Off,
            network: true,
            workspace: workspace.to_path_buf(),
            home: PathBuf::new(),
            tmp: PathBuf::new(),
            hidden: Vec::new(),
        }
    }

    /// The policy of conversation `id` under `config`: private directories in
    /// `<store>/sandbox/<id>/`, the store and the configuration file hidden.
    pub fn for_conversation(config: &crate::config::Config, id: &str) -> Self {
        let store = config.file_store_path();
        let private = store.join("sandbox").join(id);
        let mut hidden = vec![store];
        hidden.extend(config.config_path.clone());
        SandboxPolicy {
            mode: config.file.sandbox.mode,
            network: config.file.sandbox.network,
            workspace: config.workspace_for(id),
            home: private.join("home"),
            tmp: private.join("tmp"),
            hidden,
        }
    }

    /// Whether anything is enforced at all.
    pub fn enabled(&self) -> bool {
        self.mode != SandboxMode::Off
    }

    /// The directories processes may write in this mode (canonical once prepared).
    pub fn writable(&self) -> Vec<PathBuf> {
        match self.mode {
            SandboxMode::WorkspaceWrite => {
                vec![self.workspace.clone(), self.home.clone(), self.tmp.clone()]
            }
            SandboxMode::ReadOnly | SandboxMode::Off => Vec::new(),
        }
    }

    /// Directories that stay visible even when beneath a hidden path.
    fn kept(&self) -> Vec<PathBuf> {
        vec![self.workspace.clone(), self.home.clone(), self.tmp.clone()]
    }

    /// The environment a sandboxed process starts with (over the runtime's own): the
    /// private home, cache and temporary directory, and where the user's toolchains
    /// live (they are found through the real home otherwise).
    pub fn env(&self) -> Vec<(String, String)> {
        if !self.enabled() {
            return Vec::new();
        }
        let mut env = vec![
            ("HOME".to_string(), self.home.display().to_string()),
            (
                "XDG_CACHE_HOME".to_string(),
                self.home.join(".cache").display().to_string(),
            ),
            ("TMPDIR".to_string(), self.tmp.display().to_string()),
        ];
        let real_home = std::env::var_os("HOME").map(PathBuf::from);
        for (var, dir) in [("RUSTUP_HOME", ".rustup"), ("PYENV_ROOT", ".pyenv")] {
            let path = match std::env::var_os(var) {
                Some(set) => PathBuf::from(set),
                None => match &real_home {
                    Some(home) => home.join(dir),
                    None => continue,
                },
            };
            if path.is_dir() {
                env.push((var.to_string(), path.display().to_string()));
            }
        }
        env
    }

    /// Creates the private directories (0700) and canonicalizes the policy's paths.
    fn make_dirs(&mut self) -> Result<(), SandboxError> {
        use std::os::unix::fs::DirBuilderExt;
        for dir in [&self.workspace, &self.home, &self.tmp] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|source| SandboxError::Dir {
                    path: dir.display().to_string(),
                    source,
                })?;
        }
        seed_home(&self.home);
        for dir in [&mut self.workspace, &mut self.home, &mut self.tmp] {
            if let Ok(real) = std::fs::canonicalize(&*dir) {
                *dir = real;
            }
        }
        self.hidden = self
            .hidden
            .iter()
            .filter_map(|h| std::fs::canonicalize(h).ok())
            .collect();
        Ok(())
    }

    /// Does everything that may allocate or fail slowly, in the server: creates the
    /// private directories, opens the kept directories, builds the Landlock ruleset.
    /// What the kernel lacks (see [`support`]) is left out.
    pub fn prepare(&self) -> Result<Prepared, SandboxError> {
        let mut policy = self.clone();
        if !policy.enabled() {
            return Ok(Prepared {
                env: Vec::new(),
                child: None,
            });
        }
        policy.make_dirs()?;
        let support = support();
        let namespaces = if support.user_namespaces {
            Some(child::Namespaces::plan(&policy)?)
        } else {
            None
        };
        let ruleset = match support.landlock_abi {
            Some(abi) => Some(rules::ruleset(&policy, abi)?),
            None => None,
        };
        Ok(Prepared {
            env: policy.env(),
            child: Some(child::Confine {
                namespaces,
                ruleset,
            }),
        })
    }
}

/// A policy made ready for one spawn (or several: it is only read in the child).
pub struct Prepared {
    env: Vec<(String, String)>,
    child: Option<child::Confine>,
}

impl Prepared {
    /// Sets the sandbox's environment on `cmd` and confines the child before it execs.
    /// For a `tokio::process::Command`, pass `cmd.as_std_mut()`.
    pub fn apply_to(self, cmd: &mut std::process::Command) {
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(confine) = self.child {
            // SAFETY: `Confine::enter` makes only async-signal-safe system calls on data
            // prepared before the fork; it neither allocates nor takes locks.
            unsafe {
                cmd.pre_exec(move || confine.enter());
            }
        }
    }
}

/// Seeds a fresh private home: a `.gitconfig` that includes the user's own (so commits
/// keep their identity) while `git config --global` writes stay private.
fn seed_home(home: &Path) {
    let Some(real_home) = std::env::var_os("HOME").map(PathBuf::from) else {
        return;
    };
    let user_config = real_home.join(".gitconfig");
    let own = home.join(".gitconfig");
    if user_config.is_file() && !own.exists() && user_config != own {
        let text = format!("[include]\n\tpath = {}\n", user_config.display());
        if let Err(e) = std::fs::write(&own, text) {
            tracing::debug!("cannot seed {}: {e}", own.display());
        }
    }
}

fn cstring(path: &Path) -> Result<CString, SandboxError> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| SandboxError::Nul(path.display().to_string()))
}

/// The sandbox as clients see it (conversation info, `GET /api/options/config`).
#[derive(Debug, Clone, Serialize)]
pub struct SandboxInfo {
    pub mode: SandboxMode,
    pub network: bool,
    /// The Landlock ABI of this kernel, if any.
    pub landlock_abi: Option<u32>,
    /// Whether user, mount and network namespaces are used.
    pub namespaces: bool,
    /// What the mode asks for that this kernel cannot enforce (empty when complete).
    pub missing: Vec<String>,
}

impl SandboxInfo {
    /// The configured sandbox and this kernel's support for it.
    pub fn of(config: &crate::config::Config) -> Self {
        let sandbox = &config.file.sandbox;
        let support = support();
        let off = sandbox.mode == SandboxMode::Off;
        SandboxInfo {
            mode: sandbox.mode,
            network: sandbox.network || off,
            landlock_abi: support.landlock_abi,
            namespaces: support.user_namespaces && !off,
            missing: support.missing(sandbox.mode, sandbox.network),
        }
    }
}

/// Says at start what the sandbox enforces; an error when `[sandbox] require` is set and
/// the kernel lacks something the configuration asks for.
pub fn announce(config: &crate::config::Config) -> Result<(), String> {
    let info = SandboxInfo::of(config);
    if info.mode == SandboxMode::Off {
        tracing::warn!(
            "sandbox mode is off: the agent's commands run with this server user's full rights"
        );
        return Ok(());
    }
    if info.missing.is_empty() {
        tracing::info!(
            mode = info.mode.as_str(),
            network = info.network,
            landlock_abi = info.landlock_abi,
            "sandbox enforced"
        );
        return Ok(());
    }
    let text = info.missing.join("; ");
    if config.file.sandbox.require {
        return Err(format!(
            "the sandbox ({}) cannot be enforced on this kernel and [sandbox] require is set: {text}",
            info.mode.as_str()
        ));
    }
    tracing::warn!(
        mode = info.mode.as_str(),
        "the sandbox is incomplete on this kernel: {text}"
    );
    Ok(())
}
