//! The live dashboard: an HTTP server (axum on tokio) that shows a run as it goes on.
//!
//! [`live_router`] serves one run of this process:
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the run's page: `report.html`'s template with a toolbar, kept current |
//! | `GET /api/events` | server-sent events: `update` (the page's new body), then `end` |
//! | `GET /api/run` | the run record (`run.json`) as it is now |
//! | `GET /metrics` | Prometheus text: the monitor's gauges and the nodes by status |
//! | `POST /api/checkpoint` | save a checkpoint at the next safe point (needs the token) |
//! | `POST /api/cancel` | cancel the run; running nodes save what they can (needs the token) |
//!
//! [`folder_router`] serves the runs of a folder (each `<dir>/run.json`, or `live.json`
//! while the run goes on): an index at `/`, each run's page at `/runs/<dir>/` (its report,
//! or a live page while it runs, updated as the file changes) and its record at
//! `/runs/<dir>/api/run`.
//!
//! Nothing a client does holds up the run: the page is rendered at most once per change
//! for all clients together, and no more often than 20 times its rendering time (so it
//! takes at most 5% of a core); each client sees the newest page when it is ready for it
//! (changes in between are skipped, nothing queues up); at most [`MAX_CLIENTS`] event
//! streams are served at once.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use medfusion_exec::{NodeStatus, RunStatus};
use medfusion_monitor::ResourceMonitor;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::report::{LiveControls, body, render, render_live};
use crate::{Error, LiveRecord, RunRecord};

/// The address the dashboard binds when none is given: this machine only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8686";
/// Event streams served at once; more are refused (503) until one closes.
pub const MAX_CLIENTS: usize = 256;
/// The header that carries the token of the actions (`Authorization: Bearer` works too).
pub const TOKEN_HEADER: &str = "x-medfusion-token";
/// The shortest time between two renders of the page.
const MIN_RENDER_INTERVAL: Duration = Duration::from_millis(250);
/// Renders are spaced by at least this many times their own duration.
const RENDER_SPACING: u32 = 20;
/// How often a client's page is refreshed when nothing happens (resource charts, ETA).
const IDLE_REFRESH: Duration = Duration::from_secs(2);
/// How often a folder's running run's `run.json` is looked at.
const FILE_POLL: Duration = Duration::from_secs(1);

/// What the actions of the live page do, and the token they need.
pub struct Actions {
    /// The token a request must carry (header `X-Medfusion-Token` or `Authorization:
    /// Bearer`); requests without it are refused with 403.
    pub token: String,
    /// Asks the run for a checkpoint.
    pub checkpoint: Box<dyn Fn() + Send + Sync>,
    /// Cancels the run.
    pub cancel: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for Actions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actions").finish_non_exhaustive()
    }
}

/// A new random token for the actions: 128 bits from the operating system, in hex.
pub fn new_token() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No entropy source: the time and pid are still unknown to another user.
        let t = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes.copy_from_slice(&(t ^ (u128::from(std::process::id()) << 64)).to_le_bytes());
    }
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Binds `addr` (`host:port`; port 0 picks a free one).
pub async fn bind(addr: &str) -> Result<TcpListener, Error> {
    TcpListener::bind(addr).await.map_err(|source| Error::Bind {
        addr: addr.to_string(),
        source,
    })
}

/// How the dashboard serves.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// After shutdown, how long open requests (event streams ending with the run) may take.
    pub grace: Duration,
    /// A client that takes no bytes for this long while the server has some for it is
    /// disconnected (a stuck proxy, a tab of a suspended laptop): it frees its place among
    /// the [`MAX_CLIENTS`] and its buffers.
    pub slow_client_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            grace: Duration::from_secs(3),
            slow_client_timeout: Duration::from_secs(30),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes; then lets open requests end
/// for at most `options.grace`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    options: ServeOptions,
) -> std::io::Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let listener = SlowClients {
        listener,
        timeout: options.slow_client_timeout,
    };
    let server = axum::serve(listener, router).with_graceful_shutdown(async move {
        shutdown.await;
        let _ = tx.send(());
    });
    tokio::select! {
        result = server.into_future() => result,
        () = async {
            let _ = rx.await;
            tokio::time::sleep(options.grace).await;
        } => Ok(()),
    }
}

/// The listener whose connections fail a write that waits longer than `timeout`: hyper
/// then drops the connection, and with it the client's event stream.
struct SlowClients {
    listener: TcpListener,
    timeout: Duration,
}

