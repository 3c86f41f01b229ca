//! Charts as SVG, drawn on the server: the page needs no script and no network, and the
//! export writes the very same SVG.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::data::{number, text, PanelData};
use crate::spec::{Kind, Panel};

const W: f64 = 640.0;
const H: f64 = 280.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 48.0;
const COLORS: [&str; 8] = [
    "#2f6fb0", "#e07b39", "#3a9a5b", "#c84a4a", "#8463b5", "#8c6d46", "#d46fa8", "#6b7b8c",
];

/// Escapes text for SVG and HTML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Series of a chart: name → value per x label, x labels in order of first appearance.
struct Series {
    labels: Vec<String>,
    series: Vec<(String, Vec<f64>)>,
}

fn series_of(panel: &Panel, data: &PanelData) -> Series {
    let t = &data.table;
    let x = panel.x.as_deref().and_then(|x| t.column(x)).unwrap_or(0);
    let mut labels: Vec<String> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for row in &t.rows {
        let label = text(&row[x]);
        if !index.contains_key(&label) {
            index.insert(label.clone(), labels.len());
            labels.push(label);
        }
    }
    let mut series: Vec<(String, Vec<f64>)> = Vec::new();
    match panel.series.as_deref().and_then(|s| t.column(s)) {
        Some(split) => {
            let y = panel.y.first().and_then(|y| t.column(y)).unwrap_or(0);
            let mut by_name: BTreeMap<String, usize> = BTreeMap::new();
            for row in &t.rows {
                let name = text(&row[split]);
                let i = *by_name.entry(name.clone()).or_insert_with(|| {
                    series.push((name, vec![0.0; labels.len()]));
                    series.len() - 1
                });
                series[i].1[index[&text(&row[x])]] += number(&row[y]).unwrap_or(0.0);
            }
        }
        None => {
            for y_name in &panel.y {
                let y = t.column(y_name).unwrap_or(0);
                let mut values = vec![0.0; labels.len()];
                for row in &t.rows {
                    values[index[&text(&row[x])]] += number(&row[y]).unwrap_or(0.0);
                }
                series.push((y_name.clone(), values));
            }
        }
    }
    Series { labels, series }
}

