//! The report's charts, drawn with plotters as inline SVG.

use std::time::SystemTime;

use plotters::coord::Shift;
use plotters::prelude::*;
use serde_json::Value;

use crate::record::RunRecord;

/// Colours by node status.
pub(super) fn status_color(status: &str) -> RGBColor {
    match status {
        "succeeded" => RGBColor(46, 160, 67),
        "restored" => RGBColor(84, 160, 200),
        "failed" => RGBColor(218, 54, 51),
        "cancelled" => RGBColor(210, 153, 34),
        "running" => RGBColor(130, 80, 223),
        _ => RGBColor(150, 150, 150),
    }
}

const SERIES: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn svg(
    width: u32,
    height: u32,
    draw: impl FnOnce(DrawingArea<SVGBackend<'_>, Shift>) -> DrawResult,
) -> String {
    let mut out = String::new();
    {
        let area = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        let drawn = area
            .fill(&WHITE)
            .map_err(Into::into)
            .and_then(|()| draw(area.clone()));
        if let Err(e) = drawn.and_then(|()| area.present().map_err(Into::into)) {
            return format!("<p class=\"muted\">(chart unavailable: {e})</p>");
        }
    }
    out
}

fn status_of(record: &RunRecord, id: &str) -> String {
    record
        .nodes
        .iter()
        .find(|n| n.id == id)
        .and_then(|n| serde_json::to_value(n.status).ok())
        .and_then(|v| v.as_str().map(ToString::to_string))
        .unwrap_or_else(|| "pending".into())
}

/// The DAG: one column per parallel level, boxes coloured by status, edges with ports.
pub(super) fn dag(record: &RunRecord) -> String {
    let w = &record.definition;
    let n = w.nodes.len();
    let index = |id: &str| w.nodes.iter().position(|node| node.id == id);
    // One arrow per pair of nodes, labelled with every port pair it carries.
    let mut edges: Vec<(usize, usize, String)> = Vec::new();
    for e in &w.edges {
        let (Some(a), Some(b)) = (index(&e.from.node), index(&e.to.node)) else {
            continue;
        };
        let label = format!("{}→{}", e.from.port, e.to.port);
        match edges.iter_mut().find(|(x, y, _)| (*x, *y) == (a, b)) {
            Some((_, _, text)) => {
                text.push_str(", ");
                text.push_str(&label);
            }
            None => edges.push((a, b, label)),
        }
    }
    let order = medfusion_graph::Dag::new(n, edges.iter().map(|&(a, b, _)| (a, b)))
        .topological_order()
        .unwrap_or_else(|_| (0..n).collect());
    let mut level = vec![0usize; n];
    for &i in &order {
        for &(a, b, _) in &edges {
            if a == i {
                level[b] = level[b].max(level[a] + 1);
            }
        }
    }
    let depth = level.iter().max().map_or(1, |m| m + 1);
    let mut row = vec![0usize; n];
    let mut per_level = vec![0usize; depth];
    for &i in &order {
        row[i] = per_level[level[i]];
        per_level[level[i]] += 1;
    }
    let rows = per_level.iter().copied().max().unwrap_or(1).max(1);
    let (bw, bh, gx, gy) = (170i32, 46i32, 90i32, 28i32);
    let width = (depth as i32 * (bw + gx) + 20).max(300) as u32;
    let height = (rows as i32 * (bh + gy) + 20) as u32;
    let pos = |i: usize| {
        (
            10 + level[i] as i32 * (bw + gx),
            10 + row[i] as i32 * (bh + gy),
        )
    };
    svg(width, height, |area| {
        for (a, b, label) in &edges {
            let (ax, ay) = pos(*a);
            let (bx, by) = pos(*b);
            let from = (ax + bw, ay + bh / 2);
            let to = (bx, by + bh / 2);
            area.draw(&PathElement::new(
                vec![from, to],
                RGBColor(120, 120, 120).stroke_width(1),
            ))?;
            area.draw(&Polygon::new(
                vec![to, (to.0 - 7, to.1 - 4), (to.0 - 7, to.1 + 4)],
                RGBColor(120, 120, 120),
            ))?;
            let mid = (
                i32::midpoint(from.0, to.0) - 30,
                i32::midpoint(from.1, to.1) - 12,
            );
            area.draw(&Text::new(
                label.clone(),
                mid,
                ("sans-serif", 11).into_font().color(&RGBColor(90, 90, 90)),
            ))?;
        }
        for (i, node) in w.nodes.iter().enumerate() {
            let (x, y) = pos(i);
            let color = status_color(&status_of(record, &node.id));
            area.draw(&Rectangle::new(
                [(x, y), (x + bw, y + bh)],
                color.mix(0.15).filled(),
            ))?;
            area.draw(&Rectangle::new(
                [(x, y), (x + bw, y + bh)],
                color.stroke_width(2),
            ))?;
            area.draw(&Text::new(
                node.id.clone(),
                (x + 8, y + 8),
                ("sans-serif", 14).into_font().style(FontStyle::Bold),
            ))?;
            area.draw(&Text::new(
                node.node_type.clone(),
                (x + 8, y + 27),
                ("sans-serif", 11).into_font().color(&RGBColor(80, 80, 80)),
            ))?;
        }
        Ok(())
    })
}

fn parse_time(text: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(text.trim_end_matches('Z')).ok()
}

fn seconds_since(start: SystemTime, text: &str) -> Option<f64> {
    parse_time(text)?
        .duration_since(start)
        .ok()
        .map(|d| d.as_secs_f64())
}

/// The timeline: one bar per node from its start to its end.
pub(super) fn gantt(record: &RunRecord) -> String {
    let Some(start) = parse_time(&record.started_at) else {
        return String::new();
    };
    let bars: Vec<(String, f64, f64, String)> = record
        .nodes
        .iter()
        .filter_map(|n| {
            let s = seconds_since(start, n.started_at.as_deref()?)?;
            // A running node's bar reaches the record's last update.
            let e = n
                .finished_at
                .as_deref()
                .or((n.status == medfusion_exec::NodeStatus::Running)
                    .then_some(record.finished_at.as_str()))
                .and_then(|f| seconds_since(start, f))
                .unwrap_or(s);
            let status = serde_json::to_value(n.status).ok()?.as_str()?.to_string();
            Some((n.id.clone(), s, e.max(s), status))
        })
        .collect();
    if bars.is_empty() {
        return "<p class=\"muted\">No node ran in this run (all restored or skipped).</p>".into();
    }
    let total = bars.iter().map(|b| b.2).fold(0.0f64, f64::max).max(0.001) * 1.02;
    let height = (60 + bars.len() * 26).max(140) as u32;
    svg(900, height, |area| {
        let mut chart = ChartBuilder::on(&area)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(120)
            .build_cartesian_2d(0.0..total, 0.0..bars.len() as f64)?;
        let names: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .light_line_style(RGBColor(242, 242, 242))
            .x_desc("seconds since the run started")
            .y_labels(bars.len() * 2 + 1)
            .y_label_formatter(&|y| {
                let i = (*y - 0.5).round();
                if (y - 0.5 - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
                    names[names.len() - 1 - i as usize].clone()
                } else {
                    String::new()
                }
            })
            .draw()?;
        // The first node at the top.
        let top = bars.len() - 1;
        chart.draw_series(bars.iter().enumerate().map(|(i, (_, s, e, status))| {
            let y = (top - i) as f64;
            let e = if e - s < total / 400.0 {
                s + total / 400.0
            } else {
                *e
            };
            Rectangle::new(
                [(*s, y + 0.15), (e, y + 0.85)],
                status_color(status).filled(),
            )
        }))?;
        Ok(())
    })
}

fn line_chart(
    title: &str,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
    y_range: Option<(f64, f64)>,
    x_desc: &str,
) -> String {
    let points: Vec<(f64, f64)> = series.iter().flat_map(|(_, p)| p.iter().copied()).collect();
    if points.is_empty() {
        return String::new();
    }
    let (x0, x1) = points
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (y0, y1) = y_range.unwrap_or_else(|| {
        let (lo, hi) = points
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
        let pad = ((hi - lo) * 0.08).max(1e-3);
        ((lo - pad).max(0.0).min(lo), hi + pad)
    });
    let x1 = if x1 <= x0 { x0 + 1.0 } else { x1 };
    svg(440, 280, |area| {
        let mut chart = ChartBuilder::on(&area)
            .caption(title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(48)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        // Epochs are whole numbers: one tick each (up to 12).
        let epochs = x_desc == "epoch";
        let ticks = if epochs {
            ((x1 - x0) as usize + 1).min(12)
        } else {
            10
        };
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_labels(ticks)
            .x_label_formatter(&|x| {
                if epochs {
                    format!("{x:.0}")
                } else {
                    format!("{x}")
                }
            })
            .light_line_style(RGBColor(235, 235, 235))
            .draw()?;
        for (k, (name, pts)) in series.iter().enumerate() {
            let color = SERIES[k % SERIES.len()];
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
                .label(name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(200, 200, 200))
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
        Ok(())
    })
}

/// Loss and metric curves of one training node's per-epoch history.
pub(super) fn training_curves(node: &str, history: &Value) -> String {
    let Some(epochs) = history.as_array() else {
        return String::new();
    };
    let epoch = |e: &Value| e["epoch"].as_f64().map(|x| x + 1.0);
    let mut loss = vec![
        ("train loss".to_string(), Vec::new()),
        ("validation loss".to_string(), Vec::new()),
    ];
    let mut metric_names: Vec<String> = Vec::new();
    for e in epochs {
        if let Some(m) = e["val_metrics"].as_object() {
            for k in m.keys() {
                if !metric_names.contains(k)
                    && ["accuracy", "roc_auc", "f1", "sensitivity", "specificity"]
                        .contains(&k.as_str())
                {
                    metric_names.push(k.clone());
                }
            }
        }
    }
    let mut metrics: Vec<(String, Vec<(f64, f64)>)> = metric_names
        .iter()
        .map(|k| (k.clone(), Vec::new()))
        .collect();
    let mut lr = vec![("learning rate".to_string(), Vec::new())];
    for e in epochs {
        let Some(x) = epoch(e) else { continue };
        if let Some(v) = e["train_loss"].as_f64() {
            loss[0].1.push((x, v));
        }
        if let Some(v) = e["val_loss"].as_f64() {
            loss[1].1.push((x, v));
        }
        for (name, pts) in &mut metrics {
            if let Some(v) = e["val_metrics"][name.as_str()].as_f64() {
                pts.push((x, v));
            }
        }
        if let Some(v) = e["learning_rate"].as_f64() {
            lr[0].1.push((x, v));
        }
    }
    loss.retain(|(_, p)| !p.is_empty());
    format!(
        "<div class=\"charts\">{}{}{}</div>",
        line_chart(&format!("{node}: loss"), "loss", &loss, None, "epoch"),
        line_chart(
            &format!("{node}: validation metrics"),
            "",
            &metrics,
            Some((0.0, 1.0)),
            "epoch"
        ),
        line_chart(&format!("{node}: learning rate"), "", &lr, None, "epoch"),
    )
}

/// CPU, memory and GPU use over the run.
pub(super) fn resources(record: &RunRecord) -> String {
    let Some(start) = record
        .resources
        .first()
        .and_then(|s| parse_time(s["timestamp"].as_str()?))
    else {
        return "<p class=\"muted\">No resource samples were taken.</p>".into();
    };
    let t = |s: &Value| {
        s["timestamp"]
            .as_str()
            .and_then(|x| seconds_since(start, x))
    };
    let mut series: Vec<(String, Vec<(f64, f64)>)> = vec![
        ("CPU %".into(), Vec::new()),
        ("memory %".into(), Vec::new()),
    ];
    let mut gpu: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut heat: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let push = |set: &mut Vec<(String, Vec<(f64, f64)>)>, name: String, point| match set
        .iter_mut()
        .find(|(n, _)| *n == name)
    {
        Some((_, pts)) => pts.push(point),
        None => set.push((name, vec![point])),
    };
    for s in &record.resources {
        let Some(x) = t(s) else { continue };
        if let Some(v) = s["cpu_percent"].as_f64() {
            series[0].1.push((x, v));
        }
        if let Some(v) = s["memory_percent"].as_f64() {
            series[1].1.push((x, v));
        }
        for g in s["gpus"].as_array().into_iter().flatten() {
            let i = g["index"].as_u64().unwrap_or(0);
            for (label, key) in [
                ("util %", "utilization_percent"),
                ("memory %", "memory_percent"),
            ] {
                if let Some(v) = g[key].as_f64() {
                    push(&mut gpu, format!("GPU {i} {label}"), (x, v));
                }
            }
            for (label, key) in [("°C", "temperature_celsius"), ("W", "power_watts")] {
                if let Some(v) = g[key].as_f64() {
                    push(&mut heat, format!("GPU {i} {label}"), (x, v));
                }
            }
        }
    }
    let mut out = String::from("<div class=\"charts\">");
    out += &line_chart(
        "CPU and memory",
        "%",
        &series,
        Some((0.0, 100.0)),
        "seconds",
    );
    if !gpu.is_empty() {
        out += &line_chart("GPUs", "%", &gpu, Some((0.0, 100.0)), "seconds");
    }
    if !heat.is_empty() {
        out += &line_chart(
            "GPU temperature and power",
            "°C / W",
            &heat,
            None,
            "seconds",
        );
    }
    out += "</div>";
    if let Some(last) = record.resources.last() {
        out += &latest_sample(last);
    }
    out
}

/// The newest sample as a table, as nvidia-smi shows it: one row for the machine, one
/// per GPU.
fn latest_sample(s: &Value) -> String {
    use std::fmt::Write as _;
    let gb = |v: &Value| {
        v.as_f64()
            .map_or_else(|| "–".into(), |b| format!("{:.1} GB", b / 1e9))
    };
    let pct = |v: &Value| {
        v.as_f64()
            .map_or_else(|| "–".into(), |p| format!("{p:.0}%"))
    };
    let mut h = format!(
        "<table id=\"latest\"><tr><th>latest sample</th><th>device</th><th>utilisation</th><th>memory</th>\
         <th>temperature</th><th>power</th></tr><tr><td>{}</td><td>CPU</td><td>{}</td><td>{} / {} ({})</td><td>–</td><td>–</td></tr>",
        super::esc(s["timestamp"].as_str().unwrap_or("")),
        pct(&s["cpu_percent"]),
        gb(&s["memory_used_bytes"]),
        gb(&s["memory_total_bytes"]),
        pct(&s["memory_percent"]),
    );
    for g in s["gpus"].as_array().into_iter().flatten() {
        let _ = write!(
            h,
            "<tr><td></td><td>GPU {} {}</td><td>{}</td><td>{} / {} ({})</td><td>{}</td><td>{}</td></tr>",
            g["index"],
            super::esc(g["name"].as_str().unwrap_or("")),
            pct(&g["utilization_percent"]),
            gb(&g["memory_used_bytes"]),
            gb(&g["memory_total_bytes"]),
            pct(&g["memory_percent"]),
            g["temperature_celsius"]
                .as_f64()
                .map_or_else(|| "–".into(), |t| format!("{t:.0} °C")),
            match (g["power_watts"].as_f64(), g["power_limit_watts"].as_f64()) {
                (Some(p), Some(l)) => format!("{p:.0} / {l:.0} W"),
                (Some(p), None) => format!("{p:.0} W"),
                _ => "–".into(),
            },
        );
    }
    h + "</table>"
}

const COMPLETE: RGBColor = RGBColor(31, 119, 180);
const PRUNED: RGBColor = RGBColor(218, 54, 51);
const BEST: RGBColor = RGBColor(46, 160, 67);
const PRUNED_LINE: RGBColor = RGBColor(240, 150, 150);

/// A trial of a study: number, state, objective, and the monitored value per epoch.
type TrialPoints = (f64, String, Option<f64>, Vec<(f64, f64)>);

/// The trials of a study (`tune.classifier`'s `study` output).
fn study_trials(study: &Value) -> Vec<TrialPoints> {
    study["trials"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let values = t["values"]
                .as_array()?
                .iter()
                .enumerate()
                .filter_map(|(i, v)| Some((i as f64 + 1.0, v.as_f64()?)))
                .collect();
            Some((
                t["number"].as_f64()?,
                t["status"].as_str()?.to_string(),
                t["value"].as_f64(),
                values,
            ))
        })
        .collect()
}

fn value_range(points: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (lo, hi) = points.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    (lo <= hi).then(|| {
        let pad = ((hi - lo) * 0.08).max(1e-3);
        (lo - pad, hi + pad)
    })
}

/// A study's objective by trial: complete trials in blue, pruned ones in red (their value
/// when stopped), and the best so far as a green line.
pub(super) fn study_objective(node: &str, study: &Value) -> String {
    let trials = study_trials(study);
    let maximize = study["direction"].as_str() != Some("minimize");
    let Some((y0, y1)) = value_range(trials.iter().filter_map(|t| t.2)) else {
        return String::new();
    };
    let x1 = trials.iter().map(|t| t.0).fold(0.0, f64::max) + 1.0;
    let monitor = study["monitor"].as_str().unwrap_or("objective").to_string();
    svg(440, 280, |area| {
        let mut chart = ChartBuilder::on(&area)
            .caption(format!("{node}: {monitor} by trial"), ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(48)
            .build_cartesian_2d(-0.5..x1 - 0.5, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc("trial")
            .y_desc(monitor.as_str())
            .x_labels(12)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()?;
        let mut best: Option<f64> = None;
        let mut best_line = Vec::new();
        for (x, state, value, _) in &trials {
            let Some(v) = *value else { continue };
            if state == "complete" {
                best = Some(best.map_or(v, |b| if maximize { b.max(v) } else { b.min(v) }));
            }
            if let Some(b) = best {
                best_line.push((*x, b));
            }
        }
        chart
            .draw_series(LineSeries::new(best_line, BEST.stroke_width(2)))?
            .label("best so far")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BEST.stroke_width(2)));
        chart
            .draw_series(
                trials
                    .iter()
                    .filter(|t| t.1 == "complete")
                    .filter_map(|t| Some(Circle::new((t.0, t.2?), 4, COMPLETE.filled()))),
            )?
            .label("complete")
            .legend(|(x, y)| Circle::new((x + 8, y), 4, COMPLETE.filled()));
        chart
            .draw_series(
                trials
                    .iter()
                    .filter(|t| t.1 == "pruned")
                    .filter_map(|t| Some(Cross::new((t.0, t.2?), 4, PRUNED.stroke_width(2)))),
            )?
            .label("pruned")
            .legend(|(x, y)| Cross::new((x + 8, y), 4, PRUNED.stroke_width(2)));
        chart
            .configure_series_labels()
            .border_style(RGBColor(200, 200, 200))
            .background_style(WHITE.mix(0.85))
            .position(SeriesLabelPosition::LowerRight)
            .draw()?;
        Ok(())
    })
}

/// Every trial's monitored value per epoch: pruned trials in red ending in a cross, the
/// best trial in green.
pub(super) fn study_curves(node: &str, study: &Value) -> String {
    let trials = study_trials(study);
    let best = study["best_trial"].as_f64();
    let Some((y0, y1)) = value_range(trials.iter().flat_map(|t| t.3.iter().map(|p| p.1))) else {
        return String::new();
    };
    let x1 = trials
        .iter()
        .flat_map(|t| t.3.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let monitor = study["monitor"].as_str().unwrap_or("objective").to_string();
    svg(440, 280, |area| {
        let mut chart = ChartBuilder::on(&area)
            .caption(
                format!("{node}: {monitor} per epoch, all trials"),
                ("sans-serif", 15),
            )
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(48)
            .build_cartesian_2d(1.0..x1.max(2.0), y0..y1)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(monitor.as_str())
            .x_labels((x1 as usize).clamp(2, 12))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()?;
        for (x, state, _, pts) in &trials {
            let is_best = best == Some(*x);
            let color = match (is_best, state.as_str()) {
                (true, _) => BEST,
                (false, "pruned") => PRUNED_LINE,
                _ => COMPLETE,
            };
            let width = if is_best { 3 } else { 1 };
            chart.draw_series(LineSeries::new(
                pts.iter().copied(),
                color.stroke_width(width),
            ))?;
            if state == "pruned"
                && let Some(&last) = pts.last()
            {
                chart.draw_series([Cross::new(last, 4, PRUNED.stroke_width(2))])?;
            }
        }
        Ok(())
    })
}
