//! The part of the sandbox that runs in the forked child, between `fork` and `exec`:
//! only raw, async-signal-safe system calls on data planned in the server.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::{cstring, SandboxError, SandboxPolicy};

/// The mount and network setup of one child, planned in the server.
pub(super) struct Namespaces {
    flags: libc::c_int,
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
    /// Directories covered by an empty tmpfs.
    hide_dirs: Vec<CString>,
    /// Files covered by `/dev/null`.
    hide_files: Vec<CString>,
    /// Directories created in those tmpfs, parents first, as mount points.
    mkdirs: Vec<CString>,
    /// Kept directories beneath a hidden one, bound back over the tmpfs.
    binds: Vec<CString>,
    loopback: bool,
}

impl Namespaces {
    /// Plans the namespaces for `policy` (its paths already canonical).
    pub(super) fn plan(policy: &SandboxPolicy) -> Result<Self, SandboxError> {
        let mut flags = libc::CLONE_NEWUSER | libc::CLONE_NEWNS;
        if !policy.network {
            flags |= libc::CLONE_NEWNET;
        }
        let uid = nix::unistd::geteuid().as_raw();
        let gid = nix::unistd::getegid().as_raw();
        let kept = policy.kept();
        let mut hide_dirs = Vec::new();
        let mut hide_files = Vec::new();
        let mut mkdirs: Vec<PathBuf> = Vec::new();
        let mut binds = Vec::new();
        // A hidden path beneath another hidden one is already covered.
        let hidden: Vec<&PathBuf> = policy
            .hidden
            .iter()
            .filter(|h| !policy.hidden.iter().any(|o| o != *h && h.starts_with(o)))
            .collect();
        for h in hidden {
            if h.is_dir() {
                hide_dirs.push(cstring(h)?);
                for k in kept.iter().filter(|k| k.starts_with(h) && *k != h) {
                    binds.push(cstring(k)?);
                    let mut chain: Vec<PathBuf> = k
                        .ancestors()
                        .take_while(|a| a.starts_with(h) && *a != h.as_path())
                        .map(Path::to_path_buf)
                        .collect();
                    chain.reverse();
                    for dir in chain {
                        if !mkdirs.contains(&dir) {
                            mkdirs.push(dir);
                        }
                    }
                }
            } else if !kept.iter().any(|k| h.starts_with(k)) {
                hide_files.push(cstring(h)?);
            }
        }
        Ok(Namespaces {
            flags,
            uid_map: format!("{uid} {uid} 1\n").into_bytes(),
            gid_map: format!("{gid} {gid} 1\n").into_bytes(),
            hide_dirs,
            hide_files,
            mkdirs: mkdirs
                .iter()
                .map(|d| cstring(d))
                .collect::<Result<_, _>>()?,
            binds,
            loopback: !policy.network,
        })
    }

    /// [`Namespaces::enter`] alone, for the support probe.
    pub(super) fn enter_for_probe(&self) -> io::Result<()> {
        self.enter()
    }

