//! Golden tests: example pipelines produce exactly their stored output.
//!
//! `pipelines/expected/<name>.out` holds the standard output of `sluice run pipelines/<name>.toml`;
//! every example with such a file is checked. Set `SLUICE_UPDATE_GOLDEN=1` to rewrite the
//! files after an intended change (create an empty file first to add an example).

use std::path::PathBuf;

use crate::support::{registry, repo_root, sluice};

fn example_pipelines() -> Vec<PathBuf> {
    let mut pipelines: Vec<PathBuf> = std::fs::read_dir(repo_root().join("pipelines"))
        .expect("pipelines/ exists")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "toml"))
        .collect();
    pipelines.sort();
    pipelines
}

#[test]
fn every_example_pipeline_validates() {
    let pipelines = example_pipelines();
    assert!(pipelines.len() >= 4, "quickstart, marketing, ecommerce and recommendations at least");
    for path in pipelines {
        if let Err(error) = sluice::commands::validate(&path, registry()) {
            panic!("{} is invalid:\n{error}", path.display());
        }
    }
}

#[test]
fn example_outputs_match_their_golden_files() {
    let root = repo_root();
    let mut checked = Vec::new();
    for path in example_pipelines() {
        let name = path.file_stem().and_then(|stem| stem.to_str()).expect("file name").to_owned();
        let expected_path = root.join("pipelines/expected").join(format!("{name}.out"));
        if !expected_path.exists() {
            continue;
        }
        let output = sluice(&root, &["run", &format!("pipelines/{name}.toml")]);
        assert!(output.status.success(), "sluice run {name} failed: {}", String::from_utf8_lossy(&output.stderr));
        if std::env::var_os("SLUICE_UPDATE_GOLDEN").is_some() {
            std::fs::write(&expected_path, &output.stdout).expect("write golden file");
        }
        let expected = std::fs::read_to_string(&expected_path).expect("golden file exists");
        let actual = String::from_utf8_lossy(&output.stdout);
        assert!(actual.lines().count() >= 20, "{name} produces output");
        if actual != expected {
            let first_difference = actual.lines().zip(expected.lines()).position(|(a, e)| a != e);
            panic!("{name}: output differs from {} (first differing line: {first_difference:?})", expected_path.display());
        }
        checked.push(name);
    }
    for required in ["quickstart", "marketing", "ecommerce", "languages"] {
        assert!(checked.iter().any(|name| name == required), "{required} has a golden file; checked {checked:?}");
    }
}
