//! Plugin development: `sluice plugin new` (skeletons), `build` (any supported language) and
//! `test` (the skeleton's own pipeline test against the real component).
//!
//! A plugin directory holds `sluice-plugin.toml` (name and language). Bindings are always
//! generated from the WIT this runtime was built with ([`WIT`]), so plugins cannot drift from
//! the world the runtime checks.

mod check;
mod diagnose;
mod language;
mod shipped;
mod template;
mod toolchain;

use std::path::{Path, PathBuf};

pub use check::{PluginTestReport, test_plugin};
pub use language::Language;
pub use shipped::{SHIPPED_OPERATORS, ShippedOperator};
pub use template::new_plugin;
pub use toolchain::{BuildOptions, build_plugin};

/// The WIT of the `operator` world this runtime implements (the `wit/` directory).
pub const WIT: &str = include_str!("../../../wit/operator.wit");

/// The manifest file of a plugin directory.
pub const MANIFEST: &str = "sluice-plugin.toml";

/// Why a development command failed.
#[derive(Debug, thiserror::Error)]
pub enum DevelopError {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
    #[error("{0}")]
    Manifest(String),
    /// What the command was given cannot be used (a source file, an option's path, the
    /// build's own report), said in full.
    #[error("{0}")]
    Input(String),
    #[error("{0} already exists: choose another name or directory")]
    Exists(PathBuf),
    #[error("invalid plugin name {0:?}: use lowercase letters, digits and '-', starting with a letter and not ending with '-'")]
    InvalidName(String),
    #[error("plugin name {0:?} is longer than {MAX_NAME} characters: its test pipeline is named after it, and names have at most 64")]
    NameTooLong(String),
    #[error("plugin name {0:?} is the name of the Sluice SDK's crate, which a plugin depends on: choose another")]
    SdkName(String),
    #[error("{tool} is missing: {remedy}")]
    MissingTool { tool: String, remedy: String },
    #[error("installing {tool} failed: {reason}")]
    Install { tool: String, reason: String },
    #[error("{command} failed ({status})")]
    BuildFailed { command: String, status: String },
    #[error("the build did not produce {0}")]
    NoOutput(PathBuf),
    #[error("the built component would be refused by the runtime (the previous build, if any, is left in place): {0}")]
    Refused(crate::wasm::PluginError),
    /// The pipeline's error is in the message, not a source: printed with its chain, it
    /// would be said twice.
    #[error("test pipeline: {0}")]
    TestRun(crate::commands::CommandError),
    #[error("{0}")]
    TestMismatch(String),
}

impl From<crate::commands::CommandError> for DevelopError {
    fn from(error: crate::commands::CommandError) -> DevelopError {
        DevelopError::TestRun(error)
    }
}

/// The contents of `sluice-plugin.toml`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginManifestConfig {
    pub plugin: PluginSectionConfig,
}

/// The `[plugin]` table.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSectionConfig {
    pub name: String,
    pub language: Language,
}

impl PluginManifestConfig {
    /// Reads `DIR/sluice-plugin.toml`.
    pub fn read(directory: &Path) -> Result<PluginManifestConfig, DevelopError> {
        let path = directory.join(MANIFEST);
        let text = read_to_string(&path)?;
        let manifest: PluginManifestConfig =
            toml::from_str(&text).map_err(|error| DevelopError::Manifest(format!("{}: {error}", path.display())))?;
        check_name(&manifest.plugin.name)?;
        Ok(manifest)
    }
}

/// The longest plugin name: its test pipeline is called `NAME-test`, and pipeline and operator
/// names have at most 64 characters.
pub const MAX_NAME: usize = 59;

/// Plugin names become file names, crate names and package names.
pub fn check_name(name: &str) -> Result<(), DevelopError> {
    let mut characters = name.chars();
    let valid = characters.next().is_some_and(|first| first.is_ascii_lowercase())
        && characters.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !valid {
        return Err(DevelopError::InvalidName(name.to_owned()));
    }
    if name.len() > MAX_NAME {
        return Err(DevelopError::NameTooLong(name.to_owned()));
    }
    // A Rust plugin's package would collide with the SDK's in its lock file.
    if name == "sluice-sdk" {
        return Err(DevelopError::SdkName(name.to_owned()));
    }
    Ok(())
}

fn read_to_string(path: &Path) -> Result<String, DevelopError> {
    std::fs::read_to_string(path).map_err(|source| DevelopError::Io { path: path.to_owned(), error: source })
}

fn write(path: &Path, contents: &str) -> Result<(), DevelopError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| DevelopError::Io { path: parent.to_owned(), error: source })?;
    }
    std::fs::write(path, contents).map_err(|source| DevelopError::Io { path: path.to_owned(), error: source })
}

#[cfg(test)]
mod tests {
    use super::check_name;

    #[test]
    fn plugin_names_are_lowercase_words_joined_by_dashes() {
        for good in ["a", "fraud-score", "x2"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Fraud", "2x", "a_b", "a-", "a b", "../x"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_name(&"a".repeat(59)).is_ok());
        assert!(check_name(&"a".repeat(60)).unwrap_err().to_string().contains("longer than 59 characters"));
        let sdk = check_name("sluice-sdk").err().map(|error| error.to_string());
        assert_eq!(
            sdk.as_deref(),
            Some("plugin name \"sluice-sdk\" is the name of the Sluice SDK's crate, which a plugin depends on: choose another")
        );
    }
}
