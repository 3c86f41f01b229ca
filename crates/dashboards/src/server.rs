//! `observes dashboard serve`: the index, one page per dashboard, a CSV per panel.
//!
//! Every request passes [`Access`] first (all routes; a refusal is logged with its reason
//! and never a secret), and a dashboard opens only for the groups it names. Dashboard
//! files are read on every request (an edit shows on reload). Each panel's query runs on
//! a blocking thread with a time limit: a slow query leaves a message on its panel, not a
//! blank page. Parameters come from the URL (`?start=…&end=…&group=…`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Extension, Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::NaiveDate;

use crate::access::{Access, Viewer};
use crate::data::{run_panel, run_query, PanelData, Params};
use crate::spec::{load_dir, Dashboard};

/// What `observes dashboard serve` serves.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The folder of dashboard files.
    pub dashboards: PathBuf,
    /// The warehouse the panels query.
    pub warehouse: String,
    /// Longest a panel's query may take.
    pub query_timeout: Duration,
    /// Who may open what.
    pub access: Arc<Access>,
}

type Shared = Arc<ServeConfig>;

/// The server's routes, every one behind the access check. Serve them with [`serve`]
/// (the check needs each connection's address).
pub fn router(config: ServeConfig) -> Router {
    let config = Arc::new(config);
    Router::new()
        .route("/", get(index))
        .route("/d/{name}", get(page))
        .route("/d/{name}/panel/{file}", get(panel_csv))
        .layer(axum::middleware::from_fn_with_state(config.clone(), guard))
        .with_state(config)
}

/// Serves the dashboards on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, config: ServeConfig) -> std::io::Result<()> {
    axum::serve(
        listener,
        router(config).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}

/// Lets a request through with its [`Viewer`], or refuses it with 401 and a log line.
async fn guard(
    State(config): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let access = config.access.clone();
    let headers = request.headers().clone();
    // argon2 takes tens of milliseconds: off the async threads.
    let checked = tokio::task::spawn_blocking(move || access.check(peer.ip(), &headers)).await;
    match checked {
        Ok(Ok(viewer)) => {
            request.extensions_mut().insert(viewer);
            next.run(request).await
        }
        Ok(Err(denied)) => {
            tracing::warn!(
                peer = %peer,
                method = %request.method(),
                path = request.uri().path(),
                mode = %config.access.mode(),
                reason = %denied,
                "dashboard request denied"
            );
            let mut response = error(StatusCode::UNAUTHORIZED, "sign-in required\n".to_string());
            if let Some(challenge) = config.access.challenge() {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static(challenge),
                );
            }
            response
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("checking access: {e}"),
        ),
    }
}

fn error(status: StatusCode, message: String) -> Response {
    (status, message).into_response()
}

async fn index(State(config): State<Shared>, Extension(viewer): Extension<Viewer>) -> Response {
    match load_dir(&config.dashboards) {
        Ok(all) => Html(crate::page::index(
            &all.values()
                .filter(|d| viewer.may_open(d))
                .collect::<Vec<_>>(),
        ))
        .into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            observes_runtime::chain(&e).to_string(),
        ),
    }
}

/// The dashboard `name`, if `viewer` may open it (a refusal is logged).
fn find(
    config: &ServeConfig,
    viewer: &Viewer,
    name: &str,
) -> Result<Dashboard, (StatusCode, String)> {
    let mut all = load_dir(&config.dashboards).map_err(|e| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            observes_runtime::chain(&e).to_string(),
        )
    })?;
    let d = all.remove(name).ok_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            format!("no dashboard named {name:?}"),
        )
    })?;
    if !viewer.may_open(&d) {
        tracing::warn!(
            viewer = %viewer.describe(),
            dashboard = name,
            groups = ?d.groups,
            "dashboard request denied: not in the dashboard's groups"
        );
        return Err((
            StatusCode::FORBIDDEN,
            format!("{} may not open {name:?}\n", viewer.describe()),
        ));
    }
    Ok(d)
}

