//! `sluice swap`: hot-swaps (or rolls back) an operator of a running pipeline through its
//! admin API, and reports the outcome; the exit status says whether the swap happened.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::{Value, json};

/// Arguments of `sluice swap`.
#[derive(Debug, Args)]
pub struct SwapArgs {
    /// The running pipeline's admin address (`sluice run --admin ...`).
    #[arg(long, default_value = "127.0.0.1:9180", value_name = "ADDRESS")]
    admin: String,
    /// The pipeline's name.
    #[arg(long)]
    pipeline: String,
    /// The operator to replace.
    #[arg(long)]
    operator: String,
    /// The new component (omit with --rollback).
    #[arg(required_unless_present = "rollback", conflicts_with = "rollback")]
    file: Option<PathBuf>,
    /// Return the operator to its previous version instead.
    #[arg(long)]
    rollback: bool,
    /// Send the component's bytes instead of its path (for an admin API on another host's view of the files).
    #[arg(long, requires = "file")]
    upload: bool,
    /// A new `config` table for the operator, as JSON.
    #[arg(long, value_name = "JSON", requires = "file", conflicts_with = "upload")]
    config: Option<String>,
}

pub fn run(args: SwapArgs) -> anyhow::Result<()> {
    let base = format!("http://{}/pipelines/{}/operators/{}", args.admin, args.pipeline, args.operator);
    let agent: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(120))).build().into();
    let sent = match (&args.file, args.rollback) {
        (_, true) => agent.post(format!("{base}/rollback")).send_empty(),
        (Some(file), false) if args.upload => {
            let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            agent.post(format!("{base}/swap")).header("content-type", "application/wasm").send(&bytes[..])
        }
        (Some(file), false) => {
            let path = std::path::absolute(file).with_context(|| format!("resolving {}", file.display()))?;
            let config = args.config.as_deref().map(serde_json::from_str::<Value>).transpose().context("--config is not JSON")?;
            let body = json!({"path": path, "config": config}).to_string();
            agent.post(format!("{base}/swap")).header("content-type", "application/json").send(body)
        }
        (None, false) => bail!("name the new component, or pass --rollback"),
    };
    let mut response = sent.with_context(|| format!("cannot reach the admin API at {}", args.admin))?;
    let status = response.status();
    let text = response.body_mut().read_to_string().context("reading the admin API's answer")?;
    let answer: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if !status.is_success() {
        bail!("{}", answer["error"].as_str().unwrap_or("the admin API refused the request"));
    }
    println!(
        "{} {}: {} -> {} (records waited {:.2} ms; {:.2} ms in all)",
        if args.rollback { "rolled back" } else { "swapped" },
        args.operator,
        answer["old_digest"].as_str().unwrap_or("?"),
        answer["new_digest"].as_str().unwrap_or("?"),
        answer["stall_ms"].as_f64().unwrap_or(0.0),
        answer["total_ms"].as_f64().unwrap_or(0.0),
    );
    Ok(())
}
