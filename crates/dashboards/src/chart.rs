//! Charts as SVG, drawn on the server: the page needs no script and no network, and the
//! export writes the very same marks.
//!
//! A chart is drawn for the width it gets without knowing it: the SVG has no `viewBox`,
//! so its text keeps its size. Marks are placed in percent of the width (bars, points,
//! labels) or drawn in a stretched inner SVG with strokes that do not scale (lines);
//! heights are in pixels. Which x labels show, and how far they are shortened, is worked
//! out for the narrowest width the panel can have in each layout tier of the page
//! ([`TIERS`]); the page's CSS shows each tier's labels.

use std::collections::BTreeMap;
use std::fmt::Write;

use observes_warehouse::SqlValue;

use crate::data::{number, text, PanelData, Params};
use crate::format::{date_label, granularity, instant, Granularity, NumberFormat};
use crate::spec::{Kind, Panel};

/// Okabe and Ito's palette: told apart with the common colour-vision deficiencies.
pub const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#6E6E6E", "#A08000",
];

/// The chart's height, its plot's top and height, in pixels.
const HEIGHT: f64 = 236.0;
const TOP: f64 = 10.0;
const PLOT_H: f64 = 196.0;
/// Space right of the plot, for the last label's overhang.
const RIGHT: f64 = 16.0;
/// Tick text: its size, and a generous width per character (DejaVu Sans' digits are
/// 0.64 em) so labels estimated to fit do fit.
pub const FONT_PX: f64 = 12.0;
const CHAR_PX: f64 = 7.8;
const LABEL_GAP: f64 = 12.0;
/// Series up to this long have their points marked.
const MARKED_POINTS: usize = 40;

/// The page's layout, shared with its CSS (`page.rs`).
pub(crate) const MAIN_MAX: f64 = 1400.0;
pub(crate) const MAIN_PAD: f64 = 12.0;
pub(crate) const GAP: f64 = 12.0;
pub(crate) const PANEL_PAD: f64 = 12.0;

/// A layout tier of the page: its class, the narrowest viewport in it, its grid columns.
#[derive(Debug, Clone, Copy)]
pub struct Tier {
    /// The class that x labels shown in this tier carry.
    pub class: &'static str,
    /// The narrowest viewport of the tier, in CSS pixels.
    pub min_viewport: f64,
    /// The grid's columns.
    pub columns: u8,
}

/// Wide screens (4 columns), tablets and small laptops (2), phones (1).
pub const TIERS: [Tier; 3] = [
    Tier {
        class: "ta",
        min_viewport: 1000.0,
        columns: 4,
    },
    Tier {
        class: "tb",
        min_viewport: 640.0,
        columns: 2,
    },
    Tier {
        class: "tc",
        min_viewport: 320.0,
        columns: 1,
    },
];

impl Tier {
    /// The narrowest inner width of a panel spanning `span` columns, in this tier.
    pub fn panel_width(&self, span: u8) -> f64 {
        let content = self.min_viewport.min(MAIN_MAX + 2.0 * MAIN_PAD) - 2.0 * MAIN_PAD;
        let columns = f64::from(self.columns);
        let column = (content - GAP * (columns - 1.0)) / columns;
        let span = f64::from(span.clamp(1, self.columns));
        column * span + GAP * (span - 1.0) - 2.0 * PANEL_PAD
    }
}

/// Escapes text for SVG and HTML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The series of a chart: one value (or none) per x label.
struct Series {
    keys: Vec<SqlValue>,
    labels: Vec<String>,
    granularity: Option<Granularity>,
    series: Vec<(String, Vec<Option<f64>>)>,
    format: NumberFormat,
    /// Rows in the result.
    rows: usize,
}

fn add(slot: &mut Option<f64>, v: Option<f64>) {
    if let Some(v) = v {
        *slot = Some(slot.unwrap_or(0.0) + v);
    }
}