impl axum::serve::Listener for SlowClients {
    type Io = std::pin::Pin<Box<tokio_io_timeout::TimeoutStream<tokio::net::TcpStream>>>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = axum::serve::Listener::accept(&mut self.listener).await;
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_write_timeout(Some(self.timeout));
        (Box::pin(stream), addr)
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// The page body of a record, rendered at most once per change for every client.
struct PageCache {
    slot: tokio::sync::Mutex<Option<Rendered>>,
    /// When the next render may start.
    next: std::sync::Mutex<Option<Instant>>,
}

#[derive(Clone)]
struct Rendered {
    key: (u64, u64),
    /// The page as one server-sent event, encoded once for every client.
    event: Bytes,
    finished: bool,
    at: Instant,
    took: Duration,
}

impl PageCache {
    fn new() -> PageCache {
        PageCache {
            slot: tokio::sync::Mutex::new(None),
            next: std::sync::Mutex::new(None),
        }
    }

    /// When the next render may start (`None`: now).
    fn next_render(&self) -> Option<Instant> {
        *self
            .next
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The page for `key`, rendered by `render` (returning the body and whether the run
    /// ended) unless the cached one has that key.
    async fn get(
        &self,
        key: (u64, u64),
        render: impl FnOnce() -> (String, bool) + Send + 'static,
    ) -> Rendered {
        let mut slot = self.slot.lock().await;
        if let Some(r) = slot.as_ref() {
            if r.key == key {
                return r.clone();
            }
            let spacing = (r.took * RENDER_SPACING).max(MIN_RENDER_INTERVAL);
            if let Some(wait) = spacing.checked_sub(r.at.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        let start = Instant::now();
        let (html, finished) = tokio::task::spawn_blocking(render)
            .await
            .unwrap_or_else(|e| (format!("<p class=\"error\">cannot render: {e}</p>"), false));
        let rendered = Rendered {
            key,
            event: update_event(&html),
            finished,
            at: Instant::now(),
            took: start.elapsed(),
        };
        *self
            .next
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(rendered.at + (rendered.took * RENDER_SPACING).max(MIN_RENDER_INTERVAL));
        *slot = Some(rendered.clone());
        rendered
    }
}

/// `html` as an `update` event of a server-sent event stream.
fn update_event(html: &str) -> Bytes {
    let mut event = String::with_capacity(html.len() + html.len() / 40 + 32);
    event.push_str("event: update\n");
    for line in html.split('\n') {
        event.push_str("data: ");
        event.push_str(line.trim_end_matches('\r'));
        event.push('\n');
    }
    event.push('\n');
    Bytes::from(event)
}

/// A comment that keeps an idle event stream open through proxies.
const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";
/// How long an event stream may send nothing before a keep-alive comment.
const KEEP_ALIVE_AFTER: Duration = Duration::from_secs(15);

/// An event stream as a response.
fn event_response(
    stream: impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Where an event stream's pages come from.
trait PageSource: Send + Sync + 'static {
    /// The current key: it changes when the page would.
    fn key(&self) -> (u64, u64);
    /// A receiver that wakes on changes, when the source has one.
    fn watch(&self) -> Option<tokio::sync::watch::Receiver<u64>>;
    /// How long a client waits for a change before it looks at the key again.
    fn idle(&self) -> Duration;
    /// The body and whether the run ended.
    fn render(&self) -> impl FnOnce() -> (String, bool) + Send + 'static;
}

/// The stream of `update` events, then `end` when the run has ended.
fn event_stream<S: PageSource>(
    source: Arc<S>,
    cache: Arc<PageCache>,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> impl Stream<Item = Result<Bytes, Infallible>> {
    struct Client<S> {
        rx: Option<tokio::sync::watch::Receiver<u64>>,
        source: Arc<S>,
        cache: Arc<PageCache>,
        sent: Option<(u64, u64)>,
        sent_at: Instant,
        ended: bool,
        done: bool,
        _permit: tokio::sync::OwnedSemaphorePermit,
    }
    let client = Client {
        rx: source.watch(),
        source,
        cache,
        sent: None,
        sent_at: Instant::now(),
        ended: false,
        done: false,
        _permit: permit,
    };
    futures_util::stream::unfold(client, |mut c| async move {
        if c.done {
            return None;
        }
        if c.ended {
            c.done = true;
            return Some((Ok(Bytes::from_static(b"event: end\ndata: ended\n\n")), c));
        }
        // No sooner than the next render may start: during a busy run a client wakes once
        // per page, not once per event.
        if let Some(at) = c.cache.next_render() {
            tokio::time::sleep_until(at.into()).await;
        }
        loop {
            if let Some(rx) = &mut c.rx {
                rx.borrow_and_update();
            }
            let key = c.source.key();
            if c.sent != Some(key) {
                let page = c.cache.get(key, c.source.render()).await;
                c.sent = Some(page.key);
                c.ended = page.finished;
                c.sent_at = Instant::now();
                return Some((Ok(page.event), c));
            }
            if c.sent_at.elapsed() >= KEEP_ALIVE_AFTER {
                c.sent_at = Instant::now();
                return Some((Ok(Bytes::from_static(KEEP_ALIVE)), c));
            }
            let idle = c.source.idle();
            match &mut c.rx {
                Some(rx) => {
                    tokio::select! {
                        changed = rx.changed() => if changed.is_err() {
                            tokio::time::sleep(idle).await;
                        },
                        () = tokio::time::sleep(idle) => {}
                    }
                }
                None => tokio::time::sleep(idle).await,
            }
        }
    })
}

/// One run of this process.
struct LiveSource {
    record: Arc<LiveRecord>,
    start: Instant,
}

impl PageSource for LiveSource {
    fn key(&self) -> (u64, u64) {
        let tick = if self.record.is_finished() {
            0
        } else {
            (self.start.elapsed().as_millis() / IDLE_REFRESH.as_millis()) as u64
        };
        (self.record.version(), tick)
    }

    fn watch(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        Some(self.record.subscribe())
    }

    fn idle(&self) -> Duration {
        IDLE_REFRESH
    }

    fn render(&self) -> impl FnOnce() -> (String, bool) + Send + 'static {
        let record = Arc::clone(&self.record);
        move || {
            // Read before the snapshot: a finished flag seen here means the snapshot is final.
            let finished = record.is_finished();
            (body(&record.page_snapshot()), finished)
        }
    }
}

struct LiveState {
    source: Arc<LiveSource>,
    cache: Arc<PageCache>,
    clients: Arc<Semaphore>,
    actions: Option<Actions>,
    monitor: Option<Arc<ResourceMonitor>>,
}

/// The dashboard of one run of this process: its live page, events, record, Prometheus
/// metrics, and the actions when `actions` is given.
pub fn live_router(
    record: Arc<LiveRecord>,
    monitor: Option<Arc<ResourceMonitor>>,
    actions: Option<Actions>,
) -> Router {
    let state = Arc::new(LiveState {
        source: Arc::new(LiveSource {
            record,
            start: Instant::now(),
        }),
        cache: Arc::new(PageCache::new()),
        clients: Arc::new(Semaphore::new(MAX_CLIENTS)),
        actions,
        monitor,
    });
    Router::new()
        .route("/", get(live_page))
        .route("/api/events", get(live_events))
        .route("/api/run", get(live_run))
        .route("/metrics", get(live_metrics))
        .route("/api/checkpoint", post(live_checkpoint))
        .route("/api/cancel", post(live_cancel))
        .with_state(state)
}

async fn live_page(State(s): State<Arc<LiveState>>) -> Html<String> {
    let record = Arc::clone(&s.source.record);
    let actions = s.actions.is_some();
    let page = tokio::task::spawn_blocking(move || {
        render_live(
            &record.page_snapshot(),
            &LiveControls {
                events_url: "api/events".into(),
                actions,
            },
        )
    })
    .await
    .unwrap_or_default();
    Html(page)
}

fn too_many_clients() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the dashboard serves at most {MAX_CLIENTS} live pages at once"),
    )
        .into_response()
}

async fn live_events(State(s): State<Arc<LiveState>>) -> Response {
    let Ok(permit) = Arc::clone(&s.clients).try_acquire_owned() else {
        return too_many_clients();
    };
    event_response(event_stream(
        Arc::clone(&s.source),
        Arc::clone(&s.cache),
        permit,
    ))
}

async fn live_run(State(s): State<Arc<LiveState>>) -> Response {
    let record = Arc::clone(&s.source.record);
    let json = tokio::task::spawn_blocking(move || serde_json::to_string(&record.snapshot()))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], json).into_response()
}

async fn live_metrics(State(s): State<Arc<LiveState>>) -> Response {
    let (run_id, counts) = s.source.record.node_counts();
    let run_id = run_id.replace(['"', '\\', '\n'], "_");
    let mut text = s
        .monitor
        .as_ref()
        .and_then(|m| m.prometheus())
        .unwrap_or_default();
    text.push_str("# HELP medfusion_run_nodes Nodes of the run by status.\n");
    text.push_str("# TYPE medfusion_run_nodes gauge\n");
    for status in [
        NodeStatus::Pending,
        NodeStatus::Running,
        NodeStatus::Succeeded,
        NodeStatus::Failed,
        NodeStatus::Skipped,
        NodeStatus::Restored,
        NodeStatus::Cancelled,
    ] {
        let count = counts
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, c)| *c);
        let _ = writeln!(
            text,
            "medfusion_run_nodes{{run=\"{run_id}\",status=\"{}\"}} {count}",
            crate::report::status_text(status)
        );
    }
    text.push_str("# HELP medfusion_run_checkpoints_total Checkpoints saved by the run.\n");
    text.push_str("# TYPE medfusion_run_checkpoints_total counter\n");
    let _ = writeln!(
        text,
        "medfusion_run_checkpoints_total {}",
        s.source.record.checkpoints_saved()
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// Whether `headers` carry `token`, compared in constant time.
fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let given = headers
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        });
    let Some(given) = given else { return false };
    given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn action(
    s: &LiveState,
    headers: &HeaderMap,
    run: impl FnOnce(&Actions) -> &'static str,
) -> Response {
    let Some(actions) = &s.actions else {
        return (StatusCode::NOT_FOUND, "this dashboard has no actions").into_response();
    };
    if !authorized(headers, &actions.token) {
        return (
            StatusCode::FORBIDDEN,
            "this action needs the dashboard's token: open the address printed when the run \
             started (it ends in ?token=...)",
        )
            .into_response();
    }
    if s.source.record.is_finished() {
        return (StatusCode::CONFLICT, "the run has ended").into_response();
    }
    (StatusCode::ACCEPTED, run(actions)).into_response()
}

