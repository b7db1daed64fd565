//! The built-in rule set: well-known dangerous patterns in shell commands and Python
//! cells, compiled once (docs/security.md lists them with examples).

use std::path::{Component, Path, PathBuf};
use std::sync::LazyLock;

use regex::{Regex, RegexSet};

/// How risky an action is (the wire's `security_risk`: 0 low, 1 medium, 2 high).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Risk {
    Low = 0,
    Medium = 1,
    High = 2,
}

/// One rule: what it flags, and how risky that is.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub id: &'static str,
    pub risk: Risk,
    pub description: &'static str,
}

/// A rule that matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    pub rule: &'static str,
    pub risk: Risk,
}

/// Paths of shell start-up files (`~`, `$HOME`, `/root`, `/home/<user>`, `/etc`).
const STARTUP: &str = r#"(?:~|\$HOME|\$\{HOME\}|/root|/home/[^/\s"']+)/\.(?:bashrc|bash_profile|bash_login|bash_logout|profile|zshrc|zprofile|zshenv|zlogin|zlogout|kshrc|cshrc|tcshrc|config/fish/config\.fish)\b|/etc/(?:profile|bash\.bashrc|zsh/zshrc|environment)\b|/etc/profile\.d/"#;
/// The user's SSH directory (and the system's).
const SSH: &str = r#"(?:~|\$HOME|\$\{HOME\}|/root|/home/[^/\s"']+)/\.ssh(?:/|\b)|/etc/ssh/"#;
/// Programs that send data over the network.
const NET: &str = r"\b(?:curl|wget|nc|ncat|netcat|socat|telnet|ssh|scp|openssl\s+s_client)\b";

