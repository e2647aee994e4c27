//! `eegd serve`: the control plane (docs/protocol.md). An axum server on a tokio runtime drives the
//! pipeline through [`control::Controller`], streams the broker's topics to WebSocket clients
//! through [`hub::Hub`], serves the browser UI from files built into the binary, and exports
//! metrics.
//!
//! The pipeline's threads never await or block on the server: the server reads their counters
//! (atomics), hands them parameter changes through the executor's bounded command queue, and
//! takes their packets from the broker's drop-oldest topics.
mod access;
mod control;
mod cpus;
mod edits;
mod error;
mod hub;
pub mod lsl;
mod metrics;
mod quality;
mod session;

use anyhow::{Context as _, Result};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use bytes::Bytes;
use control::Controller;
use cpus::ServerCpus;
use error::{ApiError, ApiResult};
use hub::Hub;
use include_dir::{include_dir, Dir};
use pipeline::stage::{defaults_of, registry};
use serde_json::{json, Value};
use session::{SessionRequest, SessionStore};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast::error::RecvError, watch, OwnedSemaphorePermit, Semaphore};

/// The browser UI, built into the binary.
static UI: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../ui");
/// The ready-made pipelines (`pipelines/*.yaml`), built into the binary.
static PIPELINES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../../pipelines");

/// Largest request body (a pipeline file, a parameter change), bytes.
const MAX_BODY: usize = 1 << 20;
/// Largest WebSocket message a client may send, bytes.
const MAX_WS_MESSAGE: usize = 64 << 10;
/// Most bytes a client's socket may have waiting to be written before the send waits; past
/// that the client falls behind and loses frames instead of growing a buffer.
const WS_WRITE_BUFFER: usize = 256 << 10;
/// Longest topic name.
const MAX_TOPIC: usize = 64;
/// File descriptors the daemon asks for (its soft limit is raised to this, or the hard limit),
/// so the connection cap, not the descriptor limit, is what a flood of sockets meets.
const WANTED_FILES: u64 = 8192;
/// A request, body included, must be answered within this, else 408 (a body sent too slowly).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// After SIGTERM or SIGINT, open connections get this long to finish before they are cut.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// `eegd serve` options.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The pipeline to start with (default: pipelines/default.yaml, built into the binary).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Address and port to listen on. Anything but loopback requires a token.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Where recording sessions are written; recordings cannot leave it.
    #[arg(long, default_value = "recordings")]
    pub data_dir: PathBuf,
    /// Bearer token required on every /api, /ws and /metrics request (or `EEGD_TOKEN`).
    #[arg(long)]
    pub token: Option<String>,
    /// CPUs for the HTTP, WebSocket and broker threads, as Linux lists them (`0`, `0-2`,
    /// `0,2`). By default they run on every CPU except those the running pipeline pins a
    /// thread group to (`runtime.groups.<group>.cpu`), which keeps clients off the pipeline's
    /// cores (docs/hardware.md, "Isolating the pipeline").
    #[arg(long, value_name = "LIST", value_parser = CpuList::parse)]
    pub server_cpus: Option<CpuList>,
    /// Republish every marker (page, API, LSL inlets, replayed files) on an LSL marker stream
    /// called NAME (needs liblsl; docs/lsl.md).
    #[arg(long, value_name = "NAME")]
    pub lsl_markers: Option<String>,
    /// A browser origin (`http://host:port`) allowed to change state and open WebSockets,
    /// besides the daemon's own; repeatable. `EEGD_ALLOW_ORIGIN` adds more, comma-separated.
    #[arg(long, value_name = "ORIGIN")]
    pub allow_origin: Vec<String>,
    /// TCP connections served at once (HTTP and WebSocket); past it a new one is answered 503.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub max_connections: u32,
    /// Seconds a connection may take to send a request's head, and may stay idle between
    /// requests, before it is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = parse_seconds)]
    pub idle_timeout: f64,
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 3600.0 => Ok(v),
        _ => Err(format!("`{s}`: expected seconds between 0 and 3600")),
    }
}

/// How many connections the server takes, and how long it waits for an idle one.
#[derive(Clone, Copy, Debug)]
struct ConnLimits {
    max: u32,
    idle: Duration,
}

/// A list of CPU numbers (one argument, so clap must not read it as many).
#[derive(Clone, Debug)]
pub struct CpuList(Vec<usize>);

