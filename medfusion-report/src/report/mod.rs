//! `report.html`: a self-contained page (inline SVG and CSS, nothing fetched) rendered
//! from a run record. The live dashboard serves the same page with a toolbar and a script
//! that swaps in the newly rendered body on each update.

mod charts;

use std::fmt::Write as _;

use serde_json::Value;

use crate::record::RunRecord;

/// Text made safe inside HTML.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn fmt_bytes(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "–".into(), |b| format!("{:.0} MB", b as f64 / 1e6))
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".into(), |x| format!("{x:.digits$}"))
}

pub(crate) fn status_text(status: impl serde::Serialize) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(ToString::to_string))
        .unwrap_or_default()
}

pub(crate) const STYLE: &str = "
body { font-family: -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif; margin: 0; color: #1f2328; background: #f6f8fa; }
header { background: #24292f; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header .meta { color: #c9d1d9; font-size: 14px; }
main { padding: 8px 32px 40px; }
section { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: 16px 20px; margin: 18px 0; overflow-x: auto; }
h2 { font-size: 17px; margin: 0 0 12px; }
table { border-collapse: collapse; font-size: 14px; }
th, td { padding: 6px 12px; border-bottom: 1px solid #eaeef2; text-align: right; }
th { background: #f6f8fa; } td:nth-child(-n+2), th:nth-child(-n+2) { text-align: left; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 12px; color: #fff; font-size: 13px; font-weight: 600; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
.muted { color: #656d76; }
.error { color: #cf222e; white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 13px; }
.cm td { text-align: center; min-width: 56px; }
.bar { display: inline-block; width: 90px; height: 8px; background: #eaeef2; border-radius: 4px; vertical-align: middle; margin-right: 6px; }
.bar > span { display: block; height: 8px; background: rgb(130,80,223); border-radius: 4px; }
.log { font-family: ui-monospace, monospace; font-size: 12px; white-space: pre-wrap; max-height: 320px; overflow-y: auto; margin: 0; }
.log .warning { color: #9a6700; } .log .error { color: #cf222e; }
#live { position: sticky; top: 0; z-index: 2; background: #32383f; color: #fff; padding: 8px 32px; font-size: 14px; display: flex; gap: 12px; align-items: center; }
#live button { font: inherit; padding: 3px 12px; border-radius: 6px; border: 1px solid #d0d7de; background: #f6f8fa; cursor: pointer; }
#live button:disabled { opacity: 0.5; cursor: default; }
#live .msg { color: #c9d1d9; }
";

/// Nodes past this many are summarised instead of drawn (graph, timeline) or listed in
/// full (the nodes table): a page of 10,000 boxes shows nothing and costs seconds.
pub(crate) const MAX_DRAWN: usize = 300;
/// The most rows of the nodes table; running and failed nodes come first.
const MAX_ROWS: usize = 500;

pub(crate) fn badge(status: &str) -> String {
    let c = charts::status_color(status);
    format!(
        "<span class=\"badge\" style=\"background: rgb({},{},{})\">{}</span>",
        c.0,
        c.1,
        c.2,
        esc(status)
    )
}

/// How the live page reaches its server.
#[derive(Debug, Clone)]
pub struct LiveControls {
    /// Where the page listens for updates (server-sent events), relative to the page.
    pub events_url: String,
    /// Whether the page shows the "checkpoint now" and "cancel run" buttons.
    pub actions: bool,
}

const SCRIPT: &str = r"
(function () {
  const token = new URLSearchParams(location.search).get('token') || '';
  const page = document.getElementById('page');
  const conn = document.getElementById('conn');
  const msg = document.getElementById('msg');
  const buttons = Array.from(document.querySelectorAll('#live button'));
  window.medfusionUpdates = 0;
  const events = new EventSource(EVENTS_URL);
  events.onopen = () => { conn.textContent = 'live'; };
  events.onerror = () => { conn.textContent = 'reconnecting…'; };
  events.addEventListener('update', (e) => {
    page.innerHTML = e.data;
    window.medfusionUpdates += 1;
  });
  events.addEventListener('end', () => {
    events.close();
    conn.textContent = 'run ended';
    buttons.forEach((b) => { b.disabled = true; });
  });
  async function act(path) {
    msg.textContent = '…';
    try {
      const r = await fetch(path, { method: 'POST', headers: token ? { 'X-Medfusion-Token': token } : {} });
      const text = await r.text();
      msg.dataset.status = String(r.status);
      msg.textContent = r.ok ? text : r.status + ': ' + text;
    } catch (err) {
      msg.dataset.status = 'error';
      msg.textContent = String(err);
    }
  }
  buttons.forEach((b) => { b.onclick = () => act(b.dataset.action); });
})();
";

/// The whole page: `report.html`.
pub fn render(record: &RunRecord) -> String {
    page(record, None)
}

/// The live page of a running run: the report's page with a toolbar and the script that
/// keeps it current.
pub fn render_live(record: &RunRecord, controls: &LiveControls) -> String {
    page(record, Some(controls))
}

fn page(record: &RunRecord, live: Option<&LiveControls>) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>medfusion run {run}</title>\
         <style>{STYLE}</style></head><body>",
        run = esc(&record.run_id),
    );
    if let Some(live) = live {
        h.push_str(
            "<div id=\"live\"><b>medfusion dashboard</b><span id=\"conn\">connecting…</span>",
        );
        if live.actions {
            h.push_str(
                "<button id=\"checkpoint\" data-action=\"api/checkpoint\">checkpoint now</button>\
                 <button id=\"cancel\" data-action=\"api/cancel\">cancel run</button>",
            );
        }
        h.push_str("<span id=\"msg\" class=\"msg\"></span></div>");
    }
    h.push_str("<div id=\"page\">");
    h.push_str(&body(record));
    h.push_str("</div>");
    if let Some(live) = live {
        let url = serde_json::to_string(&live.events_url).unwrap_or_else(|_| "\"\"".into());
        let _ = write!(
            h,
            "<script>const EVENTS_URL = {};{SCRIPT}</script>",
            url.replace('<', "\\u003c")
        );
    }
    h.push_str("</body></html>\n");
    h
}

/// The page's content (header and sections), which the live page swaps in on each update.
pub(crate) fn body(record: &RunRecord) -> String {
    let mut h = String::new();
    let status = status_text(record.status);
    let running = record.status == medfusion_exec::RunStatus::Running;
    let _ = write!(
        h,
        "<header data-run-status=\"{status}\"><h1>Workflow <code>{wf}</code> {badge}</h1>\
         <div class=\"meta\">run {run} · started {start} · {ended} {end}</div></header><main>",
        run = esc(&record.run_id),
        wf = esc(&record.workflow),
        badge = badge(&status),
        start = esc(&record.started_at),
        ended = if running { "updated" } else { "ended" },
        end = esc(&record.finished_at),
    );
    if let Some(chain) = &record.error {
        let _ = write!(
            h,
            "<section><h2>Error</h2><div class=\"error\">{}</div></section>",
            esc(&chain.join("\n  caused by: "))
        );
    }
    if record.nodes.len() > MAX_DRAWN {
        let _ = write!(
            h,
            "<section><h2>Graph</h2><p>{} nodes: {}. The graph is drawn for runs of up to {MAX_DRAWN} nodes.</p></section>",
            record.nodes.len(),
            status_counts(record)
        );
    } else {
        let _ = write!(
            h,
            "<section><h2>Graph</h2>{}</section>",
            charts::dag(record)
        );
    }
    nodes_table(&mut h, record);
    if record.nodes.len() <= MAX_DRAWN {
        let _ = write!(
            h,
            "<section><h2>Timeline</h2>{}</section>",
            charts::gantt(record)
        );
    }
    if !record.history.is_empty() {
        h.push_str("<section><h2>Training</h2>");
        for (node, history) in &record.history {
            let _ = write!(
                h,
                "<div data-curves=\"{}\" data-epochs=\"{}\">{}</div>",
                esc(node),
                history.as_array().map_or(0, Vec::len),
                charts::training_curves(node, history)
            );
        }
        h.push_str("</section>");
    }
    studies(&mut h, record);
    metrics(&mut h, record);
    let _ = write!(
        h,
        "<section><h2>Resources</h2>{}",
        charts::resources(record)
    );
    if record.alerts.is_empty() {
        h.push_str("<p class=\"muted\">No resource alerts.</p>");
    } else {
        h.push_str("<table><tr><th>time</th><th>level</th><th>alert</th></tr>");
        for a in &record.alerts {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&a.time),
                esc(&a.level),
                esc(&a.message)
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</section>");
    checkpoints(&mut h, record);
    if !record.log.is_empty() {
        h.push_str("<section><h2>Log</h2><pre class=\"log\">");
        for line in &record.log {
            let _ = writeln!(
                h,
                "<span class=\"{}\">{} {}</span>",
                esc(&line.level),
                esc(&line.time),
                esc(&line.message)
            );
        }
        h.push_str("</pre></section>");
    }
    h.push_str("<p class=\"muted\">Rendered by medfusion from run.json.</p></main>");
    h
}

/// `3 succeeded, 1 running, 6 pending`.
fn status_counts(record: &RunRecord) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for n in &record.nodes {
        let s = status_text(n.status);
        match counts.iter_mut().find(|(k, _)| *k == s) {
            Some((_, c)) => *c += 1,
            None => counts.push((s, 1)),
        }
    }
    counts
        .iter()
        .map(|(s, c)| format!("{c} {s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn checkpoints(h: &mut String, record: &RunRecord) {
    if record.checkpoints.is_empty() {
        return;
    }
    h.push_str("<section><h2>Checkpoints</h2><table id=\"checkpoints\"><tr><th>time</th><th>checkpoint</th><th>reason</th></tr>");
    for c in record.checkpoints.iter().rev() {
        let _ = write!(
            h,
            "<tr data-checkpoint=\"{id}\" data-reason=\"{reason}\"><td>{time}</td><td><code>{id}</code></td><td>{reason}</td></tr>",
            id = esc(&c.id),
            reason = esc(&c.reason),
            time = esc(&c.time),
        );
    }
    h.push_str("</table></section>");
}

/// A running node's progress: a bar, epoch, speed and time left.
fn progress_cell(p: &crate::NodeProgress) -> String {
    let mut parts = Vec::new();
    let count = |key: &str, of: &str| {
        let n = p.metrics.get(key).and_then(Value::as_u64)?;
        Some(match p.metrics.get(of).and_then(Value::as_u64) {
            Some(total) => format!("{key} {n}/{total}"),
            None => format!("{key} {n}"),
        })
    };
    parts.extend(count("epoch", "epochs"));
    parts.extend(count("batch", "batches"));
    if let Some(l) = p.metrics.get("loss").and_then(Value::as_f64) {
        parts.push(format!("loss {l:.4}"));
    }
    if let Some(r) = p.metrics.get("samples_per_sec").and_then(Value::as_f64) {
        parts.push(format!("{r:.0} samples/s"));
    }
    if let Some(eta) = p.eta_secs {
        parts.push(format!("ETA {}", fmt_secs(eta)));
    }
    if parts.is_empty() {
        parts.push(p.message.clone());
    }
    let bar = p.fraction.map_or_else(String::new, |f| {
        format!(
            "<span class=\"bar\" title=\"{pct:.0}%\"><span style=\"width: {pct:.0}%\"></span></span>",
            pct = f64::from(f.clamp(0.0, 1.0)) * 100.0
        )
    });
    format!("{bar}{}", esc(&parts.join(" · ")))
}

fn fmt_secs(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s / 60 % 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

fn nodes_table(h: &mut String, record: &RunRecord) {
    use medfusion_exec::NodeStatus;
    let live = record.nodes.iter().any(|n| n.progress.is_some());
    h.push_str(
        "<section><h2>Nodes</h2><table id=\"nodes\"><tr><th>node</th><th>type</th><th>status</th><th>attempts</th>\
         <th>duration</th><th>peak RSS</th><th>CPU mean / max</th><th>peak GPU memory</th>",
    );
    if live {
        h.push_str("<th>progress</th>");
    }
    h.push_str("</tr>");
    // Past MAX_ROWS, the nodes that need attention come first.
    let mut rows: Vec<&crate::NodeRecord> = record.nodes.iter().collect();
    if rows.len() > MAX_ROWS {
        rows.sort_by_key(|n| match n.status {
            NodeStatus::Running | NodeStatus::Failed | NodeStatus::Cancelled => 0,
            _ => 1,
        });
    }
    let hidden = rows.len().saturating_sub(MAX_ROWS);
    for n in rows.into_iter().take(MAX_ROWS) {
        let usage = n.usage.unwrap_or_default();
        let cpu = match (usage.cpu_mean_percent, usage.cpu_max_percent) {
            (Some(a), Some(b)) => format!("{a:.0}% / {b:.0}%"),
            _ => "–".into(),
        };
        let _ = write!(
            h,
            "<tr data-node=\"{}\" data-status=\"{}\"><td><b>{}</b></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            esc(&n.id),
            status_text(n.status),
            esc(&n.id),
            esc(&n.node_type),
            badge(&status_text(n.status)),
            n.attempts,
            n.duration_secs
                .map_or_else(|| "–".into(), |d| format!("{d:.2} s")),
            fmt_bytes(usage.peak_rss_bytes),
            cpu,
            fmt_bytes(usage.peak_gpu_memory_bytes),
        );
        if live {
            let _ = write!(
                h,
                "<td style=\"text-align: left\">{}</td>",
                n.progress.as_ref().map(progress_cell).unwrap_or_default()
            );
        }
        h.push_str("</tr>");
        if let Some(e) = &n.error {
            let _ = write!(
                h,
                "<tr><td></td><td colspan=\"7\" class=\"error\">{}</td></tr>",
                esc(&e.join(": "))
            );
        }
    }
    h.push_str("</table>");
    if hidden > 0 {
        let _ = write!(
            h,
            "<p class=\"muted\">… and {hidden} more nodes ({}); run.json lists them all.</p>",
            status_counts(record)
        );
    }
    h.push_str("</section>");
}

/// Each evaluated model: its metrics row and its confusion matrix.
/// Hyperparameter studies (`tune.classifier`): the objective by trial, every trial's curve,
/// the settings' importance and the trials table.
fn studies(h: &mut String, record: &RunRecord) {
    for n in &record.nodes {
        let Some(study) = n
            .outputs
            .get("study")
            .filter(|_| n.node_type == "tune.classifier")
        else {
            continue;
        };
        let trials = study["trials"].as_array().map_or(&[][..], Vec::as_slice);
        let count = |state: &str| trials.iter().filter(|t| t["status"] == state).count();
        let _ = write!(
            h,
            "<section><h2>Tuning: <code>{id}</code></h2><p>{n} trials ({complete} complete, {pruned} pruned, \
             {failed} failed), sampler <code>{sampler}</code>, pruner <code>{pruner}</code>; \
             {trained} of {budget} epochs trained. Best: trial {best} with {monitor} {value}.</p>\
             <div class=\"charts\">{objective}{curves}</div>",
            id = esc(&n.id),
            n = trials.len(),
            complete = count("complete"),
            pruned = count("pruned"),
            failed = count("failed"),
            sampler = esc(study["sampler"].as_str().unwrap_or("")),
            pruner = esc(study["pruner"].as_str().unwrap_or("")),
            trained = study["epochs_trained"].as_u64().unwrap_or(0),
            budget = study["epochs_per_trial"].as_u64().unwrap_or(0) * trials.len() as u64,
            best = study["best_trial"]
                .as_u64()
                .map_or_else(|| "–".into(), |b| b.to_string()),
            monitor = esc(study["monitor"].as_str().unwrap_or("")),
            value = fmt_opt(study["best_value"].as_f64(), 4),
            objective = charts::study_objective(&n.id, study),
            curves = charts::study_curves(&n.id, study),
        );
        if let Some(importance) = study["importance"].as_array().filter(|i| !i.is_empty()) {
            h.push_str("<h3>Importance of the settings</h3><table><tr><th>setting</th><th>importance</th></tr>");
            for pair in importance {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td></tr>",
                    esc(pair[0].as_str().unwrap_or("")),
                    fmt_opt(pair[1].as_f64(), 3)
                );
            }
            h.push_str("</table>");
        }
        let keys: Vec<&String> = trials
            .first()
            .and_then(|t| t["params"].as_object())
            .map(|p| p.keys().collect())
            .unwrap_or_default();
        h.push_str("<h3>Trials</h3><table><tr><th>trial</th><th>state</th><th>value</th><th>epochs</th><th>seconds</th>");
        for k in &keys {
            let _ = write!(h, "<th>{}</th>", esc(k));
        }
        h.push_str("</tr>");
        for t in trials {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
                t["number"],
                esc(t["status"].as_str().unwrap_or("")),
                fmt_opt(t["value"].as_f64(), 4),
                t["values"].as_array().map_or(0, Vec::len),
                fmt_opt(t["seconds"].as_f64(), 1),
            );
            for k in &keys {
                let v = &t["params"][k.as_str()];
                let text = match v {
                    Value::Number(x) => x
                        .as_f64()
                        .map_or_else(|| x.to_string(), |f| format!("{f:.4e}")),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let text = if v.is_i64() || v.is_u64() {
                    v.to_string()
                } else {
                    text
                };
                let _ = write!(h, "<td>{}</td>", esc(&text));
            }
            h.push_str("</tr>");
        }
        h.push_str("</table></section>");
    }
}

fn metrics(h: &mut String, record: &RunRecord) {
    if record.metrics.is_empty() {
        return;
    }
    h.push_str(
        "<section><h2>Metrics</h2><table><tr><th>evaluation</th><th>model</th><th>samples</th>\
         <th>accuracy</th><th>ROC AUC</th><th>sensitivity</th><th>specificity</th><th>precision</th><th>F1</th>\
         <th>size</th><th>latency b1 / b32</th></tr>",
    );
    let mut matrices = String::new();
    for (node, summary) in &record.metrics {
        let models: Vec<(String, &Value)> = match summary["models"].as_object() {
            Some(m) => m.iter().map(|(k, v)| (k.clone(), v)).collect(),
            None => vec![(String::new(), summary)],
        };
        let classes: Vec<String> = summary["classes"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        for (model, m) in models {
            let f = |k: &str| fmt_opt(m[k].as_f64(), 4);
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(node),
                esc(&model),
                m["samples"]
                    .as_u64()
                    .map_or_else(|| "–".into(), |s| s.to_string()),
                f("accuracy"),
                f("roc_auc"),
                f("sensitivity"),
                f("specificity"),
                f("precision"),
                f("f1"),
                m["size_bytes"]
                    .as_u64()
                    .map_or_else(|| "–".into(), |b| format!("{:.2} MB", b as f64 / 1e6)),
                match (
                    m["latency_ms"]["batch_1"].as_f64(),
                    m["latency_ms"]["batch_32"].as_f64()
                ) {
                    (Some(a), Some(b)) => format!("{a:.1} / {b:.1} ms"),
                    _ => "–".into(),
                },
            );
            if let Some(cm) = m["confusion_matrix"].as_array() {
                confusion(&mut matrices, &format!("{node} {model}"), cm, &classes);
            }
        }
    }
    h.push_str("</table>");
    if !matrices.is_empty() {
        let _ = write!(
            h,
            "<h2 style=\"margin-top:18px\">Confusion matrices</h2><div class=\"charts\">{matrices}</div>"
        );
    }
    h.push_str("</section>");
}

fn confusion(h: &mut String, title: &str, cm: &[Value], classes: &[String]) {
    let rows: Vec<Vec<u64>> = cm
        .iter()
        .map(|r| {
            r.as_array()
                .map(|c| c.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default()
        })
        .collect();
    let max = rows.iter().flatten().copied().max().unwrap_or(1).max(1);
    let name = |i: usize| classes.get(i).cloned().unwrap_or_else(|| i.to_string());
    let _ = write!(
        h,
        "<div><p><b>{}</b> (rows: true class, columns: predicted)</p><table class=\"cm\"><tr><th></th>",
        esc(title.trim())
    );
    for j in 0..rows.len() {
        let _ = write!(h, "<th>{}</th>", esc(&name(j)));
    }
    h.push_str("</tr>");
    for (i, row) in rows.iter().enumerate() {
        let _ = write!(h, "<tr><th>{}</th>", esc(&name(i)));
        for &v in row {
            let a = 0.08 + 0.8 * v as f64 / max as f64;
            let color = if a > 0.5 { "#fff" } else { "#1f2328" };
            let _ = write!(
                h,
                "<td style=\"background: rgba(31,119,180,{a:.2}); color: {color}\">{v}</td>"
            );
        }
        h.push_str("</tr>");
    }
    h.push_str("</table></div>");
}
