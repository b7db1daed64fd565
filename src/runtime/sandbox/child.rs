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
    /// The only mounts left writable (every other mount is made read-only, so that even
    /// metadata such as modes and times cannot change outside them).
    writable: Vec<CString>,
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
            writable: policy
                .writable()
                .iter()
                .map(PathBuf::as_path)
                .chain([Path::new("/dev/shm")])
                .filter(|p| p.is_dir())
                .map(cstring)
                .collect::<Result<_, _>>()?,
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
            self.read_only_elsewhere()?;
            // The working directory was entered before the mounts, so it still points
            // into the covered tree (where `..` would lead to the store): enter it again
            // by name, through the new mounts.
            let mut cwd = [0u8; libc::PATH_MAX as usize];
            if libc::getcwd(cwd.as_mut_ptr().cast(), cwd.len()).is_null() {
                return Err(io::Error::last_os_error());
            }
            check(libc::chdir(cwd.as_ptr().cast()))?;
            if self.loopback {
                loopback_up()?;
            }
        }
        Ok(())
    }

    /// Makes every mount read-only but the writable directories (each bound onto itself
    /// first, so it is a mount of its own). A kernel without `mount_setattr` (before 5.12)
    /// keeps its mounts as they are: Landlock still guards every file's content.
    unsafe fn read_only_elsewhere(&self) -> io::Result<()> {
        for dir in &self.writable {
            check(libc::mount(
                dir.as_ptr(),
                dir.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ))?;
        }
        let set = MountAttr {
            attr_set: MOUNT_ATTR_RDONLY,
            ..MountAttr::default()
        };
        if let Err(e) = mount_setattr(c"/", &set) {
            return match e.raw_os_error() {
                Some(libc::ENOSYS) => Ok(()),
                _ => Err(e),
            };
        }
        let clear = MountAttr {
            attr_clr: MOUNT_ATTR_RDONLY,
            ..MountAttr::default()
        };
        for dir in &self.writable {
            mount_setattr(dir, &clear)?;
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
        // Descriptors the server inherited or opened without close-on-exec (an open file
        // is not checked again by Landlock) do not reach the sandboxed program.
        // SAFETY: marks descriptors 3 and up close-on-exec; stdio is already in place.
        unsafe {
            const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
            let ret = libc::syscall(libc::SYS_close_range, 3_u32, u32::MAX, CLOSE_RANGE_CLOEXEC);
            if ret < 0 && errno() != libc::ENOSYS {
                return Err(io::Error::last_os_error());
            }
        }
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

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
#[derive(Default)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;

/// `mount_setattr(AT_FDCWD, path, AT_RECURSIVE, attr)`.
unsafe fn mount_setattr(path: &CStr, attr: &MountAttr) -> io::Result<()> {
    let ret = libc::syscall(
        libc::SYS_mount_setattr,
        libc::AT_FDCWD,
        path.as_ptr(),
        libc::AT_RECURSIVE as libc::c_uint,
        attr as *const MountAttr,
        std::mem::size_of::<MountAttr>(),
    );
    check(ret as libc::c_int)
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
