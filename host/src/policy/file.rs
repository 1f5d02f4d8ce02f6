//! Policy files: the same rules in TOML.
//!
//! ```toml
//! # sockbox policy
//! mode = "enforce"               # "audit": record would-be denials, refuse nothing
//! inherit_network = false        # true: everything not denied (like -S inherit-network)
//! allow_special = false          # true: no preset for metadata, link-local, multicast, …
//! no_self = false                # true: no self connections (loopback socket pairs)
//! nat64_prefixes = ["64:ff9b:1::/48"]  # the network's own NAT64 prefixes (64:ff9b::/96 is known)
//! allow  = ["tcp://*.example.com:443", "udp://10.0.0.53:53"]
//! listen = ["tcp://127.0.0.1:8080"]
//! accept = ["tcp://10.0.0.0/8:*"]
//! deny   = ["tcp://10.0.0.13:*"]
//! publish = ["8080:80"]          # HOST_PORT:GUEST_PORT[/udp], like docker -p
//! ```

use std::fmt;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::{Direction, Mode, Policy};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    inherit_network: bool,
    #[serde(default)]
    allow: Vec<Spanned<String>>,
    #[serde(default)]
    listen: Vec<Spanned<String>>,
    #[serde(default)]
    accept: Vec<Spanned<String>>,
    #[serde(default)]
    deny: Vec<Spanned<String>>,
    #[serde(default)]
    mode: Option<Spanned<String>>,
    #[serde(default)]
    allow_special: bool,
    #[serde(default)]
    no_self: bool,
    #[serde(default)]
    publish: Vec<Spanned<String>>,
    #[serde(default)]
    nat64_prefixes: Vec<Spanned<String>>,
}

/// A policy file that could not be read or parsed: where, and why, in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFileError {
    source_name: String,
    line: Option<usize>,
    message: String,
}

impl PolicyFileError {
    /// Returns the 1-based line the error is on, when it is on one.
    pub fn line(&self) -> Option<usize> {
        self.line
    }
}

impl fmt::Display for PolicyFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.source_name, self.message),
            None => write!(f, "{}: {}", self.source_name, self.message),
        }
    }
}

impl std::error::Error for PolicyFileError {}

impl Policy {
    /// Reads a policy file (TOML: `allow`, `listen`, `accept`, `deny` lists of rules;
    /// `mode`, `inherit_network`, `allow_special`, `no_self`, `nat64_prefixes` and
    /// `publish`).
    pub fn load(path: &Path) -> Result<Self, PolicyFileError> {
        let source_name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|err| PolicyFileError {
            source_name: source_name.clone(),
            line: None,
            message: format!("cannot read the policy file: {err}"),
        })?;
        Self::from_toml(&text, &source_name)
    }

    /// Parses a policy file's text; `source_name` names it in errors.
    pub fn from_toml(text: &str, source_name: &str) -> Result<Self, PolicyFileError> {
        let fail = |span: Option<std::ops::Range<usize>>, message: String| PolicyFileError {
            source_name: source_name.to_owned(),
            line: span.map(|span| line_of(text, span.start)),
            message,
        };
        let file: PolicyFile =
            toml::from_str(text).map_err(|err| fail(err.span(), one_line(err.message())))?;
        let mut policy = Self::deny_all();
        if file.inherit_network {
            policy = policy.with_inherit_network();
        }
        if file.allow_special {
            policy = policy.with_special_allowed();
        }
        if file.no_self {
            policy = policy.without_self();
        }
        if let Some(mode) = file.mode {
            let span = mode.span();
            policy = policy.with_mode(match mode.get_ref().as_str() {
                "enforce" => Mode::Enforce,
                "audit" => Mode::Audit,
                other => {
                    return Err(fail(
                        Some(span),
                        format!("mode: `{other}` is not a mode: use \"enforce\" or \"audit\""),
                    ));
                }
            });
        }
        for prefix in file.nat64_prefixes {
            let span = prefix.span();
            let parsed = prefix
                .get_ref()
                .parse()
                .map_err(|why| fail(Some(span), format!("nat64_prefixes: {why}")))?;
            policy.push_nat64_prefix(parsed);
        }
        for publish in file.publish {
            let span = publish.span();
            publish
                .get_ref()
                .parse()
                .and_then(|parsed| policy.push_publish(parsed))
                .map_err(|err| fail(Some(span), err.to_string()))?;
        }
        for (direction, rules) in [
            (Direction::Allow, file.allow),
            (Direction::Listen, file.listen),
            (Direction::Accept, file.accept),
            (Direction::Deny, file.deny),
        ] {
            for rule in rules {
                let span = rule.span();
                rule.get_ref()
                    .parse()
                    .and_then(|parsed| policy.push(direction, parsed))
                    .map_err(|err| fail(Some(span), format!("{}: {err}", direction.key())))?;
            }
        }
        Ok(policy)
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map_or(1, |before| before.matches('\n').count() + 1)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
