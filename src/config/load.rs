//! Layering (embedded example → `--config` file → `YUNYING_` environment) and error reports
//! that name the source, the key path and the reason.

use std::fmt;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;

use super::Config;

/// The example configuration, compiled in: it is the default when no file is given.
pub const EXAMPLE_TOML: &str = include_str!("../../config.example.toml");

/// Environment variables with the prefix that are not configuration keys.
const NON_CONFIG_ENV: &[&str] = &["log", "test_database_url", "config"];

/// One problem: where it came from, which key, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// File path, environment variable name or "built-in defaults".
    pub source: String,
    /// Dotted key path, e.g. `channels.corp.encoding_aes_key`.
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: key `{}`: {}", self.source, self.key, self.reason)
    }
}

/// Every problem found; start-up stops when there is any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub Vec<ConfigIssue>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} problem{}):",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        )?;
        for issue in &self.0 {
            writeln!(f, "  - {issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// A validated configuration and the file it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    pub file: Option<PathBuf>,
}

/// Loads and validates the configuration. Without a file the built-in example applies as is;
/// with a file, the example still supplies defaults for every key except `channels`,
/// `commands.staff` and `recall.plans`, which come from the file alone (the demo channels, the
/// demo admin and the demo plan must not leak into a real deployment).
pub fn load(file: Option<&Path>) -> Result<LoadedConfig, ConfigError> {
    load_checked(file, &[])
}

/// A check a domain adds to the configuration's own (its rules, plans, …): `(key, reason)`
/// pairs. The composition root passes the domains' checks, so configuration depends on no domain.
pub type Check = fn(&Config) -> Vec<(String, String)>;

/// [`load`] with the domains' checks; every issue is reported with its source.
pub fn load_checked(file: Option<&Path>, checks: &[Check]) -> Result<LoadedConfig, ConfigError> {
    let figment = figment_for(file)?;
    let config: Config = figment.extract().map_err(|e| from_figment(&figment, e))?;
    let mut issues = super::validate::validate(&config);
    for check in checks {
        issues.extend(check(&config));
    }
    if !issues.is_empty() {
        let located = issues
            .into_iter()
            .map(|(key, reason)| ConfigIssue {
                source: source_of(&figment, &key),
                key,
                reason,
            })
            .collect();
        return Err(ConfigError(located));
    }
    Ok(LoadedConfig {
        config,
        file: file.map(Path::to_path_buf),
    })
}

/// The embedded example alone, without the environment (what tests and tools build on).
pub(super) fn example_alone() -> Result<Config, ConfigError> {
    let figment = Figment::new().merge(Toml::string(EXAMPLE_TOML));
    let config: Config = figment.extract().map_err(|e| from_figment(&figment, e))?;
    let issues = super::validate::validate(&config);
    if issues.is_empty() {
        return Ok(config);
    }
    Err(ConfigError(
        issues
            .into_iter()
            .map(|(key, reason)| ConfigIssue {
                source: "config.example.toml".into(),
                key,
                reason,
            })
            .collect(),
    ))
}

fn figment_for(file: Option<&Path>) -> Result<Figment, ConfigError> {
    let defaults = match file {
        None => EXAMPLE_TOML.to_owned(),
        Some(_) => example_without_demo(),
    };
    let mut figment = Figment::new().merge(Toml::string(&defaults));
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError(vec![ConfigIssue {
                source: path.display().to_string(),
                key: "-".into(),
                reason: "file not found".into(),
            }]));
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(vec![ConfigIssue {
                source: path.display().to_string(),
                key: "-".into(),
                reason: e.to_string(),
            }])
        })?;
        if let Err(e) = text.parse::<toml::Table>() {
            return Err(ConfigError(vec![ConfigIssue {
                source: path.display().to_string(),
                key: "-".into(),
                reason: format!("not valid TOML: {}", e.message()),
            }]));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    Ok(figment.merge(Env::prefixed("YUNYING_").ignore(NON_CONFIG_ENV).split("__")))
}

fn example_without_demo() -> String {
    match EXAMPLE_TOML.parse::<toml::Table>() {
        Ok(mut table) => {
            table.remove("channels");
            if let Some(toml::Value::Table(commands)) = table.get_mut("commands") {
                commands.remove("staff");
            }
            // The example plan sends through a demo channel.
            if let Some(toml::Value::Table(recall)) = table.get_mut("recall") {
                recall.remove("plans");
            }
            toml::to_string(&table).unwrap_or_default()
        }
        Err(_) => String::new(),
    }
}

fn source_of(figment: &Figment, key: &str) -> String {
    match figment.find_metadata(key) {
        Some(meta) => describe_source(meta, key),
        None => "configuration".into(),
    }
}

fn describe_source(meta: &figment::Metadata, key: &str) -> String {
    match &meta.source {
        Some(figment::Source::File(path)) => path.display().to_string(),
        _ if meta.name.contains("environment") => {
            format!(
                "environment variable YUNYING_{}",
                key.replace('.', "__").to_uppercase()
            )
        }
        _ if meta.name.contains("string") => "built-in defaults".to_owned(),
        _ => meta.name.to_string(),
    }
}

fn from_figment(figment: &Figment, error: figment::Error) -> ConfigError {
    let issues = error
        .into_iter()
        .map(|e| {
            let mut key = e.path.join(".");
            let reason = match &e.kind {
                figment::error::Kind::UnknownField(name, expected) => {
                    key = with_leaf(&key, name);
                    format!("unknown key (expected one of: {})", expected.join(", "))
                }
                figment::error::Kind::MissingField(name) => {
                    key = with_leaf(&key, name);
                    "required key is missing".to_owned()
                }
                other => other.to_string(),
            };
            let source = match &e.metadata {
                Some(meta) => describe_source(meta, &key),
                None => source_of(figment, &key),
            };
            ConfigIssue {
                source,
                key,
                reason,
            }
        })
        .collect();
    ConfigError(issues)
}

/// Appends `leaf` to a dotted path unless figment already put it there.
fn with_leaf(path: &str, leaf: &str) -> String {
    if path.is_empty() {
        leaf.to_owned()
    } else if path == leaf || path.ends_with(&format!(".{leaf}")) {
        path.to_owned()
    } else {
        format!("{path}.{leaf}")
    }
}
