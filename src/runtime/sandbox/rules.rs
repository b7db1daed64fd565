//! The Landlock ruleset of a policy: read (and execute) everything, write only the
//! policy's writable directories and a few devices; signals and abstract UNIX sockets
//! scoped to the sandbox's own processes.

use landlock::{
    Access, AccessFs, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, Scope, ABI,
};
use std::os::fd::OwnedFd;
use std::path::Path;

use super::{SandboxError, SandboxPolicy};

/// Character devices every program may read and write.
const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
];

/// Directories of devices and shared memory a process needs to write.
const DEVICE_DIRS: &[&str] = &["/dev/pts", "/dev/shm"];

/// The ABI this code was written against; older kernels get what they support.
fn target(abi: u32) -> ABI {
    match abi {
        0 => ABI::Unsupported,
        1 => ABI::V1,
        2 => ABI::V2,
        3 => ABI::V3,
        4 => ABI::V4,
        5 => ABI::V5,
        _ => ABI::V6,
    }
}

/// Builds the ruleset of `policy` (its paths canonical) for Landlock ABI `abi`; the
/// descriptor is enforced in the child with `landlock_restrict_self`.
pub(super) fn ruleset(policy: &SandboxPolicy, abi: u32) -> Result<OwnedFd, SandboxError> {
    let abi = target(abi);
    let err = |e: &dyn std::fmt::Display| SandboxError::Landlock(e.to_string());
    let all = AccessFs::from_all(abi);
    let mut created = Ruleset::default()
        .handle_access(all)
        .map_err(|e| err(&e))?
        .scope(Scope::AbstractUnixSocket | Scope::Signal)
        .map_err(|e| err(&e))?
        .create()
        .map_err(|e| err(&e))?;
    let root = PathFd::new("/").map_err(|e| err(&e))?;
    created = created
        .add_rule(PathBeneath::new(root, AccessFs::from_read(abi)))
        .map_err(|e| err(&e))?;
    for dev in DEVICES.iter().filter(|d| Path::new(d).exists()) {
        let fd = PathFd::new(dev).map_err(|e| err(&e))?;
        created = created
            .add_rule(PathBeneath::new(fd, AccessFs::from_file(abi)))
            .map_err(|e| err(&e))?;
    }
    let writable = policy.writable();
    let dirs = DEVICE_DIRS
        .iter()
        .map(Path::new)
        .chain(writable.iter().map(|p| p.as_path()))
        .filter(|d| d.is_dir());
    for dir in dirs {
        let fd = PathFd::new(dir).map_err(|e| err(&e))?;
        created = created
            .add_rule(PathBeneath::new(fd, all))
            .map_err(|e| err(&e))?;
    }
    let fd: Option<OwnedFd> = created.into();
    fd.ok_or_else(|| SandboxError::Landlock("the kernel does not enforce Landlock".into()))
}
