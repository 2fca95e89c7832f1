//! Config-error golden tests: each `pipelines/invalid/<case>.toml` fails validation with
//! exactly the text in `<case>.err` (paths relative to the repository root).
//! Set `SLUICE_UPDATE_GOLDEN=1` to rewrite the `.err` files after an intended change.

use sluice::commands::CommandError;

use crate::support::{registry, repo_root};

#[test]
fn every_invalid_pipeline_fails_with_its_expected_message() {
    let root = repo_root();
    let mut cases: Vec<_> = std::fs::read_dir(root.join("pipelines/invalid"))
        .expect("pipelines/invalid exists")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "toml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 10, "expected the invalid-pipeline cases, found {}", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let message = match sluice::commands::validate(case, registry()) {
            Ok(_) => panic!("{} validated, but it is meant to be invalid", case.display()),
            Err(CommandError::Invalid(diagnostics)) => diagnostics.to_string(),
            Err(other) => panic!("{}: expected diagnostics, got: {other}", case.display()),
        };
        let message = format!("{}\n", message.replace(&format!("{}/", root.display()), ""));
        let expected_path = case.with_extension("err");
        if std::env::var_os("SLUICE_UPDATE_GOLDEN").is_some() {
            std::fs::write(&expected_path, &message).expect("write .err file");
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if message != expected {
            failures.push(format!("--- {}\nexpected:\n{expected}\nactual:\n{message}", case.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