impl CpuList {
    fn parse(s: &str) -> Result<CpuList, String> {
        pipeline::rt::parse_cpu_list(s).map(CpuList)
    }
}

#[derive(Clone)]
struct AppState {
    ctl: Arc<Controller>,
    hub: Arc<Hub>,
    launcher: Launcher,
    token: Option<Arc<str>>,
    access: Arc<access::Access>,
    shutdown: watch::Receiver<bool>,
}

/// The ready-made pipeline called `name` (its file name without `.yaml`).
fn preset(name: &str) -> Option<&'static str> {
    PIPELINES.get_file(format!("{name}.yaml")).and_then(|f| f.contents_utf8())
}

/// Runs the daemon until SIGINT or SIGTERM.
pub fn serve(args: ServeArgs) -> Result<ExitCode> {
    let token = args.token.clone().or_else(|| std::env::var("EEGD_TOKEN").ok()).filter(|t| !t.is_empty());
    if !args.bind.ip().is_loopback() && token.is_none() {
        anyhow::bail!(
            "binding to {} (not loopback) requires a bearer token: give --token or set EEGD_TOKEN",
            args.bind
        );
    }
    let (name, source) = match &args.config {
        Some(f) => (
            f.display().to_string(),
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
        ),
        None => ("pipelines/default.yaml".to_string(), preset("default").unwrap_or_default().to_string()),
    };
    let server_cpus = ServerCpus::new(args.server_cpus.map(|c| c.0));
    let ctl = Arc::new(Controller::new(SessionStore::new(&args.data_dir)?, server_cpus.clone()));
    tracing::info!(data_dir = %ctl.sessions.root().display(), "Recordings go here");
    // Every file a pipeline reads is resolved inside the data directory, before it is opened.
    stages::files::confine_to(ctl.sessions.root());
    match ctl.start(&name, &source) {
        Ok(_) => {}
        Err(ApiError::InvalidPipeline(d)) => {
            eprintln!("{d}");
            return Ok(ExitCode::from(crate::cli::EXIT_INVALID));
        }
        // A device or file that would not open: the daemon keeps serving, so a client can see
        // why and start another pipeline.
        Err(e) => tracing::error!(error = %e, "The first pipeline did not start"),
    }
    let outlet = match &args.lsl_markers {
        Some(name) => match lsl::MarkerOutlet::open(name) {
            Ok(o) => Some(o),
            Err(e) => {
                eprintln!("--lsl-markers {name}: {e}");
                return Ok(ExitCode::from(crate::cli::EXIT_INVALID));
            }
        },
        None => None,
    };
    let mut tap = lsl::MarkerTap::start(ctl.clone(), outlet).context("starting the marker thread")?;
    // Made here, before any thread is niced or confined, so the pipelines it starts are not.
    let launcher = Launcher::start();
    let hub = Hub::start({
        let c = server_cpus.clone();
        move || c.enter()
    });
    let (enter, leave) = (server_cpus.clone(), server_cpus);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("eegd-http")
        // Clients never take the CPU from the pipeline (see BENCHMARKS.md, "200 clients").
        .on_thread_start(move || enter.enter())
        .on_thread_stop(move || leave.leave())
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let mut origins = args.allow_origin.clone();
    if let Ok(more) = std::env::var("EEGD_ALLOW_ORIGIN") {
        origins.extend(more.split(',').map(str::trim).filter(|o| !o.is_empty()).map(str::to_string));
    }
    raise_file_limit();
    let limits = ConnLimits { max: args.max_connections, idle: Duration::from_secs_f64(args.idle_timeout) };
    if let Some(path) = args.config.clone() {
        rt.spawn(edits::reload_on_sighup(ctl.clone(), launcher.clone(), path));
    }
    let res = rt.block_on(run_server(args.bind, ctl.clone(), hub.clone(), launcher, token, origins, limits));
    // A handler still blocked past the grace period is not waited for.
    rt.shutdown_timeout(SHUTDOWN_GRACE);
    ctl.shutdown();
    hub.shutdown();
    tap.shutdown();
    res.map(|_| ExitCode::SUCCESS)
}

