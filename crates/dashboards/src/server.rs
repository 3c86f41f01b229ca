//! `observes dashboard serve`: the index, one page per dashboard, a CSV per panel, an SVG
//! per chart and the page as one HTML file to share (`/d/NAME/export.html`).
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
use crate::spec::{load_dir, Dashboard, Kind};

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
        .route("/d/{name}/panel/{file}", get(panel_file))
        .route("/d/{name}/export.html", get(export_html))
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
    if config.access.mode() == crate::access::AccessMode::Off {
        request.extensions_mut().insert(Viewer::anyone());
        return next.run(request).await;
    }
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

/// The dashboard a request names, if its viewer may open it, and the parameters its URL
/// gives; or the status and message that say why not.
fn asked_for(
    config: &ServeConfig,
    viewer: &Viewer,
    name: &str,
    query: &HashMap<String, String>,
) -> Result<(Dashboard, Params), (StatusCode, String)> {
    let d = find(config, viewer, name)?;
    let params = params_from(&d, query, chrono::Utc::now().date_naive())
        .map_err(|m| (StatusCode::BAD_REQUEST, m))?;
    Ok((d, params))
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

/// Connections one request's queries share: each query takes one, runs, and gives it
/// back, so a page's panels run side by side on as many as there are.
struct Pool {
    free: std::sync::Mutex<Vec<Box<dyn observes_warehouse::Warehouse>>>,
    returned: std::sync::Condvar,
}

/// Most connections a page opens: its panels beyond that wait for one.
const PAGE_CONNECTIONS: usize = 8;

impl Pool {
    /// `n` connections to the warehouse, opened off the async threads.
    async fn open(config: &ServeConfig, n: usize) -> Result<Arc<Pool>, String> {
        let url = config.warehouse.clone();
        let opened = tokio::task::spawn_blocking(move || {
            observes_warehouse::connect_readers(&url, n)
                .map_err(|e| observes_runtime::chain(&e).to_string())
        })
        .await
        .map_err(|e| format!("connecting stopped: {e}"))??;
        Ok(Arc::new(Pool {
            free: std::sync::Mutex::new(opened),
            returned: std::sync::Condvar::new(),
        }))
    }

    fn take(&self) -> Box<dyn observes_warehouse::Warehouse> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(wh) = free.pop() {
                return wh;
            }
            free = self.returned.wait(free).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn give_back(&self, wh: Box<dyn observes_warehouse::Warehouse>) {
        self.free.lock().unwrap_or_else(|e| e.into_inner()).push(wh);
        self.returned.notify_one();
    }
}

/// Starts a blocking warehouse job on one of `pool`'s connections; its result comes
/// with the query time limit ([`finish`]).
fn start<T: Send + 'static>(
    pool: &Arc<Pool>,
    job: impl FnOnce(&mut dyn observes_warehouse::Warehouse) -> T + Send + 'static,
) -> Started<T> {
    let pool = pool.clone();
    let (handle_tx, handle_rx) = std::sync::mpsc::channel();
    let abandoned = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let given_up = abandoned.clone();
    let task = tokio::task::spawn_blocking(move || {
        let mut wh = pool.take();
        // A job whose page has gone past its time limit while it waited does not run.
        if given_up.load(std::sync::atomic::Ordering::SeqCst) {
            pool.give_back(wh);
            return None;
        }
        let _ = handle_tx.send(wh.interrupt_handle());
        let result = job(wh.as_mut());
        pool.give_back(wh);
        Some(result)
    });
    Started {
        task,
        handle_rx,
        abandoned,
    }
}

struct Started<T> {
    task: tokio::task::JoinHandle<Option<T>>,
    handle_rx: std::sync::mpsc::Receiver<Option<observes_warehouse::Interrupt>>,
    abandoned: Arc<std::sync::atomic::AtomicBool>,
}

