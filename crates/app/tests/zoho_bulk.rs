//! Zoho CRM by bulk read, end to end: `zoho-prepare` starts an export per module in the
//! fake, the pipeline polls the jobs through their states, follows `more_records`,
//! downloads the zipped CSV pages and loads all 16 modules with typed columns into
//! DuckDB; failed, running and expired exports leave their tables as they were; the
//! org's API limit and an access token expiring mid-run.

use observes_app::run_pipeline;
use observes_fakes::zoho::{FakeZoho, ZohoOptions, MODULES};
use observes_jobs::zoho::prepare;
use observes_sources::zoho::export::Prepared;
use observes_sources::zoho::ZohoConfig;
use observes_warehouse::SqlValue;
use serde_json::{json, Value};

mod common;

use common::*;

/// A fake whose modules need several bulk pages (24 records, 10 a page) and whose jobs
/// take three polls.
fn fake() -> FakeZoho {
    FakeZoho::start(ZohoOptions {
        bulk_page_size: 10,
        downloads_per_minute: None,
        ..ZohoOptions::default()
    })
    .unwrap()
}

fn setup_with(fake: &FakeZoho, extra: &str) -> Setup {
    let settings = format!(
        "accounts_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nrefresh_token = \"{}\"\nread = \"bulk\"\n{extra}\n[pipelines.zoho.settings.bulk]\njobs = \"exports\"\ncalls_per_minute = 60000\npoll_seconds = 0.01\nwait_minutes = 0.5\n{}",
        fake.url(),
        fake.client_id,
        fake.client_secret,
        fake.refresh_token,
        quick_http("zoho"),
    );
    common::setup("zoho", "zoho", "zoho", &settings)
}

fn settings(setup: &Setup) -> ZohoConfig {
    setup
        .config
        .pipeline("zoho")
        .unwrap()
        .source
        .settings::<ZohoConfig>()
        .unwrap()
        .clone()
}

fn prepare_all(setup: &Setup) -> Vec<Prepared> {
    prepare(&settings(setup), &[])
        .unwrap()
        .modules
        .into_iter()
        .map(|m| m.prepared)
        .collect()
}

fn text(v: &SqlValue) -> Option<String> {
    v.as_str().map(String::from)
}

/// `(id, the field's value)` of every record of a module, as the fake holds them.
fn values(fake: &FakeZoho, module: &str, field: &str) -> Vec<(String, Option<String>)> {
    let mut out: Vec<(String, Option<String>)> = fake
        .world()
        .records(module)
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r[field].as_str().map(String::from),
            )
        })
        .collect();
    out.sort();
    out
}

fn loaded(setup: &Setup, table: &str, column: &str) -> Vec<(String, Option<String>)> {
    query(
        &setup.warehouse,
        &format!("SELECT id, {column} FROM zoho.{table} ORDER BY id"),
    )
    .iter()
    .map(|row| (text(&row[0]).unwrap(), text(&row[1])))
    .collect()
}

