//! Security analysis: every command and Python cell of the agent gets a
//! `security_risk` from the model's own assessment, the built-in rules, or both (the
//! higher of the two). See docs/security.md.

pub mod rules;

use std::path::Path;

use crate::events::Action;
pub use rules::{Finding, Risk, Rule};

/// Which assessment decides an action's risk (`[security] security_analyzer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Analyzer {
    /// The model's `security_risk` argument only (upstream's `llm` analyzer).
    Llm,
    /// The built-in rules only.
    Rules,
    /// The higher of the two (the default).
    Both,
}

/// The names `[security] security_analyzer` accepts; `none` turns analysis off.
pub const NAMES: &[&str] = &["both", "llm", "rules", "none"];

impl Analyzer {
    /// The analyzer a name selects: `Ok(None)` for `none`; unknown names are an error.
    pub fn parse(name: &str) -> Result<Option<Analyzer>, String> {
        match name.trim().to_ascii_lowercase().as_str() {
            "" | "both" | "default" => Ok(Some(Analyzer::Both)),
            "llm" => Ok(Some(Analyzer::Llm)),
            "rules" => Ok(Some(Analyzer::Rules)),
            "none" | "off" => Ok(None),
            other => Err(format!(
                "unknown security analyzer {other:?}; use one of: {}",
                NAMES.join(", ")
            )),
        }
    }

    /// The analyzer of a configured name: both when none is set; an unknown name (which
    /// configuration loading refuses) also falls back to both.
    pub fn configured(name: Option<&str>) -> Option<Analyzer> {
        match name {
            None => Some(Analyzer::Both),
            Some(n) => Analyzer::parse(n).unwrap_or(Some(Analyzer::Both)),
        }
    }

    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Analyzer::Llm => "llm",
            Analyzer::Rules => "rules",
            Analyzer::Both => "both",
        }
    }

    /// The risk of a command or a cell: the model's `model_risk` (-1 unknown … 2 high)
    /// and/or the rules' verdict (low when no rule matches).
    pub fn risk(self, model_risk: i64, rules: Option<Finding>) -> i64 {
        let by_rules = rules.map_or(Risk::Low, |f| f.risk) as i64;
        match self {
            Analyzer::Llm => model_risk,
            Analyzer::Rules => by_rules,
            Analyzer::Both => model_risk.max(by_rules),
        }
    }
}

/// What the rules find in an action (commands and Python cells only).
pub fn findings(action: &Action, workspace: &Path) -> Option<Finding> {
    match action {
        Action::Run(a) if !a.is_input => rules::assess_command(&a.command, workspace),
        Action::RunIpython(a) => rules::assess_python(&a.code, workspace),
        _ => None,
    }
}

/// Sets the `security_risk` of a command or a Python cell as `analyzer` rates it; other
/// actions keep the model's. Returns the rule that matched, if any.
pub fn assess(analyzer: Analyzer, action: &mut Action, workspace: &Path) -> Option<Finding> {
    let found = match analyzer {
        Analyzer::Llm => None,
        _ => findings(action, workspace),
    };
    match action {
        Action::Run(a) => a.security_risk = analyzer.risk(a.security_risk, found),
        Action::RunIpython(a) => a.security_risk = analyzer.risk(a.security_risk, found),
        _ => {}
    }
    found
}