impl<T> Started<T> {
    /// Gives the job up: it does not run if it has not started, and is interrupted if it
    /// has.
    fn abandon(self) {
        self.abandoned
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if let Ok(Some(interrupt)) = self.handle_rx.try_recv() {
            interrupt.interrupt();
        }
    }
}

/// A started job's result by `deadline`; a job past it is interrupted on the warehouse
/// (where the engine allows) and reported.
async fn finish<T>(
    mut started: Started<T>,
    deadline: tokio::time::Instant,
    limit: Duration,
) -> Result<T, String> {
    let given_up = || {
        format!(
            "the query took longer than {} s and was given up",
            limit.as_secs_f64()
        )
    };
    match tokio::time::timeout_at(deadline, &mut started.task).await {
        Ok(Ok(Some(result))) => Ok(result),
        Ok(Ok(None)) => Err(given_up()),
        Ok(Err(e)) => Err(format!("the query stopped: {e}")),
        Err(_) => {
            started.abandon();
            Err(given_up())
        }
    }
}

/// Runs one blocking warehouse job with the query time limit.
async fn with_warehouse<T: Send + 'static>(
    config: &ServeConfig,
    job: impl FnOnce(&mut dyn observes_warehouse::Warehouse) -> T + Send + 'static,
) -> Result<T, String> {
    let deadline = tokio::time::Instant::now() + config.query_timeout;
    let pool = Pool::open(config, 1).await?;
    finish(start(&pool, job), deadline, config.query_timeout).await
}

/// A dashboard's page, streamed: its top (with the group choices) as soon as they are
/// read, then each panel in order as its query finishes; the queries run side by side.
async fn page(
    State(config): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (d, params) = match asked_for(&config, &viewer, &name, &query) {
        Ok(found) => found,
        Err((status, message)) => return error(status, message),
    };
    let mut queries = PageQueries::start(&config, &d, &params).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<axum::body::Bytes>(4);
    tokio::spawn(async move {
        let mut page = crate::page::Page::new(&d, &params, true);
        let groups = queries.groups().await;
        let mut sent = tx.send(page.top(&groups).into()).await.is_ok();
        while sent {
            let Some(result) = queries.next_panel().await else {
                break;
            };
            sent = tx.send(page.section(&result).into()).await.is_ok();
        }
        if sent {
            let _ = tx.send(page.end().into()).await;
        } else {
            // The reader has gone: the queries still running are of no use.
            queries.abandon();
        }
    });
    let chunks = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), rx))
    });
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        axum::body::Body::from_stream(chunks),
    )
        .into_response()
}

/// A page's queries, started side by side on one pool, read back in order.
struct PageQueries {
    deadline: tokio::time::Instant,
    limit: Duration,
    groups: Option<Started<Result<crate::data::Table, String>>>,
    panels: std::collections::VecDeque<Result<Started<Result<PanelData, String>>, String>>,
}

impl PageQueries {
    async fn start(config: &ServeConfig, d: &Dashboard, params: &Params) -> PageQueries {
        let deadline = tokio::time::Instant::now() + config.query_timeout;
        let queries = d.panels.len() + usize::from(d.parameters.group.is_some());
        let mut out = PageQueries {
            deadline,
            limit: config.query_timeout,
            groups: None,
            panels: Default::default(),
        };
        let pool = match Pool::open(config, queries.min(PAGE_CONNECTIONS)).await {
            Ok(pool) => pool,
            Err(e) => {
                out.panels = d.panels.iter().map(|_| Err(e.clone())).collect();
                return out;
            }
        };
        out.groups = d.parameters.group.as_ref().map(|g| {
            let (sql, p) = (g.sql.clone(), params.clone());
            start(&pool, move |wh| run_query(wh, &sql, &p))
        });
        out.panels = d
            .panels
            .iter()
            .map(|panel| {
                let (panel, p) = (panel.clone(), params.clone());
                Ok(start(&pool, move |wh| run_panel(wh, &panel, &p)))
            })
            .collect();
        out
    }

