//! The log subscriber: human-readable lines on stderr by default, JSON lines with
//! `LOG_JSON=1` (the Python server's switch) or `LOG_FORMAT=json`. `LOG_LEVEL` is the
//! filter (`info`, `debug`, `openhands_server=debug,warn`, …).

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    /// One JSON object per line, with the fields of the current span and its parents.
    Json,
}

impl LogFormat {
    /// The format the environment asks for: `LOG_JSON` (`1`/`true`/`yes`) or
    /// `LOG_FORMAT=json`.
    pub fn from_env() -> Self {
        Self::from_vars(
            std::env::var("LOG_JSON").ok().as_deref(),
            std::env::var("LOG_FORMAT").ok().as_deref(),
        )
    }

    fn from_vars(log_json: Option<&str>, log_format: Option<&str>) -> Self {
        let yes = |v: &str| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes");
        if log_json.is_some_and(yes)
            || log_format.is_some_and(|f| f.trim().eq_ignore_ascii_case("json"))
        {
            LogFormat::Json
        } else {
            LogFormat::Text
        }
    }
}

/// Installs the process's log subscriber (once, at start): `LOG_LEVEL` or
/// `default_level` as the filter, `format` as the line format, on stderr.
pub fn init(default_level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOG_LEVEL")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn either_switch_selects_json() {
        assert_eq!(LogFormat::from_vars(None, None), LogFormat::Text);
        assert_eq!(LogFormat::from_vars(Some("1"), None), LogFormat::Json);
        assert_eq!(LogFormat::from_vars(Some("true"), None), LogFormat::Json);
        assert_eq!(LogFormat::from_vars(Some("0"), None), LogFormat::Text);
        assert_eq!(LogFormat::from_vars(None, Some("JSON")), LogFormat::Json);
        assert_eq!(
            LogFormat::from_vars(Some("0"), Some("text")),
            LogFormat::Text
        );
    }
}