async fn live_checkpoint(State(s): State<Arc<LiveState>>, headers: HeaderMap) -> Response {
    action(&s, &headers, |a| {
        (a.checkpoint)();
        "checkpoint requested: running nodes save at their next safe point"
    })
}

async fn live_cancel(State(s): State<Arc<LiveState>>, headers: HeaderMap) -> Response {
    action(&s, &headers, |a| {
        (a.cancel)();
        "cancelling the run: running nodes save what they can"
    })
}

/// One run of a folder, seen through its `run.json`.
struct FileSource {
    dir: PathBuf,
}

fn modified(path: &FsPath) -> u64 {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64)
}

impl PageSource for FileSource {
    fn key(&self) -> (u64, u64) {
        (
            modified(&self.dir.join("run.json")),
            modified(&self.dir.join(crate::LIVE_FILE)),
        )
    }

    fn watch(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

    fn idle(&self) -> Duration {
        FILE_POLL
    }

    fn render(&self) -> impl FnOnce() -> (String, bool) + Send + 'static {
        let dir = self.dir.clone();
        move || match RunRecord::read_current(&dir) {
            Ok(record) => (body(&record), record.status != RunStatus::Running),
            Err(e) => (
                format!(
                    "<main><p class=\"error\">{}</p></main>",
                    crate::report::esc(&error_chain(&e))
                ),
                false,
            ),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let _ = write!(text, ": {s}");
        source = s.source();
    }
    text
}

struct FolderState {
    dir: PathBuf,
    clients: Arc<Semaphore>,
    caches: std::sync::Mutex<std::collections::HashMap<String, Arc<PageCache>>>,
}

/// The dashboard of a folder of runs (`runs/` by default): an index, and each run's page.
pub fn folder_router(dir: PathBuf) -> Router {
    let state = Arc::new(FolderState {
        dir,
        clients: Arc::new(Semaphore::new(MAX_CLIENTS)),
        caches: std::sync::Mutex::default(),
    });
    Router::new()
        .route("/", get(folder_index))
        .route("/runs/{name}", get(folder_redirect))
        .route("/runs/{name}/", get(folder_page))
        .route("/runs/{name}/api/events", get(folder_events))
        .route("/runs/{name}/api/run", get(folder_run))
        .with_state(state)
}

/// Whether `dir` holds a run record.
fn is_run(dir: &FsPath) -> bool {
    dir.join("run.json").is_file() || dir.join(crate::LIVE_FILE).is_file()
}

/// The folder of run `name`, when `name` is one folder's name inside the runs folder.
fn run_dir(s: &FolderState, name: &str) -> Result<PathBuf, (StatusCode, String)> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && !name.starts_with('.');
    let dir = s.dir.join(name);
    if plain && is_run(&dir) {
        Ok(dir)
    } else {
        Err((
            StatusCode::NOT_FOUND,
            format!("no run `{name}` in `{}`", s.dir.display()),
        ))
    }
}

