//! `zoho-prepare` (`/observes/etl/zoho-crm/prepare`): a bulk read export of each Zoho
//! module read in bulk, started ahead of the ETL so its jobs are complete when the `zoho`
//! pipeline loads them. The exports' lifecycle is in
//! [`observes_sources::zoho::export`].

use observes_sources::zoho::export::{self, Prepared};
use observes_sources::zoho::ZohoConfig;
use serde::Serialize;

use crate::JobError;

/// What prepare did, module by module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrepareReport {
    /// Where the exports are recorded.
    pub jobs: String,
    /// One entry per module, in the settings' order.
    pub modules: Vec<ModuleReport>,
}

/// One module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleReport {
    /// The module.
    pub module: String,
    /// Started, kept or failed.
    #[serde(flatten)]
    pub prepared: Prepared,
}

impl PrepareReport {
    /// The modules prepare failed for.
    pub fn failed(&self) -> Vec<&str> {
        self.modules
            .iter()
            .filter(|m| matches!(m.prepared, Prepared::Failed { .. }))
            .map(|m| m.module.as_str())
            .collect()
    }
}

/// Prepares `modules` (default: every module the settings read in bulk). One module's
/// failure does not stop the others; the org's API limit does, as every later call would
/// be refused too.
pub fn prepare(config: &ZohoConfig, modules: &[String]) -> Result<PrepareReport, JobError> {
    let Some(exports) = config.exports()? else {
        return Err(JobError::Config(
            "no Zoho module is read in bulk (read = \"bulk\", or module_read = { Leads = \"bulk\" }): nothing to prepare"
                .into(),
        ));
    };
    let chosen: Vec<String> = if modules.is_empty() {
        config
            .bulk_modules()
            .iter()
            .map(|m| m.to_string())
            .collect()
    } else {
        modules.to_vec()
    };
    if let Some(other) = chosen
        .iter()
        .find(|m| !config.bulk_modules().contains(&m.as_str()))
    {
        return Err(JobError::Config(format!(
            "module {other:?} is not read in bulk by these settings (bulk modules: {})",
            config.bulk_modules().join(", ")
        )));
    }
    let mut report = PrepareReport {
        jobs: exports.url().to_string(),
        modules: Vec::new(),
    };
    observes_runtime::block_on(async {
        let zoho = observes_sources::zoho::connect(config).await?;
        for module in &chosen {
            let prepared =
                match export::prepare_module(zoho.bulk(), &exports, &config.bulk, module).await {
                    Ok(prepared) => prepared,
                    Err(e @ observes_sources::SourceError::Limit { .. }) => return Err(e.into()),
                    Err(e) => Prepared::Failed {
                        error: observes_runtime::chain(&e).to_string(),
                    },
                };
            match &prepared {
                Prepared::Started { job_id } => {
                    tracing::info!(module, job_id, "zoho-prepare: started an export")
                }
                Prepared::Kept { job_id, state } => {
                    tracing::info!(module, job_id, state, "zoho-prepare: kept the export")
                }
                Prepared::Failed { error } => {
                    tracing::warn!(module, error, "zoho-prepare: failed")
                }
            }
            report.modules.push(ModuleReport {
                module: module.clone(),
                prepared,
            });
        }
        Ok::<(), JobError>(())
    })??;
    Ok(report)
}