async fn run_server(
    bind: SocketAddr,
    ctl: Arc<Controller>,
    hub: Arc<Hub>,
    launcher: Launcher,
    token: Option<String>,
    origins: Vec<String>,
    limits: ConnLimits,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| format!("binding {bind}"))?;
    let local = listener.local_addr()?;
    let access = access::Access::new(local, &origins).map_err(|e| anyhow::anyhow!("--allow-origin: {e}"))?;
    // The one line on stdout: scripts and tests read the port from it (with `--bind …:0`).
    println!("eegd listening on http://{local}");
    tracing::info!(addr = %local, auth = token.is_some(), "Serving");
    let (stop_tx, stop_rx) = watch::channel(false);
    let state = AppState {
        ctl: ctl.clone(),
        hub,
        launcher,
        token: token.map(Arc::from),
        access: Arc::new(access),
        shutdown: stop_rx,
    };
    let app = router(state);
    serve_connections(listener, app, limits, async move {
        wait_for_signal().await;
        tracing::info!("Stopping: closing the recording and draining the pipeline");
        let c = ctl.clone();
        let _ = tokio::task::spawn_blocking(move || c.shutdown()).await;
        let _ = stop_tx.send(true);
    })
    .await;
    Ok(())
}

/// Raises the soft limit on open files towards [`WANTED_FILES`] (never above the hard limit).
fn raise_file_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let want = WANTED_FILES.min(hard);
        if soft < want {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, want, hard) {
                tracing::warn!(error = %e, soft, "Could not raise the open-files limit");
            }
        }
    }
}

/// A TCP connection that holds one of the `--max-connections` places for as long as it lives,
/// through a WebSocket upgrade too (the upgraded socket owns it).
struct Counted {
    stream: tokio::net::TcpStream,
    _place: OwnedSemaphorePermit,
}

impl tokio::io::AsyncRead for Counted {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Counted {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The answer to a connection past `--max-connections`, written before it is closed.
const TOO_MANY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
Content-Length: 44\r\nConnection: close\r\n\r\n{\"error\": \"too many connections; try again\"}";

/// Serves `app` on `listener` until `stop` completes, then lets open connections finish for at
/// most [`SHUTDOWN_GRACE`].
///
/// Hand-written over hyper rather than `axum::serve`, which has no connection limit, no
/// timeout on a request's head (an idle socket is kept forever) and a graceful shutdown that
/// waits without end for a half-sent request.
async fn serve_connections(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ConnLimits,
    stop: impl std::future::Future<Output = ()>,
) {
    let places = Arc::new(Semaphore::new(limits.max as usize));
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut stop = std::pin::pin!(stop);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was taken:
                    // wait a moment rather than spin on the error.
                    tracing::warn!(error = %e, "Accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let Ok(place) = places.clone().try_acquire_owned() else {
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt as _;
                let mut stream = stream;
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(TOO_MANY)).await;
            });
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = hyper_util::rt::TokioIo::new(Counted { stream, _place: place });
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut closing = closing_rx.clone();
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(limits.idle);
            let mut conn = std::pin::pin!(http.serve_connection(io, service).with_upgrades());
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = closing.wait_for(|c| *c) => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    // Every place returned means every connection (and WebSocket) has ended.
    if tokio::time::timeout(SHUTDOWN_GRACE, places.acquire_many(limits.max)).await.is_err() {
        let open = limits.max as usize - places.available_permits();
        tracing::warn!(open, "Connections cut at shutdown");
    }
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

fn router(state: AppState) -> Router {
    let guarded = Router::new()
        .route("/api/health", get(health))
        .route("/api/pipeline", get(get_pipeline))
        .route("/api/pipeline/start", post(start_pipeline))
        .route("/api/pipeline/stop", post(stop_pipeline))
        .route("/api/pipeline/restart", post(restart_pipeline))
        .route("/api/pipeline/stages", post(edits::edit_stages))
        .route("/api/presets", get(presets))
        .route("/api/stages", get(stages))
        .route("/api/stages/{name}/params", patch(patch_params))
        .route("/api/recording/start", post(start_recording))
        .route("/api/recording/stop", post(stop_recording))
        .route("/api/recordings", get(recordings))
        .route("/api/recordings/{*file}", get(download))
        .route("/api/markers", post(marker))
        .route("/api/signal-quality", get(quality::get_signal_quality))
        .route("/api/impedance/start", post(quality::impedance_start))
        .route("/api/impedance/stop", post(quality::impedance_stop))
        .route("/api/selftest", post(quality::post_selftest))
        .route("/metrics", get(metrics_text))
        .route("/ws/data", get(ws_data))
        .route("/ws/control", get(ws_control))
        .route("/api/{*rest}", get(api_not_found).post(api_not_found))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth));
    guarded
        .route("/", get(index))
        .route("/{*path}", get(asset))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(request_timeout))
        .layer(middleware::from_fn_with_state(state.clone(), check_access))
        .layer(middleware::from_fn(error::json_errors))
        .with_state(state)
}