/// The shell rules matched by a pattern (the `rm` rule is code, see [`rm_targets`]).
fn shell_patterns() -> Vec<(Rule, String)> {
    let write_to = |target: &str| {
        format!(
            r#"(?:>>?\s*["']?(?:{t})|\btee\b(?:\s+-\S+)*\s+["']?(?:{t})|\bsed\b[^;&|\n]*\s-i[^;&|\n]*(?:{t})|\b(?:cp|mv|ln|install|rsync)\b[^;&|\n]*\s["']?(?:{t})[^\s;&|]*["']?\s*(?:$|[;&|\n])|\bdd\b[^;&|\n]*\bof=["']?(?:{t}))"#,
            t = target
        )
    };
    let rule = |id, risk, description| Rule {
        id,
        risk,
        description,
    };
    vec![
        (
            rule("pipe-to-shell", Risk::High, "Downloads a script and runs it (`curl … | sh`, `bash <(curl …)`, `eval \"$(wget …)\"`)."),
            r#"\b(?:curl|wget)\b[^\n;&]*\|\s*(?:sudo\s+(?:-\S+\s+)*)?(?:env\s+(?:\S+=\S*\s+)*)?(?:/usr)?(?:/bin/)?(?:(?:ba|z|da|k|fi|c|tc)?sh|python[\d.]*|perl|ruby|node)\b|\b(?:(?:ba|z|da|k)?sh|source|\.)\s+(?:-c\s+)?["']?\s*(?:<\(|\$\()\s*(?:curl|wget)\b|\beval\s+["']?\$\(\s*(?:curl|wget)\b"#.into(),
        ),
        (
            rule("shell-startup-file", Risk::High, "Writes to a shell start-up file (~/.bashrc, ~/.profile, ~/.zshrc, /etc/profile, …), which runs in every later shell."),
            write_to(STARTUP),
        ),
        (
            rule("ssh-directory", Risk::High, "Writes into ~/.ssh or /etc/ssh (authorized keys, keys, configuration)."),
            write_to(SSH),
        ),
        (
            rule("history-tampering", Risk::High, "Disables or erases the shell history (`unset HISTFILE`, `history -c`, `HISTSIZE=0`, removing ~/.bash_history)."),
            r#"\bunset\s+(?:-v\s+)?HISTFILE\b|\bhistory\s+-[a-z]*[cd]|\b(?:export\s+)?HIST(?:FILE|SIZE|FILESIZE)=(?:/dev/null|0\b|""|''|\s|$)|\bset\s+\+o\s+history\b|(?:>|\brm\b|\bshred\b|\btruncate\b|\bln\s+-\S*\s+/dev/null)[^;&|\n]*\.(?:bash|zsh|sh|python)_history\b"#.into(),
        ),
        (
            rule("fork-bomb", Risk::High, "A fork bomb (a function that pipes into itself in the background, `:(){ :|:& };:`)."),
            r"[\w:.]+\s*\(\)\s*\{\s*[\w:.]+\s*\|\s*[\w:.]+\s*&\s*;?\s*\}".into(),
        ),
        (
            rule("env-exfiltration", Risk::High, "Sends environment variables (which hold keys and tokens) over the network (`env | curl …`, `curl -d \"$(printenv)\"`, /proc/self/environ)."),
            format!(
                r#"\b(?:env|printenv|export\s+-p|declare\s+-x|compgen\s+-e)\b[^\n;&]*\|[^\n;&]*{NET}|\b(?:curl|wget|nc|ncat|socat)\b[^\n]*(?:\$\(\s*(?:env|printenv)\b|`\s*(?:env|printenv)\b|/proc/(?:self|\d+|\$\$)/environ)|\b(?:env|printenv)\b[^\n;&|]*>\s*/dev/(?:tcp|udp)/|/proc/(?:self|\d+|\$\$)/environ[^\n;&]*\|[^\n;&]*{NET}|\b(?:curl|wget)\b[^\n]*(?:-d|--data\S*|-F|--form|-T|--upload-file|--post-file)[=\s]+["']?@?\S*\.env\b"#
            ),
        ),
        (
            rule("recursive-system-permissions", Risk::High, "Changes permissions or owners recursively on / or a system directory (`chmod -R 777 /`), or makes / world-writable."),
            r#"\bch(?:mod|own|grp)\b[^;&|\n]*\s(?:-[a-zA-Z]*R[a-zA-Z]*|--recursive)\b[^;&|\n]*\s["']?/(?:\*|etc|usr|bin|sbin|lib|lib32|lib64|boot|var|root|home|opt|sys|dev|proc|srv|snap)?(?:/\S*)?["']?(?:\s|$|[;&|])|\bchmod\s+(?:-\S+\s+)*(?:0?777|a\+rwx|ugo\+rwx)\s+["']?/["']?(?:\s|$|[;&|])"#.into(),
        ),
        (
            rule("filesystem-format", Risk::High, "Creates or wipes a file system or partition table (`mkfs`, `wipefs`, `fdisk /dev/…`)."),
            r"\bmkfs(?:\.\w+)?\b|\bmke2fs\b|\bmkswap\b|\bwipefs\b|\b(?:fdisk|sfdisk|parted|gdisk)\s+(?:-\S+\s+)*/dev/".into(),
        ),
        (
            rule("raw-disk-write", Risk::High, "Writes to a raw disk device (`dd of=/dev/sda`, `> /dev/nvme0n1`, `shred /dev/sd…`)."),
            r"\bdd\b[^;&|\n]*\bof=/dev/(?:sd|hd|vd|xvd|nvme|mmcblk|disk|mapper|md)\w*|>\s*/dev/(?:sd|hd|vd|xvd|nvme|mmcblk)\w*|\bshred\b[^;&|\n]*/dev/(?:sd|hd|vd|xvd|nvme|mmcblk)".into(),
        ),
        (
            rule("find-delete-outside-workspace", Risk::High, "Deletes with `find` from /, ~ or $HOME (`find / -delete`, `find ~ -exec rm …`)."),
            r#"\bfind\s+["']?(?:/|~/?|\$HOME/?)["']?(?:\s|$)[^;&|\n]*(?:-delete\b|-exec\s+(?:/bin/)?rm\b)"#.into(),
        ),
        (
            rule("kill-all-processes", Risk::High, "Kills every process of the user (`kill -9 -1`)."),
            r"\bkill\s+(?:-\S+\s+)*-1\s*(?:$|[;&|\n])".into(),
        ),
        (
            rule("power-off", Risk::High, "Shuts down or reboots the machine."),
            r"(?m)(?:^|[;&|(]\s*)(?:sudo\s+)?(?:shutdown|reboot|halt|poweroff|init\s+[06])\b".into(),
        ),
        (
            rule("sudo", Risk::Medium, "Runs a command as root (`sudo`)."),
            r"(?m)(?:^|[;&|(]\s*)sudo\b".into(),
        ),
        (
            rule("force-push", Risk::Medium, "Rewrites a remote branch (`git push --force`)."),
            r"\bgit\s+push\b[^;&|\n]*(?:\s--force\b|\s-f\b|\s--force-with-lease\b|\s\+\S+)".into(),
        ),
    ]
}