async fn folder_redirect(Path(name): Path<String>) -> Redirect {
    Redirect::permanent(&format!("/runs/{name}/"))
}

async fn folder_page(State(s): State<Arc<FolderState>>, Path(name): Path<String>) -> Response {
    let dir = match run_dir(&s, &name) {
        Ok(dir) => dir,
        Err(response) => return response.into_response(),
    };
    match RunRecord::read_current(&dir) {
        Ok(record) if record.status == RunStatus::Running => Html(render_live(
            &record,
            &LiveControls {
                events_url: "api/events".into(),
                actions: false,
            },
        ))
        .into_response(),
        Ok(record) => Html(render(&record)).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, error_chain(&e)).into_response(),
    }
}

async fn folder_events(State(s): State<Arc<FolderState>>, Path(name): Path<String>) -> Response {
    let dir = match run_dir(&s, &name) {
        Ok(dir) => dir,
        Err(response) => return response.into_response(),
    };
    let Ok(permit) = Arc::clone(&s.clients).try_acquire_owned() else {
        return too_many_clients();
    };
    let cache = {
        let mut caches = s
            .caches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(
            caches
                .entry(name)
                .or_insert_with(|| Arc::new(PageCache::new())),
        )
    };
    event_response(event_stream(Arc::new(FileSource { dir }), cache, permit))
}

