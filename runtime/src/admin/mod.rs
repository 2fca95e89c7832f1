//! The admin HTTP API: the running operators and their versions, hot swap by path or upload,
//! rollback, and the swap history. On a loopback address by default; elsewhere only with a
//! token and TLS (`access`, `tls`).
//!
//! | method | path | does |
//! |---|---|---|
//! | GET | `/health` | `ok` |
//! | GET | `/pipelines` | the pipeline, its operators and their digests |
//! | GET | `/pipelines/{p}/operators` | the operators |
//! | GET | `/pipelines/{p}/swaps` | the swap history |
//! | POST | `/pipelines/{p}/operators/{o}/swap` | JSON `{"path": "...", "config": {...}}`, or the component's bytes (`application/wasm`) |
//! | POST | `/pipelines/{p}/operators/{o}/rollback` | back to the previous version |
//! | GET | `/metrics` | every metric, Prometheus text format |
//! | GET | `/` | the web console (`console.rs`) |
//! | GET | `/pipelines/{p}/graph` | nodes and edges |
//! | GET | `/pipelines/{p}/dead-letters` | the last dead letters |
//! | GET | `/pipelines/{p}/results` | the latest records of its `console` sinks |

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Semaphore;

mod access;
mod connections;
mod console;
mod tls;

pub use access::{AccessError, AdminToken, TOKEN_VARIABLE, check_exposure};
pub use connections::DRAIN_LIMIT;
pub use tls::{TlsError, TlsIdentity, TlsListener};

use crate::commands::SharedControl;
use crate::monitor::Monitor;
use crate::pipeline::{PipelineControl, StateHandover, SwapError, SwapRecord};
use crate::wasm::{Plugin, PluginError, PluginRegistry};

/// Largest component accepted by upload.
const MAX_UPLOAD: usize = crate::wasm::MAX_PLUGIN_BYTES as usize;

/// What the handlers share.
#[derive(Clone)]
struct Admin {
    control: SharedControl,
    plugins: PluginRegistry,
    monitor: Monitor,
}

impl Admin {
    /// The control of the running pipeline if it is the one named (a restart replaces it
    /// between requests).
    fn control(&self, pipeline: &str) -> Result<PipelineControl, ApiError> {
        let control = self.control.get().ok_or_else(|| ApiError::unavailable("no pipeline is running".into()))?;
        if control.pipeline() != pipeline {
            let message = format!("no pipeline named \"{pipeline}\" (this process runs \"{}\")", control.pipeline());
            return Err(ApiError::new(StatusCode::NOT_FOUND, message));
        }
        Ok(control)
    }
}

/// An error answer: a status and `{"error": message}`.
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: String) -> ApiError {
        ApiError { status, message }
    }

    /// 503 with `Retry-After: 1`: no pipeline runs at this moment (it starts, or restarts
    /// after a change); the request may be sent again.
    fn unavailable(message: String) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
}

impl From<SwapError> for ApiError {
    fn from(error: SwapError) -> Self {
        let status = match error {
            SwapError::UnknownOperator(_) => StatusCode::NOT_FOUND,
            SwapError::NothingToRollBack(_) => StatusCode::CONFLICT,
            SwapError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
            SwapError::Finished => {
                return ApiError::unavailable(
                    "the pipeline stopped running before the swap was made (it restarts after a change, or ends): nothing \
                     was swapped; send it again once /ready answers 200"
                        .into(),
                );
            }
        };
        ApiError::new(status, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(json!({"error": self.message}))).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}

/// A swap request in JSON: a component on the server's filesystem, a new config, or both (a
/// config alone keeps the running component).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SwapByPath {
    path: Option<PathBuf>,
    config: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The query of a swap or a rollback: `?state=discard` starts the new version without the
/// running version's state (`carry`, the default, restores it).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SwapQuery {
    #[serde(default)]
    state: StateHandover,
}

impl SwapQuery {
    /// The handover asked for, or a 400 answer naming what is wrong with the query.
    fn handover(query: Result<Query<SwapQuery>, QueryRejection>) -> Result<StateHandover, ApiError> {
        let Query(query) = query.map_err(|rejection| {
            ApiError::new(StatusCode::BAD_REQUEST, format!("{} (the query takes state=carry or state=discard)", rejection.body_text()))
        })?;
        Ok(query.state)
    }
}

impl axum::extract::FromRef<Admin> for Monitor {
    fn from_ref(admin: &Admin) -> Monitor {
        admin.monitor.clone()
    }
}

