//! The dashboard on the HTTP port: a sign-in page (any of the job's tokens, kept in an
//! HttpOnly, SameSite=Strict cookie, hex-encoded, never logged), the page itself with its
//! script and style embedded in the binary (`coordinator/assets/`), and the two JSON
//! documents the page polls: `/api/status` (the job, members with their figures and
//! straggler marks, the checkpoint registry with evaluations) and `/api/history` (the
//! curves, [`crate::history`]). Read-only: nothing here changes the job.

use std::collections::BTreeMap;

use axum::extract::{Form, Path, State as Extract};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use proto::domain::{EvalId, EvalPhase, JobStatus};
use serde_json::{json, Value};

use super::access::{encode_hex, HttpState, COOKIE};
use crate::state;

const LOGIN: &str = include_str!("../../assets/login.html");
const PAGE: &str = include_str!("../../assets/dashboard.html");
const SCRIPT: &str = include_str!("../../assets/dashboard.js");
const STYLE: &str = include_str!("../../assets/dashboard.css");

/// Pages: no framing, scripts and styles from this origin only.
const PAGE_POLICY: &str = "default-src 'self'; frame-ancestors 'none'";

fn page(body: String, status: StatusCode) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, PAGE_POLICY),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

fn login_page(error: Option<&str>, status: StatusCode) -> Response {
    let notice = error.map_or(String::new(), |e| {
        format!("<p class=\"error\" id=\"error\">{e}</p>")
    });
    page(LOGIN.replace("<!--ERROR-->", &notice), status)
}

/// `/`: the dashboard for a signed-in browser, the sign-in page otherwise.
pub(super) async fn index(Extract(http): Extract<HttpState>, headers: HeaderMap) -> Response {
    if http.authorised(&headers) {
        page(PAGE.to_string(), StatusCode::OK)
    } else {
        login_page(None, StatusCode::OK)
    }
}

/// The sign-in form's fields.
#[derive(serde::Deserialize)]
pub(super) struct SignIn {
    token: String,
}

/// `POST /login`: a known token sets the cookie and goes to the dashboard.
pub(super) async fn login(Extract(http): Extract<HttpState>, Form(form): Form<SignIn>) -> Response {
    let header_value = format!("Bearer {}", form.token);
    if http
        .credentials
        .roles_of(Some(header_value.as_bytes()))
        .is_empty()
    {
        return login_page(
            Some("That is not one of this job's tokens."),
            StatusCode::UNAUTHORIZED,
        );
    }
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age=604800{}",
        encode_hex(form.token.as_bytes()),
        if http.tls { "; Secure" } else { "" }
    );
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `POST /logout`: forgets the cookie.
pub(super) async fn logout() -> Response {
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/".to_string()),
            (header::SET_COOKIE, cookie),
        ],
    )
        .into_response()
}

/// `/assets/dashboard.js` and `.css` (no data in them: served to anyone).
pub(super) async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

pub(super) async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

fn json_response(http: &HttpState, headers: &HeaderMap, body: impl FnOnce() -> Value) -> Response {
    if !http.authorised(headers) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "sign in with one of the job's tokens"})),
        )
            .into_response();
    }
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(body())).into_response()
}

/// `/api/status`: the job as the page shows it.
pub(super) async fn api_status(Extract(http): Extract<HttpState>, headers: HeaderMap) -> Response {
    json_response(&http, &headers, || {
        let policy = http.shared.policy.stragglers;
        let images = http.shared.eval_image_names();
        status_json(
            &http.shared.read(|s, now| state::status(s, now, policy)),
            &images,
        )
    })
}

/// `/api/eval-image/{eval}/{index}`: a picture of an evaluation (JPEG).
pub(super) async fn api_eval_image(
    Extract(http): Extract<HttpState>,
    Path((eval, index)): Path<(u64, usize)>,
    headers: HeaderMap,
) -> Response {
    if !http.authorised(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    match http.shared.eval_image(EvalId::new(eval), index).await {
        Some(jpeg) => (
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                (header::CACHE_CONTROL, "private, max-age=3600"),
            ],
            jpeg,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `/api/history`: the curves.
pub(super) async fn api_history(Extract(http): Extract<HttpState>, headers: HeaderMap) -> Response {
    json_response(&http, &headers, || json!(http.shared.history()))
}

/// The status document of `/api/status`.
pub fn status_json(s: &JobStatus, images: &BTreeMap<EvalId, Vec<String>>) -> Value {
    let members: Vec<Value> = s
        .members
        .iter()
        .map(|m| {
            json!({
                "node_id": m.node_id.get(),
                "name": m.spec.name,
                "host": m.spec.host,
                "alive": m.alive,
                "finished": m.finished,
                "heartbeat_age_ms": m.heartbeat_age_ms,
                "ranks": m.global_ranks.iter().map(|r| r.get()).collect::<Vec<_>>(),
                "progress": m.progress,
            })
        })
        .collect();
    let checkpoints: Vec<Value> = s
        .checkpoints
        .iter()
        .map(|c| {
            let evals: Vec<Value> = s
                .evals
                .iter()
                .filter(|e| e.checkpoint_step == c.step && e.config_digest == c.config_digest)
                .map(|e| {
                    let metrics = match &e.phase {
                        EvalPhase::Done { metrics, .. } => json!(metrics),
                        _ => json!([]),
                    };
                    let pictures = images.get(&e.id).cloned().unwrap_or_default();
                    json!({
                        "id": e.id.get(),
                        "suite": e.suite,
                        "phase": e.phase.name(),
                        "metrics": metrics,
                        "images": pictures,
                    })
                })
                .collect();
            json!({
                "step": c.step.get(),
                "url": c.url,
                "epoch": c.position.epoch,
                "samples_consumed": c.position.samples_consumed,
                "round": c.round.get(),
                "registered_unix_ms": c.registered_unix_ms,
                "evals": evals,
            })
        })
        .collect();
    json!({
        "job": {
            "id": s.job_id.get(),
            "phase": s.phase.to_string(),
            "round": s.round.get(),
            "world_size": s.world_size,
            "samples_per_sec": s.samples_per_sec,
            "config_digest": s.config_digest,
        },
        "members": members,
        "stragglers": s.stragglers.iter().map(|r| r.get()).collect::<Vec<_>>(),
        "median_own_step_s": s.median_own_step_s,
        "checkpoints": checkpoints,
    })
}
