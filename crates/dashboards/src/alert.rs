//! `observes dashboard alert` and `observes dashboard send`: a dashboard's number panels,
//! checked against their thresholds or summed up, as Slack-compatible webhook messages
//! (`{"text": …}`, which Slack, Mattermost, Rocket.Chat and Teams' Slack-style hooks take).
//!
//! An alert posts once per period: a breach already posted for the same range is not
//! posted again. [`Posted`] is that memory; the CLI keeps it in the state store.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::chart::{tile, Tile};
use crate::data::{run_panel, Params};
use crate::spec::{Dashboard, Kind, Panel};

/// A number panel with a threshold, as evaluated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Checked {
    /// The panel's title.
    pub panel: String,
    /// Its value as shown (`24.1%`).
    pub shown: String,
    /// The bound it crossed, as shown (`above 20%`), if it crossed one.
    pub breach: Option<String>,
}

/// The range an evaluation covers, as its posts remember it: `2026-11-08..2026-12-07`.
pub fn period(params: &Params) -> String {
    format!("{}..{}", params.start, params.end)
}

/// Runs every number panel of `d` that has a threshold and checks its value.
pub fn evaluate(
    wh: &mut dyn observes_warehouse::Warehouse,
    d: &Dashboard,
    params: &Params,
) -> Result<Vec<Checked>, String> {
    let figures = number_tiles(wh, d, params, |p| p.alert.is_some())?;
    Ok(figures
        .into_iter()
        .filter_map(|(panel, t)| {
            let threshold = panel.alert?;
            Some(Checked {
                panel: panel.title.clone(),
                breach: t
                    .value
                    .and_then(|v| threshold.crossed(v))
                    .map(|(side, bound)| format!("{side} {}", t.format.show(bound))),
                shown: t.shown,
            })
        })
        .collect())
}

/// What was posted, by panel: the period of its last post.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Posted {
    /// Panel title → the period it was last posted for.
    pub panels: BTreeMap<String, String>,
}

impl Posted {
    /// The breaches not yet posted for `period`.
    pub fn due<'a>(&self, checked: &'a [Checked], period: &str) -> Vec<&'a Checked> {
        checked
            .iter()
            .filter(|c| c.breach.is_some())
            .filter(|c| self.panels.get(&c.panel).map(String::as_str) != Some(period))
            .collect()
    }

    /// Remembers that `posted` went out for `period`.
    pub fn record(&mut self, posted: &[&Checked], period: &str) {
        for c in posted {
            self.panels.insert(c.panel.clone(), period.to_string());
        }
    }
}

/// `Nov 8 – Dec 7, 2026`.
fn range_text(params: &Params) -> String {
    use chrono::Datelike;
    let start = if params.start.year() == params.end.year() {
        params.start.format("%b %-d")
    } else {
        params.start.format("%b %-d, %Y")
    };
    format!("{start} – {}", params.end.format("%b %-d, %Y"))
}

fn link_text(link: Option<&str>, d: &Dashboard) -> String {
    link.map_or(String::new(), |base| {
        format!(
            "\n<{}/d/{}|Open the dashboard>",
            base.trim_end_matches('/'),
            d.name
        )
    })
}

/// The webhook message for breaches.
pub fn alert_message(
    d: &Dashboard,
    params: &Params,
    breaches: &[&Checked],
    link: Option<&str>,
) -> serde_json::Value {
    let mut text = format!(":rotating_light: *{}* ({})", d.title, range_text(params));
    for b in breaches {
        text.push_str(&format!(
            "\n• {} is {}, {}",
            b.panel,
            b.shown,
            b.breach.as_deref().unwrap_or("")
        ));
    }
    text.push_str(&link_text(link, d));
    serde_json::json!({ "text": text })
}

/// The webhook message `dashboard send` posts: every number panel's value and change,
/// and the other panels' titles.
pub fn summary_message(
    d: &Dashboard,
    params: &Params,
    tiles: &[(&Panel, Tile)],
    link: Option<&str>,
) -> serde_json::Value {
    let mut text = format!("*{}* ({})", d.title, range_text(params));
    for (panel, t) in tiles {
        text.push_str(&format!(
            "\n• {}: *{}* ({})",
            panel.title, t.shown, t.change
        ));
    }
    let others: Vec<&str> = d
        .panels
        .iter()
        .filter(|p| p.kind != Kind::Number)
        .map(|p| p.title.as_str())
        .collect();
    if !others.is_empty() {
        text.push_str(&format!("\nAlso on the page: {}", others.join(", ")));
    }
    text.push_str(&link_text(link, d));
    serde_json::json!({ "text": text })
}

/// Every number panel's figures, for [`summary_message`].
pub fn tiles<'a>(
    wh: &mut dyn observes_warehouse::Warehouse,
    d: &'a Dashboard,
    params: &Params,
) -> Result<Vec<(&'a Panel, Tile)>, String> {
    number_tiles(wh, d, params, |_| true)
}

/// The figures of the number panels `keep` picks; a failed query names its panel.
fn number_tiles<'a>(
    wh: &mut dyn observes_warehouse::Warehouse,
    d: &'a Dashboard,
    params: &Params,
    keep: impl Fn(&Panel) -> bool,
) -> Result<Vec<(&'a Panel, Tile)>, String> {
    let mut out = Vec::new();
    for panel in d
        .panels
        .iter()
        .filter(|p| p.kind == Kind::Number && keep(p))
    {
        let data = run_panel(wh, panel, params)
            .map_err(|m| format!("dashboard {}, panel {:?}: {m}", d.name, panel.title))?;
        out.push((panel, tile(panel, &data)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(panel: &str, breach: Option<&str>) -> Checked {
        Checked {
            panel: panel.into(),
            shown: "24.1%".into(),
            breach: breach.map(str::to_string),
        }
    }

    #[test]
    fn a_breach_posts_once_per_period() {
        let all = vec![
            checked("Failed pipelines", Some("above 20%")),
            checked("Pipelines", None),
        ];
        let mut posted = Posted::default();
        let due = posted.due(&all, "2026-11-08..2026-12-07");
        assert_eq!(due, vec![&all[0]]);
        posted.record(&due, "2026-11-08..2026-12-07");
        assert!(posted.due(&all, "2026-11-08..2026-12-07").is_empty());
        assert_eq!(posted.due(&all, "2026-11-09..2026-12-08"), vec![&all[0]]);
    }

    #[test]
    fn messages_read_as_slack_text() {
        let d = Dashboard::parse(
            "ci_health",
            std::path::Path::new("ci_health.toml"),
            "title = \"CI health\"\n[[panels]]\ntitle = \"Failed pipelines\"\nkind = \"number\"\nsql = \"SELECT 1\"\n",
        )
        .unwrap();
        let params = Params {
            start: "2026-11-08".parse().unwrap(),
            end: "2026-12-07".parse().unwrap(),
            group: String::new(),
        };
        let b = checked("Failed pipelines", Some("above 20%"));
        assert_eq!(
            alert_message(&d, &params, &[&b], Some("https://dash.example.com/")),
            serde_json::json!({"text": ":rotating_light: *CI health* (Nov 8 – Dec 7, 2026)\n• Failed pipelines is 24.1%, above 20%\n<https://dash.example.com/d/ci_health|Open the dashboard>"})
        );
    }
}
