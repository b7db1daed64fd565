//! Counting the processes the server started, through `/proc`.

use std::collections::HashMap;

/// How many live processes descend from this one (its children, theirs, …). Daemons
/// that detached (re-parented to init) are not counted; they are killed with their
/// conversation's runtime.
pub fn descendant_processes() -> usize {
    descendants().len()
}

fn descendants() -> Vec<u32> {
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: HashMap<u32, u32> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            Some((pid, parent_of(&stat)?))
        })
        .collect();
    parents
        .keys()
        .copied()
        .filter(|pid| descends_from(*pid, me, &parents))
        .collect()
}

/// The parent pid in a `/proc/<pid>/stat` line (the command name may hold spaces and
/// parentheses: fields start after the last `)`).
fn parent_of(stat: &str) -> Option<u32> {
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn descends_from(mut pid: u32, ancestor: u32, parents: &HashMap<u32, u32>) -> bool {
    // Bounded: a pid table cannot form a chain longer than its size.
    for _ in 0..parents.len() {
        match parents.get(&pid) {
            Some(&p) if p == ancestor => return true,
            Some(&p) if p > 1 && p != pid => pid = p,
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_parent_after_odd_command_names() {
        assert_eq!(parent_of("42 (we ird) (x)) S 7 40 39 0"), Some(7));
        assert_eq!(parent_of("garbage"), None);
    }

    #[test]
    fn a_started_child_is_counted_until_it_exits() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        assert!(descendants().contains(&child.id()));
        let _ = child.kill();
        let _ = child.wait();
        assert!(!descendants().contains(&child.id()));
    }

    #[test]
    fn a_cycle_in_the_table_ends() {
        let parents = HashMap::from([(5, 6), (6, 5)]);
        assert!(!descends_from(5, 1234, &parents));
    }
}
