//! `sluice swap`: hot-swaps (or rolls back) an operator of a running pipeline through its
//! admin API, and reports the outcome; the exit status says whether the swap happened.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use serde_json::{Value, json};

/// Arguments of `sluice swap`.
#[derive(Debug, Args)]
pub struct SwapArgs {
    /// The running pipeline's admin address (`sluice run --admin ...`): `host:port`, or a
    /// URL (`https://host:port` for an admin API served with TLS).
    #[arg(long, default_value = "127.0.0.1:9180", value_name = "ADDRESS", value_parser = admin_address)]
    admin: String,
    /// The admin API's token, in this file (else from SLUICE_ADMIN_TOKEN, if set).
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<PathBuf>,
    /// Trust this CA certificate (PEM) for an https admin address, e.g. a self-signed one.
    #[arg(long, value_name = "PEM")]
    admin_ca: Option<PathBuf>,
    /// The pipeline's name.
    #[arg(long, value_parser = name)]
    pipeline: String,
    /// The operator to replace.
    #[arg(long, value_parser = name)]
    operator: String,
    /// The new component (omit with --rollback, or with --config to change the running
    /// component's configuration alone).
    #[arg(required_unless_present_any = ["rollback", "config"], conflicts_with = "rollback")]
    file: Option<PathBuf>,
    /// Return the operator to its previous version instead.
    #[arg(long)]
    rollback: bool,
    /// Send the component's bytes instead of its path (for an admin API on another host's view of the files).
    #[arg(long, requires = "file", conflicts_with = "rollback")]
    upload: bool,
    /// A new `config` table for the operator, as JSON (with FILE, or alone for the running
    /// component).
    #[arg(long, value_name = "JSON", conflicts_with_all = ["upload", "rollback"], value_parser = json_object)]
    config: Option<serde_json::Map<String, Value>>,
    /// Start the new version without the running version's state (open windows, models and
    /// counts are dropped): for a version that cannot read that state.
    #[arg(long)]
    discard_state: bool,
    /// How long to wait for the answer (`30s`, `5m`): a swap of much state may take long. An
    /// upload refused because another is being received, or a swap refused while the
    /// pipeline restarts, is sent again until then.
    #[arg(long, default_value = "2m", value_name = "DURATION", value_parser = positive_duration)]
    timeout: Duration,
}

/// `--config`: a JSON object, the whole `config` table (a mistake is one on the command line).
fn json_object(text: &str) -> Result<serde_json::Map<String, Value>, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(config)) => Ok(config),
        Ok(other) => Err(format!(
            "--config must be a JSON object, the operator's whole config as in the pipeline file's `config` table; got {other}"
        )),
        Err(error) => Err(format!("--config is not JSON: {error}")),
    }
}

/// `--pipeline` and `--operator`: a name as pipeline files spell it (which keeps it out of the
/// URL's syntax).
fn name(text: &str) -> Result<String, String> {
    sluice::config::Name::try_from(text.to_owned()).map(|name| name.as_str().to_owned())
}

fn positive_duration(text: &str) -> Result<Duration, String> {
    match sluice_sdk::duration::parse_duration(text)? {
        Duration::ZERO => Err("the timeout must be longer than zero".to_owned()),
        duration => Ok(duration),
    }
}

/// An admin address as `sluice run --admin` takes it (`host:port`), or a URL.
fn admin_address(text: &str) -> Result<String, String> {
    let port = text.rsplit_once(':').map(|(host, port)| (host, port.trim_end_matches('/')));
    match port {
        _ if text.contains("://") => Ok(text.to_owned()),
        Some((host, port)) if !host.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => Ok(text.to_owned()),
        _ => Err(format!(
            "{text:?} is not an address such as 127.0.0.1:9180 or localhost:9180 (the port of `sluice run --admin`), nor a URL"
        )),
    }
}