fn series_of(panel: &Panel, data: &PanelData) -> Series {
    let t = &data.table;
    let x = panel.x.as_deref().and_then(|x| t.column(x)).unwrap_or(0);
    let mut keys: Vec<SqlValue> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    for row in &t.rows {
        let key = text(&row[x]);
        if let std::collections::btree_map::Entry::Vacant(slot) = index.entry(key) {
            slot.insert(keys.len());
            keys.push(row[x].clone());
        }
    }
    // Over time, the axis is the calendar: a day (month, hour) with no row is a gap in
    // its place, not left out.
    let (keys, place) = match fill_calendar(&keys) {
        Some((filled, place)) => (filled, place),
        None => {
            let place = (0..keys.len()).collect();
            (keys, place)
        }
    };
    let slot = |row: &[SqlValue]| place[index[&text(&row[x])]];
    let mut series: Vec<(String, Vec<Option<f64>>)> = Vec::new();
    let first_y = panel.y.first().map(String::as_str).unwrap_or_default();
    match panel.series.as_deref().and_then(|s| t.column(s)) {
        Some(split) => {
            let y = t.column(first_y).unwrap_or(0);
            let mut by_name: BTreeMap<String, usize> = BTreeMap::new();
            for row in &t.rows {
                let name = text(&row[split]);
                let i = *by_name.entry(name.clone()).or_insert_with(|| {
                    series.push((name, vec![None; keys.len()]));
                    series.len() - 1
                });
                add(&mut series[i].1[slot(row)], number(&row[y]));
            }
        }
        None => {
            for y_name in &panel.y {
                let y = t.column(y_name).unwrap_or(0);
                let mut values = vec![None; keys.len()];
                for row in &t.rows {
                    add(&mut values[slot(row)], number(&row[y]));
                }
                series.push((y_name.clone(), values));
            }
        }
    }
    let granularity = granularity(&keys);
    let labels = label_texts(&keys, granularity);
    Series {
        keys,
        labels,
        granularity,
        series,
        format: panel.format.of(first_y),
        rows: t.rows.len(),
    }
}

/// Slots a calendar axis may have, at most, and per key it has.
const CALENDAR_SLOTS: usize = 2000;
const SLOTS_PER_KEY: usize = 10;

/// Ascending instants with the days (months, steps of time) between them filled in: the
/// whole axis, and where each given key lands on it. `None`: not instants in order, or
/// too sparse to fill.
fn fill_calendar(keys: &[SqlValue]) -> Option<(Vec<SqlValue>, Vec<usize>)> {
    let g = granularity(keys)?;
    let times: Vec<_> = keys.iter().map(instant).collect::<Option<_>>()?;
    if times.len() < 2 || !times.windows(2).all(|w| w[0] < w[1]) {
        return None;
    }
    let finest = times.windows(2).map(|w| w[1] - w[0]).min()?;
    let step = |t: chrono::DateTime<chrono::Utc>| -> Option<chrono::DateTime<chrono::Utc>> {
        match g {
            Granularity::Month => t.checked_add_months(chrono::Months::new(1)),
            Granularity::Day => t.checked_add_days(chrono::Days::new(1)),
            Granularity::Time => t.checked_add_signed(finest),
        }
    };
    let limit = CALENDAR_SLOTS.min(times.len() * SLOTS_PER_KEY);
    let (mut axis, mut place) = (Vec::new(), Vec::with_capacity(times.len()));
    let mut t = times[0];
    for (i, want) in times.iter().enumerate() {
        while t < *want {
            axis.push(SqlValue::Timestamp(t.timestamp_micros()));
            t = step(t)?;
            if axis.len() > limit {
                return None;
            }
        }
        if t != *want {
            // Off the step (an hour skipped by a time zone, uneven times): as given.
            return None;
        }
        place.push(axis.len());
        axis.push(keys[i].clone());
        t = step(t)?;
    }
    Some((axis, place))
}

fn label_texts(keys: &[SqlValue], g: Option<Granularity>) -> Vec<String> {
    let Some(g) = g else {
        return keys.iter().map(text).collect();
    };
    let mut year = None;
    keys.iter()
        .filter_map(instant)
        .map(|t| {
            let y = chrono::Datelike::year(&t);
            let with_year = year != Some(y);
            year = Some(y);
            date_label(t, g, with_year)
        })
        .collect()
}

