//! The coordinator's HTTP port (`metrics_listen`): `/metrics` for Prometheus, rendered
//! from the current state at each scrape ([`crate::metrics::render`]), and the dashboard
//! (`dashboard.rs`). Read-only; every request for data needs one of the job's tokens (any
//! role: reading the job's figures is what each may do), as `Authorization: Bearer
//! <token>` or the dashboard's cookie. Over TLS when the coordinator serves TLS.

use axum::extract::State as Extract;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::watch;

use super::access::HttpState;
use crate::metrics::render;
use crate::state;

/// The OpenMetrics text content type (what `prometheus-client` writes).
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The routes of the HTTP port.
fn router(state: HttpState) -> Router {
    use super::dashboard as d;
    Router::new()
        .route("/metrics", get(metrics))
        .route("/", get(d::index))
        .route("/login", post(d::login))
        .route("/logout", post(d::logout))
        .route("/assets/dashboard.js", get(d::script))
        .route("/assets/dashboard.css", get(d::style))
        .route("/api/status", get(d::api_status))
        .route("/api/history", get(d::api_history))
        .route("/api/eval-image/{eval}/{index}", get(d::api_eval_image))
        .with_state(state)
}

async fn metrics(Extract(http): Extract<HttpState>, headers: HeaderMap) -> Response {
    if !http.authorised(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a token of this job is required: Authorization: Bearer <token>\n",
        )
            .into_response();
    }
    let policy = http.shared.policy.stragglers;
    let status = http.shared.read(|s, now| state::status(s, now, policy));
    let body = render(&status, &http.rpc);
    ([(header::CONTENT_TYPE, OPENMETRICS)], body).into_response()
}

/// Serves the HTTP port on `listener` until `stopping` turns true.
/// With `tls`, over TLS (`https.rs`).
pub(super) async fn serve_http(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::rustls::ServerConfig>,
    state: HttpState,
    mut stopping: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let signal = async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    match tls {
        None => {
            axum::serve(listener, router(state))
                .with_graceful_shutdown(signal)
                .await
        }
        Some(config) => {
            axum::serve(
                super::https::TlsListener::new(listener, config),
                router(state),
            )
            .with_graceful_shutdown(signal)
            .await
        }
    }
}
