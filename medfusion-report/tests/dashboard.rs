//! The dashboard's HTTP side: actions behind the token, the record and metrics, the event
//! stream that ends with the run, clients that stop reading, and a folder of runs.

use std::io::{BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use medfusion_exec::{Event, EventKind, EventSink as _, Registry, RunStatus};
use medfusion_graph::{Format, Plan, Workflow};
use medfusion_report::dashboard::{self, Actions, MAX_CLIENTS};
use medfusion_report::{LiveRecord, RunRecord};
use serde_json::Value;
use tower::ServiceExt as _;

fn plan() -> Plan {
    let workflow = Workflow::parse(
        "name: demo\nnodes:\n  - { id: a, type: util.noop }\n  - { id: b, type: util.noop }\n\
         edges:\n  - { from: a.out, to: b.in }\n",
        Format::Yaml,
    )
    .unwrap();
    medfusion_graph::validate(workflow, Registry::with_builtins().catalog()).unwrap()
}

fn start(live: &LiveRecord, node: &str) {
    live.event(&Event::now(EventKind::NodeStarted {
        node: node.into(),
        attempt: 1,
    }));
}

struct Counted {
    checkpoints: Arc<AtomicUsize>,
    cancels: Arc<AtomicUsize>,
}

fn actions(token: &str) -> (Actions, Counted) {
    let checkpoints = Arc::new(AtomicUsize::new(0));
    let cancels = Arc::new(AtomicUsize::new(0));
    let (c, x) = (Arc::clone(&checkpoints), Arc::clone(&cancels));
    (
        Actions {
            token: token.into(),
            checkpoint: Box::new(move || {
                c.fetch_add(1, Ordering::SeqCst);
            }),
            cancel: Box::new(move || {
                x.fetch_add(1, Ordering::SeqCst);
            }),
        },
        Counted {
            checkpoints,
            cancels,
        },
    )
}

async fn send(
    router: &Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut request = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn actions_need_the_token() {
    let live = Arc::new(LiveRecord::new(&plan(), "demo-1"));
    start(&live, "a");
    let (actions, counted) = actions("s3cret");
    let router = dashboard::live_router(Arc::clone(&live), None, Some(actions));

    for headers in [
        &[][..],
        &[("x-medfusion-token", "wrong")][..],
        &[("x-medfusion-token", "s3cre")][..],
        &[("authorization", "Basic s3cret")][..],
    ] {
        for action in ["/api/checkpoint", "/api/cancel"] {
            let (status, body) = send(&router, "POST", action, headers).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{action} {headers:?}");
            assert!(body.contains("token"), "{body}");
        }
    }
    assert_eq!(counted.checkpoints.load(Ordering::SeqCst), 0);
    assert_eq!(counted.cancels.load(Ordering::SeqCst), 0);
    // GET is not an action.
    let (status, _) = send(&router, "GET", "/api/cancel", &[]).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    let (status, _) = send(
        &router,
        "POST",
        "/api/checkpoint",
        &[("x-medfusion-token", "s3cret")],
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = send(
        &router,
        "POST",
        "/api/cancel",
        &[("authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(counted.checkpoints.load(Ordering::SeqCst), 1);
    assert_eq!(counted.cancels.load(Ordering::SeqCst), 1);

    // After the run, there is nothing left to act on.
    live.finish(live.snapshot());
    let (status, _) = send(
        &router,
        "POST",
        "/api/cancel",
        &[("x-medfusion-token", "s3cret")],
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(counted.cancels.load(Ordering::SeqCst), 1);

    // A dashboard without actions has none.
    let read_only = dashboard::live_router(live, None, None);
    let (status, _) = send(
        &read_only,
        "POST",
        "/api/cancel",
        &[("x-medfusion-token", "s3cret")],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_record_page_and_metrics_are_served() {
    let live = Arc::new(LiveRecord::new(&plan(), "demo-1"));
    start(&live, "a");
    let router = dashboard::live_router(Arc::clone(&live), None, None);

    let (status, json) = send(&router, "GET", "/api/run", &[]).await;
    assert_eq!(status, StatusCode::OK);
    let record: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(record["run_id"], "demo-1");
    assert_eq!(record["nodes"][0]["status"], "running");

    let (status, page) = send(&router, "GET", "/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("new EventSource(EVENTS_URL)"));
    assert!(page.contains("data-node=\"a\" data-status=\"running\""));
    // Read-only: no buttons.
    assert!(!page.contains("id=\"cancel\""));
    for fetch in ["src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(!page.contains(fetch), "the page fetches something: {fetch}");
    }

    let (status, metrics) = send(&router, "GET", "/metrics", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        metrics.contains("medfusion_run_nodes{run=\"demo-1\",status=\"running\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("medfusion_run_nodes{run=\"demo-1\",status=\"pending\"} 1"));
    assert!(metrics.contains("# TYPE medfusion_run_checkpoints_total counter"));
}

/// A served dashboard on a free port of this machine.
fn serve(
    router: Router,
) -> (
    SocketAddr,
    tokio::runtime::Runtime,
    Arc<tokio::sync::Notify>,
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime.block_on(dashboard::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(tokio::sync::Notify::new());
    let stopped = Arc::clone(&stop);
    runtime.spawn(dashboard::serve(
        listener,
        router,
        async move { stopped.notified().await },
        dashboard::ServeOptions {
            grace: Duration::from_secs(1),
            slow_client_timeout: Duration::from_millis(500),
        },
    ));
    (addr, runtime, stop)
}

fn get(addr: SocketAddr, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_mins(1)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    stream
}

/// Reads lines until one starts with `prefix`.
fn read_until(reader: &mut impl std::io::BufRead, prefix: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).unwrap();
        assert!(n > 0, "the stream ended before `{prefix}`");
        if line.starts_with(prefix) {
            return line;
        }
    }
}

#[test]
fn the_event_stream_sends_the_final_page_then_ends() {
    let live = Arc::new(LiveRecord::new(&plan(), "demo-1"));
    start(&live, "a");
    let (addr, _runtime, _stop) = serve(dashboard::live_router(Arc::clone(&live), None, None));
    let mut stream = BufReader::new(get(addr, "/api/events"));
    let status = read_until(&mut stream, "HTTP/1.1");
    assert!(status.contains("200"), "{status}");
    read_until(&mut stream, "content-type: text/event-stream");
    read_until(&mut stream, "event: update");
    let page = read_until(&mut stream, "data: <header");
    assert!(page.contains("data-run-status=\"running\""), "{page}");

    // The run ends: the final page, then `end`, then the stream closes.
    let mut last = live.snapshot();
    last.status = RunStatus::Succeeded;
    live.finish(last);
    let page = read_until(&mut stream, "data: <header data-run-status=\"succeeded\"");
    assert!(page.contains("succeeded"));
    read_until(&mut stream, "event: end");
    // The response ends (its last chunk) and the connection closes.
    let mut rest = String::new();
    stream.read_to_string(&mut rest).unwrap();
    assert!(rest.ends_with("0\r\n\r\n"), "{rest:?}");
}

#[test]
fn clients_that_stop_reading_never_hold_up_the_run() {
    let live = Arc::new(LiveRecord::new(&plan(), "demo-1"));
    let (addr, _runtime, _stop) = serve(dashboard::live_router(Arc::clone(&live), None, None));
    // As many clients as are served, none reading a byte after its headers.
    let stalled: Vec<BufReader<TcpStream>> = (0..MAX_CLIENTS)
        .map(|_| {
            let mut s = BufReader::new(get(addr, "/api/events"));
            let status = read_until(&mut s, "HTTP/1.1");
            assert!(status.contains("200"), "{status}");
            s
        })
        .collect();
    // One more is refused until one of them goes.
    let mut refused = BufReader::new(get(addr, "/api/events"));
    let status = read_until(&mut refused, "HTTP/1.1");
    assert!(status.contains("503"), "{status}");

    // The engine's side: 20,000 events fold while every client stalls; each event takes
    // a short lock and never waits for a client.
    let folding = {
        let live = Arc::clone(&live);
        std::thread::spawn(move || {
            for i in 0..20_000u32 {
                let node = if i % 2 == 0 { "a" } else { "b" };
                live.event(&Event::now(EventKind::NodeProgress {
                    node: node.into(),
                    attempt: 1,
                    fraction: Some((i as f32 / 20_000.0).min(1.0)),
                    message: format!("step {i} {}", "x".repeat(200)),
                    metrics: serde_json::Map::new(),
                }));
            }
        })
    };
    folding.join().unwrap();
    assert_eq!(live.version(), 20_000);
    drop(stalled);
}

#[tokio::test]
async fn a_folder_of_runs_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let done = LiveRecord::new(&plan(), "demo-done");
    let mut record = done.snapshot();
    record.status = RunStatus::Succeeded;
    record.write(&dir.path().join("demo-done")).unwrap();
    let going = LiveRecord::new(&plan(), "demo-going");
    start(&going, "a");
    going
        .snapshot()
        .write_json(&dir.path().join("demo-going"))
        .unwrap();
    std::fs::create_dir_all(dir.path().join("broken")).unwrap();
    std::fs::write(dir.path().join("broken/run.json"), "{ not json").unwrap();
    std::fs::create_dir_all(dir.path().join("empty")).unwrap();

    let router = dashboard::folder_router(dir.path().to_path_buf());
    let (status, index) = send(&router, "GET", "/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        index.contains("data-run=\"demo-done\" data-status=\"succeeded\""),
        "{index}"
    );
    assert!(index.contains("data-run=\"demo-going\" data-status=\"running\""));
    assert!(
        index.contains("is not a medfusion run record"),
        "a broken record is named"
    );
    assert!(!index.contains("data-run=\"empty\""));

    // A finished run's page is its report; a running one's is live.
    let (status, page) = send(&router, "GET", "/runs/demo-done/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        page,
        medfusion_report::render(&RunRecord::read(&dir.path().join("demo-done")).unwrap())
    );
    let (_, page) = send(&router, "GET", "/runs/demo-going/", &[]).await;
    assert!(page.contains("new EventSource(EVENTS_URL)"));
    assert!(
        !page.contains("id=\"cancel\""),
        "a folder's dashboard has no actions"
    );
    let (status, json) = send(&router, "GET", "/runs/demo-going/api/run", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<Value>(&json).unwrap()["run_id"],
        "demo-going"
    );

    let (status, _) = send(&router, "GET", "/runs/demo-done", &[]).await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    for path in [
        "/runs/nope/",
        "/runs/../",
        "/runs/%2E%2E/",
        "/runs/..%2Fetc/",
        "/runs/empty/",
    ] {
        let (status, _) = send(&router, "GET", path, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[test]
fn a_client_that_stops_reading_is_disconnected() {
    // A response without end; its stream sends on `gone` when hyper drops it.
    struct Gone(std::sync::mpsc::Sender<()>);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = self.0.send(());
        }
    }
    let (gone, dropped) = std::sync::mpsc::channel::<()>();
    let gone = Arc::new(std::sync::Mutex::new(gone));
    let router = Router::new().route(
        "/endless",
        axum::routing::get(move || {
            let guard = Gone(gone.lock().unwrap().clone());
            async move {
                let chunks = futures_util::stream::unfold(guard, |guard| async move {
                    let chunk = axum::body::Bytes::from(vec![b'x'; 64 * 1024]);
                    Some((Ok::<_, std::convert::Infallible>(chunk), guard))
                });
                Body::from_stream(chunks)
            }
        }),
    );
    let (addr, _runtime, _stop) = serve(router);
    let mut stream = BufReader::new(get(addr, "/endless"));
    let status = read_until(&mut stream, "HTTP/1.1");
    assert!(status.contains("200"), "{status}");
    // The client reads no more: the server's writes wait, time out, and the response is
    // dropped.
    dropped
        .recv_timeout(Duration::from_mins(1))
        .expect("the stalled client is disconnected");
    drop(stream);
}
