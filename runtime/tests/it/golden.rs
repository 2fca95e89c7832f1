//! Golden tests: example pipelines produce exactly their stored output.
//!
//! `pipelines/expected/<name>.out` holds the standard output of `sluice run pipelines/<name>.toml`.
//! Set `SLUICE_UPDATE_GOLDEN=1` to rewrite the files after an intended change.

use crate::support::{registry, repo_root, sluice};

#[test]
fn every_example_pipeline_validates() {
    let mut checked = 0;
    for entry in std::fs::read_dir(repo_root().join("pipelines")).expect("pipelines/ exists") {
        let path = entry.expect("directory entry").path();
        if path.extension().is_some_and(|extension| extension == "toml") {
            if let Err(error) = sluice::commands::validate(&path, registry()) {
                panic!("{} is invalid:\n{error}", path.display());
            }
            checked += 1;
        }
    }
    assert!(checked >= 1);
}

#[test]
fn quickstart_output_matches_the_golden_file() {
    let root = repo_root();
    let output = sluice(&root, &["run", "pipelines/quickstart.toml"]);
    assert!(output.status.success(), "sluice run failed: {}", String::from_utf8_lossy(&output.stderr));
    let expected_path = root.join("pipelines/expected/quickstart.out");
    if std::env::var_os("SLUICE_UPDATE_GOLDEN").is_some() {
        std::fs::write(&expected_path, &output.stdout).expect("write golden file");
    }
    let expected = std::fs::read_to_string(&expected_path).expect("golden file exists (SLUICE_UPDATE_GOLDEN=1 writes it)");
    let actual = String::from_utf8_lossy(&output.stdout);
    assert!(actual.lines().count() > 100, "the quickstart produces one line per category and window");
    if actual != expected {
        let first_difference = actual.lines().zip(expected.lines()).position(|(a, e)| a != e);
        panic!("quickstart output differs from {} (first differing line: {first_difference:?})", expected_path.display());
    }
}