/// The `Host` and `Origin` rule of [`access`], on every request.
async fn check_access(State(st): State<AppState>, req: Request, next: Next) -> Response {
    match st.access.check(req.method(), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => {
            tracing::warn!(method = %req.method(), path = %req.uri().path(), error = %e, "Refused");
            e.into_response()
        }
    }
}

/// 408 when a request (reading its body included) is not answered within [`REQUEST_TIMEOUT`].
async fn request_timeout(req: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::Timeout("the request was not complete in time".into()).into_response(),
    }
}

/// Compares without an early exit, so the time taken tells nothing about the token.
fn same_token(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// Requires the bearer token when one is configured: `Authorization: Bearer …`, or
/// `?token=…` for browsers' WebSockets, which cannot set headers.
async fn auth(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(expected) = &st.token {
        let header = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::to_string);
        let query = Query::<HashMap<String, String>>::try_from_uri(req.uri())
            .ok()
            .and_then(|q| q.0.get("token").cloned());
        if !header.or(query).is_some_and(|g| same_token(&g, expected)) {
            let mut r = ApiError::Unauthorized.into_response();
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    next.run(req).await
}

/// The thread that runs every controller call that may start a pipeline. A pipeline's threads
/// inherit their parent's priority and CPUs, and the server's threads are niced and confined
/// ([`ServerCpus`]; an unprivileged thread cannot raise its priority back), so such calls run
/// here, on a thread made before those settings: at normal priority, on every CPU the process
/// may use.
#[derive(Clone)]
struct Launcher(std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>);

impl Launcher {
    fn start() -> Launcher {
        let (tx, rx) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        std::thread::Builder::new()
            .name("eegd-launcher".into())
            .spawn(move || {
                for job in rx {
                    // A panicking call answers 500 (its reply is dropped); the thread goes on.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })
            .expect("spawning the launcher thread");
        Launcher(tx)
    }
}

/// Runs a controller call that may start a pipeline on the [`Launcher`].
async fn launching<T: Send + 'static>(
    st: &AppState,
    f: impl FnOnce(&Controller) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let ctl = st.ctl.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job = Box::new(move || {
        let _ = tx.send(f(&ctl));
    });
    st.launcher
        .0
        .send(job)
        .map_err(|_| ApiError::Internal(anyhow::anyhow!("the launcher thread is gone")))?;
    rx.await.map_err(|_| ApiError::Internal(anyhow::anyhow!("the pipeline call panicked")))?
}

/// Runs a blocking controller call on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    st: &AppState,
    f: impl FnOnce(&Controller) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let ctl = st.ctl.clone();
    tokio::task::spawn_blocking(move || f(&ctl))
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("task: {e}")))?
}

/// A JSON body, or the default for an empty one.
fn json_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn get_pipeline(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    blocking(&st, |c| Ok(c.pipeline())).await.map(Json)
}

#[derive(serde::Deserialize)]
struct StartQuery {
    preset: Option<String>,
}

async fn start_pipeline(
    State(st): State<AppState>,
    Query(q): Query<StartQuery>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let (name, source) = match q.preset {
        Some(p) => match preset(&p) {
            Some(src) => (format!("pipelines/{p}.yaml"), src.to_string()),
            None => return Err(ApiError::NotFound(format!("no preset `{p}`; see GET /api/presets"))),
        },
        None => (
            "request".to_string(),
            String::from_utf8(body.to_vec())
                .map_err(|_| ApiError::BadRequest("the body is not UTF-8".into()))?,
        ),
    };
    launching(&st, move |c| c.start(&name, &source)).await.map(Json)
}

async fn stop_pipeline(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    blocking(&st, |c| c.stop()).await.map(Json)
}

async fn restart_pipeline(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    launching(&st, |c| c.restart()).await.map(Json)
}

async fn presets() -> Json<Value> {
    let mut list: Vec<Value> = PIPELINES
        .files()
        .filter(|f| f.path().extension().is_some_and(|e| e == "yaml"))
        .filter_map(|f| {
            let name = f.path().file_stem()?.to_str()?.to_string();
            let text = f.contents_utf8()?;
            let about: Vec<&str> = text
                .lines()
                .take_while(|l| l.starts_with('#'))
                .map(|l| l.trim_start_matches('#').trim())
                .collect();
            Some(json!({ "name": name, "description": about.join(" "), "source": text }))
        })
        .collect();
    list.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Json(Value::Array(list))
}

/// Every stage type with its role, kinds, documentation, defaults and parameter schema (the
/// same list as `eegd stages --json`).
pub fn catalogue() -> Vec<Value> {
    registry()
        .iter()
        .map(|r| {
            json!({
                "type": r.name,
                "role": r.role,
                "accepts": r.accepts,
                "on_error": r.on_error,
                "doc": r.doc,
                "example": r.example,
                "defaults": defaults_of(r),
                "params_schema": (r.schema)(),
            })
        })
        .collect()
}

async fn stages() -> Json<Value> {
    Json(Value::Array(catalogue()))
}

async fn patch_params(
    State(st): State<AppState>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let patch: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    blocking(&st, move |c| c.patch(&name, patch)).await.map(Json)
}

async fn start_recording(State(st): State<AppState>, body: Bytes) -> ApiResult<Json<Value>> {
    let req: SessionRequest = json_body(&body)?;
    launching(&st, move |c| c.start_recording(req)).await.map(Json)
}

async fn stop_recording(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    launching(&st, |c| c.stop_recording()).await.map(Json)
}

async fn recordings(State(st): State<AppState>) -> ApiResult<Json<Value>> {
    blocking(&st, |c| c.recordings()).await.map(Json)
}

/// A file of a past session, streamed (recordings can be large).
async fn download(State(st): State<AppState>, Path(file): Path<String>) -> ApiResult<Response> {
    let path = st.ctl.sessions.file(&file).map_err(ApiError::NotFound)?;
    let f = tokio::fs::File::open(&path).await.map_err(|e| ApiError::Internal(e.into()))?;
    let len = f.metadata().await.map(|m| m.len()).ok();
    let name = path.file_name().map(|n| n.to_string_lossy().replace('"', "")).unwrap_or_default();
    let mime = mime_guess::from_path(&path).first_or_octet_stream();
    let mut r = axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(f)).into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime.as_ref()) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(len) = len {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    Ok(r)
}

