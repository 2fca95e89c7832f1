//! The documentation checked against the code: every key a shipped operator's configuration
//! accepts is in `docs/operators.md`, every key a pipeline table accepts is in
//! `docs/pipeline.md`, and every TOML example of the README and `docs/` runs (or, when it
//! needs a broker, validates).
//!
//! The accepted keys are read from the refusal of an unknown key: serde's "unknown field `x`,
//! expected one of `a`, `b`", which the Python, JavaScript and C operators imitate. A key
//! added to a configuration struct or a plugin therefore fails these tests until it is
//! documented as a table row "| `key` |" in its section.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sluice::config::LoadedPipeline;
use sluice::pipeline::{OperatorError, OperatorSpec};
use sluice::wasm::InstanceLimits;

use crate::support::{plugin, registry, repo_root, run, secret_variables, sluice_with_made_up_secrets};

/// An unknown key, put where a probe wants a table's keys listed.
const PROBE: &str = "sluice_docs_probe";

/// The names between backticks after "expected" in a refusal of `PROBE`.
fn keys_listed(refusal: &str) -> Vec<String> {
    assert!(refusal.contains(PROBE), "the refusal does not name the unknown key: {refusal}");
    let listed = refusal.split_once("expected").map_or("", |(_, rest)| rest);
    let listed = listed.lines().next().unwrap_or_default();
    listed.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

fn read_doc(name: &str) -> String {
    std::fs::read_to_string(repo_root().join(name)).unwrap_or_else(|error| panic!("{name}: {error}"))
}

/// The text under the heading line `heading`, up to the next heading of the same or a higher
/// level.
fn section<'a>(text: &'a str, heading: &str, document: &str) -> &'a str {
    let level = heading.chars().take_while(|c| *c == '#').count();
    let start = text
        .lines()
        .scan(0, |offset, line| {
            let here = *offset;
            *offset += line.len() + 1;
            Some((here, line))
        })
        .find(|(_, line)| *line == heading)
        .map(|(offset, line)| offset + line.len() + 1)
        .unwrap_or_else(|| panic!("{document} has no heading `{heading}`"));
    let rest = &text[start.min(text.len())..];
    let mut end = rest.len();
    let mut offset = 0;
    for line in rest.lines() {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if hashes > 0 && hashes <= level && line[hashes..].starts_with(' ') {
            end = offset;
            break;
        }
        offset += line.len() + 1;
    }
    &rest[..end]
}

fn documents_key(text: &str, key: &str) -> bool {
    text.contains(&format!("| `{key}` |"))
}

// ---------------------------------------------------------------------------------------
// docs/operators.md