    /// The group selector's choices (none when its query fails).
    async fn groups(&mut self) -> Vec<String> {
        match self.groups.take() {
            None => Vec::new(),
            Some(g) => finish(g, self.deadline, self.limit)
                .await
                .and_then(|r| r)
                .map(|t| {
                    t.rows
                        .iter()
                        .filter_map(|r| r.first().map(crate::data::text))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The next panel's result, in the dashboard's order.
    async fn next_panel(&mut self) -> Option<Result<PanelData, String>> {
        Some(match self.panels.pop_front()? {
            Ok(started) => finish(started, self.deadline, self.limit)
                .await
                .and_then(|r| r),
            Err(e) => Err(e),
        })
    }

    /// Stops what is still running or waiting.
    fn abandon(self) {
        for started in self.panels.into_iter().flatten() {
            started.abandon();
        }
    }
}

/// The group choices and every panel's result, queried side by side (each within the
/// query time limit).
pub async fn render_data(
    config: &ServeConfig,
    d: &Dashboard,
    params: &Params,
) -> (Vec<String>, Vec<Result<PanelData, String>>) {
    let mut queries = PageQueries::start(config, d, params).await;
    let groups = queries.groups().await;
    let mut panels = Vec::with_capacity(d.panels.len());
    while let Some(result) = queries.next_panel().await {
        panels.push(result);
    }
    (groups, panels)
}

/// One panel's data as CSV (`N.csv`), or a chart panel as its SVG image (`N.svg`, the
/// marks the page draws, 960 px wide), for sharing.
async fn panel_file(
    State(config): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path((name, file)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (d, params) = match asked_for(&config, &viewer, &name, &query) {
        Ok(found) => found,
        Err((status, message)) => return error(status, message),
    };
    let Some((index, extension)) = file
        .rsplit_once('.')
        .and_then(|(i, ext)| Some((i.parse::<usize>().ok()?, ext)))
        .filter(|(i, ext)| *i < d.panels.len() && matches!(*ext, "csv" | "svg"))
    else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no panel {file:?} in {name}"),
        );
    };
    let panel = d.panels[index].clone();
    let chart = matches!(panel.kind, Kind::Line | Kind::Bar | Kind::StackedBar);
    if extension == "svg" && !chart {
        return error(
            StatusCode::NOT_FOUND,
            format!("panel {index} of {name} is not a chart: it has no SVG"),
        );
    }
    let attachment = |ext: &str| {
        (
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}-{index}.{ext}\""),
        )
    };
    if extension == "svg" {
        let result = with_warehouse(&config, move |wh| run_panel(wh, &panel, &params))
            .await
            .and_then(|r| r);
        return match result {
            Ok(data) => (
                [
                    (header::CONTENT_TYPE, "image/svg+xml".to_string()),
                    attachment("svg"),
                ],
                crate::chart::standalone_svg(&d.panels[index], &data, 960.0),
            )
                .into_response(),
            Err(m) => error(StatusCode::INTERNAL_SERVER_ERROR, m),
        };
    }
    let result = with_warehouse(&config, move |wh| run_query(wh, &panel.sql, &params))
        .await
        .and_then(|r| r);
    match result {
        Ok(table) => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                attachment("csv"),
            ],
            crate::data::csv(&table),
        )
            .into_response(),
        Err(m) => error(StatusCode::INTERNAL_SERVER_ERROR, m),
    }
}

/// The page as one self-contained HTML file (no form, no links back), for sharing.
async fn export_html(
    State(config): State<Shared>,
    Extension(viewer): Extension<Viewer>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (d, params) = match asked_for(&config, &viewer, &name, &query) {
        Ok(found) => found,
        Err((status, message)) => return error(status, message),
    };
    let (_, panels) = render_data(&config, &d, &params).await;
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"{name}-{}-{}.html\"",
                    params.start, params.end
                ),
            ),
        ],
        crate::page::dashboard(&d, &params, &[], &panels, false),
    )
        .into_response()
}
