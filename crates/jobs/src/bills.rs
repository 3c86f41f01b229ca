//! `compute-bills`: who was active in each group in a month, from the code ETL's commits.
//!
//! An author (name and email after `.mailmap`) counts for a group in a month when one of
//! their billable commits in the group's repositories was first seen that month — first
//! seen by content hash, across all groups (the earliest of `sightings`), so the same commit pushed to a second group
//! or a fork later does not count again. One CSV per group goes to
//! `bills/YYYY/MM/<group>.csv` in object storage: `actor`, `commit` (one contributing
//! hash), `groups` (every group of the actor's organization where they were active that
//! month) and `repository`.
//!
//! ```toml
//! [bills]
//! schema = "code"          # where the code ETL loads code.commits
//! [bills.groups]           # group = organization
//! web = "acme"
//! api = "acme"
//! ```

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use observes_state::StateStore;
use observes_warehouse::sql::qualified;
use observes_warehouse::{SqlValue, Warehouse};
use serde::{Deserialize, Serialize};

use crate::JobError;

/// `[bills]` of `observes.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillsConfig {
    /// The schema of the code ETL's tables.
    #[serde(default = "default_schema")]
    pub schema: String,
    /// Group → organization.
    #[serde(default)]
    pub groups: BTreeMap<String, String>,
}

fn default_schema() -> String {
    "code".into()
}

impl Default for BillsConfig {
    fn default() -> Self {
        BillsConfig {
            schema: default_schema(),
            groups: BTreeMap::new(),
        }
    }
}

pub use observes_sources::window::Month;

/// The month's first instant and the next month's, in microseconds since the epoch.
fn bounds(month: Month) -> (i64, i64) {
    (
        month.start().timestamp_micros(),
        month.end().timestamp_micros(),
    )
}

/// `bills/YYYY/MM`
fn folder(month: Month) -> String {
    format!("bills/{:04}/{:02}", month.year, month.month)
}

/// One group's file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupBill {
    /// The group.
    pub group: String,
    /// Its key in object storage.
    pub key: String,
    /// Authors who committed in the month (the billed figure).
    pub actors: usize,
    /// `None` when the configuration maps the group to no organization.
    pub organization: Option<String>,
}

/// What `observes job bills` wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BillsReport {
    /// The month, `YYYY-MM`.
    pub month: String,
    /// One file per group.
    pub groups: Vec<GroupBill>,
    /// Groups with commits but no organization in the configuration: billed alone.
    pub unmapped_groups: Vec<String>,
    /// Files of an earlier computation of the month for groups that have none now.
    pub removed: Vec<String>,
}

/// One row of a group's bill.
#[derive(Debug, Clone)]
struct Contribution {
    hash: String,
    repository: String,
}

/// A CSV field, quoted when it must be.
fn csv_field(out: &mut String, text: &str) {
    if text.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

/// Computes the month's bills from the warehouse and writes them to `storage`. (Not
/// async: warehouse clients block, so this runs outside any async runtime.)
pub fn compute_bills(
    warehouse: &mut dyn Warehouse,
    storage: &StateStore,
    config: &BillsConfig,
    month: Month,
) -> Result<BillsReport, JobError> {
    let commits = qualified(&config.schema, "commits");
    let sightings = qualified(&config.schema, "sightings");
    let (start, end) = bounds(month);
    // Each billable commit whose content was first seen this month, with the first one
    // per (group, actor) coming first.
    let sql = format!(
        "SELECT c.namespace, c.author_name, c.author_email, c.repository, c.hash \
         FROM {commits} c \
         JOIN (SELECT content_hash, MIN(seen_at) AS first_seen FROM {sightings} GROUP BY content_hash) f \
           ON c.content_hash = f.content_hash \
         WHERE c.billable AND f.first_seen >= $1 AND f.first_seen < $2 \
         ORDER BY c.namespace, c.author_name, c.author_email, f.first_seen, c.repository, c.hash"
    );
    let rows = warehouse.query(
        &sql,
        &[SqlValue::Timestamp(start), SqlValue::Timestamp(end)],
    )?;
    let text = |v: &SqlValue| v.as_str().unwrap_or_default().to_string();
    // group → actor → the first contributing commit
    let mut active: BTreeMap<String, BTreeMap<String, Contribution>> = BTreeMap::new();
    for row in &rows {
        let [group, name, email, repository, hash] = &row[..] else {
            continue;
        };
        let actor = format!("{} <{}>", text(name), text(email));
        active
            .entry(text(group))
            .or_default()
            .entry(actor)
            .or_insert_with(|| Contribution {
                hash: text(hash),
                repository: text(repository),
            });
    }
    // organization → actor → groups
    let mut by_org: BTreeMap<&str, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
    for (group, actors) in &active {
        if let Some(org) = config.groups.get(group) {
            for actor in actors.keys() {
                by_org
                    .entry(org)
                    .or_default()
                    .entry(actor)
                    .or_default()
                    .insert(group);
            }
        }
    }
    let unmapped_groups: Vec<String> = active
        .keys()
        .filter(|g| !config.groups.contains_key(*g))
        .cloned()
        .collect();
    for group in &unmapped_groups {
        tracing::warn!(%group, %month, "compute-bills: the group has no organization in [bills.groups]; billed alone");
    }
    let empty = BTreeMap::new();
    let all_groups: BTreeSet<&String> = active.keys().chain(config.groups.keys()).collect();
    let folder = folder(month);
    let mut report = BillsReport {
        month: month.to_string(),
        groups: Vec::new(),
        unmapped_groups,
        removed: Vec::new(),
    };
    for group in all_groups {
        let actors = active.get(group).unwrap_or(&empty);
        let organization = config.groups.get(group);
        let mut csv = String::from("actor,commit,groups,repository\n");
        for (actor, c) in actors {
            let groups = match organization.and_then(|org| by_org.get(org.as_str())) {
                Some(actors) => actors
                    .get(actor.as_str())
                    .map(|g| g.iter().copied().collect::<Vec<_>>().join(","))
                    .unwrap_or_else(|| group.clone()),
                None => group.clone(),
            };
            for (i, field) in [actor.as_str(), &c.hash, &groups, &c.repository]
                .into_iter()
                .enumerate()
            {
                if i > 0 {
                    csv.push(',');
                }
                csv_field(&mut csv, field);
            }
            csv.push('\n');
        }
        let name = format!("{group}.csv");
        storage.wait(storage.put_bytes(&folder, &name, Bytes::from(csv)))?;
        report.groups.push(GroupBill {
            group: group.clone(),
            key: format!("{folder}/{name}"),
            actors: actors.len(),
            organization: organization.cloned(),
        });
    }
    // A group billed by an earlier computation of this month and not now: its file goes.
    for name in storage.wait(storage.list(&folder))? {
        let written = report
            .groups
            .iter()
            .any(|g| g.key.ends_with(&format!("/{name}")));
        if name.ends_with(".csv") && !written {
            storage.wait(storage.delete(&folder, &name))?;
            report.removed.push(format!("{folder}/{name}"));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_has_its_folder_and_its_bounds() {
        let m: Month = "2026-12".parse().unwrap();
        assert_eq!(folder(m), "bills/2026/12");
        let (start, end) = bounds(m);
        assert_eq!(end - start, 31 * 86_400 * 1_000_000);
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        let mut out = String::new();
        csv_field(&mut out, "plain");
        out.push(',');
        csv_field(&mut out, "O\"Neil, Jo");
        assert_eq!(out, "plain,\"O\"\"Neil, Jo\"");
    }
}