/// Configurations each with `PROBE` in one table: the top level and every nested table.
const OPERATOR_PROBES: &[(&str, &str)] = &[
    ("filter", r#"{"sluice_docs_probe": 1}"#),
    ("filter", r#"{"all": [{"sluice_docs_probe": 1}]}"#),
    ("project", r#"{"sluice_docs_probe": 1}"#),
    ("window-aggregate", r#"{"sluice_docs_probe": 1}"#),
    ("window-aggregate", r#"{"window": {"type": "tumbling", "sluice_docs_probe": 1}}"#),
    ("window-aggregate", r#"{"window": {"type": "hopping", "sluice_docs_probe": 1}}"#),
    ("window-aggregate", r#"{"window": {"type": "session", "sluice_docs_probe": 1}}"#),
    ("window-aggregate", r#"{"aggregates": [{"sluice_docs_probe": 1}]}"#),
    ("window-aggregate", r#"{"aggregates": [{"function": "count", "when": {"sluice_docs_probe": 1}}]}"#),
    ("moving-average", r#"{"sluice_docs_probe": 1}"#),
    ("moving-average", r#"{"averages": [{"type": "simple", "sluice_docs_probe": 1}]}"#),
    ("moving-average", r#"{"averages": [{"type": "exponential", "sluice_docs_probe": 1}]}"#),
    ("moving-average", r#"{"averages": [{"type": "cumulative", "sluice_docs_probe": 1}]}"#),
    ("anomaly-detect", r#"{"sluice_docs_probe": 1}"#),
    ("anomaly-detect", r#"{"detectors": [{"type": "zscore", "sluice_docs_probe": 1}]}"#),
    ("anomaly-detect", r#"{"detectors": [{"type": "mad", "sluice_docs_probe": 1}]}"#),
    ("anomaly-detect", r#"{"detectors": [{"type": "threshold", "sluice_docs_probe": 1}]}"#),
    ("anomaly-detect", r#"{"detectors": [{"type": "rate-of-change", "sluice_docs_probe": 1}]}"#),
    ("recommend", r#"{"sluice_docs_probe": 1}"#),
    ("dedupe", r#"{"sluice_docs_probe": 1}"#),
    ("enrich", r#"{"sluice_docs_probe": 1}"#),
    ("join", r#"{"sluice_docs_probe": 1}"#),
    ("join", r#"{"key": ["k"], "within": {"sluice_docs_probe": 1}}"#),
    ("join", r#"{"key": ["k"], "best": {"sluice_docs_probe": 1}}"#),
    ("learn", r#"{"sluice_docs_probe": 1}"#),
    ("forecast", r#"{"sluice_docs_probe": 1}"#),
    ("cluster", r#"{"sluice_docs_probe": 1}"#),
    ("mask", r#"{"sluice_docs_probe": 1}"#),
    ("mask", r#"{"truncate": [{"sluice_docs_probe": 1}]}"#),
    ("fraud-score", r#"{"sluice_docs_probe": 1}"#),
    ("fraud-score", r#"{"rules": [{"sluice_docs_probe": 1}]}"#),
    ("fraud-score", r#"{"velocity": {"sluice_docs_probe": 1}}"#),
    ("reshape", r#"{"sluice_docs_probe": 1}"#),
    ("reshape", r#"{"lookup": [{"sluice_docs_probe": 1}]}"#),
    ("range-filter", r#"{"sluice_docs_probe": 1}"#),
];

/// Keys the runtime writes into a configuration, which users do not.
const RUNTIME_KEYS: &[&str] = &["sluice_files", "sluice_secrets"];

/// The keys `name`'s plugin lists when it refuses `config`.
fn operator_keys(name: &str, config: &str) -> Vec<String> {
    let component = registry().load(&plugin(name)).expect("plugin loads");
    let limits = InstanceLimits { memory: 128 << 20, call_timeout: Duration::from_secs(30) };
    match OperatorSpec::new(name, component, config.into(), vec!["input".into()], limits) {
        Err(OperatorError::ConfigRefused(refusal)) => keys_listed(&refusal),
        Err(other) => panic!("{name} with {config}: {other}"),
        Ok(_) => panic!("{name} accepted the unknown key in {config}"),
    }
}

#[test]
fn the_operator_reference_documents_every_config_key_of_every_shipped_operator() {
    let reference = read_doc("docs/operators.md");
    let mut missing = Vec::new();
    for (name, config) in OPERATOR_PROBES {
        let keys = operator_keys(name, config);
        assert!(!keys.is_empty(), "{name}: no key read from its refusal of {config}");
        let text = section(&reference, &format!("## {name}"), "docs/operators.md");
        for key in keys.iter().filter(|key| !RUNTIME_KEYS.contains(&key.as_str())) {
            if !documents_key(text, key) {
                missing.push(format!("{name}: `{key}` (listed when refusing {config})"));
            }
        }
    }
    assert!(missing.is_empty(), "keys docs/operators.md does not document as a table row \"| `key` |\":\n{}", missing.join("\n"));
}

#[test]
fn every_shipped_operator_has_a_section_and_probes_in_the_operator_reference() {
    let reference = read_doc("docs/operators.md");
    for operator in sluice::develop::SHIPPED_OPERATORS {
        section(&reference, &format!("## {}", operator.name), "docs/operators.md");
        assert!(
            OPERATOR_PROBES.iter().any(|(name, _)| *name == operator.name),
            "{} has no probe in OPERATOR_PROBES: add its tables",
            operator.name
        );
    }
}

// ---------------------------------------------------------------------------------------
// docs/pipeline.md

/// Pipeline files each with `PROBE` in one table, and the section (and subsection) that
/// documents that table.
const PIPELINE_PROBES: &[(&str, Option<&str>, &str)] = &[
    ("## The file", None, "sluice_docs_probe = 1\n[pipeline]\nname = \"p\"\n"),
    ("## [pipeline]", None, "[pipeline]\nname = \"p\"\nsluice_docs_probe = 1\n"),
    ("## [[sources]]", Some("### type = \"generator\""), "[[sources]]\ntype = \"generator\"\nsluice_docs_probe = 1\n"),
    ("## [[sources]]", Some("### type = \"generator\""), "[[sources]]\ntype = \"generator\"\nanomalies = [{ sluice_docs_probe = 1 }]\n"),
    ("## [[sources]]", Some("### type = \"file\""), "[[sources]]\ntype = \"file\"\nsluice_docs_probe = 1\n"),
    ("## [[sources]]", Some("### type = \"nexmark\""), "[[sources]]\ntype = \"nexmark\"\nsluice_docs_probe = 1\n"),
    ("## [[sources]]", Some("### type = \"stdin\""), "[[sources]]\ntype = \"stdin\"\nsluice_docs_probe = 1\n"),
    ("## [[sources]]", Some("### type = \"kafka\""), "[[sources]]\ntype = \"kafka\"\nsluice_docs_probe = 1\n"),
    ("## [[operators]]", None, "[[operators]]\nname = \"a\"\nplugin = \"a.wasm\"\nsluice_docs_probe = 1\n"),
    ("## [[sinks]]", Some("### type = \"stdout\""), "[[sinks]]\ntype = \"stdout\"\nsluice_docs_probe = 1\n"),
    ("## [[sinks]]", Some("### type = \"file\""), "[[sinks]]\ntype = \"file\"\nsluice_docs_probe = 1\n"),
    ("## [[sinks]]", Some("### type = \"kafka\""), "[[sinks]]\ntype = \"kafka\"\nsluice_docs_probe = 1\n"),
    ("## [[sinks]]", Some("### type = \"console\""), "[[sinks]]\ntype = \"console\"\nsluice_docs_probe = 1\n"),
    ("## [[sinks]]", Some("### type = \"console\""), "[[sinks]]\ntype = \"console\"\nchart = { sluice_docs_probe = 1 }\n"),
    ("## [dead_letter]", Some("### type = \"file\""), "[dead_letter]\ntype = \"file\"\nsluice_docs_probe = 1\n"),
    ("## [dead_letter]", Some("### type = \"kafka\""), "[dead_letter]\ntype = \"kafka\"\nsluice_docs_probe = 1\n"),
];

/// The keys the pipeline parser lists when it refuses `text`.
fn pipeline_keys(text: &str) -> Vec<String> {
    let text = if text.contains("[pipeline]") { text.to_owned() } else { format!("[pipeline]\nname = \"p\"\n{text}") };
    match LoadedPipeline::parse(PathBuf::from("probe.toml"), text.clone()) {
        Err(diagnostics) => keys_listed(&diagnostics.to_string()),
        Ok(_) => panic!("the parser accepted the unknown key in:\n{text}"),
    }
}

#[test]
fn the_pipeline_reference_documents_every_key_of_every_table() {
    let reference = read_doc("docs/pipeline.md");
    let mut missing = Vec::new();
    for (heading, subheading, text) in PIPELINE_PROBES {
        let keys = pipeline_keys(text);
        assert!(!keys.is_empty(), "no key read from the refusal of:\n{text}");
        let mut documented = section(&reference, heading, "docs/pipeline.md");
        if let Some(subheading) = subheading {
            documented = section(documented, subheading, "docs/pipeline.md");
        }
        for key in keys.iter().filter(|key| !documents_key(documented, key)) {
            missing.push(format!("{heading} {}: `{key}`", subheading.unwrap_or_default()));
        }
    }
    assert!(missing.is_empty(), "keys docs/pipeline.md does not document as a table row \"| `key` |\":\n{}", missing.join("\n"));
}

#[test]
fn the_stderr_dead_letter_takes_no_key_as_documented() {
    let refusal = match LoadedPipeline::parse(
        PathBuf::from("probe.toml"),
        "[pipeline]\nname = \"p\"\n[dead_letter]\ntype = \"stderr\"\nsluice_docs_probe = 1\n".into(),
    ) {
        Err(diagnostics) => diagnostics.to_string(),
        Ok(_) => panic!("a key on the stderr dead letter was accepted"),
    };
    assert!(refusal.contains("there are no fields"), "{refusal}");
    let reference = read_doc("docs/pipeline.md");
    let text = section(section(&reference, "## [dead_letter]", "docs/pipeline.md"), "### type = \"stderr\"", "docs/pipeline.md");
    assert!(text.contains("No other key"), "docs/pipeline.md should say the stderr dead letter takes no key");
}

// ---------------------------------------------------------------------------------------
// The examples

/// A TOML example of a document: where it is, its text, and the line before its fence.
struct Example {
    place: String,
    text: String,
    marker: String,
}

/// The ```toml blocks of the README and of every file in docs/.
fn examples() -> Vec<Example> {
    let mut documents = vec![repo_root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repo_root().join("docs"))
        .expect("docs/")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "md"))
        .collect();
    docs.sort();
    documents.extend(docs);
    let mut examples = Vec::new();
    for document in documents {
        let text = std::fs::read_to_string(&document).expect("document");
        let name = document.strip_prefix(repo_root()).unwrap_or(&document).display().to_string();
        let lines: Vec<&str> = text.lines().collect();
        let mut index = 0;
        while index < lines.len() {
            if lines[index].trim_start() != "```toml" {
                index += 1;
                continue;
            }
            let start = index;
            let marker = lines[..start].iter().rev().find(|line| !line.trim().is_empty()).copied().unwrap_or_default();
            let body: Vec<&str> = lines[start + 1..].iter().take_while(|line| line.trim_start() != "```").copied().collect();
            index = start + body.len() + 2;
            examples.push(Example { place: format!("{name}:{}", start + 1), text: body.join("\n") + "\n", marker: marker.to_owned() });
        }
    }
    examples
}

/// A directory at the repository's root, so that `../build/plugins/…` in an example reaches
/// the built plugins as it does from `pipelines/`, with `data/` beside it as there.
fn example_directory() -> tempfile::TempDir {
    let directory = tempfile::Builder::new().prefix(".doc-example-").tempdir_in(repo_root()).expect("temporary directory");
    std::os::unix::fs::symlink(repo_root().join("pipelines/data"), directory.path().join("data")).expect("data link");
    directory
}

/// The example as a whole pipeline: a fragment gets a `[pipeline]`, the clickstream generator
/// and a file sink; every example gets a dead-letter file in its directory.
fn whole_pipeline(text: &str) -> String {
    let mut pipeline = String::new();
    if !text.contains("[pipeline]") {
        pipeline.push_str("[pipeline]\nname = \"doc-example\"\n\n");
        if !text.contains("[[sources]]") {
            pipeline.push_str("[[sources]]\nname = \"events\"\ntype = \"generator\"\ncount = 3000\n\n");
        }
    }
    pipeline.push_str(text);
    if !text.contains("[[sinks]]") {
        pipeline.push_str("\n[[sinks]]\ntype = \"file\"\npath = \"out.jsonl\"\n");
    }
    if !text.contains("[dead_letter]") {
        pipeline.push_str("\n[dead_letter]\ntype = \"file\"\npath = \"dead-letters.jsonl\"\n");
    }
    pipeline
}

/// Whether a pipeline needs a broker or a terminal (then it is validated, not run).
fn needs_outside_world(pipeline: &toml::Table) -> bool {
    let tables = |key: &str| pipeline.get(key).and_then(toml::Value::as_array).cloned().unwrap_or_default();
    let kind = |table: &toml::Value| table.get("type").and_then(toml::Value::as_str).unwrap_or_default().to_owned();
    tables("sources").iter().any(|source| matches!(kind(source).as_str(), "kafka" | "stdin"))
        || tables("sinks").iter().any(|sink| kind(sink) == "kafka")
        || pipeline.get("dead_letter").is_some_and(|dead_letter| kind(dead_letter) == "kafka")
}

/// Runs an example that reads secrets as its own process (the variables are set for it alone),
/// and checks it wrote records and no dead letter.
fn run_with_secrets(directory: &Path, path: &Path, example: &Example) -> Result<(), String> {
    sluice_with_made_up_secrets("run", path, &example.text)?;
    let letters = std::fs::read_to_string(directory.join("dead-letters.jsonl")).unwrap_or_default();
    if let Some(first) = letters.lines().next() {
        return Err(format!("{} dead letter(s), the first: {first}", letters.lines().count()));
    }
    let written = std::fs::read_to_string(directory.join("out.jsonl")).unwrap_or_default();
    if !example.text.contains("[[sinks]]") && written.is_empty() {
        return Err("the example ran but emitted nothing".into());
    }
    Ok(())
}

/// Why the example fails, if it does.
fn check_example(example: &Example) -> Result<(), String> {
    if example.text.contains("[plugin]") {
        let directory = tempfile::tempdir().expect("temporary directory");
        std::fs::write(directory.path().join(sluice::develop::MANIFEST), &example.text).expect("write manifest");
        return sluice::develop::PluginManifestConfig::read(directory.path()).map(|_| ()).map_err(|error| error.to_string());
    }
    if !["[pipeline]", "[[sources]]", "[[operators]]", "[[sinks]]"].iter().any(|table| example.text.contains(table)) {
        return Err("neither a pipeline nor a part of one: mark it `<!-- not run: why -->` on the line before".into());
    }
    let directory = example_directory();
    let path = directory.path().join("example.toml");
    let pipeline = whole_pipeline(&example.text);
    std::fs::write(&path, &pipeline).expect("write example");
    let parsed: toml::Table = pipeline.parse().map_err(|error| format!("not TOML: {error}"))?;
    if needs_outside_world(&parsed) {
        return sluice_with_made_up_secrets("validate", &path, &example.text);
    }
    let unbounded = parsed.get("sources").and_then(toml::Value::as_array).is_some_and(|sources| {
        sources.iter().any(|source| source.get("type").and_then(toml::Value::as_str) == Some("generator") && source.get("count").is_none())
    });
    if unbounded {
        return Err("its generator has no `count`: the example would run for ever".into());
    }
    if !secret_variables(&example.text).is_empty() {
        return run_with_secrets(directory.path(), &path, example);
    }
    let summary = run(&path).map_err(|error| format!("{error}\n--- the pipeline run:\n{pipeline}"))?;
    let disabled = summary.disabled_operators();
    if !disabled.is_empty() {
        return Err(format!("operators disabled: {}", disabled.join(", ")));
    }
    if summary.dead_letters > 0 {
        let letters = std::fs::read_to_string(directory.path().join("dead-letters.jsonl")).unwrap_or_default();
        let first = letters.lines().next().unwrap_or_default();
        return Err(format!("{} dead letter(s), the first: {first}", summary.dead_letters));
    }
    let added_sink = !example.text.contains("[[sinks]]");
    let written = std::fs::read_to_string(directory.path().join("out.jsonl")).unwrap_or_default();
    if added_sink && written.is_empty() {
        return Err("the example ran but emitted nothing".into());
    }
    Ok(())
}

#[test]
fn every_toml_example_in_the_documentation_runs() {
    let examples = examples();
    assert!(examples.len() >= 15, "found only {} TOML examples", examples.len());
    let mut failures = Vec::new();
    let mut checked = 0;
    for example in &examples {
        if example.marker.starts_with("<!-- not run:") {
            continue;
        }
        checked += 1;
        if let Err(reason) = check_example(example) {
            failures.push(format!("{}: {reason}", example.place));
        }
    }
    assert!(failures.is_empty(), "documentation examples that fail:\n{}", failures.join("\n\n"));
    assert!(checked * 10 >= examples.len() * 8, "most examples must run: {checked} of {}", examples.len());
}

#[test]
fn the_example_reader_finds_the_operator_examples() {
    let examples = examples();
    for operator in sluice::develop::SHIPPED_OPERATORS {
        let plugin = format!("/{}.wasm\"", operator.name);
        assert!(
            examples.iter().any(|example| example.place.starts_with("docs/operators.md") && example.text.contains(&plugin)),
            "docs/operators.md has no example using {}",
            operator.name
        );
    }
}
