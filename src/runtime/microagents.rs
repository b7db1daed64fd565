//! Microagents: what a workspace tells the agent about itself. Repository instructions
//! (`.openhands/microagents/repo.md`, or `AGENTS.md`) go to the model with the first
//! message; knowledge microagents (`.openhands/microagents/*.md` whose front-matter lists
//! `triggers:`) go with any message that contains one of their trigger words. They are
//! read from the workspace and from each folder directly in it (a cloned repository),
//! and knowledge microagents also from the user's own folder (`[core]
//! user_microagents_dir`, `~/.openhands/microagents` by default), as upstream does.

use std::path::{Path, PathBuf};

/// Files larger than this are not read.
const MAX_FILE_BYTES: u64 = 64 * 1024;
/// At most this many microagent files are read.
const MAX_FILES: usize = 64;

/// A knowledge microagent.
#[derive(Debug, Clone, PartialEq)]
pub struct Knowledge {
    pub name: String,
    pub triggers: Vec<String>,
    pub content: String,
}

/// What a workspace holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Microagents {
    /// Repository instructions, in the order found.
    pub repo: Vec<String>,
    pub knowledge: Vec<Knowledge>,
    /// Files that could not be read, with why (a malformed front-matter, say).
    pub errors: Vec<String>,
}

impl Microagents {
    /// The knowledge microagents triggered by `text`, with the trigger that did it.
    pub fn triggered(&self, text: &str) -> Vec<(&Knowledge, String)> {
        let lower = text.to_lowercase();
        self.knowledge
            .iter()
            .filter_map(|k| {
                k.triggers
                    .iter()
                    .find(|t| !t.is_empty() && lower.contains(&t.to_lowercase()))
                    .map(|t| (k, t.clone()))
            })
            .collect()
    }
}

/// The front-matter and body of a microagent file: `---` lines around `key: value`
/// lines; `triggers` as `[a, b]` or as `- a` lines.
fn parse(text: &str) -> Result<(Option<String>, Vec<String>, String), String> {
    let Some(rest) = text.strip_prefix("---") else {
        return Ok((None, Vec::new(), text.trim().to_string()));
    };
    let Some(end) = rest.find("\n---") else {
        return Err("the front-matter that starts with `---` never ends with `---`".into());
    };
    let (head, body) = (&rest[..end], &rest[end + 4..]);
    let (mut name, mut triggers, mut in_triggers) = (None, Vec::new(), false);
    for line in head
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
    {
        if let Some(item) = line.trim_start().strip_prefix("- ") {
            if in_triggers {
                triggers.push(unquote(item));
                continue;
            }
            return Err(format!("unexpected list item {line:?} in the front-matter"));
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(format!("front-matter line {line:?} is not `key: value`"));
        };
        in_triggers = false;
        let value = value.trim();
        match key.trim() {
            "name" => name = Some(unquote(value)),
            "triggers" if value.is_empty() => in_triggers = true,
            "triggers" => match value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
                Some(list) => {
                    triggers.extend(list.split(',').map(unquote).filter(|t| !t.is_empty()))
                }
                None => return Err(format!("`triggers` must be a list, not {value:?}")),
            },
            _ => {}
        }
    }
    Ok((name, triggers, body.trim().to_string()))
}

fn unquote(s: &str) -> String {
    s.trim().trim_matches(['"', '\'']).trim().to_string()
}

/// The folders microagents are read from: the workspace and the folders directly in it.
fn roots(workspace: &Path) -> Vec<PathBuf> {
    let mut out = vec![workspace.to_path_buf()];
    if let Ok(dir) = std::fs::read_dir(workspace) {
        let mut subs: Vec<PathBuf> = dir
            .filter_map(Result::ok)
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .map(|e| e.path())
            .filter(|p| p.join(".openhands").is_dir() || p.join("AGENTS.md").is_file())
            .collect();
        subs.sort();
        out.extend(subs);
    }
    out
}

fn read_small(path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
    }
    std::fs::read_to_string(path).map_err(|e| e.to_string())
}

/// The `.md` files directly in `dir`, sorted.
fn markdown_files(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    paths.retain(|p| p.extension().is_some_and(|e| e == "md") && p.is_file());
    paths.sort();
    paths
}