type Answer<T> = Result<axum::Json<T>, ApiError>;

/// Serves the API on `listener` until `shutdown` completes; with a `token`, every request
/// but `/health`, `/ready` and the console's static files must present it.
pub async fn serve<L>(
    listener: L,
    control: SharedControl,
    plugins: PluginRegistry,
    monitor: Monitor,
    token: Option<AdminToken>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener<Addr = std::net::SocketAddr>,
{
    let admin = Admin { control, plugins, monitor };
    let gate = UploadGate { turn: Arc::new(Semaphore::new(1)), admin: admin.clone() };
    let mut router = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready))
        .route("/pipelines", get(pipelines))
        .route("/pipelines/{pipeline}/operators", get(operators))
        .route("/pipelines/{pipeline}/swaps", get(swaps))
        .route(
            "/pipelines/{pipeline}/operators/{operator}/swap",
            post(swap).layer(axum::middleware::from_fn_with_state(gate, one_upload_at_a_time)),
        )
        .route("/pipelines/{pipeline}/operators/{operator}/rollback", post(rollback))
        .route("/metrics", get(metrics))
        .route("/", get(console::page))
        .route("/console/app.js", get(console::script))
        .route("/console/style.css", get(console::style))
        .route("/pipelines/{pipeline}/graph", get(console::graph))
        .route("/pipelines/{pipeline}/dead-letters", get(console::dead_letters))
        .route("/pipelines/{pipeline}/results", get(console::results))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        // Components are uploaded whole; interpreters compiled to Wasm are tens of MiB.
        .layer(DefaultBodyLimit::max(MAX_UPLOAD))
        .with_state(admin);
    let guard = access::SiteGuard { open: token.is_none() };
    // The token is asked of every path, served or not, but the open ones.
    if let Some(token) = token {
        router = router.layer(axum::middleware::from_fn_with_state(token, access::require_token));
    }
    let router = router.layer(axum::middleware::from_fn_with_state(guard, access::refuse_other_sites));
    connections::serve(listener, router, shutdown).await
}

/// Serves `/metrics`, `/health` and `/ready` only, on `listener`, until `shutdown` completes.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    monitor: Monitor,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready))
        .route("/metrics", get(|State(monitor): State<Monitor>| async move { prometheus_text(&monitor) }))
        .with_state(monitor)
        // Metrics say nothing a page could use to act, and are scraped by service names
        // (Kubernetes): no guard on the host they are asked for.
        .fallback(not_found);
    connections::serve(listener, router, shutdown).await
}

/// 200 `ready` while a pipeline runs and is not stopping, else 503 with the reason.
async fn ready(State(monitor): State<Monitor>) -> Response {
    match monitor.readiness.check() {
        Ok(()) => "ready".into_response(),
        Err(why) => ApiError::unavailable(why.to_owned()).into_response(),
    }
}

/// A path the API does not serve: a JSON answer, like every other refusal.
async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("no such path: {}", uri.path()))
}

/// A path served for other methods (the router adds the `Allow` header).
async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not served at {}", uri.path()))
}

fn prometheus_text(monitor: &Monitor) -> Response {
    let content_type = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
    ([(header::CONTENT_TYPE, content_type)], monitor.metrics.encode()).into_response()
}

/// Every metric of the process, in the Prometheus text format.
async fn metrics(State(admin): State<Admin>) -> Response {
    prometheus_text(&admin.monitor)
}

async fn pipelines(State(admin): State<Admin>) -> Answer<serde_json::Value> {
    let control = admin.control.get().ok_or_else(|| ApiError::unavailable("no pipeline is running".into()))?;
    Ok(axum::Json(json!([{"name": control.pipeline(), "operators": control.operators()}])))
}

async fn operators(State(admin): State<Admin>, Path(pipeline): Path<String>) -> Answer<Vec<crate::pipeline::OperatorInfo>> {
    Ok(axum::Json(admin.control(&pipeline)?.operators()))
}

async fn swaps(State(admin): State<Admin>, Path(pipeline): Path<String>) -> Answer<Vec<SwapRecord>> {
    Ok(axum::Json(admin.control(&pipeline)?.history()))
}