async fn folder_run(State(s): State<Arc<FolderState>>, Path(name): Path<String>) -> Response {
    let dir = match run_dir(&s, &name) {
        Ok(dir) => dir,
        Err(response) => return response.into_response(),
    };
    let live = dir.join(crate::LIVE_FILE);
    let path = if live.is_file() {
        live
    } else {
        dir.join("run.json")
    };
    match std::fs::read(&path) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// The runs of the folder, newest first.
async fn folder_index(State(s): State<Arc<FolderState>>) -> Response {
    let dir = s.dir.clone();
    let page = tokio::task::spawn_blocking(move || index_page(&dir))
        .await
        .unwrap_or_default();
    Html(page).into_response()
}

fn index_page(dir: &FsPath) -> String {
    use crate::report::esc;
    let mut runs: Vec<(String, Result<RunRecord, Error>)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| is_run(&e.path()))
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            (!name.starts_with('.')).then(|| (name, RunRecord::read_current(&e.path())))
        })
        .collect();
    runs.sort_by(|a, b| {
        let started = |r: &Result<RunRecord, Error>| {
            r.as_ref().map(|r| r.started_at.clone()).unwrap_or_default()
        };
        started(&b.1).cmp(&started(&a.1))
    });
    let mut h = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>medfusion runs</title>\
         <style>{}</style></head><body><header><h1>medfusion runs</h1><div class=\"meta\">{}</div></header><main>\
         <section><table id=\"runs\"><tr><th>run</th><th>workflow</th><th>status</th><th>started</th><th>updated / ended</th></tr>",
        crate::report::STYLE,
        esc(&dir.display().to_string())
    );
    if runs.is_empty() {
        h.push_str("<tr><td colspan=\"5\" class=\"muted\">No runs here yet.</td></tr>");
    }
    for (name, record) in &runs {
        match record {
            Ok(r) => {
                let status = crate::report::status_text(r.status);
                let _ = write!(
                    h,
                    "<tr data-run=\"{name}\" data-status=\"{status}\"><td><a href=\"runs/{name}/\">{id}</a></td>\
                     <td>{wf}</td><td>{badge}</td><td>{start}</td><td>{end}</td></tr>",
                    name = esc(name),
                    id = esc(&r.run_id),
                    wf = esc(&r.workflow),
                    badge = crate::report::badge(&status),
                    start = esc(&r.started_at),
                    end = esc(&r.finished_at),
                );
            }
            Err(e) => {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td colspan=\"4\" class=\"error\">{}</td></tr>",
                    esc(name),
                    esc(&error_chain(e))
                );
            }
        }
    }
    h.push_str(
        "</table></section><p class=\"muted\">A run shows as running while its live.json says so; \
         a run killed with kill -9 keeps saying so (its last update time tells).</p></main>\
         <script>setTimeout(() => location.reload(), 5000);</script></body></html>\n",
    );
    h
}