/// Reads the microagents of `workspace` and the knowledge microagents of `user_dir` (see
/// the module's documentation). The user's come first, so a repository cannot hide them.
pub fn load(workspace: &Path, user_dir: Option<&Path>) -> Microagents {
    let mut found = Microagents::default();
    let mut files = 0;
    let mut sources: Vec<(PathBuf, Vec<PathBuf>)> = Vec::new();
    if let Some(user) = user_dir {
        sources.push((user.to_path_buf(), markdown_files(user)));
    }
    for root in roots(workspace) {
        let mut paths = markdown_files(&root.join(".openhands").join("microagents"));
        let agents_md = root.join("AGENTS.md");
        if agents_md.is_file() {
            paths.push(agents_md);
        }
        sources.push((workspace.to_path_buf(), paths));
    }
    for (base, paths) in sources {
        let user = user_dir.is_some_and(|u| u == base);
        let shown = |p: &Path| {
            let rel = p.strip_prefix(&base).unwrap_or(p).display().to_string();
            if user {
                format!("your microagent {rel}")
            } else {
                rel
            }
        };
        for path in paths {
            files += 1;
            if files > MAX_FILES {
                return found;
            }
            let text = match read_small(&path) {
                Ok(t) => t,
                Err(e) => {
                    found.errors.push(format!("{}: {e}", shown(&path)));
                    continue;
                }
            };
            let (name, triggers, body) = match parse(&text) {
                Ok(parsed) => parsed,
                Err(e) => {
                    found.errors.push(format!("{}: {e}", shown(&path)));
                    continue;
                }
            };
            let file = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            // A user's folder holds knowledge only: repository instructions come from
            // the repository.
            if !user && (file == "repo.md" || file == "AGENTS.md") {
                if !body.is_empty() {
                    found.repo.push(body);
                }
            } else if !triggers.is_empty() {
                let name = name.unwrap_or_else(|| file.trim_end_matches(".md").to_string());
                found.knowledge.push(Knowledge {
                    name,
                    triggers,
                    content: body,
                });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_instructions_knowledge_and_errors_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path();
        let m = ws.join(".openhands/microagents");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::write(m.join("repo.md"), "Run tests with `make test`.\n").unwrap();
        std::fs::write(
            m.join("docker.md"),
            "---\nname: docker\ntriggers:\n- docker\n- \"container\"\n---\nUse podman here.\n",
        )
        .unwrap();
        std::fs::write(
            m.join("inline.md"),
            "---\ntriggers: [kubernetes, k8s]\n---\nThe cluster is kind.\n",
        )
        .unwrap();
        std::fs::write(m.join("broken.md"), "---\ntriggers: [x]\nno end\n").unwrap();
        std::fs::create_dir_all(ws.join("project")).unwrap();
        std::fs::write(ws.join("project/AGENTS.md"), "Use tabs.\n").unwrap();
        let found = load(ws, None);
        assert_eq!(found.repo, ["Run tests with `make test`.", "Use tabs."]);
        assert_eq!(found.knowledge.len(), 2);
        assert_eq!(found.errors.len(), 1);
        assert!(
            found.errors[0].starts_with(".openhands/microagents/broken.md:"),
            "{:?}",
            found.errors
        );
        let hits = found.triggered("Please build the Docker image");
        assert_eq!(hits.len(), 1);
        assert_eq!(
            (hits[0].0.name.as_str(), hits[0].1.as_str()),
            ("docker", "docker")
        );
        assert!(found.triggered("nothing relevant").is_empty());
        assert_eq!(found.triggered("deploy to k8s")[0].0.name, "inline");
    }

    #[test]
    fn the_users_folder_adds_knowledge_but_not_repository_instructions() {
        let ws = tempfile::tempdir().unwrap();
        let user = tempfile::tempdir().unwrap();
        std::fs::write(
            user.path().join("deploy.md"),
            "---\nname: deploy\ntriggers: [deploy]\n---\nDeploy with `make ship`.\n",
        )
        .unwrap();
        std::fs::write(user.path().join("repo.md"), "Not a repository.\n").unwrap();
        std::fs::write(user.path().join("bad.md"), "---\ntriggers: nope\n---\nx\n").unwrap();
        let found = load(ws.path(), Some(user.path()));
        assert!(found.repo.is_empty(), "{:?}", found.repo);
        assert_eq!(found.triggered("deploy it")[0].0.name, "deploy");
        assert_eq!(found.errors.len(), 1);
        assert!(
            found.errors[0].starts_with("your microagent bad.md:"),
            "{:?}",
            found.errors
        );
        // A missing folder is no error.
        let missing = user.path().join("absent");
        assert!(load(ws.path(), Some(&missing)).errors.is_empty());
    }
}