/// A round step of about `raw`, in the format's own units (minutes and hours for
/// durations).
fn nice_step(raw: f64, format: NumberFormat) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    if format == NumberFormat::Duration && raw >= 1.0 {
        const STEPS: [f64; 16] = [
            1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
            7200.0, 21600.0, 43200.0,
        ];
        if let Some(s) = STEPS.iter().find(|s| **s >= raw) {
            return *s;
        }
        return 86_400.0 * nice_step(raw / 86_400.0, NumberFormat::Number);
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// The y axis: its ticks, bottom to top.
fn y_ticks(lo: f64, hi: f64, format: NumberFormat) -> Vec<f64> {
    let (lo, hi) = if hi > lo { (lo, hi) } else { (lo, lo + 1.0) };
    let step = nice_step((hi - lo) / 4.0, format);
    let first = (lo / step).floor() * step;
    let last = (hi / step).ceil() * step;
    let count = ((last - first) / step).round().max(1.0) as usize;
    (0..=count).map(|i| first + step * i as f64).collect()
}

/// The x labels shown in a plot `width` px wide, with `left` px of margin before it and
/// `RIGHT` after: thinned or shortened so none overlaps, and none centred so near an end
/// that it would reach past the chart.
fn x_labels_for(
    labels: &[String],
    categorical: bool,
    width: f64,
    left: f64,
) -> Vec<Option<String>> {
    let n = labels.len().max(1);
    let slot = width / n as f64;
    let widest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(1);
    let px = |chars: usize| chars as f64 * CHAR_PX + LABEL_GAP;
    let (every, chars) = if px(widest) <= slot {
        (1, widest)
    } else if categorical && slot >= px(4) {
        (1, ((slot - LABEL_GAP) / CHAR_PX).floor() as usize)
    } else {
        let shown = if categorical { widest.min(8) } else { widest };
        let every = (px(shown) / slot).ceil().max(1.0) as usize;
        (every, shown)
    };
    labels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let label = (i % every == 0).then(|| shorten(l, chars))?;
            let centre = (i as f64 + 0.5) * slot;
            let half = label.chars().count() as f64 * CHAR_PX / 2.0;
            (centre - half >= -left && centre + half <= width + RIGHT).then_some(label)
        })
        .collect()
}

fn shorten(label: &str, chars: usize) -> String {
    if label.chars().count() <= chars {
        return label.to_string();
    }
    let mut out: String = label.chars().take(chars.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The panel's width in grid columns, as it is laid out.
pub fn span(panel: &Panel, data: &PanelData) -> u8 {
    if let Some(w) = panel.width {
        return w.clamp(1, 4);
    }
    match panel.kind {
        Kind::Table if data.table.columns.len() > 4 => 4,
        Kind::Table | Kind::Bar | Kind::Number => 2,
        Kind::Line | Kind::StackedBar => {
            let x = panel.x.as_deref().and_then(|x| data.table.column(x));
            let over_time =
                x.is_some_and(|x| granularity(data.table.rows.iter().map(|r| &r[x])).is_some());
            if over_time {
                4
            } else {
                2
            }
        }
    }
}

/// Why a chart with rows draws nothing, if it does not (`dashboard check` reports it).
pub fn draws_nothing(panel: &Panel, data: &PanelData) -> Option<String> {
    if !matches!(panel.kind, Kind::Line | Kind::Bar | Kind::StackedBar) {
        return None;
    }
    nothing_drawn(panel, &series_of(panel, data))
}

fn nothing_drawn(panel: &Panel, s: &Series) -> Option<String> {
    if s.rows == 0 || !drawn_series(panel, s).is_empty() {
        return None;
    }
    Some(format!(
        "its query returns {} rows but the chart draws nothing: no {} value in {}",
        s.rows,
        if panel.kind == Kind::Line {
            "numeric"
        } else {
            "non-zero"
        },
        panel.y.join(", ")
    ))
}

/// The series that leave a visible mark.
fn drawn_series<'a>(panel: &Panel, s: &'a Series) -> Vec<&'a str> {
    s.series
        .iter()
        .filter(|(_, values)| {
            values
                .iter()
                .flatten()
                .any(|v| v.is_finite() && (panel.kind == Kind::Line || *v != 0.0))
        })
        .map(|(name, _)| name.as_str())
        .collect()
}

/// A drawn chart: the SVG's marks and labels, and the margin its y labels need.
struct Drawn {
    body: String,
    left: f64,
}