async fn swap(
    State(admin): State<Admin>,
    Path((pipeline, operator)): Path<(String, String)>,
    query: Result<Query<SwapQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer<SwapRecord> {
    // Checked before the body was read (`one_upload_at_a_time`), and again: a restart may have
    // replaced the pipeline meanwhile. A name that is no operator leaves no trace (no history
    // entry, no metric series).
    let control = swap_target(&admin, &pipeline, &operator)?;
    let handover = SwapQuery::handover(query)?;
    // Read whole and bounded before (`one_upload_at_a_time`): what fails here is unexpected.
    let body = body
        .map_err(|rejection| ApiError::new(rejection.status(), format!("the request body could not be read: {}", rejection.body_text())))?;
    let upload = is_upload(&headers);
    // Compiling and switching block: keep them off the server's threads.
    let done = tokio::task::spawn_blocking(move || swap_blocking(&admin.plugins, &control, &operator, handover, upload, &body)).await;
    done.map_err(|error| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("the swap task failed: {error}")))?.map(axum::Json)
}

/// Whether a swap request carries the component's bytes rather than a path.
fn is_upload(headers: &HeaderMap) -> bool {
    // Media types are case-insensitive (`application/WASM`); parameters may follow.
    let wasm = b"application/wasm";
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|kind| kind.as_bytes().trim_ascii_start().get(..wasm.len()).is_some_and(|start| start.eq_ignore_ascii_case(wasm)))
}

/// The control of `pipeline` if it runs and has `operator`, or the answer that says it does not.
fn swap_target(admin: &Admin, pipeline: &str, operator: &str) -> Result<PipelineControl, ApiError> {
    let control = admin.control(pipeline)?;
    if !control.has_operator(operator) {
        return Err(SwapError::UnknownOperator(operator.to_owned()).into());
    }
    Ok(control)
}

/// What the swap route's gate holds: the one turn uploads take, and the pipelines to check a
/// request's names against before its body is read.
#[derive(Clone)]
struct UploadGate {
    turn: Arc<Semaphore>,
    admin: Admin,
}

/// Reads a swap request's body whole and bounded, and lets one upload in at a time: each is
/// held whole in memory while it is read, compiled and swapped in (up to `MAX_UPLOAD`, within
/// `UPLOAD_READ_LIMIT`), so another arriving meanwhile is answered 429 with `Retry-After`
/// before its body is read, not read beside it (`sluice swap` sends it again). Swaps by path
/// carry at most `MAX_SWAP_BY_PATH` and pass; swaps are applied one at a time in any case.
async fn one_upload_at_a_time(
    State(gate): State<UploadGate>,
    Path((pipeline, operator)): Path<(String, String)>,
    request: Request,
    next: Next,
) -> Response {
    // An unknown pipeline or operator is answered before the body is read: with `Expect:
    // 100-continue` (what `sluice swap` sends), before the client sends it.
    if let Err(refusal) = swap_target(&gate.admin, &pipeline, &operator) {
        return refusal.into_response();
    }
    let limit = if is_upload(request.headers()) { MAX_UPLOAD } else { MAX_SWAP_BY_PATH };
    if let Some(refusal) = declared_too_large(request.headers(), limit) {
        return refusal.into_response();
    }
    if !is_upload(request.headers()) {
        // A path and a config: small, so that such requests at once hold little memory, and
        // read within a time limit, so that a client trickling one holds no connection for ever.
        return match tokio::time::timeout(SWAP_BY_PATH_READ_LIMIT, read_body(request, MAX_SWAP_BY_PATH)).await {
            Ok(Ok(request)) => next.run(request).await,
            Ok(Err(refusal)) => refusal.into_response(),
            Err(_) => ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                format!("the request was not received within {} s", SWAP_BY_PATH_READ_LIMIT.as_secs()),
            )
            .into_response(),
        };
    }
    let Ok(_turn) = gate.turn.try_acquire() else {
        let message = "another component is being uploaded, and one is received at a time: send this one again when that one \
                       has been answered";
        let mut answer = ApiError::new(StatusCode::TOO_MANY_REQUESTS, message.into()).into_response();
        answer.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        return answer;
    };
    // Read within a time limit: a client that stalls would hold the turn for ever.
    let answer = match tokio::time::timeout(UPLOAD_READ_LIMIT, read_body(request, MAX_UPLOAD)).await {
        Ok(Ok(request)) => next.run(request).await,
        Ok(Err(refusal)) => refusal.into_response(),
        Err(_) => {
            ApiError::new(StatusCode::REQUEST_TIMEOUT, format!("the upload was not received within {} s", UPLOAD_READ_LIMIT.as_secs()))
                .into_response()
        }
    };
    crate::allocator::release_free_memory();
    answer
}

