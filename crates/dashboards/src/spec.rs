//! Dashboard files: one TOML file per dashboard, its name the file's stem.
//!
//! ```toml
//! title = "CI health"
//! description = "GitLab pipelines and jobs."
//! [parameters]
//! days = 30                                  # the default date range: the last 30 days
//! group = { label = "Project", sql = "SELECT DISTINCT name FROM gitlab_api.projects ORDER BY 1" }
//!
//! [[panels]]
//! title = "Pipelines per day"
//! kind = "stacked_bar"                       # line | bar | stacked_bar | table | number
//! sql = """
//! SELECT CAST(created_at AS DATE) AS day, status, COUNT(*) AS pipelines
//! FROM gitlab_api.pipelines
//! WHERE created_at >= $start AND created_at < $end AND ($group = '' OR status = $group)
//! GROUP BY 1, 2 ORDER BY 1"""
//! x = "day"
//! y = ["pipelines"]
//! series = "status"                          # one series per value (line, stacked_bar)
//! ```
//!
//! Queries name their parameters `$start`, `$end` (timestamps) and `$group` (text, empty
//! for all); they are bound, never pasted into the SQL. A `number` panel shows the first
//! column of the first row, beside the same query over the period before.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::format::NumberFormat;

/// What a panel draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A line chart.
    Line,
    /// A bar chart.
    Bar,
    /// Stacked bars.
    StackedBar,
    /// A table of the rows.
    Table,
    /// One number, with its change since the previous period.
    Number,
}

/// A panel of a dashboard.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Panel {
    /// Its title.
    pub title: String,
    /// What it draws.
    pub kind: Kind,
    /// The query (with `:from`, `:to`, `:group` parameters).
    pub sql: String,
    /// The column along the x axis (charts).
    pub x: Option<String>,
    /// The value columns (charts).
    #[serde(default)]
    pub y: Vec<String>,
    /// A column whose values split the rows into series (line, stacked bar).
    pub series: Option<String>,
    /// A short note under the title.
    pub note: Option<String>,
    /// How numbers read: one format for every value column (`format = "percent"`), or one
    /// per column (`format = { duration = "duration" }`).
    #[serde(default)]
    pub format: Formats,
    /// How many columns of the 4-column grid it takes (1–4). Charts over time and wide
    /// tables default to 4, other charts and tables to 2; numbers are tiles.
    pub width: Option<u8>,
    /// `number` panels: the bounds `observes dashboard alert` checks.
    pub alert: Option<Threshold>,
}

/// The number formats of a panel's columns.
#[derive(Debug, Clone, PartialEq)]
pub enum Formats {
    /// One format for every column.
    All(NumberFormat),
    /// A format per column, by name; the others read as plain numbers.
    PerColumn(BTreeMap<String, NumberFormat>),
}

impl Default for Formats {
    fn default() -> Self {
        Formats::All(NumberFormat::Number)
    }
}

impl<'de> Deserialize<'de> for Formats {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let one = |v: &toml::Value| -> Result<NumberFormat, D::Error> {
            let name = v.as_str().unwrap_or_default();
            NumberFormat::deserialize(toml::Value::String(name.into())).map_err(|_| {
                D::Error::custom(format!(
                    "unknown format {v} (expected \"number\", \"percent\", \"duration\" or \"bytes\")"
                ))
            })
        };
        match toml::Value::deserialize(d)? {
            toml::Value::Table(by) => by
                .iter()
                .map(|(column, v)| Ok((column.clone(), one(v)?)))
                .collect::<Result<_, _>>()
                .map(Formats::PerColumn),
            v => one(&v).map(Formats::All),
        }
    }
}

impl Formats {
    /// The format of a column.
    pub fn of(&self, column: &str) -> NumberFormat {
        match self {
            Formats::All(f) => *f,
            Formats::PerColumn(by) => by.get(column).copied().unwrap_or_default(),
        }
    }
}

/// When a number panel's value is a breach: above `above`, or below `below`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    /// A value over this breaches.
    pub above: Option<f64>,
    /// A value under this breaches.
    pub below: Option<f64>,
}

