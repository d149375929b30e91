//! The live dashboard in a real browser: headless Chromium, driven over the DevTools
//! protocol, opens `medfusion run --dashboard` while a small training runs, sees a node
//! turn from running to finished and the loss curve gain points without a reload, is
//! refused the actions without the token, saves a checkpoint with it ("checkpoint now",
//! found on disk) and cancels the run.
//!
//! Needs Chromium (`/usr/bin/chromium`, Debian's `chromium` package). Without it the test
//! is skipped with a note, unless `MEDFUSION_REQUIRE_CHROMIUM=1` (set by CI) makes it fail.

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Lines of a child's stream, read on a thread of their own.
fn lines(stream: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a line containing `needle` and returns it; the lines seen go into `seen`.
fn wait_line(rx: &Receiver<String>, needle: &str, seen: &mut Vec<String>) -> String {
    let deadline = Instant::now() + Duration::from_mins(2);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no line with `{needle}`; saw:\n{}", seen.join("\n"));
}

/// A browser tab driven over the DevTools protocol, on the pipe Chromium opens with
/// `--remote-debugging-pipe` (it reads commands on descriptor 3 and writes replies and
/// events on descriptor 4, each message a JSON text ended by a NUL byte).
struct Browser {
    child: Child,
    commands: std::io::PipeWriter,
    replies: BufReader<std::io::PipeReader>,
    session: String,
    next_id: u64,
}

impl Browser {
    fn launch(binary: &str, profile: &Path) -> Browser {
        use std::os::fd::AsRawFd as _;
        use std::os::unix::process::CommandExt as _;
        let (their_commands, commands) = std::io::pipe().unwrap();
        let (replies, their_replies) = std::io::pipe().unwrap();
        let (read_fd, write_fd) = (their_commands.as_raw_fd(), their_replies.as_raw_fd());
        let mut command = Command::new(binary);
        command
            .args(common::HEADLESS)
            .args(["--remote-debugging-pipe", "--window-size=1200,1600"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: only fcntl and dup2 (async-signal-safe) run between fork and exec. The
        // ends are first copied above 10 (they may sit on 3 or 4 themselves), then onto 3
        // and 4, where dup2 leaves them open across exec.
        unsafe {
            command.pre_exec(move || {
                let read = libc::fcntl(read_fd, libc::F_DUPFD_CLOEXEC, 10);
                let write = libc::fcntl(write_fd, libc::F_DUPFD_CLOEXEC, 10);
                if read < 0 || write < 0 || libc::dup2(read, 3) < 0 || libc::dup2(write, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().unwrap();
        drop((their_commands, their_replies));
        let mut browser = Browser {
            child,
            commands,
            replies: BufReader::new(replies),
            session: String::new(),
            next_id: 0,
        };
        let target = browser.call(
            "Target.createTarget",
            &json!({ "url": "about:blank" }),
            false,
        );
        let target_id = target["targetId"].as_str().unwrap().to_string();
        let attached = browser.call(
            "Target.attachToTarget",
            &json!({ "targetId": target_id, "flatten": true }),
            false,
        );
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        browser
    }

    /// Sends one command and returns its result (events in between are skipped).
    fn call(&mut self, method: &str, params: &Value, in_page: bool) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params.clone() });
        if in_page {
            message["sessionId"] = json!(self.session);
        }
        let mut bytes = message.to_string().into_bytes();
        bytes.push(0);
        std::io::Write::write_all(&mut self.commands, &bytes).unwrap();
        loop {
            let mut reply = Vec::new();
            let read = self.replies.read_until(0, &mut reply).unwrap();
            assert!(read > 0, "the browser closed its DevTools pipe");
            reply.pop();
            let value: Value = serde_json::from_slice(&reply).unwrap();
            if value["id"] == id {
                assert!(value.get("error").is_none(), "{method}: {value}");
                return value["result"].clone();
            }
        }
    }

    fn goto(&mut self, url: &str) {
        self.call("Page.navigate", &json!({ "url": url }), true);
        self.wait_for("document.readyState === 'complete' && !!document.getElementById('page')");
    }

    /// The value of a JavaScript expression in the page.
    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            &json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            true,
        );
        assert!(
            result.get("exceptionDetails").is_none(),
            "`{expression}` threw: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Waits until `expression` is true in the page.
    fn wait_for(&mut self, expression: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if self.eval(&format!("!!({expression})")) == json!(true) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let page = self.eval("document.body ? document.body.innerText.slice(0, 3000) : ''");
        panic!("the page never showed `{expression}`; it shows:\n{page}");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `gate` finishes while the page is open; `train` trains until the run is cancelled.
const WORKFLOW: &str = "\
name: dash
seed: 7
nodes:
  - { id: gate, type: util.sleep, config: { duration: 4s } }
  - { id: data, type: dataset.synthetic, config: { samples: 200, image_size: 16 } }
  - id: train
    type: train.classifier
    config: { model: fusion_cnn, epochs: 100000, batch_size: 32, num_workers: 1, checkpoint_interval: 100000 }
edges:
  - { from: data.train, to: train.train_data }
  - { from: data.val, to: train.val_data }
";

const TOKEN: &str = "test-token-1234";

#[test]
fn the_dashboard_shows_a_run_live_and_its_actions_need_the_token() {
    let Some(binary) = common::browser_for_test() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("w.yaml"), WORKFLOW).unwrap();
    // The browser first, so that the page opens as soon as the run starts.
    let mut browser = Browser::launch(&binary, &dir.path().join("profile"));

    let mut run = Command::new(env!("CARGO_BIN_EXE_medfusion"))
        .args([
            "run",
            "w.yaml",
            "--out",
            "out",
            "--checkpoint-dir",
            "ck",
            "--max-checkpoints",
            "50",
            "--dashboard",
            "127.0.0.1:0",
            "--dashboard-token",
            TOKEN,
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = lines(run.stderr.take().unwrap());
    let mut seen = Vec::new();
    let line = wait_line(&stderr, "dashboard: http://", &mut seen);
    let url = line.split("dashboard: ").nth(1).unwrap().trim().to_string();
    assert!(url.ends_with(&format!("/?token={TOKEN}")), "{url}");
    let base = url.split("?token=").next().unwrap().to_string();

    // Without the token: the page shows the run, updated in place.
    browser.goto(&base);
    browser.eval("window.mark = 'not reloaded'");
    browser
        .wait_for("document.querySelector('[data-node=\"gate\"]')?.dataset.status === 'running'");
    browser
        .wait_for("document.querySelector('[data-node=\"gate\"]')?.dataset.status === 'succeeded'");
    browser
        .wait_for("Number(document.querySelector('[data-curves=\"train\"]')?.dataset.epochs) >= 1");
    let epochs =
        browser.eval("Number(document.querySelector('[data-curves=\"train\"]').dataset.epochs)");
    browser.wait_for(&format!(
        "Number(document.querySelector('[data-curves=\"train\"]').dataset.epochs) > {epochs}"
    ));
    assert_eq!(browser.eval("window.mark"), json!("not reloaded"));
    assert!(browser.eval("window.medfusionUpdates").as_u64().unwrap() >= 3);
    assert!(
        browser
            .eval("document.querySelector('[data-curves=\"train\"] svg') !== null")
            .as_bool()
            .unwrap(),
        "the loss curve is drawn"
    );

    // The actions are refused without the token, and the run goes on.
    for button in ["checkpoint", "cancel"] {
        browser.eval("document.getElementById('msg').dataset.status = ''");
        browser.eval(&format!("document.getElementById('{button}').click()"));
        browser.wait_for("document.getElementById('msg').dataset.status === '403'");
    }
    assert!(run.try_wait().unwrap().is_none(), "the run goes on");
    assert_eq!(
        browser.eval("document.querySelector('header').dataset.runStatus"),
        json!("running")
    );

    // With the token: a checkpoint now, found on disk.
    browser.goto(&url);
    browser.eval("document.getElementById('checkpoint').click()");
    browser.wait_for("document.getElementById('msg').dataset.status === '202'");
    browser.wait_for("document.querySelector('[data-reason=\"requested\"]') !== null");
    let id =
        browser.eval("document.querySelector('[data-reason=\"requested\"]').dataset.checkpoint");
    let id = id.as_str().unwrap();
    assert!(
        dir.path()
            .join("ck")
            .join(id)
            .join("manifest.json")
            .is_file(),
        "checkpoint {id} is on disk"
    );

    // And cancel: the run stops, saves its state, and the page shows the final record.
    browser.eval("document.getElementById('cancel').click()");
    browser.wait_for("document.getElementById('msg').dataset.status === '202'");
    let deadline = Instant::now() + Duration::from_mins(1);
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the run did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    seen.extend(stderr.try_iter());
    let log = seen.join("\n");
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("cancelled from the dashboard"), "{log}");
    browser.wait_for("document.querySelector('header').dataset.runStatus === 'cancelled'");
    assert_eq!(
        browser.eval("document.getElementById('conn').textContent"),
        json!("run ended")
    );
    let record: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/run.json")).unwrap()).unwrap();
    assert_eq!(record["status"], "cancelled");
    assert!(
        record["checkpoints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == id && c["reason"] == "requested"),
        "{}",
        record["checkpoints"]
    );
}

/// A GET of `path` on `addr`: the status line and the body.
fn http_get(addr: &str, path: &str) -> (String, String) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_mins(1)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_mins(1);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_dashboard_of_a_folder_shows_runs_going_and_ended() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("w.yaml"),
        "name: slow\nnodes:\n  - { id: wait, type: util.sleep, config: { duration: 8s } }\n",
    )
    .unwrap();
    let mut run = Command::new(env!("CARGO_BIN_EXE_medfusion"))
        .args(["run", "w.yaml", "--out", "runs/slow", "--no-checkpoints"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let live = dir.path().join("runs/slow/live.json");
    wait_until("live.json", || live.is_file());

    let mut server = Command::new(env!("CARGO_BIN_EXE_medfusion"))
        .args(["dashboard", "runs", "--addr", "127.0.0.1:0"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = lines(server.stderr.take().unwrap());
    let line = wait_line(&stderr, "http://", &mut Vec::new());
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_string();

    let (status, index) = http_get(&addr, "/");
    assert!(status.contains("200"), "{status}");
    assert!(
        index.contains("data-run=\"slow\" data-status=\"running\""),
        "{index}"
    );
    let (_, page) = http_get(&addr, "/runs/slow/");
    assert!(
        page.contains("EventSource"),
        "a live page while the run goes on"
    );

    assert!(run.wait().unwrap().success());
    assert!(!live.exists(), "the final record replaces live.json");
    let (_, index) = http_get(&addr, "/");
    assert!(
        index.contains("data-run=\"slow\" data-status=\"succeeded\""),
        "{index}"
    );
    let (_, page) = http_get(&addr, "/runs/slow/");
    assert!(
        !page.contains("EventSource"),
        "the report once the run ended"
    );
    let (status, _) = http_get(&addr, "/runs/..%2F..%2Fetc/");
    assert!(status.contains("404"), "{status}");

    // Ctrl-C stops it.
    // SAFETY: kill with a child's pid and a signal number.
    unsafe {
        libc::kill(server.id() as libc::pid_t, libc::SIGINT);
    }
    assert!(server.wait().unwrap().success());

    let missing = Command::new(env!("CARGO_BIN_EXE_medfusion"))
        .args(["dashboard", "nowhere"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no runs folder `nowhere`"));
}
