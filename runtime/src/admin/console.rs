//! The web console: one page with its script and style embedded in the binary (no front-end
//! build), and the JSON it reads beside `/metrics`, `/pipelines` and the swap history: the
//! graph, the last dead letters and the live results of `console` sinks.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{Admin, Answer};
use crate::graph::GraphView;
use crate::monitor::{RecentDeadLetter, ResultBoard};

const PAGE: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/app.js");
const STYLE: &str = include_str!("console/style.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

pub(super) async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

pub(super) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub(super) async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

pub(super) async fn graph(State(admin): State<Admin>, Path(pipeline): Path<String>) -> Answer<GraphView> {
    Ok(axum::Json(admin.control(&pipeline)?.graph().clone()))
}

pub(super) async fn dead_letters(State(admin): State<Admin>, Path(pipeline): Path<String>) -> Answer<Vec<RecentDeadLetter>> {
    admin.control(&pipeline)?;
    let letters = admin.monitor.dead_letters.list().into_iter().filter(|letter| letter.pipeline == pipeline).collect();
    Ok(axum::Json(letters))
}

pub(super) async fn results(State(admin): State<Admin>, Path(pipeline): Path<String>) -> Answer<Vec<ResultBoard>> {
    admin.control(&pipeline)?;
    let boards = admin.monitor.results.list().into_iter().filter(|board| board.pipeline == pipeline).collect();
    Ok(axum::Json(boards))
}
