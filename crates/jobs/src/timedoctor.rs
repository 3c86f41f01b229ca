//! `timedoctor-backup`: each month of Time Doctor's worklogs, kept in storage while the API
//! still serves them, so the warehouse keeps the whole history after the API has forgotten
//! it (about a year; `reference/timedoctor.md`). The format and its publish order are in
//! [`observes_sources::timedoctor::backup`]; the `timedoctor` pipeline reads what this
//! writes.

use observes_sources::timedoctor::backup::{self, Backed, Backups};
use observes_sources::timedoctor::TimeDoctorConfig;
use observes_sources::window::Month;
use serde::Serialize;

use crate::JobError;

/// What a backup did, month by month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupReport {
    /// Where the backups are.
    pub backup: String,
    /// One entry per stream and month, in order.
    pub months: Vec<MonthReport>,
}

/// One stream's month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonthReport {
    /// `YYYY-MM`.
    pub month: String,
    /// The stream.
    pub stream: String,
    /// Published or kept.
    #[serde(flatten)]
    pub backed: Backed,
}

/// The months a backup covers by default: the last full one.
pub fn last_full_month() -> Month {
    Month::now().previous()
}

/// Backs up `months` of every stream the API expires, in order. A month not over yet is
/// refused: a backup holds whole months.
pub fn back_up(config: &TimeDoctorConfig, months: &[Month]) -> Result<BackupReport, JobError> {
    let Some(url) = &config.backup else {
        return Err(JobError::Config(
            "the Time Doctor settings have no backup location (backup = \"s3://bucket/prefix\" or a folder)"
                .into(),
        ));
    };
    if let Some(open) = months.iter().find(|m| **m >= Month::now()) {
        return Err(JobError::Config(format!(
            "{open} is not over yet: a backup holds whole months (the default is the last full month)"
        )));
    }
    let backups = Backups::open(url)?;
    let mut report = BackupReport {
        backup: backups.url().to_string(),
        months: Vec::new(),
    };
    observes_runtime::block_on(async {
        for month in months {
            for stream in backup::STREAMS {
                let backed = backups.back_up(config, stream, *month).await?;
                match &backed {
                    Backed::Published { manifest } => tracing::info!(
                        %month, stream, rows = manifest.rows, file = %manifest.file,
                        "timedoctor-backup: published"
                    ),
                    Backed::Kept { manifest, served } => tracing::warn!(
                        %month, stream, kept = manifest.rows, served,
                        "timedoctor-backup: the API serves fewer rows than the backup holds; kept the backup"
                    ),
                }
                report.months.push(MonthReport {
                    month: month.to_string(),
                    stream: stream.to_string(),
                    backed,
                });
            }
        }
        Ok::<(), JobError>(())
    })??;
    Ok(report)
}
