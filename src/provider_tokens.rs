//! Git provider tokens (GitHub, GitLab, Bitbucket, Azure DevOps): stored write-only with
//! the settings (`POST /api/add-git-providers`), used to clone private repositories over
//! https, and given to the agent's shell as `GITHUB_TOKEN` and the like, as upstream does.
//!
//! A token only ever goes to its provider's host: a clone of any other host gets no
//! credential. Git receives it as an `http.<url>.extraHeader` through `GIT_CONFIG_*`
//! environment variables, so it never appears on a command line, in the clone's
//! `.git/config` or in an event.

use base64::Engine;
use serde_json::{json, Map, Value};
use thiserror::Error;

/// Where provider tokens live inside the stored settings (outside the settings fields, so
/// `GET /api/settings` never shows them and `POST /api/settings` cannot overwrite them).
const KEY: &str = "provider_tokens";

/// A token is at most this long.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The git providers upstream knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Github,
    Gitlab,
    Bitbucket,
    AzureDevops,
}

impl Provider {
    pub const ALL: [Provider; 4] = [
        Provider::Github,
        Provider::Gitlab,
        Provider::Bitbucket,
        Provider::AzureDevops,
    ];

    /// The provider's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Github => "github",
            Provider::Gitlab => "gitlab",
            Provider::Bitbucket => "bitbucket",
            Provider::AzureDevops => "azure_devops",
        }
    }

    pub fn parse(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The host its repositories live on when the token names none.
    fn default_host(self) -> &'static str {
        match self {
            Provider::Github => "github.com",
            Provider::Gitlab => "gitlab.com",
            Provider::Bitbucket => "bitbucket.org",
            Provider::AzureDevops => "dev.azure.com",
        }
    }

    /// The environment variable the agent's shell gets the token in.
    fn env_var(self) -> &'static str {
        match self {
            Provider::Github => "GITHUB_TOKEN",
            Provider::Gitlab => "GITLAB_TOKEN",
            Provider::Bitbucket => "BITBUCKET_TOKEN",
            Provider::AzureDevops => "AZURE_DEVOPS_TOKEN",
        }
    }

    /// The `user:password` git sends for `token` over https, per provider.
    fn basic_credentials(self, token: &str) -> String {
        match self {
            Provider::Github => format!("x-access-token:{token}"),
            Provider::Gitlab => format!("oauth2:{token}"),
            // A Bitbucket app password comes as `username:app_password`.
            Provider::Bitbucket if token.contains(':') => token.to_string(),
            Provider::Bitbucket => format!("x-token-auth:{token}"),
            Provider::AzureDevops => format!(":{token}"),
        }
    }
}

/// One stored token.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderToken {
    pub provider: Provider,
    pub token: String,
    /// A self-hosted instance (`git.example.com`, optionally with a port).
    pub host: Option<String>,
}

impl ProviderToken {
    fn host(&self) -> String {
        self.host
            .clone()
            .unwrap_or_else(|| self.provider.default_host().to_string())
            .to_ascii_lowercase()
    }
}