/// The `rm` rule (code, not a pattern).
const RM_RULE: Rule = Rule {
    id: "delete-outside-workspace",
    risk: Risk::High,
    description: "Deletes outside the workspace: `rm` of /, ~, $HOME, a system path or any absolute path outside the workspace and /tmp, `rm --no-preserve-root`; in Python `shutil.rmtree`, `os.remove`, `os.unlink` or `os.rmdir` of such a path. A relative path that climbs out with `..` is medium.",
};

/// Python-only rules.
const PY_FORK_RULE: Rule = Rule {
    id: "python-fork-bomb",
    risk: Risk::High,
    description: "Calls `os.fork()` in an endless loop.",
};
const PY_WRITE_RULE: Rule = Rule {
    id: "python-startup-or-ssh-write",
    risk: Risk::High,
    description: "Opens a shell start-up file or a file in ~/.ssh for writing (`open(…'.bashrc', 'a')`, `Path(…'.ssh/authorized_keys').write_text(…)`).",
};
const PY_ENV_RULE: Rule = Rule {
    id: "python-env-exfiltration",
    risk: Risk::High,
    description: "Uses the network (requests, httpx, urllib, socket, …) in a cell that dumps the whole `os.environ`.",
};
const PY_SHELL_NOTE: Rule = Rule {
    id: "python-shell-commands",
    risk: Risk::Low,
    description: "Not a rule of its own: the shell commands of a Python cell (`os.system`, `os.popen`, `subprocess.*`, `get_ipython().system`, `!cmd` lines, `%%bash` cells) are checked with every shell rule above, list arguments joined with spaces.",
};

struct Compiled {
    shell: RegexSet,
    shell_rules: Vec<Rule>,
    rm: Regex,
    py_shell_call: Regex,
    string_literal: Regex,
    py_delete: Regex,
    py_fork: Regex,
    py_write: Regex,
    py_net: Regex,
    py_env_dump: Regex,
}

static COMPILED: LazyLock<Option<Compiled>> = LazyLock::new(|| match compile() {
    Ok(c) => Some(c),
    Err(e) => {
        tracing::error!(error = %e, "the security rules do not compile; the rule analyzer is off");
        None
    }
});