impl Threshold {
    /// The bound `value` crosses, as a reader says it (`above 20`), if it crosses one.
    pub fn crossed(&self, value: f64) -> Option<(&'static str, f64)> {
        match (self.above, self.below) {
            (Some(a), _) if value > a => Some(("above", a)),
            (_, Some(b)) if value < b => Some(("below", b)),
            _ => None,
        }
    }
}

/// A dashboard's group selector.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupParameter {
    /// Its label.
    pub label: String,
    /// The choices: the first column of each row.
    pub sql: String,
}

/// A dashboard's parameters.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parameters {
    /// The default range: the last this many days.
    #[serde(default = "thirty")]
    pub days: i64,
    /// A group selector, if any.
    pub group: Option<GroupParameter>,
}

fn thirty() -> i64 {
    30
}

impl Default for Parameters {
    fn default() -> Self {
        Parameters {
            days: thirty(),
            group: None,
        }
    }
}

/// A dashboard, as read from its TOML file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dashboard {
    /// Its name: the file's, without `.toml`.
    #[serde(skip)]
    pub name: String,
    /// Its title.
    pub title: String,
    /// A short description.
    #[serde(default)]
    pub description: String,
    /// Its parameters.
    #[serde(default)]
    pub parameters: Parameters,
    /// The groups whose members may open it when the server checks access (empty:
    /// everyone signed in).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Its panels, in order.
    pub panels: Vec<Panel>,
}

/// Why a dashboard file is wrong.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file is not a dashboard (TOML or its shape).
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The file could not be read.
    #[error("{path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A panel is wrong.
    #[error("dashboard {dashboard}, panel {panel:?}: {message}")]
    Panel {
        /// The dashboard.
        dashboard: String,
        /// The panel's title.
        panel: String,
        /// What is wrong.
        message: String,
    },
    /// No dashboard of that name.
    #[error("no dashboard named {name:?} (known: {known})")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The names there are.
        known: String,
    },
}

impl Dashboard {
    /// Reads a dashboard from its TOML text (`name` is its file's name, for errors).
    pub fn parse(name: &str, path: &Path, text: &str) -> Result<Dashboard, SpecError> {
        let mut d: Dashboard = toml::from_str(text).map_err(|e| SpecError::File {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })?;
        d.name = name.to_string();
        for panel in &d.panels {
            let bad = |message: String| SpecError::Panel {
                dashboard: name.to_string(),
                panel: panel.title.clone(),
                message,
            };
            match panel.kind {
                Kind::Line | Kind::Bar | Kind::StackedBar => {
                    if panel.x.is_none() || panel.y.is_empty() {
                        return Err(bad("a chart needs x and y".into()));
                    }
                    if panel.kind == Kind::StackedBar && panel.series.is_none() && panel.y.len() < 2
                    {
                        return Err(bad(
                            "a stacked bar needs a series column or several y columns".into(),
                        ));
                    }
                }
                Kind::Table | Kind::Number => {}
            }
            if let Some(w) = panel.width.filter(|w| !(1..=4).contains(w)) {
                return Err(bad(format!(
                    "width = {w}: a panel takes 1 to 4 columns of the grid"
                )));
            }
            if let Some(t) = &panel.alert {
                if panel.kind != Kind::Number {
                    return Err(bad("an alert is for number panels".into()));
                }
                if t.above.is_none() && t.below.is_none() {
                    return Err(bad("an alert needs above, below or both".into()));
                }
            }
            if let Err(e) = bind(&panel.sql) {
                return Err(bad(e));
            }
        }
        Ok(d)
    }
}

/// Every `*.toml` of a folder, by name.
pub fn load_dir(dir: &Path) -> Result<BTreeMap<String, Dashboard>, SpecError> {
    let entries = std::fs::read_dir(dir).map_err(|e| SpecError::Read {
        path: dir.to_path_buf(),
        source: e,
    })?;
    let mut out = BTreeMap::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let Some(name) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        let text = std::fs::read_to_string(&path).map_err(|e| SpecError::Read {
            path: path.clone(),
            source: e,
        })?;
        out.insert(name.clone(), Dashboard::parse(&name, &path, &text)?);
    }
    Ok(out)
}

