//! `observes job zoho-prepare` and `observes run zoho` in bulk mode, as a user runs them
//! from the folder of a relative `observes.toml`: the prepare report, and a run with one
//! failed export, which loads the rest, names the module and exits non-zero.

mod common;

use common::*;
use observes_fakes::zoho::{FakeZoho, ZohoOptions};
use serde_json::Value;

#[test]
fn prepare_then_a_run_with_a_failed_export_names_it_and_exits_non_zero() {
    let fake = FakeZoho::start(ZohoOptions {
        downloads_per_minute: None,
        ..ZohoOptions::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "warehouse = \"duckdb://wh.duckdb\"\nstate = \"state\"\n\n[pipelines.zoho]\nsource = \"zoho\"\nschema = \"zoho\"\nwrite = \"merge\"\n\
         [pipelines.zoho.settings]\naccounts_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nrefresh_token = \"{}\"\n\
         modules = [\"Leads\", \"Accounts\"]\nread = \"bulk\"\nusers = false\n\
         bulk = {{ jobs = \"exports\", calls_per_minute = 60000, poll_seconds = 0.01, wait_minutes = 0.5 }}\n\
         [pipelines.zoho.settings.http]\nbackoff_ms = 5\nmax_backoff_ms = 50\nrequests_per_second = 1000\n",
        fake.url(),
        fake.client_id,
        fake.client_secret,
        fake.refresh_token
    );
    std::fs::write(dir.path().join("observes.toml"), config).unwrap();
    fake.world().fail_bulk("Leads");

    let out = observes()
        .current_dir(dir.path())
        .args(["job", "zoho-prepare", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let modules = report["modules"].as_array().unwrap();
    assert_eq!(modules.len(), 2);
    assert_eq!(modules[0]["module"], "Leads");
    assert_eq!(modules[0]["outcome"], "started");
    let leads_job = modules[0]["job_id"].as_str().unwrap().to_string();
    assert!(dir.path().join("exports/Leads/bulk-read.json").is_file());
    assert!(dir.path().join("exports/Accounts/bulk-read.json").is_file());

    let out = observes()
        .current_dir(dir.path())
        .args(["run", "zoho"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let accounts = fake.world().records("Accounts").len();
    assert!(
        stdout.starts_with(&format!(
            "zoho: load 1 committed {accounts} records in 1 streams"
        )),
        "{stdout}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.contains(" WARN ")).collect();
    assert_eq!(
        lines,
        [
            format!("not loaded: leads: bulk read job {leads_job} (page 1) is FAILED; `observes job zoho-prepare` starts a new export").as_str(),
            "error: pipeline \"zoho\": 1 of its streams not loaded (leads)",
        ],
        "{stderr}"
    );
    // What was loaded is in the warehouse; leads has no table.
    let warehouse = format!("duckdb://{}", dir.path().join("wh.duckdb").display());
    let mut wh = observes_warehouse::connect(&warehouse).unwrap();
    let rows = wh.query("SELECT COUNT(*) FROM zoho.accounts", &[]).unwrap();
    assert_eq!(rows[0][0].as_i64(), Some(accounts as i64));
    let tables = wh
        .query(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'zoho' AND table_name = 'leads'",
            &[],
        )
        .unwrap();
    assert_eq!(tables[0][0].as_i64(), Some(0));

    // Prepared again: Leads gets a new export (its failed one is dropped), Accounts keeps
    // its loaded one only if it is fresh and unloaded, so it gets a new one too.
    let out = observes()
        .current_dir(dir.path())
        .args(["job", "zoho-prepare"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("Leads: started bulk read job "), "{text}");
    assert!(text.contains("Accounts: started bulk read job "), "{text}");
}
