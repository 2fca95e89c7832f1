//! The languages `sluice plugin new` and `build` support, and their source layouts.

use std::fmt;

/// A plugin's source language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[derive(clap::ValueEnum)]
pub enum Language {
    /// Rust with the Sluice SDK (Debian's Rust for WebAssembly, `-Zbuild-std`).
    Rust,
    /// Python via componentize-py (`app.py` defines `class WitWorld`).
    Python,
    /// JavaScript via componentize-js (`app.js` exports the world's functions); also
    /// spelled `javascript`.
    #[value(alias = "javascript")]
    #[serde(alias = "javascript")]
    Js,
    /// C via `wit-bindgen c`, clang and wasi-libc (every `*.c` of the directory).
    C,
}

impl Language {
    pub const ALL: [Language; 4] = [Language::Rust, Language::Python, Language::Js, Language::C];

    pub fn name(self) -> &'static str {
        match self {
            Language::Rust => "rust",
            Language::Python => "python",
            Language::Js => "js",
            Language::C => "c",
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn javascript_is_another_spelling_of_js_on_the_command_line_and_in_manifests() {
        assert_eq!(Language::from_str("javascript", false), Ok(Language::Js));
        #[derive(serde::Deserialize)]
        struct Manifest {
            language: Language,
        }
        let manifest: Manifest = toml::from_str("language = \"javascript\"").expect("a manifest");
        assert_eq!(manifest.language, Language::Js);
    }
}
