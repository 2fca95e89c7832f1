//! Golden tests: example pipelines produce exactly their stored output.
//!
//! `pipelines/expected/<name>.out` holds the standard output of `sluice run pipelines/<name>.toml`;
//! `pipelines/expected/graphs/<file>` each output file a pipeline of `pipelines/graphs/` writes to
//! `pipelines/graphs/out/<file>`. Lines are compared as sets with their counts: records of
//! different keys may reach a sink in another order from one run to the next (stages run in
//! parallel), but every record must be there, exactly. Set `SLUICE_UPDATE_GOLDEN=1` to rewrite
//! the files after an intended change (create an empty file first to add an example).

use std::path::{Path, PathBuf};

use crate::support::{privacy_run, registry, repo_root, sluice, sluice_with_made_up_secrets};

fn example_pipelines() -> Vec<PathBuf> {
    let mut pipelines = Vec::new();
    for directory in ["pipelines", "pipelines/graphs", "pipelines/nexmark"] {
        let entries = std::fs::read_dir(repo_root().join(directory)).expect("the examples' directory exists");
        pipelines.extend(
            entries
                .map(|entry| entry.expect("directory entry").path())
                .filter(|path| path.extension().is_some_and(|extension| extension == "toml")),
        );
    }
    pipelines.sort();
    pipelines
}

#[test]
fn every_example_pipeline_validates() {
    let pipelines = example_pipelines();
    assert!(pipelines.len() >= 7, "the examples and the graph examples at least");
    let invalid: Vec<String> = pipelines
        .iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(path).expect("the example reads");
            let problem = if text.contains("env = \"") {
                sluice_with_made_up_secrets("validate", path, &text).err()
            } else {
                sluice::commands::validate(path, registry()).err().map(|error| error.to_string())
            };
            problem.map(|error| format!("{} is invalid:\n{error}", path.display()))
        })
        .collect();
    assert!(invalid.is_empty(), "{}", invalid.join("\n\n"));
}

/// The lines of `text`, sorted: the order in which sinks receive records of different keys
/// is not part of the result.
fn sorted_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    lines
}

/// Compares `actual` with the golden file `expected_path` (or rewrites it).
fn check_golden(what: &str, actual: &str, expected_path: &Path) {
    if std::env::var_os("SLUICE_UPDATE_GOLDEN").is_some() {
        std::fs::write(expected_path, actual).expect("write golden file");
    }
    let expected = std::fs::read_to_string(expected_path).unwrap_or_else(|error| panic!("{}: {error}", expected_path.display()));
    let (actual_lines, expected_lines) = (sorted_lines(actual), sorted_lines(&expected));
    if actual_lines != expected_lines {
        let missing: Vec<&&str> = expected_lines.iter().filter(|line| !actual_lines.contains(line)).take(3).collect();
        let unexpected: Vec<&&str> = actual_lines.iter().filter(|line| !expected_lines.contains(line)).take(3).collect();
        panic!(
            "{what}: output differs from {} ({} lines, {} expected); missing e.g. {missing:?}; unexpected e.g. {unexpected:?}",
            expected_path.display(),
            actual_lines.len(),
            expected_lines.len()
        );
    }
}

/// Runs `pipelines/<name>.toml` and checks its standard output.
fn check_example(name: &str) {
    let root = repo_root();
    let output = sluice(&root, &["run", &format!("pipelines/{name}.toml")]);
    assert!(output.status.success(), "sluice run {name} failed: {}", String::from_utf8_lossy(&output.stderr));
    let actual = String::from_utf8_lossy(&output.stdout);
    assert!(actual.lines().count() >= 20, "{name} produces output");
    check_golden(name, &actual, &root.join("pipelines/expected").join(format!("{name}.out")));
}

/// Runs `pipelines/graphs/<name>.toml` and checks every file it writes.
fn check_graph_example(name: &str, outputs: &[&str]) {
    let root = repo_root();
    let out = root.join("pipelines/graphs/out");
    for file in outputs {
        let _ = std::fs::remove_file(out.join(format!("{name}-{file}.jsonl")));
    }
    let output = sluice(&root, &["run", &format!("pipelines/graphs/{name}.toml")]);
    assert!(output.status.success(), "sluice run graphs/{name} failed: {}", String::from_utf8_lossy(&output.stderr));
    for file in outputs {
        let file = format!("{name}-{file}.jsonl");
        let actual = std::fs::read_to_string(out.join(&file)).unwrap_or_else(|error| panic!("{file}: {error}"));
        assert!(!actual.is_empty(), "{file} has records");
        check_golden(&file, &actual, &root.join("pipelines/expected/graphs").join(&file));
    }
}

#[test]
fn quickstart_matches_its_golden_output() {
    check_example("quickstart");
}

#[test]
fn marketing_matches_its_golden_output() {
    check_example("marketing");
}

#[test]
fn ecommerce_matches_its_golden_output() {
    check_example("ecommerce");
}

#[test]
fn languages_matches_its_golden_output() {
    check_example("languages");
}

#[test]
fn fan_out_writes_each_branch_to_its_own_sink() {
    check_graph_example("fan-out", &["big", "revenue"]);
}

#[test]
fn a_union_of_two_sources_meets_by_key() {
    check_graph_example("union", &["net"]);
}

#[test]
fn side_outputs_reach_their_own_sinks() {
    check_graph_example("side-outputs", &["results", "alerts", "late"]);
}

#[test]
fn revenue_forecast_matches_its_golden_output_and_flags_the_injected_anomaly() {
    check_example("revenue-forecast");
    let golden = std::fs::read_to_string(repo_root().join("pipelines/expected/revenue-forecast.out")).expect("golden output");
    let alerts: Vec<serde_json::Value> = golden
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON"))
        .filter(|record: &serde_json::Value| record["alert"].is_string())
        .collect();
    // The anomaly: electronics orders at four times their price during minute 14.
    let (start, end) = (1_767_225_600_000_i64 + 14 * 60_000, 1_767_225_600_000_i64 + 15 * 60_000);
    assert!(
        alerts.iter().any(|alert| alert["group"]["category"] == "electronics"
            && alert["timestamp"].as_i64().is_some_and(|at| (start..=end).contains(&at))),
        "an alert for electronics during minute 14 among {alerts:?}"
    );
    // Elsewhere the forecasts follow the revenue: residuals are the noise of a 30 s window.
    let forecasts = golden.lines().map(|line| serde_json::from_str::<serde_json::Value>(line).expect("JSON"));
    let residuals: Vec<f64> = forecasts
        .filter(|record| record["category"] != "electronics" && record["residual"].is_number())
        .map(|record| record["residual"].as_f64().unwrap_or_default().abs() / record["value"].as_f64().unwrap_or(1.0).max(1.0))
        .collect();
    let mean = residuals.iter().sum::<f64>() / residuals.len() as f64;
    assert!(residuals.len() > 200 && mean < 0.25, "mean relative residual {mean} over {} forecasts", residuals.len());
}

#[test]
fn segments_match_their_golden_output() {
    check_example("segments");
}

#[test]
fn privacy_matches_its_golden_output_with_a_fixed_key() {
    let output = privacy_run("the-golden-test-key-0123456789abcdef");
    check_golden("privacy", &output, &repo_root().join("pipelines/expected/privacy.out"));
}