#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MarkerRequest {
    label: String,
    /// Nanoseconds since the UNIX epoch; default now.
    timestamp_ns: Option<i64>,
}

async fn marker(State(st): State<AppState>, body: Bytes) -> ApiResult<Json<Value>> {
    let m: MarkerRequest = json_body(&body)?;
    blocking(&st, move |c| c.marker(&m.label, m.timestamp_ns)).await.map(Json)
}

async fn metrics_text(State(st): State<AppState>) -> ApiResult<Response> {
    let hub = st.hub.clone();
    let text = blocking(&st, move |c| Ok(metrics::render(c, &hub))).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

async fn api_not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}

fn serve_file(path: &str) -> Response {
    match UI.get_file(path) {
        Some(f) => {
            let mime = mime_guess::from_path(path).first_or_octet_stream();
            ([(header::CONTENT_TYPE, mime.essence_str().to_string())], f.contents()).into_response()
        }
        None => ApiError::NotFound("not found".into()).into_response(),
    }
}

async fn index() -> Response {
    serve_file("index.html")
}

async fn asset(Path(path): Path<String>) -> Response {
    if path.starts_with("ws/") {
        return ApiError::NotFound("no such endpoint".into()).into_response();
    }
    serve_file(&path)
}

/// Counts a connected client while it lives.
struct Connected<'a>(&'a AtomicUsize);

impl<'a> Connected<'a> {
    fn new(c: &'a AtomicUsize) -> Self {
        c.fetch_add(1, Ordering::Relaxed);
        Connected(c)
    }
}

impl Drop for Connected<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(serde::Deserialize)]
struct TopicQuery {
    topic: String,
}