/// A round axis maximum at or above `max`.
fn nice_max(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if step * magnitude >= max {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

fn tick_text(v: f64) -> String {
    if v >= 1_000_000.0 {
        format!("{:.1}M", v / 1_000_000.0)
    } else if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// The SVG of a chart panel (`line`, `bar`, `stacked_bar`).
pub fn svg(panel: &Panel, data: &PanelData) -> String {
    let s = series_of(panel, data);
    let n = s.labels.len().max(1) as f64;
    let stacked = panel.kind == Kind::StackedBar;
    let max = if stacked {
        (0..s.labels.len())
            .map(|i| s.series.iter().map(|(_, v)| v[i]).sum::<f64>())
            .fold(0.0, f64::max)
    } else {
        s.series
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .fold(0.0, f64::max)
    };
    let top = nice_max(max);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let y_of = |v: f64| TOP + plot_h - v / top * plot_h;
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"100%\" role=\"img\" aria-label=\"{}\" font-family=\"sans-serif\" font-size=\"11\">",
        escape(&panel.title)
    );
    // Grid and y ticks.
    for i in 0..=4 {
        let v = top * i as f64 / 4.0;
        let y = y_of(v);
        let _ = write!(
            out,
            "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">{}</text>",
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            tick_text(v)
        );
    }
    // X labels: as many as fit side by side, evenly picked.
    let widest = s
        .labels
        .iter()
        .map(|l| l.chars().count())
        .max()
        .unwrap_or(1) as f64;
    let fit = (plot_w / (widest * 6.2 + 10.0)).floor().max(1.0);
    let every = (s.labels.len() as f64 / fit).ceil().max(1.0) as usize;
    let slot = plot_w / n;
    for (i, label) in s.labels.iter().enumerate() {
        if i % every != 0 {
            continue;
        }
        let x = LEFT + slot * (i as f64 + 0.5);
        let _ = write!(
            out,
            "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{}</text>",
            H - BOTTOM + 16.0,
            escape(label)
        );
    }
    match panel.kind {
        Kind::Line => {
            for (k, (name, values)) in s.series.iter().enumerate() {
                let color = COLORS[k % COLORS.len()];
                let points: Vec<String> = values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| format!("{:.1},{:.1}", LEFT + slot * (i as f64 + 0.5), y_of(*v)))
                    .collect();
                let _ = write!(
                    out,
                    "<polyline class=\"series\" data-series=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
                    escape(name),
                    points.join(" ")
                );
            }
        }
        Kind::Bar | Kind::StackedBar => {
            let groups = if stacked { 1 } else { s.series.len().max(1) };
            let bar_w = (slot * 0.8) / groups as f64;
            for i in 0..s.labels.len() {
                let mut base = 0.0;
                for (k, (name, values)) in s.series.iter().enumerate() {
                    let v = values[i];
                    let color = COLORS[k % COLORS.len()];
                    let x = LEFT
                        + slot * i as f64
                        + slot * 0.1
                        + if stacked { 0.0 } else { bar_w * k as f64 };
                    let (y0, y1) = if stacked {
                        (y_of(base), y_of(base + v))
                    } else {
                        (y_of(0.0), y_of(v))
                    };
                    base += v;
                    let _ = write!(
                        out,
                        "<rect class=\"bar\" x=\"{x:.1}\" y=\"{y1:.1}\" width=\"{bar_w:.1}\" height=\"{:.1}\" fill=\"{color}\"><title>{}: {} {}</title></rect>",
                        (y0 - y1).max(0.0),
                        escape(&s.labels[i]),
                        escape(name),
                        tick_text(v)
                    );
                }
            }
        }
        Kind::Table | Kind::Number => {}
    }
    // Legend.
    let mut lx = LEFT;
    for (k, (name, _)) in s.series.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let _ = write!(
            out,
            "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{:.1}\" fill=\"#333\">{}</text>",
            H - 16.0,
            lx + 14.0,
            H - 7.0,
            escape(name)
        );
        lx += 24.0 + name.chars().count() as f64 * 6.5;
    }
    if s.labels.is_empty() {
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#888\">no data in this range</text>",
            W / 2.0,
            H / 2.0
        );
    }
    out.push_str("</svg>");
    out
}

/// A `number` panel: the value, and its change from the period before.
pub fn number_html(data: &PanelData) -> String {
    let value = data.table.rows.first().and_then(|r| r.first());
    let now = value.and_then(number);
    let before = data
        .previous
        .as_ref()
        .and_then(|p| p.rows.first())
        .and_then(|r| r.first())
        .and_then(number);
    let shown = value.map(text).unwrap_or_else(|| "–".into());
    let change = match (now, before) {
        (Some(n), Some(b)) if b != 0.0 => {
            let pct = (n - b) / b * 100.0;
            format!(
                "{}{pct:.0}% vs the period before ({})",
                if pct >= 0.0 { "+" } else { "" },
                tick_text(b)
            )
        }
        (Some(_), Some(_)) => "the period before: 0".to_string(),
        _ => "no earlier data".to_string(),
    };
    format!(
        "<div class=\"number\"><span class=\"value\">{}</span><span class=\"change\">{}</span></div>",
        escape(&shown),
        escape(&change)
    )
}

/// A `table` panel (also the fallback view of any result).
pub fn table_html(data: &PanelData) -> String {
    let t = &data.table;
    let mut out = String::from("<div class=\"table\"><table><thead><tr>");
    for c in &t.columns {
        let _ = write!(out, "<th>{}</th>", escape(c));
    }
    out.push_str("</tr></thead><tbody>");
    for row in t.rows.iter().take(500) {
        out.push_str("<tr>");
        for v in row {
            let _ = write!(out, "<td>{}</td>", escape(&text(v)));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    out
}