fn compile() -> Result<Compiled, regex::Error> {
    let (shell_rules, patterns): (Vec<Rule>, Vec<String>) = shell_patterns().into_iter().unzip();
    Ok(Compiled {
        shell: RegexSet::new(&patterns)?,
        shell_rules,
        rm: Regex::new(
            r#"(?:^|[;&|({\n`]|\$\(|\bxargs\s|\bexec\s|\bsudo\s+(?:-\S+\s+)*)\s*(?:command\s+)?(?:/usr)?(?:/bin/)?rm\s+([^;&|\n)`]*)"#,
        )?,
        py_shell_call: Regex::new(
            r"(?:\b(?:os\.(?:system|popen|exec[lv]p?e?|spawn[lv]p?e?)|subprocess\.\w+|pty\.spawn|\w+\.system|getoutput|getstatusoutput)|\)\.system)\s*\(",
        )?,
        string_literal: Regex::new(
            r#"[rRbBuUfF]{0,2}(?:"((?:[^"\\\n]|\\.)*)"|'((?:[^'\\\n]|\\.)*)')"#,
        )?,
        py_delete: Regex::new(
            r"\b(?:shutil\.rmtree|os\.(?:remove|unlink|rmdir|removedirs))\s*\(\s*([^,)]*(?:\([^)]*\)[^,)]*)?)",
        )?,
        py_fork: Regex::new(r"while\s+(?:True|1)\s*:[\s\S]{0,80}?\bos\.fork\s*\(")?,
        py_write: Regex::new(
            r#"\bopen\s*\([^;\n]*?(?:\.(?:bashrc|bash_profile|bash_login|profile|zshrc|zprofile|zshenv)\b|\.ssh/)[^;\n]*?,\s*(?:mode\s*=\s*)?[rRbB]?["'][^"']*[wax+]|(?:\.(?:bashrc|bash_profile|bash_login|profile|zshrc|zprofile|zshenv)|\.ssh/[\w.-]*)["']\s*\)?\s*\)?\s*\.(?:write_text|write_bytes|open\s*\(\s*["'][wax])"#,
        )?,
        py_net: Regex::new(
            r"\b(?:requests|httpx|urllib|urllib3|http\.client|aiohttp|socket|smtplib|ftplib)\b",
        )?,
        py_env_dump: Regex::new(
            r"\bos\.environ\s*[),}\]]|\bdict\(\s*os\.environ\s*\)|\bos\.environ\.(?:copy|items|keys|values)\s*\(|\{\s*\*\*os\.environ\b|\bstr\(\s*os\.environ\s*\)",
        )?,
    })
}

/// Every rule, for documentation and the analyzer's settings route.
pub fn all() -> Vec<Rule> {
    let mut rules: Vec<Rule> = shell_patterns().into_iter().map(|(r, _)| r).collect();
    rules.insert(0, RM_RULE);
    rules.extend([PY_WRITE_RULE, PY_FORK_RULE, PY_ENV_RULE, PY_SHELL_NOTE]);
    rules
}

/// Whether the rules compiled (they are constants: a test proves they do).
pub fn ready() -> bool {
    COMPILED.is_some()
}

fn worst(a: Option<Finding>, b: Option<Finding>) -> Option<Finding> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y.risk > x.risk { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Where a path to delete lies, seen from a workspace.
fn path_risk(raw: &str, workspace: &Path) -> Option<Risk> {
    let p = raw.trim_matches(|c| c == '"' || c == '\'');
    if p.is_empty() || p.starts_with('-') {
        return None;
    }
    let home = ["~", "$HOME", "${HOME}"];
    if home
        .iter()
        .any(|h| p == *h || p.starts_with(&format!("{h}/")))
    {
        return Some(Risk::High);
    }
    if p.starts_with('$') {
        return None; // an unknown variable: cannot tell
    }
    if p.starts_with('/') {
        let norm = normalize(Path::new(p));
        let inside = [workspace, Path::new("/workspace"), Path::new("/tmp")]
            .iter()
            .any(|root| norm.starts_with(root) && norm != Path::new("/"));
        return (!inside).then_some(Risk::High);
    }
    // Relative: the shell usually works in the workspace; climbing out is suspicious.
    let mut depth: i32 = 0;
    for c in Path::new(p).components() {
        match c {
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return Some(Risk::Medium);
                }
            }
            Component::Normal(_) => depth += 1,
            _ => {}
        }
    }
    None
}

/// `..` and `.` resolved without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// The `rm` invocations of a command and the worst of their targets.
fn rm_targets(c: &Compiled, command: &str, workspace: &Path) -> Option<Finding> {
    let mut worst_risk: Option<Risk> = None;
    for cap in c.rm.captures_iter(command) {
        let Some(args) = cap.get(1) else { continue };
        let mut options_done = false;
        for token in args.as_str().split_whitespace() {
            if !options_done && token == "--no-preserve-root" {
                return Some(Finding {
                    rule: RM_RULE.id,
                    risk: Risk::High,
                });
            }
            if !options_done && token == "--" {
                options_done = true;
                continue;
            }
            if !options_done && token.starts_with('-') {
                continue;
            }
            if let Some(r) = path_risk(token, workspace) {
                worst_risk = worst_risk.max(Some(r));
            }
        }
    }
    worst_risk.map(|risk| Finding {
        rule: RM_RULE.id,
        risk,
    })
}

