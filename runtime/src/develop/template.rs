//! `sluice plugin new`: writes a ready-to-build plugin skeleton for a language.
//!
//! Every skeleton is the same small operator (keep records whose numeric field is at least a
//! threshold) with the same pipeline test, so languages can be compared like for like.

use std::path::{Path, PathBuf};

use super::{DevelopError, Language, check_name, write};

/// A file of a skeleton: its path in the plugin directory and its text with `{{...}}` holes.
struct TemplateFile {
    path: &'static str,
    text: &'static str,
}

const COMMON: &[TemplateFile] = &[
    TemplateFile { path: "sluice-plugin.toml", text: include_str!("../../templates/common/sluice-plugin.toml") },
    TemplateFile { path: ".gitignore", text: include_str!("../../templates/common/gitignore") },
    TemplateFile { path: "test/pipeline.toml", text: include_str!("../../templates/common/pipeline.toml") },
    TemplateFile { path: "test/input.jsonl", text: include_str!("../../templates/common/input.jsonl") },
    TemplateFile { path: "test/expected.jsonl", text: include_str!("../../templates/common/expected.jsonl") },
];

fn language_files(language: Language) -> &'static [TemplateFile] {
    match language {
        Language::Rust => &[
            TemplateFile { path: "Cargo.toml", text: include_str!("../../templates/rust/Cargo.toml") },
            TemplateFile { path: "src/lib.rs", text: include_str!("../../templates/rust/src/lib.rs") },
        ],
        Language::Python => &[TemplateFile { path: "app.py", text: include_str!("../../templates/python/app.py") }],
        Language::Js => &[TemplateFile { path: "app.js", text: include_str!("../../templates/js/app.js") }],
        Language::C => &[
            TemplateFile { path: "op.c", text: include_str!("../../templates/c/op.c") },
            TemplateFile { path: "json_field.h", text: include_str!("../../templates/c/json_field.h") },
        ],
    }
}

/// Where a Rust skeleton finds the SDK, unless the user names another: the `sdk/` of the
/// source tree this binary was built from, else of a Sluice tree holding the binary (a copy in
/// the tree's `bin/`, say) or the working directory.
pub fn default_sdk_path() -> Option<PathBuf> {
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let beside_binary = std::env::current_exe().ok().and_then(|exe| exe.canonicalize().ok());
    let working = std::env::current_dir().ok();
    let trees =
        std::iter::once(built_from).chain(beside_binary.iter().chain(&working).flat_map(|path| path.ancestors().map(Path::to_path_buf)));
    trees.map(|tree| tree.join("sdk")).find(|sdk| is_sluice_sdk(sdk)).map(|sdk| sdk.canonicalize().unwrap_or(sdk))
}

/// Whether `directory` holds the Sluice Rust SDK (its manifest names the `sluice-sdk` package).
fn is_sluice_sdk(directory: &Path) -> bool {
    std::fs::read_to_string(directory.join("Cargo.toml"))
        .is_ok_and(|manifest| manifest.lines().any(|line| line.replace(' ', "") == "name=\"sluice-sdk\""))
}

/// Writes a new plugin called `name` in `language` into `directory` (which must not exist).
/// Returns the files written, relative to `directory`.
pub fn new_plugin(name: &str, language: Language, directory: &Path, sdk: Option<&Path>) -> Result<Vec<&'static str>, DevelopError> {
    check_name(name)?;
    if directory.exists() {
        return Err(DevelopError::Exists(directory.to_owned()));
    }
    let sdk_path = match (language, sdk) {
        (Language::Rust, Some(sdk)) if !sdk.join("Cargo.toml").is_file() => {
            return Err(DevelopError::Input(format!(
                "--sdk {}: no Cargo.toml there: give the sdk/ directory of a Sluice source tree",
                sdk.display()
            )));
        }
        (Language::Rust, Some(sdk)) => std::path::absolute(sdk)
            .map_err(|source| DevelopError::Io { path: sdk.to_owned(), error: source })?
            .to_string_lossy()
            .into_owned(),
        (Language::Rust, None) => default_sdk_path()
            .ok_or_else(|| DevelopError::MissingTool {
                tool: "the Sluice Rust SDK".into(),
                remedy: "pass --sdk PATH/TO/sluice/sdk".into(),
            })?
            .to_string_lossy()
            .into_owned(),
        _ => String::new(),
    };
    // A TOML basic string: backslashes and quotes escaped.
    let sdk_path = sdk_path.replace('\\', "\\\\").replace('"', "\\\"");
    let holes = [("{{name}}", name), ("{{language}}", language.name()), ("{{sdk_path}}", &sdk_path)];
    let mut written = Vec::new();
    for file in COMMON.iter().chain(language_files(language)) {
        let text = holes.iter().fold(file.text.to_owned(), |text, (hole, value)| text.replace(hole, value));
        write(&directory.join(file.path), &text)?;
        written.push(file.path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_skeleton_has_its_manifest_and_test_and_no_unfilled_holes() {
        let root = std::env::temp_dir().join(format!("sluice-template-test-{}", std::process::id()));
        let sdk = root.join("sdk");
        std::fs::create_dir_all(&sdk).expect("sdk directory");
        std::fs::write(sdk.join("Cargo.toml"), "").expect("sdk manifest");
        let refused = new_plugin("my-op", Language::Rust, &root.join("nowhere"), Some(&root.join("no-sdk"))).err();
        assert!(refused.is_some_and(|error| error.to_string().contains("no Cargo.toml there")));
        for language in Language::ALL {
            let directory = root.join(language.name());
            let written = new_plugin("my-op", language, &directory, Some(&sdk)).expect("skeleton written");
            assert!(written.contains(&"sluice-plugin.toml") && written.contains(&"test/pipeline.toml"));
            for file in written {
                let text = std::fs::read_to_string(directory.join(file)).expect("readable");
                assert!(!text.contains("{{"), "{language}: {file} has an unfilled hole");
            }
            let manifest = crate::develop::PluginManifestConfig::read(&directory).expect("manifest parses");
            assert_eq!((manifest.plugin.name.as_str(), manifest.plugin.language), ("my-op", language));
            assert!(matches!(new_plugin("my-op", language, &directory, None), Err(DevelopError::Exists(_))));
        }
        let _ = std::fs::remove_dir_all(root);
    }
}
