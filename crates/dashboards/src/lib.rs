//! Dashboards: files of panels (a SQL query and a chart kind), served as web pages with
//! server-drawn SVG charts, and exported as HTML or SVG for reports.
//!
//! - [`spec`]: the dashboard files and their parameters (`$start`, `$end`, `$group`).
//! - [`data`]: running a panel's query with bound parameters; checking its mapping.
//! - [`format`]: how values read: separators, percent, durations, bytes, dates.
//! - [`chart`]: SVG line, bar and stacked bar charts whose text keeps its size; tables;
//!   number tiles with a comparison.
//! - [`page`]: the HTML of the index and of a dashboard.
//! - [`server`]: `observes dashboard serve`.
//! - [`access`]: who may open which dashboard (tokens, HTTP basic, a trusted proxy).
//! - [`export`]: `observes dashboard export`.
//! - [`alert`]: `observes dashboard alert` and `send`: thresholds and summaries posted to
//!   a webhook.
//! - [`inspect`]: what a reader sees of a page in headless Chromium (the browser tests).

#![warn(missing_docs, unreachable_pub)]

pub mod access;
pub mod alert;
pub mod chart;
pub mod data;
pub mod export;
pub mod format;
pub mod inspect;
pub mod page;
pub mod server;
pub mod spec;

pub use spec::{load_dir, Dashboard};

/// The dashboards Observes ships, by name: on the demo's sources and its jobs.
pub const SHIPPED: [(&str, &str); 7] = [
    (
        "ci_health",
        include_str!("../../../dashboards/ci_health.toml"),
    ),
    ("uptime", include_str!("../../../dashboards/uptime.toml")),
    (
        "engineering",
        include_str!("../../../dashboards/engineering.toml"),
    ),
    ("billing", include_str!("../../../dashboards/billing.toml")),
    (
        "sales_pipeline",
        include_str!("../../../dashboards/sales_pipeline.toml"),
    ),
    (
        "time_tracking",
        include_str!("../../../dashboards/time_tracking.toml"),
    ),
    (
        "freshness",
        include_str!("../../../dashboards/freshness.toml"),
    ),
];