fn draw(panel: &Panel, s: &Series, span: u8) -> Drawn {
    let n = s.labels.len().max(1);
    let stacked = panel.kind == Kind::StackedBar;
    let (mut lo, mut hi) = (0.0f64, 0.0f64);
    if stacked {
        for i in 0..s.labels.len() {
            let sum: f64 = s.series.iter().filter_map(|(_, v)| v[i]).sum();
            hi = hi.max(sum);
        }
    } else {
        for v in s.series.iter().flat_map(|(_, v)| v.iter().flatten()) {
            lo = lo.min(*v);
            hi = hi.max(*v);
        }
    }
    let ticks = y_ticks(lo, hi, s.format);
    let (bottom, top) = (ticks[0], ticks[ticks.len() - 1]);
    let y_of = |v: f64| TOP + PLOT_H - (v - bottom) / (top - bottom) * PLOT_H;
    let tick_texts: Vec<String> = ticks.iter().map(|v| s.format.tick(*v)).collect();
    let widest = tick_texts
        .iter()
        .map(|t| t.chars().count())
        .max()
        .unwrap_or(1);
    let left = (widest as f64 * CHAR_PX + 8.0).max(24.0);
    let pct = |i: f64| i / n as f64 * 100.0;
    let mut out = String::new();
    for (v, label) in ticks.iter().zip(&tick_texts) {
        let y = y_of(*v);
        let _ = write!(
            out,
            "<line x1=\"0\" x2=\"100%\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"{}\"/><text class=\"tick y\" x=\"-6\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            if *v == 0.0 { "#999" } else { "#e3e3e3" },
            y + 4.0,
            escape(label)
        );
    }
    // The x labels of each tier, one element per distinct text and place.
    let categorical = s.granularity.is_none();
    let per_tier: Vec<Vec<Option<String>>> = TIERS
        .iter()
        .map(|t| {
            x_labels_for(
                &s.labels,
                categorical,
                t.panel_width(span) - left - RIGHT,
                left,
            )
        })
        .collect();
    for i in 0..s.labels.len() {
        let mut shown: Vec<(&str, Vec<&str>)> = Vec::new();
        for (tier, labels) in TIERS.iter().zip(&per_tier) {
            if let Some(label) = &labels[i] {
                match shown.iter_mut().find(|(t, _)| t == label) {
                    Some((_, classes)) => classes.push(tier.class),
                    None => shown.push((label, vec![tier.class])),
                }
            }
        }
        for (label, classes) in shown {
            let _ = write!(
                out,
                "<text class=\"tick x {}\" x=\"{:.3}%\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                classes.join(" "),
                pct(i as f64 + 0.5),
                TOP + PLOT_H + 18.0,
                escape(label)
            );
        }
    }
    let hover = |i: usize, name: &str, v: f64| {
        let label = match (s.granularity, instant(&s.keys[i])) {
            (Some(g), Some(t)) => date_label(t, g, true),
            _ => s.labels[i].clone(),
        };
        if s.series.len() > 1 {
            format!("{label} · {name}: {}", s.format.show(v))
        } else {
            format!("{label}: {}", s.format.show(v))
        }
    };
    match panel.kind {
        Kind::Line => {
            let mut lines = String::new();
            let mut points = String::new();
            for (k, (name, values)) in s.series.iter().enumerate() {
                let color = PALETTE[k % PALETTE.len()];
                let mut path = String::new();
                let mut pen_down = false;
                for (i, v) in values.iter().enumerate() {
                    match v {
                        Some(v) => {
                            let _ = write!(
                                path,
                                "{}{:.2} {:.1} ",
                                if pen_down { "L" } else { "M" },
                                (i as f64 + 0.5) / n as f64 * 1000.0,
                                y_of(*v) - TOP
                            );
                            pen_down = true;
                        }
                        None => pen_down = false,
                    }
                }
                let _ = write!(
                    lines,
                    "<path class=\"series\" data-series=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" vector-effect=\"non-scaling-stroke\" d=\"{}\"/>",
                    escape(name),
                    path.trim_end()
                );
                let count = values.iter().flatten().count();
                for (i, v) in values.iter().enumerate() {
                    let Some(v) = v else { continue };
                    let alone = (i == 0 || values[i - 1].is_none())
                        && values.get(i + 1).is_none_or(|n| n.is_none());
                    // A long line is not dotted, but each point still tells its value
                    // under the pointer (a mark without a series: it draws nothing).
                    let mark = if count <= MARKED_POINTS || alone {
                        format!(
                            "class=\"point\" data-series=\"{}\" r=\"3.5\" fill=\"{color}\"",
                            escape(name)
                        )
                    } else {
                        "class=\"hover\" r=\"5\" fill=\"transparent\"".to_string()
                    };
                    let _ = write!(
                        points,
                        "<circle {mark} cx=\"{:.3}%\" cy=\"{:.1}\"><title>{}</title></circle>",
                        pct(i as f64 + 0.5),
                        y_of(*v),
                        escape(&hover(i, name, *v))
                    );
                }
            }
            let _ = write!(
                out,
                "<svg y=\"{TOP}\" width=\"100%\" height=\"{PLOT_H}\" viewBox=\"0 0 1000 {PLOT_H}\" preserveAspectRatio=\"none\" overflow=\"visible\">{lines}</svg>{points}"
            );
        }
        Kind::Bar | Kind::StackedBar => {
            let groups = if stacked { 1 } else { s.series.len().max(1) };
            let bar = 80.0 / groups as f64;
            for i in 0..s.labels.len() {
                let mut base = 0.0;
                for (k, (name, values)) in s.series.iter().enumerate() {
                    let Some(v) = values[i] else { continue };
                    let color = PALETTE[k % PALETTE.len()];
                    let x = i as f64 + 0.1 + if stacked { 0.0 } else { bar / 100.0 * k as f64 };
                    let (y0, y1) = if stacked {
                        (y_of(base), y_of(base + v))
                    } else {
                        (y_of(0.0), y_of(v))
                    };
                    base += v;
                    let _ = write!(
                        out,
                        "<rect class=\"bar\" data-series=\"{}\" x=\"{:.3}%\" y=\"{:.1}\" width=\"{:.3}%\" height=\"{:.1}\" fill=\"{color}\"><title>{}</title></rect>",
                        escape(name),
                        pct(x),
                        y0.min(y1),
                        bar / n as f64,
                        (y0 - y1).abs(),
                        escape(&hover(i, name, v))
                    );
                }
            }
        }
        Kind::Table | Kind::Number => {}
    }
    Drawn { body: out, left }
}

