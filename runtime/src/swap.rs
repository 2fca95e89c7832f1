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
    /// The running pipeline's admin address (`sluice run --admin ...`): `host:port`, or a
    /// URL (`https://host:port` for an admin API served with TLS).
    #[arg(long, default_value = "127.0.0.1:9180", value_name = "ADDRESS")]
    admin: String,
    /// The admin API's token, in this file (else from SLUICE_ADMIN_TOKEN, if set).
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
    /// Trust this CA certificate (PEM) for an https admin address, e.g. a self-signed one.
    #[arg(long, value_name = "PEM")]
    admin_ca: Option<PathBuf>,
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
    #[arg(long, requires = "file", conflicts_with = "rollback")]
    upload: bool,
    /// A new `config` table for the operator, as JSON.
    #[arg(long, value_name = "JSON", requires = "file", conflicts_with_all = ["upload", "rollback"])]
    config: Option<String>,
    /// Start the new version without the running version's state (open windows, models and
    /// counts are dropped): for a version that cannot read that state.
    #[arg(long)]
    discard_state: bool,
}

pub fn run(args: SwapArgs) -> anyhow::Result<()> {
    let root = if args.admin.contains("://") { args.admin.trim_end_matches('/').to_owned() } else { format!("http://{}", args.admin) };
    let base = format!("{root}/pipelines/{}/operators/{}", args.pipeline, args.operator);
    let query = if args.discard_state { "?state=discard" } else { "" };
    let agent = agent(args.admin_ca.as_deref())?;
    let token = sluice::admin::AdminToken::secret_from_file_or_environment(args.admin_token_file.as_deref())?;
    let post = |url: String| {
        let request = agent.post(url);
        match &token {
            Some(token) => request.header("authorization", format!("Bearer {token}")),
            None => request,
        }
    };
    let sent = match (&args.file, args.rollback) {
        (_, true) => post(format!("{base}/rollback{query}")).send_empty(),
        (Some(file), false) if args.upload => {
            let bytes = sluice::wasm::read_plugin_file(file)?;
            post(format!("{base}/swap{query}")).header("content-type", "application/wasm").send(&bytes[..])
        }
        (Some(file), false) => {
            let path = std::path::absolute(file).with_context(|| format!("resolving {}", file.display()))?;
            let Some(path) = path.to_str() else {
                bail!(
                    "{} is not a UTF-8 path, and the admin API takes paths as text: pass --upload to send the file's bytes",
                    path.display()
                )
            };
            let config = args.config.as_deref().map(serde_json::from_str::<Value>).transpose().context("--config is not JSON")?;
            let body = json!({"path": path, "config": config}).to_string();
            post(format!("{base}/swap{query}")).header("content-type", "application/json").send(body)
        }
        (None, false) => bail!("name the new component, or pass --rollback"),
    };
    let plain = !args.admin.contains("://");
    let untrusted = sent.as_ref().err().is_some_and(|error| format!("{error:?}").contains("certificate verify failed"));
    let mut response = sent.with_context(|| match (plain, untrusted) {
        // A TLS server drops a plain HTTP request: the error alone does not say why.
        (true, _) => format!("cannot reach the admin API at {} (if it is served with TLS, give https://{})", args.admin, args.admin),
        (false, true) => format!(
            "cannot reach the admin API at {}: its certificate is not trusted (for a self-signed or private CA, give its CA \
             certificate with --admin-ca PEM)",
            args.admin
        ),
        (false, false) => format!("cannot reach the admin API at {}", args.admin),
    })?;
    let status = response.status();
    let text = response.body_mut().read_to_string().context("reading the admin API's answer")?;
    let answer: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if !status.is_success() {
        match answer["error"].as_str() {
            Some(error) => bail!("{error}"),
            // Not Sluice's answer (another server, or a path prefix): say what came back.
            None => bail!("the admin API at {} answered {status} without saying why: is it Sluice's admin API?", args.admin),
        }
    }
    println!(
        "{} {}: {} -> {} (records waited {:.2} ms; {:.2} ms in all){}",
        if args.rollback { "rolled back" } else { "swapped" },
        args.operator,
        answer["old_digest"].as_str().unwrap_or("?"),
        answer["new_digest"].as_str().unwrap_or("?"),
        answer["stall_ms"].as_f64().unwrap_or(0.0),
        answer["total_ms"].as_f64().unwrap_or(0.0),
        if answer["state_discarded"] == Value::Bool(true) { "; the new version started without state" } else { "" },
    );
    Ok(())
}

/// An HTTP client for the admin API: TLS through OpenSSL (native-tls), trusting `ca` if given
/// besides the system's roots.
fn agent(ca: Option<&std::path::Path>) -> anyhow::Result<ureq::Agent> {
    use ureq::tls::{PemItem, RootCerts, TlsConfig, TlsProvider, parse_pem};
    let roots = match ca {
        Some(path) => {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let certificates: Vec<_> = parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(PemItem::Certificate(certificate)) => Some(Ok(certificate)),
                    Ok(_) => None,
                    Err(error) => Some(Err(error)),
                })
                .collect::<Result<_, _>>()
                .with_context(|| format!("{} is not a PEM certificate", path.display()))?;
            if certificates.is_empty() {
                bail!("{} holds no PEM certificate", path.display());
            }
            RootCerts::new_with_certs(&certificates)
        }
        None => RootCerts::PlatformVerifier,
    };
    let tls = TlsConfig::builder().provider(TlsProvider::NativeTls).root_certs(roots).build();
    Ok(ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .tls_config(tls)
        .build()
        .into())
}