#[test]
fn every_module_loads_in_bulk_typed_and_exact_then_follows_deletions() {
    let fake = fake();
    let setup = setup_with(&fake, "");
    let started = prepare_all(&setup);
    assert_eq!(started.len(), 16);
    assert!(started
        .iter()
        .all(|p| matches!(p, Prepared::Started { .. })));
    // Prepared again before the ETL: the pending exports are kept, none is added.
    let jobs = fake.world().bulk_jobs.len();
    assert!(prepare_all(&setup)
        .iter()
        .all(|p| matches!(p, Prepared::Kept { .. })));
    assert_eq!(fake.world().bulk_jobs.len(), jobs);

    let summary = run_pipeline(&setup.config, "zoho").unwrap();
    // Every module and the users, each with exactly its records.
    for (module, _) in MODULES {
        let table = module.to_lowercase();
        let records = fake.world().records(module).len() as i64;
        assert!(records > 10, "{module} spans pages");
        assert_eq!(
            count(&setup.warehouse, &format!("zoho.{table}")),
            records,
            "{module}"
        );
        assert_eq!(summary.load.streams[&table].rows, records as u64);
    }
    assert_eq!(
        count(&setup.warehouse, "zoho.users"),
        fake.world().users.len() as i64
    );
    // Pages of 10 records: three jobs per module of 24 (page 2 and 3 made by the ETL).
    let deals = fake.world().deals().len();
    assert_eq!(
        fake.world().bulk_jobs.len(),
        15 * 3 + deals.div_ceil(10),
        "one job per page"
    );

    // Columns typed from the field metadata.
    let types = query(
        &setup.warehouse,
        "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns \
         WHERE table_schema = 'zoho' AND table_name IN ('leads', 'contacts', 'calls', 'products') \
         ORDER BY 1",
    );
    let types: std::collections::BTreeMap<String, String> = types
        .iter()
        .map(|r| (text(&r[0]).unwrap(), text(&r[1]).unwrap()))
        .collect();
    for (column, want) in [
        ("leads.annual_revenue", "DOUBLE"),
        ("leads.no_of_employees", "BIGINT"),
        ("leads.email_opt_out", "BOOLEAN"),
        ("leads.description", "VARCHAR"),
        ("leads.owner__id", "VARCHAR"),
        ("contacts.date_of_birth", "DATE"),
        ("calls.call_start_time", "TIMESTAMP WITH TIME ZONE"),
        ("products.qty_in_stock", "DOUBLE"),
        ("products.taxable", "BOOLEAN"),
    ] {
        assert_eq!(
            types.get(column).map(String::as_str),
            Some(want),
            "{column}"
        );
    }
    // Text exactly as Zoho holds it: quotes, commas, CRLF and LF, spaces, non-ASCII.
    let descriptions = values(&fake, "Leads", "Description");
    assert!(descriptions
        .iter()
        .any(|(_, d)| d.as_deref().is_some_and(|d| d.contains("\r\n"))));
    assert_eq!(loaded(&setup, "leads", "description"), descriptions);
    for (module, field) in [
        ("Solutions", "Question"),
        ("Solutions", "Answer"),
        ("Cases", "Description"),
        ("Tasks", "Description"),
    ] {
        assert_eq!(
            loaded(&setup, &module.to_lowercase(), &field.to_lowercase()),
            values(&fake, module, field),
            "{module}.{field}"
        );
    }
    // Numbers and booleans as the API's JSON has them; multi-select picklists as child rows.
    let lead = fake.world().records("Leads")[3].clone();
    let row = query(
        &setup.warehouse,
        &format!(
            "SELECT CAST(annual_revenue * 100 AS BIGINT), no_of_employees, email_opt_out, owner__id FROM zoho.leads WHERE id = '{}'",
            lead["id"].as_str().unwrap()
        ),
    );
    assert_eq!(
        row[0][0].as_i64(),
        lead["Annual_Revenue"]
            .as_f64()
            .map(|a| (a * 100.0).round() as i64)
    );
    assert_eq!(row[0][1].as_i64(), lead["No_of_Employees"].as_i64());
    assert_eq!(
        row[0][2],
        match &lead["Email_Opt_Out"] {
            Value::Bool(b) => SqlValue::Bool(*b),
            _ => SqlValue::Null,
        }
    );
    assert_eq!(text(&row[0][3]).as_deref(), lead["Owner"]["id"].as_str());
    let tags: usize = fake
        .world()
        .records("Leads")
        .iter()
        .map(|r| r["Tag"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(count(&setup.warehouse, "zoho.leads__tag"), tags as i64);

    // The same exports again: loaded already, nothing downloaded, nothing added.
    let before = fake.server.requests();
    run_pipeline(&setup.config, "zoho").unwrap();
    assert_eq!(
        count(&setup.warehouse, "zoho.leads"),
        descriptions.len() as i64
    );
    let again = fake.server.requests() - before;
    assert!(again <= 4, "{again} requests for nothing new");

    // A lead deleted and one added in Zoho: the next export replaces the module's rows.
    let gone = descriptions[0].0.clone();
    {
        let mut w = fake.world();
        w.delete_record("Leads", &gone);
        w.add_record(
            "Leads",
            json!({"id": "5725767099000000001", "Last_Name": "Nueva", "Description": "added \"today\"",
                   "Tag": []}),
            chrono::Utc::now(),
        );
    }
    assert!(prepare_all(&setup)
        .iter()
        .all(|p| matches!(p, Prepared::Started { .. })));
    run_pipeline(&setup.config, "zoho").unwrap();
    assert_eq!(
        loaded(&setup, "leads", "description"),
        values(&fake, "Leads", "Description")
    );
    assert_eq!(
        one(
            &setup.warehouse,
            &format!("SELECT COUNT(*) FROM zoho.leads WHERE id = '{gone}'")
        ),
        0
    );
}

#[test]
fn a_failed_or_running_export_leaves_its_table_as_it_was_and_is_named() {
    let fake = fake();
    let setup = setup_with(
        &fake,
        "modules = [\"Leads\", \"Contacts\", \"Deals\"]\nmodule_read = { Deals = \"incremental\" }",
    );
    prepare_all(&setup);
    run_pipeline(&setup.config, "zoho").unwrap();
    let leads_before = loaded(&setup, "leads", "description");
    let contacts = fake.world().records("Contacts").len() as i64;

    // Leads' next export fails; a lead and a contact change meanwhile.
    {
        let mut w = fake.world();
        w.fail_bulk("Leads");
        w.delete_record("Leads", &leads_before[0].0);
        w.add_record(
            "Contacts",
            json!({"id": "5725767099000000002", "Last_Name": "Nuevo", "Tag": []}),
            chrono::Utc::now(),
        );
    }
    prepare_all(&setup);
    let err = run_pipeline(&setup.config, "zoho").unwrap_err();
    let failed_job = {
        let w = fake.world();
        w.bulk_jobs
            .values()
            .filter(|j| j.module == "Leads" && j.fails)
            .map(|j| j.id.clone())
            .next()
            .unwrap()
    };
    assert_eq!(
        chain(&err).to_string(),
        format!("1 stream not loaded, the others are committed: leads (bulk read job {failed_job} (page 1) is FAILED; `observes job zoho-prepare` starts a new export)")
    );
    let observes_app::AppError::Run(observes_pipeline::RunError::Incomplete {
        summary,
        not_loaded,
    }) = err
    else {
        panic!("not an incomplete run");
    };
    assert_eq!(not_loaded.len(), 1);
    assert!(!summary.load.streams.contains_key("leads"));
    // Leads exactly as before; contacts, deals and users loaded.
    assert_eq!(loaded(&setup, "leads", "description"), leads_before);
    assert_eq!(count(&setup.warehouse, "zoho.contacts"), contacts + 1);
    assert_eq!(
        count(&setup.warehouse, "zoho.deals"),
        fake.world().deals().len() as i64
    );

    // A job that does not finish within the wait: named as still running, table kept.
    let slow = FakeZoho::start(ZohoOptions {
        bulk_polls: 1_000,
        downloads_per_minute: None,
        ..ZohoOptions::default()
    })
    .unwrap();
    let setup = setup_with(&slow, "modules = [\"Leads\"]");
    prepare_all(&setup);
    let message = {
        let path = &setup.config.path;
        let text = std::fs::read_to_string(path)
            .unwrap()
            .replace("wait_minutes = 0.5", "wait_minutes = 0.001");
        std::fs::write(path, text).unwrap();
        let config = observes_app::Config::load(path).unwrap();
        chain(&run_pipeline(&config, "zoho").unwrap_err()).to_string()
    };
    assert!(
        message.starts_with("1 stream not loaded, the others are committed: leads (bulk read job ")
            && message.contains(
                " (page 1) is still QUEUED after waiting 0.001 minutes; a later run loads it)"
            ),
        "{message}"
    );
    assert_eq!(
        count(&setup.warehouse, "zoho.users"),
        slow.world().users.len() as i64
    );
    // An export whose results are past Zoho's keeping: named as expired, table kept.
    let expiring = self::fake();
    let setup = setup_with(&expiring, "modules = [\"Leads\"]");
    prepare_all(&setup);
    let path = &setup.config.path;
    let text = std::fs::read_to_string(path).unwrap().replace(
        "wait_minutes = 0.5",
        "wait_minutes = 0.5\nexpires_hours = 0.000001",
    );
    std::fs::write(path, text).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let config = observes_app::Config::load(path).unwrap();
    let message = chain(&run_pipeline(&config, "zoho").unwrap_err()).to_string();
    assert!(
        message.starts_with(
            "1 stream not loaded, the others are committed: leads (the export started "
        ) && message.ends_with(
            " has expired before it was loaded; `observes job zoho-prepare` starts a new one)"
        ),
        "{message}"
    );
    // A damaged export record: the run names the file and what to do.
    let damaged = setup_with(&slow, "modules = [\"Leads\"]");
    let record = damaged.config.dir.join("exports/Leads/bulk-read.json");
    std::fs::create_dir_all(record.parent().unwrap()).unwrap();
    std::fs::write(&record, "{\"module\": \"Leads\", \"pages\": [").unwrap();
    let message = chain(&run_pipeline(&damaged.config, "zoho").unwrap_err()).to_string();
    assert!(
        message.starts_with("source zoho: stream leads: ")
            && message.contains("/Leads/bulk-read.json is not an export record (")
            && message.ends_with("): delete it and run `observes job zoho-prepare`"),
        "{message}"
    );
    // Never prepared: the run says what to do.
    let fresh = setup_with(&slow, "modules = [\"Accounts\"]");
    let message = chain(&run_pipeline(&fresh.config, "zoho").unwrap_err()).to_string();
    assert!(
        message.contains("accounts (no bulk export of Accounts in ")
            && message.ends_with(": run `observes job zoho-prepare` first)"),
        "{message}"
    );
}

#[test]
fn an_access_token_expiring_mid_run_is_renewed_once_with_no_page_lost_or_repeated() {
    let fake = fake();
    let setup = setup_with(&fake, "modules = [\"Leads\", \"Accounts\"]");
    prepare_all(&setup);
    assert_eq!(fake.world().tokens_issued, 1);
    // The pipeline's token expires after a few of its calls: mid-way through the polls
    // and the pages.
    fake.world().expire_token_after(7);
    run_pipeline(&setup.config, "zoho").unwrap();
    assert_eq!(
        fake.world().tokens_issued,
        3,
        "one for prepare, two for the run"
    );
    for module in ["Leads", "Accounts"] {
        let table = module.to_lowercase();
        assert_eq!(
            count(&setup.warehouse, &format!("zoho.{table}")),
            fake.world().records(module).len() as i64
        );
        assert_eq!(
            one(
                &setup.warehouse,
                &format!("SELECT COUNT(DISTINCT id) FROM zoho.{table}")
            ),
            fake.world().records(module).len() as i64
        );
    }
}

#[test]
fn the_orgs_api_limit_is_reported_plainly() {
    let fake = FakeZoho::start(ZohoOptions {
        credits: Some(2),
        ..ZohoOptions::default()
    })
    .unwrap();
    let setup = setup_with(&fake, "modules = [\"Leads\", \"Accounts\", \"Contacts\"]");
    let settings = settings(&setup);
    let message = chain(&prepare(&settings, &[]).unwrap_err()).to_string();
    assert!(
        message.starts_with("stream contacts: Zoho refused the calls as over the org's API limit: its API credits for the day are used up or too many calls run at once")
            && message.contains("gave up after 8 attempts: HTTP 429: {\"code\":\"TOO_MANY_REQUESTS\""),
        "{message}"
    );
    assert!(!message.contains(&fake.client_secret));
    // Downloads over Zoho's 10 a minute: the module is named, with the same explanation.
    let fake = FakeZoho::start(ZohoOptions {
        bulk_page_size: 10,
        downloads_per_minute: Some(2),
        ..ZohoOptions::default()
    })
    .unwrap();
    let setup = setup_with(&fake, "modules = [\"Leads\"]");
    prepare_all(&setup);
    let message = chain(&run_pipeline(&setup.config, "zoho").unwrap_err()).to_string();
    assert!(
        message.starts_with("1 stream not loaded, the others are committed: leads (stream leads: Zoho refused the calls as over the org's API limit")
            && message.contains("at most 10 bulk downloads a minute"),
        "{message}"
    );
    assert_eq!(
        count(&setup.warehouse, "zoho.users"),
        fake.world().users.len() as i64
    );
}
