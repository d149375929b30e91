//! Issue 16's bar: the dashboard costs the run nothing noticeable. A run of 10,000
//! `util.noop` nodes (the layered workload of WORKLOADS.md section 1, 2 worker threads,
//! events on, checkpoints off) four ways:
//!
//! - `events`: the engine alone;
//! - `live_record`: plus the [`LiveRecord`] every `medfusion run` keeps (the record the
//!   dashboard shows and the live.json it rewrites);
//! - `dashboard`: plus the dashboard served on the same runtime, no client;
//! - `dashboard_20_clients`: plus 20 clients connected to its event stream, reading every
//!   page it sends.
//!
//! A scripted benchmark, not criterion: on a 2-core machine one configuration after the
//! other drifts by 10-20% between groups, more than the effect measured, so the four run
//! in turn, round after round (`ROUNDS`, default 15), and the medians are compared. One
//! JSON line; the bar is `dashboard_20_clients` at most 1.10 times `events`.
//!
//!     cargo bench -p medfusion-bench --bench dashboard_overhead

#![allow(clippy::print_stdout)] // the result line

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use medfusion_bench::BenchDag;
use medfusion_exec::{Engine, EventSink, Registry, RunOptions};
use medfusion_graph::{Format, Plan, Workflow, validate};
use medfusion_report::{LiveRecord, dashboard};

const CLIENTS: usize = 20;
const CONFIGS: [&str; 4] = ["events", "live_record", "dashboard", "dashboard_20_clients"];

fn plan(registry: &Registry, dag: &BenchDag) -> Plan {
    let yaml = dag.noop_workflow();
    let workflow = Workflow::parse(&yaml, Format::Yaml).expect("workload parses");
    validate(workflow, registry.catalog()).expect("workload validates")
}

/// A client of the event stream, connected (its first page arrived), that reads everything
/// until the stream ends; the thread returns the bytes it read.
fn client(addr: SocketAddr) -> std::thread::JoinHandle<u64> {
    let mut stream = TcpStream::connect(addr).expect("the dashboard accepts");
    stream
        .set_read_timeout(Some(Duration::from_mins(2)))
        .unwrap();
    std::io::Write::write_fmt(
        &mut stream,
        format_args!("GET /api/events HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    while !line.starts_with("event: update") {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "no first page");
    }
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        total
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; a filter naming another benchmark skips this one.
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if filter.is_some_and(|f| !"dashboard_overhead".contains(&f)) {
        return;
    }
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(15);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let registry = Registry::with_builtins();
    let dag: BenchDag = medfusion_bench::read_json("dags/layered-10000.json");
    let plan = plan(&registry, &dag);
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); CONFIGS.len()];
    let mut bytes = Vec::new();
    for _ in 0..rounds {
        for (config, samples) in times.iter_mut().enumerate() {
            let mut builder = Engine::builder(registry.clone()).max_parallel(1024);
            let live = Arc::new(LiveRecord::new(&plan, "bench"));
            if config >= 1 {
                builder = builder.subscribe(Arc::clone(&live) as Arc<dyn EventSink>);
            }
            let engine = builder.build();
            let stop = Arc::new(tokio::sync::Notify::new());
            let mut clients = Vec::new();
            if config >= 2 {
                let listener = runtime.block_on(dashboard::bind("127.0.0.1:0")).unwrap();
                let addr = listener.local_addr().unwrap();
                let stopped = Arc::clone(&stop);
                runtime.spawn(dashboard::serve(
                    listener,
                    dashboard::live_router(Arc::clone(&live), None, None),
                    async move { stopped.notified().await },
                    dashboard::ServeOptions::default(),
                ));
                if config == 3 {
                    clients = (0..CLIENTS).map(|_| client(addr)).collect();
                }
            }
            let start = Instant::now();
            let report = runtime.block_on(engine.run(plan.clone(), RunOptions::default()));
            samples.push(start.elapsed().as_secs_f64() * 1e3);
            assert!(report.is_success());
            // The run's end, as `medfusion run` does it: the final page, then the server stops.
            live.finish(live.snapshot());
            stop.notify_one();
            for c in clients {
                bytes.push(c.join().unwrap());
            }
        }
    }
    let medians: Vec<f64> = times.iter().cloned().map(median).collect();
    let mut line = serde_json::json!({
        "benchmark": "dashboard_overhead",
        "workload": "layered-10000 util.noop",
        "rounds": rounds,
        "clients": CLIENTS,
        "bytes_per_client_median": median(bytes.iter().map(|&b| b as f64).collect()),
        "ratio_dashboard_20_clients_to_events": medians[3] / medians[0],
        "ratio_dashboard_20_clients_to_live_record": medians[3] / medians[1],
    });
    for (name, m) in CONFIGS.iter().zip(&medians) {
        line[format!("{name}_median_ms")] = serde_json::json!(m);
    }
    println!("{line}");
}