/// The parameters of a request, the dashboard's defaults where absent.
pub fn params_from(
    d: &Dashboard,
    query: &HashMap<String, String>,
    today: NaiveDate,
) -> Result<Params, String> {
    let mut p = Params::default_for(d, today);
    for (key, slot) in [("start", &mut p.start), ("end", &mut p.end)] {
        if let Some(v) = query.get(key).filter(|v| !v.is_empty()) {
            *slot = v
                .parse()
                .map_err(|_| format!("{key}={v:?} is not a date like 2026-11-25"))?;
        }
    }
    if p.start > p.end {
        return Err(format!("start {} is after end {}", p.start, p.end));
    }
    if let Some(g) = query.get("group") {
        p.group = g.clone();
    }
    Ok(p)
}

/// Runs a blocking warehouse job with the query time limit; a job past it is
/// interrupted on the warehouse (where the engine allows) and reported.
async fn with_warehouse<T: Send + 'static>(
    config: &ServeConfig,
    job: impl FnOnce(&mut dyn observes_warehouse::Warehouse) -> T + Send + 'static,
) -> Result<T, String> {
    let url = config.warehouse.clone();
    let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    let task = tokio::task::spawn_blocking(move || {
        let mut wh = observes_warehouse::connect(&url)
            .map_err(|e| observes_runtime::chain(&e).to_string())?;
        let _ = handle_tx.send(wh.interrupt_handle());
        Ok::<T, String>(job(wh.as_mut()))
    });
    match tokio::time::timeout(config.query_timeout, task).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => Err(format!("the query stopped: {e}")),
        Err(_) => {
            if let Ok(Some(interrupt)) = handle_rx.try_recv() {
                interrupt.interrupt();
            }
            Err(format!(
                "the query took longer than {} s and was given up",
                config.query_timeout.as_secs_f64()
            ))
        }
    }
}

async fn page(
    State(config): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let d = match find(&config, &viewer, &name) {
        Ok(d) => d,
        Err((status, message)) => return error(status, message),
    };
    let params = match params_from(&d, &query, chrono::Utc::now().date_naive()) {
        Ok(p) => p,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let (groups, panels) = render_data(&config, &d, &params).await;
    Html(crate::page::dashboard(&d, &params, &groups, &panels, true)).into_response()
}

/// The group choices and every panel's result (each with its own time limit).
pub async fn render_data(
    config: &ServeConfig,
    d: &Dashboard,
    params: &Params,
) -> (Vec<String>, Vec<Result<PanelData, String>>) {
    let groups = match &d.parameters.group {
        None => Vec::new(),
        Some(g) => {
            let sql = g.sql.clone();
            let p = params.clone();
            with_warehouse(config, move |wh| run_query(wh, &sql, &p))
                .await
                .and_then(|r| r)
                .map(|t| {
                    t.rows
                        .iter()
                        .filter_map(|r| r.first().map(crate::data::text))
                        .collect()
                })
                .unwrap_or_default()
        }
    };
    let mut panels = Vec::new();
    for panel in &d.panels {
        let (panel, p) = (panel.clone(), params.clone());
        panels.push(
            with_warehouse(config, move |wh| run_panel(wh, &panel, &p))
                .await
                .and_then(|r| r),
        );
    }
    (groups, panels)
}

async fn panel_csv(
    State(config): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path((name, file)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let d = match find(&config, &viewer, &name) {
        Ok(d) => d,
        Err((status, message)) => return error(status, message),
    };
    let Some(index) = file
        .strip_suffix(".csv")
        .and_then(|i| i.parse::<usize>().ok())
        .filter(|i| *i < d.panels.len())
    else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no panel {file:?} in {name}"),
        );
    };
    let params = match params_from(&d, &query, chrono::Utc::now().date_naive()) {
        Ok(p) => p,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    let panel = d.panels[index].clone();
    let result = with_warehouse(&config, move |wh| run_query(wh, &panel.sql, &params))
        .await
        .and_then(|r| r);
    match result {
        Ok(table) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}-{index}.csv\""),
                ),
            ],
            crate::data::csv(&table),
        )
            .into_response(),
        Err(m) => error(StatusCode::INTERNAL_SERVER_ERROR, m),
    }
}