/// A request whose `Content-Length` says it carries more than `limit` bytes: answered 413 at
/// once, before its body is read (and before an upload takes the one turn).
fn declared_too_large(headers: &HeaderMap, limit: usize) -> Option<ApiError> {
    let declared = headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse::<u64>().ok()?;
    (declared > limit as u64).then(|| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request says it carries {declared} bytes, more than the {} MiB this request may carry", limit >> 20),
        )
    })
}

/// Largest swap request by path: `{"path": ..., "config": {...}}`.
const MAX_SWAP_BY_PATH: usize = 1 << 20;

/// Longest an upload's body may take to arrive.
const UPLOAD_READ_LIMIT: std::time::Duration = std::time::Duration::from_secs(600);

/// How long the body of a swap by path (at most 1 MiB of JSON) may take to arrive.
const SWAP_BY_PATH_READ_LIMIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The request with its body read whole, refused past `limit` bytes.
async fn read_body(request: Request, limit: usize) -> Result<Request, ApiError> {
    let (parts, body) = request.into_parts();
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Ok(Request::from_parts(parts, axum::body::Body::from(bytes))),
        Err(error) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {} MiB, the most this request may carry, or could not be read: {error}", limit >> 20),
        )),
    }
}

/// Compiles the new version (from the request) and swaps it in.
fn swap_blocking(
    plugins: &PluginRegistry,
    control: &PipelineControl,
    operator: &str,
    handover: StateHandover,
    upload: bool,
    body: &[u8],
) -> Result<SwapRecord, ApiError> {
    let (plugin, config, new_digest) = if upload {
        let origin = PathBuf::from(format!("upload for {operator}"));
        (plugins.load_bytes(&origin, body), None, Some(crate::wasm::Digest::of(body).to_string()))
    } else {
        let expected = |error: String| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("expected a JSON object {{\"path\": ..., \"config\": {{...}}}} or an application/wasm body: {error}"),
            )
        };
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|error| expected(error.to_string()))?;
        if !value.is_object() {
            return Err(expected(format!("got {}", sluice_sdk::json::kind(&value))));
        }
        let request: SwapByPath = serde_json::from_value(value).map_err(|error| expected(error.to_string()))?;
        let config = request.config.map(|config| serde_json::Value::Object(config).to_string());
        let Some(path) = request.path else {
            // A new configuration for the running component.
            if config.is_none() {
                return Err(expected("give `path`, `config` or both".into()));
            }
            return Ok(control.swap_plugin_or_config(operator, None, config, handover)?);
        };
        let plugin = plugins.load(&path);
        // A file refused is still named by its digest in the history, when it can be read whole.
        let new_digest = plugin.as_ref().err().and_then(|_| crate::wasm::file_digest(&path));
        (plugin, config, new_digest)
    };
    let plugin: Arc<Plugin> = plugin.map_err(|error| refused_before_swap(control, operator, &error, new_digest))?;
    Ok(control.swap_with(operator, plugin, config, handover)?)
}

/// A new version that does not compile or is of another world: recorded, and refused.
fn refused_before_swap(control: &PipelineControl, operator: &str, error: &PluginError, new_digest: Option<String>) -> ApiError {
    let reason = format!("the new version could not be loaded: {error}");
    control.record_refusal(operator, &reason, new_digest);
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("the swap was refused, the old version keeps running: {reason}"))
}

async fn rollback(
    State(admin): State<Admin>,
    Path((pipeline, operator)): Path<(String, String)>,
    query: Result<Query<SwapQuery>, QueryRejection>,
) -> Answer<SwapRecord> {
    let control = admin.control(&pipeline)?;
    let handover = SwapQuery::handover(query)?;
    let done = tokio::task::spawn_blocking(move || control.rollback_with(&operator, handover)).await;
    let record = done.map_err(|error| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("the rollback task failed: {error}")))??;
    Ok(axum::Json(record))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A swap that met a pipeline stopping (to restart after a change) made nothing: the
    /// client is told to send it again, as `sluice swap` does.
    #[test]
    fn a_swap_that_met_no_running_pipeline_is_answered_503_with_a_retry() {
        let response = ApiError::from(SwapError::Finished).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers().get(header::RETRY_AFTER).and_then(|value| value.to_str().ok()), Some("1"));
        let refused = ApiError::from(SwapError::Refused("no".into())).into_response();
        assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert!(refused.headers().get(header::RETRY_AFTER).is_none());
    }
}