fn series_attribute(names: &[&str]) -> String {
    escape(&serde_json::to_string(names).unwrap_or_default())
}

/// The HTML of a chart panel (`line`, `bar`, `stacked_bar`): its legend and its SVG, or
/// why there is nothing to draw.
pub fn chart_html(panel: &Panel, data: &PanelData, params: &Params) -> String {
    let s = series_of(panel, data);
    if s.rows == 0 {
        return format!(
            "<p class=\"empty\">No data between {} and {}</p>",
            params.start.format("%b %-d, %Y"),
            params.end.format("%b %-d, %Y")
        );
    }
    if let Some(why) = nothing_drawn(panel, &s) {
        return format!("<p class=\"empty\">Nothing to draw: {}</p>", escape(&why));
    }
    let mut out = String::new();
    if s.series.len() > 1 {
        out.push_str("<ul class=\"legend\">");
        for (k, (name, _)) in s.series.iter().enumerate() {
            let _ = write!(
                out,
                "<li><i style=\"background:{}\"></i>{}</li>",
                PALETTE[k % PALETTE.len()],
                escape(name)
            );
        }
        out.push_str("</ul>");
    }
    out.push_str(&svg_of(panel, data, &s));
    out
}

/// The SVG element of a chart panel, as the page shows it (its width is the panel's).
pub fn svg(panel: &Panel, data: &PanelData) -> String {
    svg_of(panel, data, &series_of(panel, data))
}

fn svg_of(panel: &Panel, data: &PanelData, s: &Series) -> String {
    let drawn = draw(panel, s, span(panel, data));
    format!(
        "<svg class=\"chart\" height=\"{HEIGHT}\" overflow=\"visible\" style=\"margin-left:{left:.0}px;width:calc(100% - {:.0}px)\" role=\"img\" aria-label=\"{}\" data-series=\"{}\" font-family=\"sans-serif\" font-size=\"{FONT_PX}\" fill=\"#444\">{}</svg>",
        drawn.left + RIGHT,
        escape(&panel.title),
        series_attribute(&drawn_series(panel, s)),
        drawn.body,
        left = drawn.left,
    )
}

