//! Running a panel's query with bound parameters, and checking its result against the
//! panel's chart mapping.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use observes_warehouse::{SqlValue, Warehouse};

use crate::spec::{bind, Dashboard, Kind, Panel};

/// The values of a dashboard's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// The first day of the range.
    pub start: NaiveDate,
    /// The last day of the range (included).
    pub end: NaiveDate,
    /// Empty: everything.
    pub group: String,
}

impl Params {
    /// The dashboard's default range, ending today.
    pub fn default_for(dashboard: &Dashboard, today: NaiveDate) -> Params {
        Params {
            start: today - Duration::days(dashboard.parameters.days.max(1) - 1),
            end: today,
            group: String::new(),
        }
    }

    /// The range just before this one, as long.
    pub fn previous(&self) -> Params {
        let days = (self.end - self.start).num_days() + 1;
        Params {
            start: self.start - Duration::days(days),
            end: self.start - Duration::days(1),
            group: self.group.clone(),
        }
    }

    fn instant(day: NaiveDate) -> DateTime<Utc> {
        day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
    }

    fn value(&self, name: &str) -> SqlValue {
        match name {
            "start" => SqlValue::Timestamp(Self::instant(self.start).timestamp_micros()),
            // The end is exclusive in SQL: the instant after the last day.
            "end" => {
                SqlValue::Timestamp(Self::instant(self.end + Duration::days(1)).timestamp_micros())
            }
            _ => SqlValue::Text(self.group.clone()),
        }
    }
}

/// A query's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The column names.
    pub columns: Vec<String>,
    /// The rows.
    pub rows: Vec<Vec<SqlValue>>,
}

impl Table {
    /// The position of a column by name.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

/// Runs a query with the parameters it names.
pub fn run_query(wh: &mut dyn Warehouse, sql: &str, params: &Params) -> Result<Table, String> {
    let (sql, names) = bind(sql)?;
    let values: Vec<SqlValue> = names.iter().map(|n| params.value(n)).collect();
    let (columns, rows) = wh
        .query_with_columns(&sql, &values)
        .map_err(|e| observes_runtime::chain(&e).to_string())?;
    Ok(Table { columns, rows })
}

/// A panel's data, checked against its mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct PanelData {
    /// The query's result.
    pub table: Table,
    /// `number` panels: the same query over the previous period.
    pub previous: Option<Table>,
}

/// Runs a panel's query with the dashboard's parameters bound, and checks the result against the panel's mapping.
pub fn run_panel(
    wh: &mut dyn Warehouse,
    panel: &Panel,
    params: &Params,
) -> Result<PanelData, String> {
    let table = run_query(wh, &panel.sql, params)?;
    check_mapping(panel, &table)?;
    let previous = match panel.kind {
        Kind::Number => Some(run_query(wh, &panel.sql, &params.previous())?),
        _ => None,
    };
    Ok(PanelData { table, previous })
}

/// Every column a chart maps must be in the result.
pub fn check_mapping(panel: &Panel, table: &Table) -> Result<(), String> {
    let mapped = panel
        .x
        .iter()
        .chain(panel.y.iter())
        .chain(panel.series.iter());
    for name in mapped {
        if table.column(name).is_none() {
            return Err(format!(
                "no column {name:?} in the result (columns: {})",
                table.columns.join(", ")
            ));
        }
    }
    if panel.kind == Kind::Number && table.columns.is_empty() {
        return Err("a number panel needs a column".into());
    }
    Ok(())
}

/// Runs every panel of a dashboard; the first failure names the panel. A chart whose
/// query returns rows but draws nothing fails too.
pub fn validate(
    wh: &mut dyn Warehouse,
    dashboard: &Dashboard,
    params: &Params,
) -> Result<(), crate::spec::SpecError> {
    for panel in &dashboard.panels {
        run_panel(wh, panel, params)
            .and_then(|data| match crate::chart::draws_nothing(panel, &data) {
                Some(why) => Err(why),
                None => Ok(()),
            })
            .map_err(|message| crate::spec::SpecError::Panel {
                dashboard: dashboard.name.clone(),
                panel: panel.title.clone(),
                message,
            })?;
    }
    Ok(())
}

/// A value as text for labels, tables and CSV.
pub fn text(v: &SqlValue) -> String {
    match v {
        SqlValue::Null => String::new(),
        SqlValue::Bool(b) => b.to_string(),
        SqlValue::Int(i) => i.to_string(),
        SqlValue::Float(f) => {
            if f.fract() == 0.0 && f.abs() < 1e15 {
                format!("{f:.0}")
            } else {
                format!("{f:.2}")
            }
        }
        SqlValue::Text(s) => s.clone(),
        SqlValue::Timestamp(us) => DateTime::from_timestamp_micros(*us)
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_default(),
        SqlValue::Date(days) => NaiveDate::from_num_days_from_ce_opt(*days + 719_163)
            .map(|d| d.to_string())
            .unwrap_or_default(),
        SqlValue::Time(us) => format!("{:02}:{:02}", us / 3_600_000_000, us / 60_000_000 % 60),
    }
}

/// A value as a number, when it is one.
pub fn number(v: &SqlValue) -> Option<f64> {
    match v {
        SqlValue::Int(i) => Some(*i as f64),
        SqlValue::Float(f) => Some(*f),
        SqlValue::Text(s) => s.parse().ok(),
        _ => None,
    }
}

/// A result as CSV.
pub fn csv(table: &Table) -> String {
    let field = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut out = table
        .columns
        .iter()
        .map(|c| field(c))
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    for row in &table.rows {
        out.push_str(
            &row.iter()
                .map(|v| field(&text(v)))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push('\n');
    }
    out
}
