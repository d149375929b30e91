//! `report.html`: a self-contained page (inline SVG and CSS, nothing fetched) rendered
//! from a run record.

mod charts;

use std::fmt::Write as _;

use serde_json::Value;

use crate::record::RunRecord;

/// Text made safe inside HTML.
fn esc(text: &str) -> String {
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

fn status_text(status: medfusion_exec::NodeStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(ToString::to_string))
        .unwrap_or_default()
}

const STYLE: &str = "
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
";

fn badge(status: &str) -> String {
    let c = charts::status_color(status);
    format!(
        "<span class=\"badge\" style=\"background: rgb({},{},{})\">{}</span>",
        c.0,
        c.1,
        c.2,
        esc(status)
    )
}

/// The whole page.
pub(crate) fn render(record: &RunRecord) -> String {
    let mut h = String::new();
    let status = serde_json::to_value(record.status)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>medfusion run {run}</title>\
         <style>{STYLE}</style></head><body><header><h1>Workflow <code>{wf}</code> {badge}</h1>\
         <div class=\"meta\">run {run} · started {start} · ended {end}</div></header><main>",
        run = esc(&record.run_id),
        wf = esc(&record.workflow),
        badge = badge(&status),
        start = esc(&record.started_at),
        end = esc(&record.finished_at),
    );
    if let Some(chain) = &record.error {
        let _ = write!(
            h,
            "<section><h2>Error</h2><div class=\"error\">{}</div></section>",
            esc(&chain.join("\n  caused by: "))
        );
    }
    let _ = write!(
        h,
        "<section><h2>Graph</h2>{}</section>",
        charts::dag(record)
    );
    nodes_table(&mut h, record);
    let _ = write!(
        h,
        "<section><h2>Timeline</h2>{}</section>",
        charts::gantt(record)
    );
    if !record.history.is_empty() {
        h.push_str("<section><h2>Training</h2>");
        for (node, history) in &record.history {
            h.push_str(&charts::training_curves(node, history));
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
    h.push_str("</section><p class=\"muted\">Rendered by medfusion from run.json.</p></main></body></html>\n");
    h
}

fn nodes_table(h: &mut String, record: &RunRecord) {
    h.push_str(
        "<section><h2>Nodes</h2><table><tr><th>node</th><th>type</th><th>status</th><th>attempts</th>\
         <th>duration</th><th>peak RSS</th><th>CPU mean / max</th><th>peak GPU memory</th></tr>",
    );
    for n in &record.nodes {
        let usage = n.usage.unwrap_or_default();
        let cpu = match (usage.cpu_mean_percent, usage.cpu_max_percent) {
            (Some(a), Some(b)) => format!("{a:.0}% / {b:.0}%"),
            _ => "–".into(),
        };
        let _ = write!(
            h,
            "<tr><td><b>{}</b></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
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
        if let Some(e) = &n.error {
            let _ = write!(
                h,
                "<tr><td></td><td colspan=\"7\" class=\"error\">{}</td></tr>",
                esc(&e.join(": "))
            );
        }
    }
    h.push_str("</table></section>");
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