async fn ws_data(State(st): State<AppState>, Query(q): Query<TopicQuery>, ws: WebSocketUpgrade) -> Response {
    let ok = !q.topic.is_empty()
        && q.topic.len() <= MAX_TOPIC
        && q.topic.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !ok {
        return ApiError::BadRequest(format!("a topic is 1 to {MAX_TOPIC} letters, digits, `-`, `_` or `.`"))
            .into_response();
    }
    // Joined before the upgrade, so the topic cap holds however many upgrades are in flight.
    let Some(sub) = st.hub.join(&q.topic) else {
        return ApiError::Unavailable(format!(
            "clients watch {} topics already; that is the most the daemon serves at once",
            hub::MAX_TOPICS
        ))
        .into_response();
    };
    ws.max_message_size(MAX_WS_MESSAGE)
        .max_frame_size(MAX_WS_MESSAGE)
        .max_write_buffer_size(WS_WRITE_BUFFER.max(MAX_BODY) * 4)
        .write_buffer_size(WS_WRITE_BUFFER)
        .on_upgrade(move |socket| data_client(socket, st, sub))
}

/// One data client: frames of its topic out; anything it sends is ignored but a close.
///
/// While a send waits on a slow socket, the frames that arrive meanwhile queue in `backlog`
/// (at most [`hub::CLIENT_BACKLOG`]); beyond that the oldest is dropped and counted at once, so
/// a stalled client's losses show in the metrics while it stalls, and it never holds more.
async fn data_client(mut socket: WebSocket, st: AppState, mut sub: hub::Subscription) {
    let _c = Connected::new(&st.hub.data_clients);
    let mut stop = st.shutdown.clone();
    if *stop.borrow_and_update() {
        return;
    }
    let drops = &sub.topic.client_drops;
    let mut backlog: VecDeque<Bytes> = VecDeque::with_capacity(hub::CLIENT_BACKLOG);
    loop {
        let frame = match backlog.pop_front() {
            Some(f) => f,
            None => tokio::select! {
                r = sub.rx.recv() => match r {
                    Ok(frame) => frame,
                    Err(RecvError::Lagged(n)) => {
                        drops.fetch_add(n, Ordering::Relaxed);
                        continue;
                    }
                    Err(RecvError::Closed) => return,
                },
                m = socket.recv() => match m {
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                    Some(Ok(_)) => continue,
                },
                _ = stop.changed() => return,
            },
        };
        let mut send = std::pin::pin!(socket.send(Message::Binary(frame)));
        loop {
            tokio::select! {
                sent = &mut send => {
                    if sent.is_err() {
                        return;
                    }
                    break;
                }
                r = sub.rx.recv() => match r {
                    Ok(f) => {
                        if backlog.len() == hub::CLIENT_BACKLOG {
                            backlog.pop_front();
                            drops.fetch_add(1, Ordering::Relaxed);
                        }
                        backlog.push_back(f);
                    }
                    Err(RecvError::Lagged(n)) => {
                        drops.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(RecvError::Closed) => return,
                },
                _ = stop.changed() => return,
            }
        }
    }
}

async fn ws_control(State(st): State<AppState>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(MAX_WS_MESSAGE)
        .max_frame_size(MAX_WS_MESSAGE)
        .write_buffer_size(WS_WRITE_BUFFER)
        .max_write_buffer_size(WS_WRITE_BUFFER * 4)
        .on_upgrade(move |socket| control_client(socket, st))
}

/// The parameter changes one control message asks for, as (stage, merge-patch) pairs: the
/// `UpdateParam` form, or a JSON-Patch list over `{ "<stage>": { <params> } }`.
fn control_changes(msg: &Value) -> Result<Vec<(String, Value)>, String> {
    if let Some(ops) = msg.as_array() {
        let mut out: Vec<(String, Value)> = Vec::new();
        for op in ops {
            let path = op["path"].as_str().ok_or("a JSON-Patch operation needs a `path`")?;
            let parts: Vec<String> =
                path.split('/').skip(1).map(|p| p.replace("~1", "/").replace("~0", "~")).collect();
            let [stage, key] = parts.as_slice() else {
                return Err(format!("path `{path}`: expected `/<stage>/<param>`"));
            };
            let value = match op["op"].as_str() {
                Some("replace" | "add") => {
                    op.get("value").cloned().ok_or("`replace` and `add` need a `value`")?
                }
                // Removing a parameter returns it to its default.
                Some("remove") => Value::Null,
                other => {
                    return Err(format!("unsupported operation {other:?}; use `replace`, `add` or `remove`"))
                }
            };
            match out.iter_mut().find(|(s, _)| s == stage) {
                Some((_, p)) => {
                    p[key.as_str()] = value;
                }
                None => out.push((stage.clone(), json!({ key.as_str(): value }))),
            }
        }
        return Ok(out);
    }
    match msg["cmd"].as_str() {
        Some("UpdateParam") => {
            let stage = msg["stage_id"].as_str().ok_or("`UpdateParam` needs a `stage_id`")?;
            let key = msg["key"].as_str().ok_or("`UpdateParam` needs a `key`")?;
            let value = msg.get("value").cloned().ok_or("`UpdateParam` needs a `value`")?;
            Ok(vec![(stage.to_string(), json!({ key: value }))])
        }
        other => Err(format!("unknown command {other:?}; send `UpdateParam` or a JSON-Patch list")),
    }
}

/// Applies a control message; the answer goes to the sender, the changes to every client.
async fn handle_control(st: &AppState, text: &str) -> Value {
    let msg: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return json!({ "ok": false, "status": 400, "error": format!("invalid JSON: {e}") }),
    };
    let id = msg.get("id").cloned();
    let changes = match control_changes(&msg) {
        Ok(c) => c,
        Err(e) => return json!({ "id": id, "ok": false, "status": 400, "error": e }),
    };
    let mut results = Vec::new();
    for (stage, patch) in changes {
        let s = stage.clone();
        match blocking(st, move |c| c.patch(&s, patch)).await {
            Ok(r) => results.push(r),
            Err(e) => {
                return json!({ "id": id, "ok": false, "status": e.status().as_u16(), "stage": stage, "error": e.body()["error"] })
            }
        }
    }
    json!({ "id": id, "ok": true, "results": results })
}