    fn enter(&self) -> io::Result<()> {
        // SAFETY: plain system calls on NUL-terminated strings owned by `self`.
        unsafe {
            check(libc::unshare(self.flags))?;
            write_file(c"/proc/self/setgroups", b"deny")?;
            write_file(c"/proc/self/uid_map", &self.uid_map)?;
            write_file(c"/proc/self/gid_map", &self.gid_map)?;
            // Nothing done here propagates back to the server's namespace.
            check(libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            // Handles on the kept directories, taken in this namespace before they are
            // covered (a bind source must belong to the caller's mount namespace).
            let mut kept = [-1 as libc::c_int; MAX_BINDS];
            if self.binds.len() > MAX_BINDS {
                return Err(io::Error::from_raw_os_error(libc::E2BIG));
            }
            for (slot, dir) in kept.iter_mut().zip(&self.binds) {
                *slot = libc::open(
                    dir.as_ptr(),
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                );
                if *slot < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            for dir in &self.hide_dirs {
                check(libc::mount(
                    c"tmpfs".as_ptr(),
                    dir.as_ptr(),
                    c"tmpfs".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV,
                    c"size=64k,mode=0755".as_ptr().cast(),
                ))?;
            }
            for dir in &self.mkdirs {
                if libc::mkdir(dir.as_ptr(), 0o755) < 0 && errno() != libc::EEXIST {
                    return Err(io::Error::last_os_error());
                }
            }
            for (fd, target) in kept.iter().zip(&self.binds) {
                let mut source = [0u8; 32];
                fd_path(*fd, &mut source);
                let result = check(libc::mount(
                    source.as_ptr().cast(),
                    target.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                ));
                libc::close(*fd);
                result?;
            }
            for file in &self.hide_files {
                check(libc::mount(
                    c"/dev/null".as_ptr(),
                    file.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                ))?;
            }
            if self.loopback {
                loopback_up()?;
            }
        }
        Ok(())
    }
}

/// Everything the child does before `exec`.
pub(super) struct Confine {
    pub(super) namespaces: Option<Namespaces>,
    pub(super) ruleset: Option<OwnedFd>,
}

impl Confine {
    /// Runs in the child: namespaces, capabilities, `no_new_privs`, Landlock.
    pub(super) fn enter(&self) -> io::Result<()> {
        if let Some(ns) = &self.namespaces {
            ns.enter()?;
        }
        // SAFETY: plain system calls; the ruleset descriptor is owned by `self`.
        unsafe {
            drop_capabilities()?;
            check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
            if let Some(fd) = &self.ruleset {
                check(libc::syscall(libc::SYS_landlock_restrict_self, fd.as_raw_fd(), 0) as i32)?;
            }
        }
        Ok(())
    }
}

/// Most kept directories one child binds back (workspace, home, temporary directory).
const MAX_BINDS: usize = 8;

/// Writes `/proc/self/fd/<fd>` and a NUL into `out`, without allocating.
fn fd_path(fd: libc::c_int, out: &mut [u8; 32]) {
    const PREFIX: &[u8] = b"/proc/self/fd/";
    out[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 10];
    let mut n = fd.max(0) as u32;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        out[PREFIX.len() + i] = digits[len - 1 - i];
    }
    out[PREFIX.len() + len] = 0;
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn check(ret: libc::c_int) -> io::Result<()> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Writes `data` to `path` in one `write`.
unsafe fn write_file(path: &CStr, data: &[u8]) -> io::Result<()> {
    let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = libc::write(fd, data.as_ptr().cast(), data.len());
    let err = io::Error::last_os_error();
    libc::close(fd);
    if n != data.len() as isize {
        return Err(err);
    }
    Ok(())
}

/// Brings `lo` up in the fresh network namespace.
unsafe fn loopback_up() -> io::Result<()> {
    let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
    if sock < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut req: libc::ifreq = std::mem::zeroed();
    req.ifr_name[0] = b'l' as libc::c_char;
    req.ifr_name[1] = b'o' as libc::c_char;
    let mut result = check(libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req));
    if result.is_ok() {
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        result = check(libc::ioctl(sock, libc::SIOCSIFFLAGS, &req));
    }
    libc::close(sock);
    result
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Empties the bounding set (so executing as uid 0 grants nothing), the ambient set and
/// the effective, permitted and inheritable sets.
unsafe fn drop_capabilities() -> io::Result<()> {
    for cap in 0..64 {
        if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 {
            match errno() {
                // Past the last capability this kernel knows.
                libc::EINVAL => break,
                // Without CAP_SETPCAP (an unprivileged server outside a namespace)
                // there is nothing to drop: `no_new_privs` keeps it so.
                libc::EPERM => break,
                _ => return Err(io::Error::last_os_error()),
            }
        }
    }
    check(libc::prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL,
        0,
        0,
        0,
    ))?;
    let header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    check(libc::syscall(libc::SYS_capset, &header, data.as_ptr()) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_paths_are_written_without_allocating() {
        for (fd, want) in [
            (0, "/proc/self/fd/0"),
            (7, "/proc/self/fd/7"),
            (1234, "/proc/self/fd/1234"),
        ] {
            let mut out = [0u8; 32];
            fd_path(fd, &mut out);
            let got = CStr::from_bytes_until_nul(&out).unwrap();
            assert_eq!(got.to_str().unwrap(), want);
        }
    }
}