/// The worst rule a shell command matches, if any.
pub fn assess_command(command: &str, workspace: &Path) -> Option<Finding> {
    let c = COMPILED.as_ref()?;
    shell_findings(c, command, workspace)
}

fn shell_findings(c: &Compiled, command: &str, workspace: &Path) -> Option<Finding> {
    let mut found = None;
    for i in c.shell.matches(command).iter() {
        let rule = c.shell_rules[i];
        found = worst(
            found,
            Some(Finding {
                rule: rule.id,
                risk: rule.risk,
            }),
        );
        if rule.risk == Risk::High {
            return found;
        }
    }
    if command.contains("rm") {
        found = worst(found, rm_targets(c, command, workspace));
    }
    found
}

/// The text of the string literals of `code` from `start` to the call's closing paren.
fn call_strings(c: &Compiled, code: &str, start: usize) -> String {
    let bytes = code.as_bytes();
    let (mut depth, mut i, mut quote) = (1i32, start, None::<u8>);
    while i < bytes.len() && depth > 0 {
        let b = bytes[i];
        match quote {
            Some(_) if b == b'\\' => i += 1,
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'(' => depth += 1,
            None if b == b')' => depth -= 1,
            None => {}
        }
        i += 1;
    }
    let end = i.min(code.len());
    let span = code.get(start..end).unwrap_or("");
    c.string_literal
        .captures_iter(span)
        .filter_map(|cap| cap.get(1).or_else(|| cap.get(2)))
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The shell commands a Python cell runs.
fn python_shell_fragments(c: &Compiled, code: &str) -> Vec<String> {
    let mut out: Vec<String> = c
        .py_shell_call
        .find_iter(code)
        .map(|m| call_strings(c, code, m.end()))
        .collect();
    let trimmed = code.trim_start();
    if let Some(rest) = ["%%bash", "%%sh", "%%script", "%%system"]
        .iter()
        .find_map(|magic| trimmed.strip_prefix(magic))
    {
        out.push(rest.to_string());
    }
    for line in code.lines() {
        let l = line.trim_start();
        if let Some(cmd) = l
            .strip_prefix("!")
            .or_else(|| l.strip_prefix("%sx "))
            .or_else(|| l.strip_prefix("%system "))
        {
            out.push(cmd.to_string());
        }
    }
    out
}

/// The worst rule a Python cell matches, if any.
pub fn assess_python(code: &str, workspace: &Path) -> Option<Finding> {
    let c = COMPILED.as_ref()?;
    let mut found = None;
    let flag = |rule: Rule| {
        Some(Finding {
            rule: rule.id,
            risk: rule.risk,
        })
    };
    if c.py_fork.is_match(code) {
        return flag(PY_FORK_RULE);
    }
    if c.py_write.is_match(code) {
        return flag(PY_WRITE_RULE);
    }
    if c.py_env_dump.is_match(code) && c.py_net.is_match(code) {
        return flag(PY_ENV_RULE);
    }
    for cap in c.py_delete.captures_iter(code) {
        let Some(arg) = cap.get(1).map(|m| m.as_str().trim()) else {
            continue;
        };
        let risk = if arg.contains("expanduser") && arg.contains('~')
            || arg.contains("Path.home(")
            || arg.contains("HOME")
        {
            Some(Risk::High)
        } else {
            c.string_literal
                .captures(arg)
                .and_then(|s| s.get(1).or_else(|| s.get(2)))
                .and_then(|lit| path_risk(lit.as_str(), workspace))
        };
        if let Some(risk) = risk {
            found = worst(
                found,
                Some(Finding {
                    rule: RM_RULE.id,
                    risk,
                }),
            );
        }
    }
    for fragment in python_shell_fragments(c, code) {
        found = worst(found, shell_findings(c, &fragment, workspace));
    }
    found
}

#[cfg(test)]
mod tests;