pub fn run(args: SwapArgs) -> anyhow::Result<()> {
    let admin = args.admin.trim_end_matches('/');
    let root = if admin.contains("://") { admin.to_owned() } else { format!("http://{admin}") };
    let base = format!("{root}/pipelines/{}/operators/{}", args.pipeline, args.operator);
    let query = if args.discard_state { "?state=discard" } else { "" };
    let agent = agent(args.admin_ca.as_deref())?;
    let token = sluice::admin::AdminToken::secret_from_file_or_environment(args.admin_token_file.as_deref())
        .map_err(|error| crate::UsageError(error.into()))?;
    let request = Request::of(&args)?;
    let deadline = Instant::now() + args.timeout;
    let sent = loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let url = format!("{base}/{}{query}", request.action());
        let post = agent.post(url).config().timeout_global(Some(remaining)).build();
        let post = match &token {
            Some(token) => post.header("authorization", format!("Bearer {token}")),
            None => post,
        };
        let sent = request.send(post);
        // One upload is received at a time (429, before the body is sent: see
        // `Request::send`), and a pipeline restarting after a change takes no swap (503): the
        // server says when to try again. A connection closed for another reason is not sent
        // again, since the swap may have been applied.
        let wait = match &sent {
            Ok(response) if matches!(response.status().as_u16(), 429 | 503) => retry_after(response),
            _ => None,
        };
        match wait {
            Some(wait) if Instant::now() + wait < deadline => std::thread::sleep(wait),
            _ => break sent,
        }
    };
    if let Err(ureq::Error::Timeout(ureq::Timeout::Resolve | ureq::Timeout::Connect)) = sent {
        bail!("cannot connect to the admin API at {} within {:?} (--timeout)", args.admin, args.timeout);
    }
    if matches!(sent, Err(ureq::Error::Timeout(_))) {
        bail!(
            "no answer from the admin API at {} within {:?} (--timeout): the swap may still complete; GET \
             /pipelines/{}/swaps shows its outcome",
            args.admin,
            args.timeout,
            args.pipeline
        );
    }
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

/// What `sluice swap` asks of the admin API.
enum Request {
    Rollback,
    Upload(Vec<u8>),
    ByPath(String),
}

impl Request {
    fn of(args: &SwapArgs) -> anyhow::Result<Request> {
        match (&args.file, args.rollback) {
            (_, true) => Ok(Request::Rollback),
            (Some(file), false) if args.upload => Ok(Request::Upload(sluice::wasm::read_plugin_file(file)?)),
            (Some(file), false) => {
                let path = std::path::absolute(file).with_context(|| format!("resolving {}", file.display()))?;
                let Some(path) = path.to_str() else {
                    bail!(
                        "{} is not a UTF-8 path, and the admin API takes paths as text: pass --upload to send the file's bytes",
                        path.display()
                    )
                };
                Ok(Request::ByPath(json!({"path": path, "config": args.config}).to_string()))
            }
            (None, false) if args.config.is_some() => Ok(Request::ByPath(json!({"config": args.config}).to_string())),
            (None, false) => bail!("name the new component, give --config, or pass --rollback"),
        }
    }

    fn action(&self) -> &'static str {
        match self {
            Request::Rollback => "rollback",
            Request::Upload(_) | Request::ByPath(_) => "swap",
        }
    }

    fn send(&self, post: ureq::RequestBuilder<ureq::typestate::WithBody>) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        match self {
            Request::Rollback => post.send_empty(),
            // The body follows once the server says it will read it (100 Continue), so that an
            // upload refused with 429 is not sent at all.
            Request::Upload(bytes) => post.header("content-type", "application/wasm").header("expect", "100-continue").send(&bytes[..]),
            Request::ByPath(body) => post.header("content-type", "application/json").send(body.as_str()),
        }
    }
}

/// The wait a 429 or 503 answer asks for (`Retry-After` in seconds), at least a tenth of a second.
fn retry_after(response: &ureq::http::Response<ureq::Body>) -> Option<Duration> {
    let seconds = response.headers().get("retry-after")?.to_str().ok()?.trim().parse::<u64>().ok()?;
    Some(Duration::from_secs(seconds).max(Duration::from_millis(100)))
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
    Ok(ureq::Agent::config_builder().http_status_as_error(false).tls_config(tls).build().into())
}
