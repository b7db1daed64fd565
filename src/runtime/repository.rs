//! Opening a repository at conversation start: `git clone` of the conversation's
//! `selected_repository` (on its `selected_branch`) into the workspace, as upstream does
//! (into `<workspace>/<repository name>`), once: a reopened conversation finds it there.

use std::path::{Path, PathBuf};
use std::time::Duration;
use thiserror::Error;
use tokio::process::Command;

use crate::provider_tokens::{self, ProviderToken};

/// How long a clone may take.
const CLONE_TIMEOUT: Duration = Duration::from_secs(600);

/// Why a repository could not be opened.
#[derive(Debug, Error)]
pub enum RepositoryError {
    #[error("{0:?} is not a repository this server can clone (an https, ssh or file URL, `owner/name` of GitHub, or an absolute path)")]
    Invalid(String),
    #[error("cloning {repository} failed: {message}")]
    Clone { repository: String, message: String },
    #[error("cloning {0} took longer than {secs} s", secs = CLONE_TIMEOUT.as_secs())]
    Timeout(String),
    #[error("cannot run git: {0}")]
    Git(#[source] std::io::Error),
}

/// Where `repository` is cloned from, and the folder name it gets.
pub fn source_of(repository: &str) -> Result<(String, String), RepositoryError> {
    let r = repository.trim();
    let invalid = || RepositoryError::Invalid(repository.to_string());
    // Options smuggled as a URL, control characters and git's command transport are out.
    if r.is_empty()
        || r.starts_with('-')
        || r.chars().any(char::is_control)
        || r.starts_with("ext::")
    {
        return Err(invalid());
    }
    let url = if r.starts_with("https://")
        || r.starts_with("http://")
        || r.starts_with("ssh://")
        || r.starts_with("file://")
        || r.starts_with("git@")
        || r.starts_with('/')
    {
        r.to_string()
    } else if r.split('/').count() == 2
        && r.split('/').all(|p| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
    {
        format!("https://github.com/{r}.git")
    } else {
        return Err(invalid());
    };
    let name = url
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or("")
        .trim_end_matches(".git")
        .to_string();
    if name.is_empty() || name == "." || name == ".." || name.starts_with('-') {
        return Err(invalid());
    }
    Ok((url, name))
}

/// Clones `repository` (on `branch`, if given) into `workspace/<name>` unless it is there
/// already; returns that folder. `env` is the environment git runs with (the runtime's:
/// never the server's secrets); the token of `tokens` whose host `repository` is on, if
/// any, authenticates the clone.
pub async fn open(
    workspace: &Path,
    repository: &str,
    branch: Option<&str>,
    env: &[(String, String)],
    tokens: &[ProviderToken],
) -> Result<PathBuf, RepositoryError> {
    let (url, name) = source_of(repository)?;
    let dest = workspace.join(&name);
    if dest.join(".git").exists() {
        return Ok(dest);
    }
    let _ = tokio::fs::create_dir_all(workspace).await;
    let mut cmd = Command::new("git");
    cmd.args([
        "-c",
        "protocol.ext.allow=never",
        "-c",
        "core.fsmonitor=false",
    ])
    .args(["clone", "--quiet"]);
    if let Some(b) = branch.map(str::trim).filter(|b| !b.is_empty()) {
        if b.starts_with('-') {
            return Err(RepositoryError::Invalid(format!(
                "{repository} (branch {b:?})"
            )));
        }
        cmd.args(["--branch", b]);
    }
    cmd.arg("--")
        .arg(&url)
        .arg(&dest)
        .env_clear()
        .envs(env.iter().cloned())
        .envs(provider_tokens::git_env(&url, tokens))
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(CLONE_TIMEOUT, cmd.output()).await {
        Ok(r) => r.map_err(RepositoryError::Git)?,
        Err(_) => return Err(RepositoryError::Timeout(repository.to_string())),
    };
    if !output.status.success() {
        let message = String::from_utf8_lossy(&output.stderr).trim().to_string();
        let _ = tokio::fs::remove_dir_all(&dest).await;
        return Err(RepositoryError::Clone {
            repository: repository.to_string(),
            message: if message.is_empty() {
                format!("git exited with {}", output.status)
            } else {
                message
            },
        });
    }
    Ok(dest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_name_their_source_and_folder() {
        let ok = |r: &str| source_of(r).unwrap();
        assert_eq!(
            ok("octo/hello-world"),
            (
                "https://github.com/octo/hello-world.git".into(),
                "hello-world".into()
            )
        );
        assert_eq!(
            ok("https://gitlab.com/a/b.git"),
            ("https://gitlab.com/a/b.git".into(), "b".into())
        );
        assert_eq!(ok("git@github.com:a/c.git").1, "c");
        assert_eq!(ok("file:///srv/repos/d.git/").1, "d");
        assert_eq!(ok("/srv/repos/e").1, "e");
        for bad in [
            "",
            "--upload-pack=touch /tmp/x",
            "ext::sh -c touch% /tmp/x",
            "a/b/c",
            "../x",
            "a/..",
            "x\ny",
            "relative/path/too",
        ] {
            assert!(source_of(bad).is_err(), "{bad:?}");
        }
    }
}
