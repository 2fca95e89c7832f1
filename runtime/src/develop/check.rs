//! `sluice plugin test`: builds a plugin and runs its pipeline test against the component.

use std::fmt;
use std::path::Path;

use super::{BuildOptions, DevelopError, build_plugin, read_to_string};
use crate::wasm::{PluginRegistry, WasmEngine};

/// What a passing plugin test saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginTestReport {
    /// Records in `test/output.jsonl`, all as expected.
    pub records: usize,
    /// Records the plugin refused (in `test/dead-letter.jsonl`).
    pub dead_lettered: usize,
}

impl fmt::Display for PluginTestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} record(s) as expected, {} dead-lettered", self.records, self.dead_lettered)
    }
}

/// Builds the plugin in `directory`, runs `test/pipeline.toml` and compares `test/output.jsonl`
/// with `test/expected.jsonl` line by line.
pub fn test_plugin(directory: &Path, engine: WasmEngine) -> Result<PluginTestReport, DevelopError> {
    let built = build_plugin(directory, &BuildOptions::default())?;
    let test = directory.join("test");
    check_runs_the_build(&test.join("pipeline.toml"), &built)?;
    for stale in ["output.jsonl", "dead-letter.jsonl"] {
        let _ = std::fs::remove_file(test.join(stale));
    }
    crate::commands::run(&test.join("pipeline.toml"), &PluginRegistry::new(engine), |_, _| {})?;
    let actual = read_to_string(&test.join("output.jsonl"))?;
    let expected = read_to_string(&test.join("expected.jsonl"))?;
    if let Some(difference) = first_difference(&actual, &expected) {
        return Err(DevelopError::TestMismatch(format!("test/output.jsonl differs from test/expected.jsonl: {difference}")));
    }
    let dead_lettered = std::fs::read_to_string(test.join("dead-letter.jsonl")).map_or(0, |text| text.lines().count());
    Ok(PluginTestReport { records: actual.lines().count(), dead_lettered })
}

/// Refuses a test pipeline none of whose operators runs the component just `built` (its
/// manifest's name changed, say): it would test an older file and pass. A pipeline that does
/// not load is left for the run to report.
fn check_runs_the_build(pipeline: &Path, built: &Path) -> Result<(), DevelopError> {
    let Ok(loaded) = crate::config::LoadedPipeline::load(pipeline) else { return Ok(()) };
    let same = |path: &Path| path.canonicalize().ok() == built.canonicalize().ok();
    let plugins: Vec<std::path::PathBuf> =
        loaded.config.operators.iter().map(|operator| loaded.resolve(operator.get_ref().plugin.get_ref())).collect();
    if plugins.iter().any(|plugin| same(plugin)) {
        return Ok(());
    }
    let named: Vec<String> = plugins.iter().map(|plugin| plugin.display().to_string()).collect();
    Err(DevelopError::Input(format!(
        "test/pipeline.toml runs {}, not the component just built, {}: point an operator's `plugin` at it (the manifest's \
         name gives the file's)",
        if named.is_empty() { "no operator".to_owned() } else { named.join(", ") },
        built.display()
    )))
}

fn first_difference(actual: &str, expected: &str) -> Option<String> {
    let (actual, expected): (Vec<&str>, Vec<&str>) = (actual.lines().collect(), expected.lines().collect());
    for line in 0..actual.len().max(expected.len()) {
        let (got, want) = (actual.get(line), expected.get(line));
        if got != want {
            let show = |text: Option<&&str>| text.map_or_else(|| "(nothing)".to_owned(), |text| (*text).to_owned());
            return Some(format!("line {}: got {}, expected {}", line + 1, show(got), show(want)));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::first_difference;

    #[test]
    fn differences_name_the_first_line_that_differs() {
        assert_eq!(first_difference("a\nb\n", "a\nb\n"), None);
        assert_eq!(first_difference("a\nc\n", "a\nb\n").as_deref(), Some("line 2: got c, expected b"));
        assert_eq!(first_difference("a\n", "a\nb\n").as_deref(), Some("line 2: got (nothing), expected b"));
    }
}