/// Why posted provider tokens were refused.
#[derive(Debug, Error, PartialEq)]
pub enum ProviderTokenError {
    #[error("`provider_tokens` must be an object of provider name to {{\"token\", \"host\"}}")]
    Shape,
    #[error("unknown git provider {0:?} (known: github, gitlab, bitbucket, azure_devops)")]
    Unknown(String),
    #[error("the {0} token must be at most 8 KiB of printable characters")]
    BadToken(&'static str),
    #[error("the {0} host must be a host name, optionally with a port (no scheme or path)")]
    BadHost(&'static str),
}

fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
}

fn valid_token(token: &str) -> bool {
    token.len() <= MAX_TOKEN_BYTES && token.chars().all(|c| c.is_ascii_graphic())
}

/// The tokens in the stored settings.
pub fn stored(settings: Option<&Value>) -> Vec<ProviderToken> {
    parse(settings.and_then(|s| s.get(KEY)))
}

fn parse(tokens: Option<&Value>) -> Vec<ProviderToken> {
    let Some(Value::Object(map)) = tokens else {
        return Vec::new();
    };
    Provider::ALL
        .into_iter()
        .filter_map(|provider| {
            let entry = map.get(provider.name())?;
            let token = entry.get("token")?.as_str()?.to_string();
            let host = entry
                .get("host")
                .and_then(Value::as_str)
                .filter(|h| !h.is_empty())
                .map(str::to_string);
            Some(ProviderToken {
                provider,
                token,
                host,
            })
        })
        .collect()
}

/// The stored settings with `posted` (`{"github": {"token": "…", "host": null}}`) as the
/// tokens, as upstream's `add-git-providers` does: the posted providers replace the
/// stored set, and a provider posted with an empty token keeps its stored one (the UI
/// never sees a token back, so it posts an empty one when only the host changes).
pub fn replace(settings: Option<Value>, posted: &Value) -> Result<Value, ProviderTokenError> {
    let Value::Object(posted) = posted else {
        return Err(ProviderTokenError::Shape);
    };
    let old = stored(settings.as_ref());
    let mut tokens = Map::new();
    for (name, entry) in posted {
        let provider =
            Provider::parse(name).ok_or_else(|| ProviderTokenError::Unknown(name.clone()))?;
        if !entry.is_object() {
            return Err(ProviderTokenError::Shape);
        }
        let token = match entry.get("token") {
            None | Some(Value::Null) => "",
            Some(Value::String(t)) => t.trim(),
            Some(_) => return Err(ProviderTokenError::Shape),
        };
        let host = match entry.get("host") {
            None | Some(Value::Null) => None,
            Some(Value::String(h)) if h.trim().is_empty() => None,
            Some(Value::String(h)) => Some(h.trim().to_string()),
            Some(_) => return Err(ProviderTokenError::Shape),
        };
        if !valid_token(token) {
            return Err(ProviderTokenError::BadToken(provider.name()));
        }
        if host.as_deref().is_some_and(|h| !valid_host(h)) {
            return Err(ProviderTokenError::BadHost(provider.name()));
        }
        let token = if token.is_empty() {
            match old.iter().find(|t| t.provider == provider) {
                Some(t) => t.token.clone(),
                None => continue,
            }
        } else {
            token.to_string()
        };
        tokens.insert(name.clone(), json!({"token": token, "host": host}));
    }
    let mut settings = match settings {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    settings.insert(KEY.into(), Value::Object(tokens));
    Ok(Value::Object(settings))
}

/// The stored settings without any provider token (upstream's OSS "logout").
pub fn remove_all(settings: Option<Value>) -> Value {
    let mut settings = match settings {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    settings.remove(KEY);
    Value::Object(settings)
}

/// `provider_tokens_set` of `GET /api/settings`: provider → its host, or null.
pub fn public_view(settings: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    for t in parse(settings.get(KEY)) {
        out.insert(t.provider.name().into(), json!(t.host));
    }
    Value::Object(out)
}

/// The tokens as the agent's shell environment (`GITHUB_TOKEN=…`).
pub fn shell_env(tokens: &[ProviderToken]) -> Vec<(String, String)> {
    tokens
        .iter()
        .map(|t| (t.provider.env_var().to_string(), t.token.clone()))
        .collect()
}

/// The host (with port) of an https URL, lower-cased, without user information.
fn https_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// The environment that makes git send the matching provider's token when it fetches
/// `url`, or nothing when no token belongs to its host (or it is not https).
pub fn git_env(url: &str, tokens: &[ProviderToken]) -> Vec<(String, String)> {
    let Some(host) = https_host(url) else {
        return Vec::new();
    };
    let Some(token) = tokens.iter().find(|t| t.host() == host) else {
        return Vec::new();
    };
    let basic = base64::engine::general_purpose::STANDARD
        .encode(token.provider.basic_credentials(&token.token));
    vec![
        ("GIT_CONFIG_COUNT".into(), "1".into()),
        (
            "GIT_CONFIG_KEY_0".into(),
            format!("http.https://{host}/.extraHeader"),
        ),
        (
            "GIT_CONFIG_VALUE_0".into(),
            format!("Authorization: Basic {basic}"),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posted_tokens_replace_the_stored_set_and_an_empty_token_keeps_the_old_one() {
        let s = replace(
            Some(json!({"llm_model": "m"})),
            &json!({"github": {"token": "ghp_1", "host": null}, "gitlab": {"token": "gl_1", "host": "git.example.com:8443"}}),
        )
        .unwrap();
        assert_eq!(s["llm_model"], "m");
        assert_eq!(stored(Some(&s)).len(), 2);
        assert_eq!(
            public_view(s.as_object().unwrap()),
            json!({"github": null, "gitlab": "git.example.com:8443"})
        );
        // Only GitHub posted, with an empty token and a new host: GitLab goes, the token stays.
        let s = replace(
            Some(s),
            &json!({"github": {"token": "", "host": "ghe.example.com"}}),
        )
        .unwrap();
        assert_eq!(
            stored(Some(&s)),
            vec![ProviderToken {
                provider: Provider::Github,
                token: "ghp_1".into(),
                host: Some("ghe.example.com".into())
            }]
        );
        // A new provider with no token is not stored.
        let s = replace(Some(s), &json!({"bitbucket": {"token": ""}})).unwrap();
        assert!(stored(Some(&s)).is_empty());
        assert_eq!(
            public_view(remove_all(Some(s)).as_object().unwrap()),
            json!({})
        );
    }

    #[test]
    fn hostile_provider_tokens_are_refused() {
        for (posted, err) in [
            (json!([]), ProviderTokenError::Shape),
            (
                json!({"svn": {"token": "x"}}),
                ProviderTokenError::Unknown("svn".into()),
            ),
            (json!({"github": "x"}), ProviderTokenError::Shape),
            (
                json!({"github": {"token": "a\nb"}}),
                ProviderTokenError::BadToken("github"),
            ),
            (
                json!({"github": {"token": "x".repeat(9000)}}),
                ProviderTokenError::BadToken("github"),
            ),
            (
                json!({"github": {"token": "x", "host": "https://evil/"}}),
                ProviderTokenError::BadHost("github"),
            ),
            (
                json!({"github": {"token": "x", "host": "a b"}}),
                ProviderTokenError::BadHost("github"),
            ),
        ] {
            assert_eq!(replace(None, &posted).unwrap_err(), err, "{posted}");
        }
    }

    #[test]
    fn a_token_only_goes_to_its_own_host_over_https() {
        let tokens = stored(Some(
            &replace(
                None,
                &json!({"github": {"token": "T"}, "gitlab": {"token": "G", "host": "git.corp:8443"}}),
            )
            .unwrap(),
        ));
        let header = |url: &str| {
            git_env(url, &tokens)
                .into_iter()
                .find(|(k, _)| k == "GIT_CONFIG_VALUE_0")
                .map(|(_, v)| v)
        };
        let basic = |s: &str| {
            format!(
                "Authorization: Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        assert_eq!(
            header("https://github.com/o/r.git"),
            Some(basic("x-access-token:T"))
        );
        assert_eq!(
            header("https://user@GitHub.com/o/r"),
            Some(basic("x-access-token:T"))
        );
        assert_eq!(
            header("https://git.corp:8443/g/r.git"),
            Some(basic("oauth2:G"))
        );
        for other in [
            "https://github.com.evil.net/o/r",
            "https://evil.net/github.com/o/r",
            "http://github.com/o/r",
            "git@github.com:o/r.git",
            "https://git.corp/g/r.git",
        ] {
            assert_eq!(header(other), None, "{other}");
        }
        assert_eq!(
            shell_env(&tokens),
            vec![
                ("GITHUB_TOKEN".to_string(), "T".to_string()),
                ("GITLAB_TOKEN".to_string(), "G".to_string())
            ]
        );
    }
}