/// A chart as a standalone SVG file of `width` pixels, its legend included (the export).
pub fn standalone_svg(panel: &Panel, data: &PanelData, width: f64) -> String {
    let s = series_of(panel, data);
    let drawn = draw(panel, &s, 4);
    let mut legend = String::new();
    let mut lx = drawn.left;
    if s.series.len() > 1 {
        for (k, (name, _)) in s.series.iter().enumerate() {
            let _ = write!(
                legend,
                "<rect x=\"{lx:.1}\" y=\"6\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.1}\" y=\"15\">{}</text>",
                PALETTE[k % PALETTE.len()],
                lx + 14.0,
                escape(name)
            );
            lx += 28.0 + name.chars().count() as f64 * CHAR_PX;
        }
    }
    let legend_h = if legend.is_empty() { 0.0 } else { 24.0 };
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{}\" role=\"img\" aria-label=\"{}\" font-family=\"sans-serif\" font-size=\"{FONT_PX}\" fill=\"#444\"><style>.x:not(.ta){{display:none}}</style><rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>{legend}<svg x=\"{:.0}\" y=\"{legend_h}\" width=\"{:.0}\" height=\"{HEIGHT}\" overflow=\"visible\">{}</svg></svg>",
        HEIGHT + legend_h,
        escape(&panel.title),
        drawn.left,
        width - drawn.left - RIGHT,
        drawn.body
    )
}

/// A `number` panel's figures: what its tile, its alert and its summary show.
#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    /// The value as a number, if it is one.
    pub value: Option<f64>,
    /// The value as the tile shows it (`24.1%`, `1,204`, `–` for none).
    pub shown: String,
    /// The value as the warehouse returned it.
    pub raw: String,
    /// The change from the period before (`▲ 12% vs the period before (1,075)`).
    pub change: String,
    /// How the panel's value reads.
    pub format: NumberFormat,
}

/// The figures of a `number` panel's result.
pub fn tile(panel: &Panel, data: &PanelData) -> Tile {
    let column = data.table.columns.first().map(String::as_str).unwrap_or("");
    let format = panel.format.of(column);
    let value = data.table.rows.first().and_then(|r| r.first());
    let now = value.and_then(number);
    let before = data
        .previous
        .as_ref()
        .and_then(|p| p.rows.first())
        .and_then(|r| r.first())
        .and_then(number);
    let shown = match (value, now) {
        (_, Some(n)) => format.show(n),
        (Some(v), None) if *v != SqlValue::Null => text(v),
        _ => "–".into(),
    };
    let arrow = |d: f64| {
        if d > 0.0 {
            "▲"
        } else if d < 0.0 {
            "▼"
        } else {
            "="
        }
    };
    let change = match (now, before) {
        // A share changes by points: 40% after 100% is 60 points less, not 60% less.
        (Some(n), Some(b)) if format == NumberFormat::Percent => format!(
            "{} {} pts vs the period before ({})",
            arrow(n - b),
            crate::format::grouped((n - b).abs(), 1),
            format.show(b)
        ),
        (Some(n), Some(b)) if b != 0.0 => {
            let pct = (n - b) / b.abs() * 100.0;
            format!(
                "{} {}% vs the period before ({})",
                arrow(pct),
                crate::format::grouped(pct.abs(), 0),
                format.show(b)
            )
        }
        (Some(_), Some(_)) => "the period before: 0".to_string(),
        _ => "no earlier data".to_string(),
    };
    Tile {
        value: now,
        shown,
        raw: value.map(text).unwrap_or_default(),
        change,
        format,
    }
}

/// A `number` panel: a tile with the value, and its change from the period before.
pub fn number_html(panel: &Panel, data: &PanelData) -> String {
    let t = tile(panel, data);
    format!(
        "<div class=\"number\"><span class=\"value\" title=\"{}\">{}</span><span class=\"change\">{}</span></div>",
        escape(&t.raw),
        escape(&t.shown),
        escape(&t.change)
    )
}

/// Rows a table panel shows; the CSV has them all.
const TABLE_ROWS: usize = 500;