/// One control client: commands in, answers and every state change out.
async fn control_client(mut socket: WebSocket, st: AppState) {
    let _c = Connected::new(&st.hub.control_clients);
    let mut events = st.ctl.events();
    let mut stop = st.shutdown.clone();
    if *stop.borrow_and_update() {
        return;
    }
    if let Ok(p) = blocking(&st, |c| Ok(c.pipeline())).await {
        let hello = json!({ "event": "state", "pipeline": p }).to_string();
        if socket.send(Message::Text(hello.into())).await.is_err() {
            return;
        }
    }
    loop {
        let out = tokio::select! {
            e = events.recv() => match e {
                Ok(text) => text,
                // A slow control client misses intermediate events; the next one is current.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            },
            m = socket.recv() => match m {
                Some(Ok(Message::Text(t))) => handle_control(&st, t.as_str()).await.to_string(),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => continue,
            },
            _ = stop.changed() => break,
        };
        tokio::select! {
            sent = socket.send(Message::Text(out.into())) => if sent.is_err() { break },
            _ = stop.changed() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_messages_become_merge_patches() {
        let m = json!({"stage_id": "bandpass", "cmd": "UpdateParam", "key": "high_hz", "value": 30});
        assert_eq!(control_changes(&m).unwrap(), vec![("bandpass".to_string(), json!({"high_hz": 30}))]);
        let ops = json!([
            {"op": "replace", "path": "/bandpass/high_hz", "value": 30},
            {"op": "remove", "path": "/bandpass/order"},
            {"op": "add", "path": "/notch/hz", "value": 60}
        ]);
        assert_eq!(
            control_changes(&ops).unwrap(),
            vec![
                ("bandpass".to_string(), json!({"high_hz": 30, "order": null})),
                ("notch".to_string(), json!({"hz": 60}))
            ]
        );
        assert!(control_changes(&json!([{"op": "move", "path": "/a/b"}])).is_err());
        assert!(control_changes(&json!([{"op": "replace", "path": "/a", "value": 1}])).is_err());
        assert!(control_changes(&json!({"cmd": "Reboot"})).is_err());
    }

    #[test]
    fn token_comparison() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abd", "abc"));
        assert!(!same_token("ab", "abc"));
    }

    #[test]
    fn default_pipeline_is_built_in() {
        assert!(preset("default").is_some_and(|s| s.contains("emulator")));
    }
}
