//! Why a Python or JavaScript plugin's build failed, in a few lines: their build tools print
//! long stack traces in which a syntax error's file, line and column are buried.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::DevelopError;

/// How to check a plugin's source for syntax errors once its build failed.
pub enum SyntaxCheck {
    /// With this Python interpreter (the build tool's own).
    Python { interpreter: PathBuf },
    /// With Node.js, as an ES module.
    JavaScript,
}

/// The source file `name` of a plugin in `directory`, or an error saying it is missing.
pub fn require_source(directory: &Path, name: &str, language: &str) -> Result<PathBuf, DevelopError> {
    let source = directory.join(name);
    if source.is_file() {
        return Ok(source);
    }
    Err(DevelopError::Input(format!(
        "no {name} in {}: a {language} plugin's code is its {name} (as `sluice plugin new` writes it)",
        directory.display()
    )))
}

/// Lines of a failed tool's output quoted when no syntax error explains the failure.
const QUOTED_LINES: usize = 12;

/// Runs a build tool with its output captured. On failure the error gives the first syntax
/// error of `source` if there is one, else the end of the tool's output.
pub fn run_build(command: &mut Command, source: &Path, check: SyntaxCheck) -> Result<(), DevelopError> {
    tracing::debug!("running {command:?}");
    // componentize-py reports in Rust (anyhow): with RUST_BACKTRACE set in the user's shell, a
    // backtrace would fill the end of the output quoted below instead of the reason.
    let output = command
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdin(Stdio::null())
        .output()
        .map_err(|error| DevelopError::BuildFailed { command: format!("{command:?}"), status: format!("could not start: {error}") })?;
    if output.status.success() {
        return Ok(());
    }
    let detail = match syntax_error(source, &check) {
        Some(error) => error,
        None => {
            let text = String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout);
            // componentize-js names the module it was given "source.js": it is the plugin's file.
            let text = match source.file_name().and_then(|name| name.to_str()) {
                Some(name) if name.ends_with(".js") => text.replace("\"source.js\"", &format!("\"{name}\"")),
                _ => text,
            };
            // Node.js's stack frames ("    at f (file:///…)") would push the reason out of the tail.
            let lines: Vec<&str> = text.lines().filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with("at ")).collect();
            let tail = &lines[lines.len().saturating_sub(QUOTED_LINES)..];
            format!("{} failed ({}); the end of its output:\n{}", program_name(command), output.status, tail.join("\n"))
        }
    };
    Err(DevelopError::Input(detail))
}

fn program_name(command: &Command) -> String {
    Path::new(command.get_program()).file_name().map_or_else(|| "the build tool".into(), |name| name.to_string_lossy().into_owned())
}

/// The first syntax error of `source`, as `file:line:column: message` and the line, if the
/// checker finds one.
fn syntax_error(source: &Path, check: &SyntaxCheck) -> Option<String> {
    let name = source.file_name()?.to_string_lossy().into_owned();
    let output = match check {
        SyntaxCheck::Python { interpreter } => Command::new(interpreter).args(["-c", PYTHON_CHECK]).arg(source).output().ok()?,
        SyntaxCheck::JavaScript => {
            let file = std::fs::File::open(source).ok()?;
            Command::new("node").args(["--input-type=module", "--check"]).stdin(file).output().ok()?
        }
    };
    if output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    match check {
        SyntaxCheck::Python { .. } => Some(text.trim_end().to_owned()).filter(|text| !text.is_empty()),
        SyntaxCheck::JavaScript => node_syntax_error(&text, &name),
    }
}

/// Prints a Python file's first syntax error as `file:line:column: message` and the line.
const PYTHON_CHECK: &str = r#"
import ast, sys
path = sys.argv[1]
try:
    ast.parse(open(path, encoding="utf-8").read(), path.rsplit("/", 1)[-1])
except SyntaxError as error:
    print(f"{error.filename}:{error.lineno}:{error.offset}: SyntaxError: {error.msg}")
    print("    " + (error.text or "").rstrip())
    sys.exit(1)
"#;

/// `node --check`'s report without its stack: `[stdin]:LINE`, the line, the caret, the error.
fn node_syntax_error(text: &str, name: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().take_while(|line| !line.starts_with("    at ")).filter(|line| !line.trim().is_empty()).collect();
    let error = lines.iter().position(|line| line.contains("Error"))?;
    let location = lines.first()?.replace("[stdin]", name);
    let shown: Vec<&str> = lines[1..=error].to_vec();
    Some(format!("{location}: {}\n{}", lines[error], shown[..shown.len() - 1].join("\n")))
}

#[cfg(test)]
mod tests {
    use super::node_syntax_error;

    #[test]
    fn node_reports_lose_their_stack() {
        let report = "[stdin]:2\nexport function f() { return 1 +; }\n                                ^\n\nSyntaxError: Unexpected token ';'\n    at checkSyntax (node:internal/main/check_syntax:74:5)\n\nNode.js v20.20.2\n";
        assert_eq!(
            node_syntax_error(report, "app.js").as_deref(),
            Some("app.js:2: SyntaxError: Unexpected token ';'\nexport function f() { return 1 +; }\n                                ^")
        );
        assert_eq!(node_syntax_error("no error here", "app.js"), None);
    }
}