/// The parameters a query may name.
pub const PARAMETERS: [&str; 3] = ["start", "end", "group"];

/// A query with its `$name` parameters numbered (`$1`, `$2`, … by first use), and the
/// names in that order.
pub fn bind(sql: &str) -> Result<(String, Vec<&'static str>), String> {
    let mut out = String::with_capacity(sql.len());
    let mut order: Vec<&'static str> = Vec::new();
    let mut chars = sql.char_indices().peekable();
    let mut quote: Option<char> = None;
    while let Some((i, c)) = chars.next() {
        if let Some(q) = quote {
            out.push(c);
            if c == q {
                quote = None;
            }
            continue;
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
            out.push(c);
            continue;
        }
        if c == '$' {
            let rest = &sql[i + 1..];
            let len = rest
                .find(|ch: char| !(ch.is_ascii_lowercase() || ch == '_'))
                .unwrap_or(rest.len());
            if len > 0 {
                let name = &rest[..len];
                let Some(known) = PARAMETERS.iter().find(|p| **p == name) else {
                    return Err(format!(
                        "unknown parameter ${name} (known: $start, $end, $group)"
                    ));
                };
                let index = match order.iter().position(|p| p == known) {
                    Some(i) => i,
                    None => {
                        order.push(known);
                        order.len() - 1
                    }
                };
                out.push_str(&format!("${}", index + 1));
                for _ in 0..len {
                    chars.next();
                }
                continue;
            }
        }
        out.push(c);
    }
    Ok((out, order))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_numbered_not_pasted() {
        let (sql, names) = bind("SELECT '$start', x FROM t WHERE a >= $start AND b < $end AND ($group = '' OR g = $group) AND a >= $start").unwrap();
        assert_eq!(
            sql,
            "SELECT '$start', x FROM t WHERE a >= $1 AND b < $2 AND ($3 = '' OR g = $3) AND a >= $1"
        );
        assert_eq!(names, vec!["start", "end", "group"]);
        assert_eq!(
            bind("SELECT $when").unwrap_err(),
            "unknown parameter $when (known: $start, $end, $group)"
        );
    }

    #[test]
    fn bad_files_are_named() {
        let p = Path::new("d/ci.toml");
        let err = Dashboard::parse("ci", p, "title = 1")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "d/ci.toml: invalid type: integer `1`, expected a string"
        );
        let err = Dashboard::parse(
            "ci",
            p,
            "title = \"CI\"\n[[panels]]\ntitle = \"Jobs\"\nkind = \"line\"\nsql = \"SELECT 1\"\n",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(err, "dashboard ci, panel \"Jobs\": a chart needs x and y");
        let err = Dashboard::parse(
            "ci",
            p,
            "title = \"CI\"\n[[panels]]\ntitle = \"Jobs\"\nkind = \"pie\"\nsql = \"SELECT 1\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("d/ci.toml: unknown variant `pie`"), "{err}");
        let panel = |extra: &str| {
            Dashboard::parse(
                "ci",
                p,
                &format!("title = \"CI\"\n[[panels]]\ntitle = \"Jobs\"\nkind = \"number\"\nsql = \"SELECT 1\"\n{extra}"),
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
        };
        assert_eq!(
            panel("width = 5"),
            Err(
                "dashboard ci, panel \"Jobs\": width = 5: a panel takes 1 to 4 columns of the grid"
                    .into()
            )
        );
        assert_eq!(
            panel("alert = {}"),
            Err("dashboard ci, panel \"Jobs\": an alert needs above, below or both".into())
        );
        assert_eq!(
            panel("format = \"money\"")
                .map_err(|e| e.starts_with("d/ci.toml: unknown format \"money\"")),
            Err(true)
        );
        assert_eq!(panel("alert = { above = 20.0 }"), Ok(()));
        let t = Threshold {
            above: Some(20.0),
            below: Some(1.0),
        };
        assert_eq!(t.crossed(24.1), Some(("above", 20.0)));
        assert_eq!(t.crossed(0.5), Some(("below", 1.0)));
        assert_eq!(t.crossed(20.0), None, "on the bound is within it");
    }
}
