//! The Zoho CRM source end to end: fake accounts server and CRM → source → loader →
//! DuckDB, with exact rows, typed columns from field metadata, incremental runs by
//! `If-Modified-Since`, a bulk change wider than a page, faults and a refused grant.

use observes_app::run_pipeline;
use observes_fakes::zoho::{FakeZoho, ZohoOptions};
use observes_fakes::Fault;
use observes_warehouse::SqlValue;

mod common;

use common::*;

fn setup(fake: &FakeZoho, refresh_token: &str) -> Setup {
    let settings = format!(
        "accounts_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nrefresh_token = \"{refresh_token}\"\nmodules = [\"Deals\"]\n{}",
        fake.url(),
        fake.client_id,
        fake.client_secret,
        quick_http("zoho"),
    );
    common::setup("zoho", "zoho", "zoho", &settings)
}

#[test]
fn zoho_loads_typed_deals_and_users_then_only_what_changed() {
    let fake = FakeZoho::start(ZohoOptions::default()).unwrap();
    let (deals, users, tags, first) = {
        let w = fake.world();
        let tags: usize = w
            .deals()
            .iter()
            .map(|d| d["Tag"].as_array().unwrap().len())
            .sum();
        (
            w.deals().len() as i64,
            w.users.len() as i64,
            tags as i64,
            w.deals()[0].clone(),
        )
    };
    assert!(deals > 400 && tags > 0);
    let setup = setup(&fake, &fake.refresh_token);
    run_pipeline(&setup.config, "zoho").unwrap();
    assert_eq!(
        one(&setup.warehouse, "SELECT COUNT(*) FROM zoho.deals"),
        deals
    );
    assert_eq!(
        one(
            &setup.warehouse,
            "SELECT COUNT(DISTINCT id) FROM zoho.deals"
        ),
        deals
    );
    assert_eq!(
        one(&setup.warehouse, "SELECT COUNT(*) FROM zoho.deals__tag"),
        tags
    );
    assert_eq!(
        one(&setup.warehouse, "SELECT COUNT(*) FROM zoho.users"),
        users
    );
    // Columns typed from the field metadata; lookups flattened.
    let row = query(
        &setup.warehouse,
        &format!(
            "SELECT deal_name, stage, CAST(amount * 100 AS BIGINT), probability, CAST(closing_date AS VARCHAR), owner__name, account_name__name, \
             CAST(epoch(modified_time) AS BIGINT) FROM zoho.deals WHERE id = '{}'",
            first["id"].as_str().unwrap()
        ),
    );
    let text = |v: &SqlValue| v.as_str().map(String::from);
    assert_eq!(text(&row[0][0]).as_deref(), first["Deal_Name"].as_str());
    assert_eq!(text(&row[0][1]).as_deref(), first["Stage"].as_str());
    assert_eq!(
        row[0][2].as_i64(),
        first["Amount"].as_f64().map(|a| (a * 100.0) as i64)
    );
    assert_eq!(row[0][3].as_i64(), first["Probability"].as_i64());
    assert_eq!(text(&row[0][4]).as_deref(), first["Closing_Date"].as_str());
    assert_eq!(text(&row[0][5]).as_deref(), first["Owner"]["name"].as_str());
    assert_eq!(
        text(&row[0][6]).as_deref(),
        first["Account_Name"]["name"].as_str()
    );
    let modified =
        chrono::DateTime::parse_from_rfc3339(first["Modified_Time"].as_str().unwrap()).unwrap();
    assert_eq!(row[0][7].as_i64(), Some(modified.timestamp()));
    // No secret and no access token in the state.
    let state = query(
        &setup.warehouse,
        "SELECT CAST(state AS VARCHAR) FROM zoho._observes_state",
    );
    let state = text(&state[0][0]).unwrap();
    assert!(state.contains("modified_since"), "{state}");
    for secret in [
        &fake.client_secret,
        &fake.refresh_token,
        &fake.world().access_token,
    ] {
        assert!(!state.contains(secret.as_str()));
    }

    // Nothing changed: one page of deals (a 204) besides the token, fields and users.
    let before = fake.server.requests();
    run_pipeline(&setup.config, "zoho").unwrap();
    assert_eq!(fake.server.requests() - before, 4);
    assert_eq!(
        one(&setup.warehouse, "SELECT COUNT(*) FROM zoho.deals"),
        deals
    );

    // A bulk change: 250 deals won in the same second, more than a page of 200.
    let now = chrono::Utc::now();
    let moved: Vec<String> = {
        let mut w = fake.world();
        let ids: Vec<String> = w
            .deals()
            .iter()
            .take(250)
            .map(|d| d["id"].as_str().unwrap().to_string())
            .collect();
        for id in &ids {
            w.move_deal(id, "Closed Won", now);
        }
        ids
    };
    run_pipeline(&setup.config, "zoho").unwrap();
    assert_eq!(
        one(&setup.warehouse, "SELECT COUNT(*) FROM zoho.deals"),
        deals
    );
    let won = one(
        &setup.warehouse,
        &format!(
            "SELECT COUNT(*) FROM zoho.deals WHERE stage = 'Closed Won' AND id IN ({})",
            moved
                .iter()
                .map(|id| format!("'{id}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    assert_eq!(won, 250);
}

#[test]
fn zoho_retries_faults_and_explains_a_refused_grant() {
    let fake = FakeZoho::start(ZohoOptions::default()).unwrap();
    let deals = fake.world().deals().len() as i64;
    let setup = setup(&fake, &fake.refresh_token);
    fake.server
        .inject("/crm/v2/Deals", Fault::too_many_requests("0"), 2);
    fake.server
        .inject_after("/crm/v2/Deals", 1, Fault::status(500), 1);
    fake.server.inject("/crm/v2/users", Fault::ResetMidBody, 1);
    run_pipeline(&setup.config, "zoho").unwrap();
    assert_eq!(
        one(&setup.warehouse, "SELECT COUNT(*) FROM zoho.deals"),
        deals
    );
    assert_eq!(fake.world().tokens_issued, 1);

    // The access token expires mid-run (after the fields and the first page of deals): the
    // 401 renews it once, and nothing is lost.
    let expiring = FakeZoho::start(ZohoOptions::default()).unwrap();
    expiring.world().expire_token_after(2);
    let setup = self::setup(&expiring, &expiring.refresh_token);
    run_pipeline(&setup.config, "zoho").unwrap();
    assert_eq!(
        one(&setup.warehouse, "SELECT COUNT(*) FROM zoho.deals"),
        deals
    );
    assert_eq!(expiring.world().tokens_issued, 2);

    let refused = self::setup(&fake, "1000.revoked-refresh-token");
    let message = chain(&run_pipeline(&refused.config, "zoho").unwrap_err()).to_string();
    assert_eq!(
        message,
        "source zoho: Zoho refused the refresh token (the token server refused the grant: invalid_code): check client id, secret and refresh token, and the accounts_url of your data centre"
    );
    assert!(!message.contains("revoked") && !message.contains(&fake.client_secret));
}
