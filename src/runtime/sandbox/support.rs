//! What this kernel lets the sandbox enforce, probed once per process.

use serde::Serialize;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::sync::OnceLock;

use super::child::Namespaces;
use super::{SandboxMode, SandboxPolicy};

/// The sandbox mechanisms this kernel offers.
#[derive(Debug, Clone, Serialize)]
pub struct Support {
    /// The Landlock ABI version, if Landlock is enabled.
    pub landlock_abi: Option<u32>,
    /// Whether user, mount and network namespaces can be made (hiding the store, and
    /// the network switch).
    pub user_namespaces: bool,
    /// Why they cannot, when they cannot.
    pub user_namespaces_error: Option<String>,
}

impl Support {
    /// What `mode` and `network` ask for that this kernel cannot enforce, in words.
    pub fn missing(&self, mode: SandboxMode, network: bool) -> Vec<String> {
        let mut missing = Vec::new();
        if mode == SandboxMode::Off {
            return missing;
        }
        if self.landlock_abi.is_none() {
            missing.push(
                "Landlock is not available: the agent's processes can write everywhere the server user can".into(),
            );
        } else if self.landlock_abi.is_some_and(|abi| abi < 6) {
            missing.push(format!(
                "Landlock ABI {} (< 6): signals and abstract sockets outside the sandbox are not blocked",
                self.landlock_abi.unwrap_or(0)
            ));
        }
        if !self.user_namespaces {
            let why = self.user_namespaces_error.as_deref().unwrap_or("unknown");
            missing.push(format!(
                "user namespaces are not available ({why}): the store and the configuration stay readable to the agent"
            ));
            if !network {
                missing.push(
                    "network namespaces are not available: network = off is not enforced".into(),
                );
            }
        }
        missing
    }
}

/// The probed support (the first call runs the probe: a few milliseconds).
pub fn support() -> &'static Support {
    static SUPPORT: OnceLock<Support> = OnceLock::new();
    SUPPORT.get_or_init(|| {
        let landlock_abi = landlock_abi();
        let (user_namespaces, user_namespaces_error) = match probe_namespaces() {
            Ok(()) => (true, None),
            Err(e) => (false, Some(e)),
        };
        Support {
            landlock_abi,
            user_namespaces,
            user_namespaces_error,
        }
    })
}

/// The kernel's Landlock ABI version (`landlock_create_ruleset` with the version flag).
fn landlock_abi() -> Option<u32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: the documented query form: no attribute, size 0, the version flag.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(v).ok().filter(|v| *v > 0)
}

/// Starts `true` in the namespaces a conversation would get (a hidden directory with a
/// kept one inside, no network) and reports why that failed, if it did.
fn probe_namespaces() -> Result<(), String> {
    let base = std::env::temp_dir().join(format!(
        "openhands-sandbox-probe-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut policy = SandboxPolicy {
            mode: SandboxMode::WorkspaceWrite,
            network: false,
            workspace: base.join("ws"),
            home: base.join("home"),
            tmp: base.join("tmp"),
            hidden: vec![base.clone()],
        };
        policy.make_dirs().map_err(|e| e.to_string())?;
        let ns = Namespaces::plan(&policy).map_err(|e| e.to_string())?;
        let program = ["/bin/true", "/usr/bin/true"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .ok_or("no `true` program to probe with")?;
        let mut cmd = std::process::Command::new(program);
        // SAFETY: `Namespaces::enter` makes only async-signal-safe system calls.
        unsafe {
            cmd.pre_exec(move || ns.enter_for_probe());
        }
        let status = cmd.status().map_err(|e| e.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("the probe exited with {status}"))
        }
    })();
    let _ = std::fs::remove_dir_all(&base);
    result
}