/// A `table` panel (also the fallback view of any result): numbers formatted and aligned
/// right.
pub fn table_html(panel: &Panel, data: &PanelData) -> String {
    let t = &data.table;
    let numeric: Vec<bool> = (0..t.columns.len())
        .map(|c| {
            t.rows
                .iter()
                .any(|r| matches!(r[c], SqlValue::Int(_) | SqlValue::Float(_)))
        })
        .collect();
    let mut out = String::from("<div class=\"table\"><table><thead><tr>");
    for (c, name) in t.columns.iter().enumerate() {
        let _ = write!(
            out,
            "<th{}>{}</th>",
            if numeric[c] { " class=\"n\"" } else { "" },
            escape(name)
        );
    }
    out.push_str("</tr></thead><tbody>");
    for row in t.rows.iter().take(TABLE_ROWS) {
        out.push_str("<tr>");
        for (c, v) in row.iter().enumerate() {
            let cell = match v {
                SqlValue::Int(_) | SqlValue::Float(_) => number(v)
                    .map(|n| panel.format.of(&t.columns[c]).show(n))
                    .unwrap_or_default(),
                _ => text(v),
            };
            let _ = write!(
                out,
                "<td{}>{}</td>",
                if numeric[c] { " class=\"n\"" } else { "" },
                escape(&cell)
            );
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    if t.rows.len() > TABLE_ROWS {
        let _ = write!(
            out,
            "<p class=\"note\">The first {TABLE_ROWS} of {} rows; the CSV has them all.</p>",
            crate::format::grouped(t.rows.len() as f64, 0)
        );
    } else if t.rows.is_empty() {
        out.push_str("<p class=\"empty\">No rows.</p>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Table;

    fn panels(toml: &str) -> Vec<Panel> {
        crate::spec::Dashboard::parse("t", std::path::Path::new("t.toml"), toml)
            .unwrap()
            .panels
    }

    fn one(columns: &[&str], rows: Vec<Vec<SqlValue>>) -> Table {
        Table {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows,
        }
    }

    #[test]
    fn tiles_compare_shares_in_points_and_counts_in_percent() {
        let p = panels(
            "title = \"T\"\n[[panels]]\ntitle = \"Failed\"\nkind = \"number\"\nformat = \"percent\"\nsql = \"SELECT 1\"\n[[panels]]\ntitle = \"Runs\"\nkind = \"number\"\nsql = \"SELECT 1\"",
        );
        let data = |now: f64, before: f64| PanelData {
            table: one(&["v"], vec![vec![SqlValue::Float(now)]]),
            previous: Some(one(&["v"], vec![vec![SqlValue::Float(before)]])),
        };
        let share = number_html(&p[0], &data(39.7, 100.0));
        assert!(share.contains(">39.7%</span>"), "{share}");
        assert!(
            share.contains("▼ 60.3 pts vs the period before (100%)"),
            "{share}"
        );
        let count = number_html(&p[1], &data(5800.0, 2000.0));
        assert!(count.contains(">5,800</span>"), "{count}");
        assert!(
            count.contains("▲ 190% vs the period before (2,000)"),
            "{count}"
        );
    }

    #[test]
    fn a_day_without_rows_keeps_its_place_on_the_axis() {
        let p = panels(
            "title = \"T\"\n[[panels]]\ntitle = \"Per day\"\nkind = \"bar\"\nsql = \"SELECT 1\"\nx = \"day\"\ny = [\"n\"]",
        );
        let rows = ["2026-11-06", "2026-11-09", "2026-11-10"]
            .iter()
            .zip([3, 4, 5])
            .map(|(d, n)| vec![SqlValue::Text(d.to_string()), SqlValue::Int(n)])
            .collect();
        let data = PanelData {
            table: one(&["day", "n"], rows),
            previous: None,
        };
        let s = series_of(&p[0], &data);
        assert_eq!(
            s.labels,
            ["Nov 6, 2026", "Nov 7", "Nov 8", "Nov 9", "Nov 10"],
            "the weekend is on the axis"
        );
        assert_eq!(s.series[0].1, [Some(3.0), None, None, Some(4.0), Some(5.0)]);
        let months = [
            SqlValue::Text("2026-01-01".into()),
            SqlValue::Text("2026-04-01".into()),
        ];
        assert_eq!(fill_calendar(&months).unwrap().1, [0, 3]);
        let unordered = [
            SqlValue::Text("2026-01-02".into()),
            SqlValue::Text("2026-01-01".into()),
        ];
        assert_eq!(fill_calendar(&unordered), None);
        let sparse = [
            SqlValue::Text("2000-01-01".into()),
            SqlValue::Text("2026-01-01".into()),
        ];
        assert_eq!(fill_calendar(&sparse), None, "too sparse to fill");
    }

    #[test]
    fn every_point_of_a_long_line_has_its_value_under_the_pointer() {
        let p = panels(
            "title = \"T\"\n[[panels]]\ntitle = \"Per hour\"\nkind = \"line\"\nformat = \"duration\"\nsql = \"SELECT 1\"\nx = \"i\"\ny = [\"v\"]",
        );
        let rows = (0..100)
            .map(|i| vec![SqlValue::Int(i), SqlValue::Float(0.25)])
            .collect();
        let data = PanelData {
            table: one(&["i", "v"], rows),
            previous: None,
        };
        let svg = svg(&p[0], &data);
        assert_eq!(svg.matches("class=\"point\"").count(), 0, "not dotted");
        assert_eq!(svg.matches("class=\"hover\"").count(), 100);
        assert!(svg.contains("<title>99: 250 ms</title>"), "{svg}");
    }

    #[test]
    fn dates_read_as_text_make_a_wide_time_series() {
        let p = panels(
            "title = \"T\"\n[[panels]]\ntitle = \"Per day\"\nkind = \"line\"\nsql = \"SELECT 1\"\nx = \"day\"\ny = [\"n\"]",
        );
        let rows = (1..=20)
            .map(|d| vec![SqlValue::Text(format!("2026-11-{d:02}")), SqlValue::Int(d)])
            .collect();
        let data = PanelData {
            table: one(&["day", "n"], rows),
            previous: None,
        };
        assert_eq!(span(&p[0], &data), 4, "a time series takes the whole row");
        let svg = svg(&p[0], &data);
        assert!(svg.contains(">Nov 1, 2026</text>"), "{svg}");
        assert!(svg.contains("<title>Nov 20, 2026: 20</title>"), "{svg}");
    }

    #[test]
    fn axes_step_in_round_units() {
        assert_eq!(
            y_ticks(0.0, 87.0, NumberFormat::Number),
            vec![0.0, 25.0, 50.0, 75.0, 100.0]
        );
        assert_eq!(
            y_ticks(0.0, 400.0, NumberFormat::Duration),
            vec![0.0, 120.0, 240.0, 360.0, 480.0]
        );
        assert_eq!(
            y_ticks(-5.0, 5.0, NumberFormat::Number),
            vec![-5.0, -2.5, 0.0, 2.5, 5.0]
        );
        assert_eq!(
            y_ticks(0.0, 0.0, NumberFormat::Number),
            vec![0.0, 0.25, 0.5, 0.75, 1.0]
        );
    }

    #[test]
    fn x_labels_thin_or_shorten_to_fit() {
        let days: Vec<String> = (1..=30).map(|d| format!("Nov {d}")).collect();
        let wide = x_labels_for(&days, false, 1800.0, 30.0);
        assert!(wide.iter().all(Option::is_some), "30 days fit 1,800 px");
        let half = x_labels_for(&days, false, 900.0, 30.0);
        assert_eq!(
            half.iter().flatten().count(),
            15,
            "every other day in 900 px"
        );
        let phone = x_labels_for(&days, false, 250.0, 30.0);
        let shown: Vec<_> = phone.iter().flatten().collect();
        assert!(shown.len() >= 3 && shown.len() <= 4, "{shown:?}");
        let stages = vec![
            "Qualification".to_string(),
            "Proposal/Price Quote".to_string(),
        ];
        let cut = x_labels_for(&stages, true, 200.0, 30.0);
        assert_eq!(
            cut,
            vec![Some("Qualificat…".into()), Some("Proposal/P…".into())]
        );
        // A label centred at the plot's end would reach past the chart: it is left out.
        let hours: Vec<String> = (0..24).map(|h| format!("Dec 7 {h:02}:00")).collect();
        let edge = x_labels_for(&hours, false, 2400.0, 30.0);
        assert!(
            edge.iter().all(Option::is_some),
            "100 px slots hold them all"
        );
        let tight = x_labels_for(&hours, false, 24.0 * 50.0, 10.0);
        assert_eq!(tight.iter().flatten().count(), 11, "{tight:?}");
        assert_eq!(
            tight[0], None,
            "the first, centred 25 px in, would cross the left edge"
        );
    }
}
