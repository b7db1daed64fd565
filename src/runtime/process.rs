//! Finding and killing the processes of a shell session through `/proc`.

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::collections::HashSet;

/// A process as seen in `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Proc {
    pub pid: i32,
    pub pgrp: i32,
    pub sid: i32,
}

fn parse_stat(pid: i32, stat: &str) -> Option<Proc> {
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state, ppid, pgrp, session, …
    Some(Proc {
        pid,
        pgrp: fields.get(2)?.parse().ok()?,
        sid: fields.get(3)?.parse().ok()?,
    })
}

/// Every live process whose session id is `sid`.
pub fn session_processes(sid: i32) -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            parse_stat(pid, &stat)
        })
        .filter(|p| p.sid == sid)
        .collect()
}

/// Kills (SIGKILL) every process of session `sid` except `keep` pids and the process
/// groups those belong to; the session leader itself is spared unless `leader_too`.
pub fn kill_session_except(sid: i32, keep: &HashSet<i32>, leader_too: bool) -> usize {
    let procs = session_processes(sid);
    let kept_groups: HashSet<i32> = procs
        .iter()
        .filter(|p| keep.contains(&p.pid))
        .map(|p| p.pgrp)
        .collect();
    let mut killed = 0;
    let mut groups = HashSet::new();
    for p in &procs {
        if p.pid == sid || keep.contains(&p.pid) || kept_groups.contains(&p.pgrp) {
            continue;
        }
        if p.pgrp != sid && groups.insert(p.pgrp) {
            let _ = killpg(Pid::from_raw(p.pgrp), Signal::SIGKILL);
        }
        if kill(Pid::from_raw(p.pid), Signal::SIGKILL).is_ok() {
            killed += 1;
        }
    }
    if leader_too {
        let _ = killpg(Pid::from_raw(sid), Signal::SIGKILL);
        let _ = kill(Pid::from_raw(sid), Signal::SIGKILL);
    }
    killed
}

/// Kills (SIGKILL) every process of this user whose initial environment has
/// `name=value`: what a runtime started, even through `setsid`, `nohup` or a double
/// fork. Returns how many were killed.
pub fn kill_marked(name: &str, value: &str) -> usize {
    let needle = format!("{name}={value}");
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut killed = 0;
    for pid in dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != me)
    {
        // Unreadable (another user's) processes are not ours to kill.
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        if environ
            .split(|b| *b == 0)
            .any(|var| var == needle.as_bytes())
            && kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok()
        {
            killed += 1;
        }
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_lines_with_odd_command_names() {
        let p = parse_stat(42, "42 (we ird) (name)) S 1 40 39 0 -1").unwrap();
        assert_eq!(
            p,
            Proc {
                pid: 42,
                pgrp: 40,
                sid: 39
            }
        );
    }
}
