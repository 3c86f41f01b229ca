//! A fake Zoho CRM (API v2) and its accounts server on one address, following
//! `reference/zoho-crm.md`: the refresh grant by query parameters (a refused grant is a
//! 200 with `{"error": …}`), `Authorization: Zoho-oauthtoken …`, field metadata, module
//! records with `page`/`per_page` (at most 200), `sort_by`/`sort_order`,
//! `If-Modified-Since` and `info.more_records`, 204 when nothing matches, and users; the
//! 16 modules observes reads, each with its field metadata; and bulk read
//! (`/crm/bulk/v2/read`): jobs that move ADDED → QUEUED → IN PROGRESS → COMPLETED over
//! successive polls (or end FAILED when a test asks), whose results are ZIPs of one CSV
//! (a BOM, every field quoted, CRLF, embedded newlines, empty cells for nulls) of at most
//! `bulk_page_size` records, with `more_records` for the next page. Downloads are limited
//! per minute and the org has a budget of API credits, as Zoho's are; over either → 429
//! `TOO_MANY_REQUESTS`.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, Query as QueryParams, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Duration, FixedOffset, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::{lock, param, Faults, Query, Rng, Server};

/// What the fake Zoho CRM generates and accepts.
#[derive(Debug, Clone)]
pub struct ZohoOptions {
    /// The seed: the same seed makes the same world.
    pub seed: u64,
    /// Deals.
    pub deals: usize,
    /// Users.
    pub users: usize,
    /// The OAuth2 client id it accepts.
    pub client_id: String,
    /// The client secret it accepts.
    pub client_secret: String,
    /// The refresh token it accepts.
    pub refresh_token: String,
    /// The clock: records are modified up to here.
    pub now: DateTime<Utc>,
    /// Records of each module other than Deals.
    pub records_per_module: usize,
    /// Records in a bulk result page (Zoho's is 200,000).
    pub bulk_page_size: usize,
    /// Polls a bulk job answers before it is COMPLETED (ADDED, QUEUED, IN PROGRESS first).
    pub bulk_polls: u32,
    /// Bulk downloads answered per minute (Zoho: 10); over that, 429.
    pub downloads_per_minute: Option<u32>,
    /// API calls the org may still make (its daily credits); `None`: no limit.
    pub credits: Option<u64>,
}

impl Default for ZohoOptions {
    fn default() -> Self {
        ZohoOptions {
            seed: 1,
            deals: 450,
            users: 5,
            client_id: "1000.FAKECLIENTID".into(),
            client_secret: "zoho-fake-client-secret".into(),
            refresh_token: "1000.fake-refresh-token".into(),
            now: Utc::now(),
            records_per_module: 24,
            bulk_page_size: 200_000,
            bulk_polls: 3,
            downloads_per_minute: Some(10),
            credits: None,
        }
    }
}

/// A field: `(api_name, data_type, json_type)`.
pub type Field = (&'static str, &'static str, &'static str);

/// The modules of the fake org, as observes reads them (`reference/zoho-crm.md`), with
/// their fields beyond the common ones (`Owner`, `Tag`, `Created_Time`, `Modified_Time`):
/// `(api_name, data_type, json_type)`. Deals has fields of its own ([`DEAL_FIELDS`]).
pub const MODULES: [(&str, &[Field]); 16] = [
    (
        "Leads",
        &[
            ("First_Name", "text", "string"),
            ("Last_Name", "text", "string"),
            ("Email", "email", "string"),
            ("Company", "text", "string"),
            ("Lead_Source", "picklist", "string"),
            ("Annual_Revenue", "currency", "double"),
            ("No_of_Employees", "integer", "integer"),
            ("Email_Opt_Out", "boolean", "boolean"),
            ("Description", "textarea", "string"),
        ],
    ),
    (
        "Accounts",
        &[
            ("Account_Name", "text", "string"),
            ("Industry", "picklist", "string"),
            ("Annual_Revenue", "currency", "double"),
            ("Employees", "integer", "integer"),
            ("Website", "website", "string"),
            ("Description", "textarea", "string"),
        ],
    ),
    (
        "Contacts",
        &[
            ("First_Name", "text", "string"),
            ("Last_Name", "text", "string"),
            ("Email", "email", "string"),
            ("Account_Name", "lookup", "jsonobject"),
            ("Date_of_Birth", "date", "string"),
            ("Email_Opt_Out", "boolean", "boolean"),
        ],
    ),
    ("Deals", &[]),
    (
        "Campaigns",
        &[
            ("Campaign_Name", "text", "string"),
            ("Type", "picklist", "string"),
            ("Status", "picklist", "string"),
            ("Start_Date", "date", "string"),
            ("End_Date", "date", "string"),
            ("Budgeted_Cost", "currency", "double"),
            ("Expected_Revenue", "currency", "double"),
        ],
    ),
    (
        "Tasks",
        &[
            ("Subject", "text", "string"),
            ("Due_Date", "date", "string"),
            ("Status", "picklist", "string"),
            ("Priority", "picklist", "string"),
            ("Description", "textarea", "string"),
        ],
    ),
    (
        "Cases",
        &[
            ("Subject", "text", "string"),
            ("Status", "picklist", "string"),
            ("Priority", "picklist", "string"),
            ("Case_Origin", "picklist", "string"),
            ("Description", "textarea", "string"),
        ],
    ),
    (
        "Calls",
        &[
            ("Subject", "text", "string"),
            ("Call_Type", "picklist", "string"),
            ("Call_Start_Time", "datetime", "string"),
            ("Call_Duration_in_seconds", "integer", "integer"),
            ("Description", "textarea", "string"),
        ],
    ),
    (
        "Solutions",
        &[
            ("Solution_Title", "text", "string"),
            ("Status", "picklist", "string"),
            ("Question", "textarea", "string"),
            ("Answer", "textarea", "string"),
        ],
    ),
    (
        "Products",
        &[
            ("Product_Name", "text", "string"),
            ("Product_Code", "text", "string"),
            ("Unit_Price", "currency", "double"),
            ("Qty_in_Stock", "double", "double"),
            ("Taxable", "boolean", "boolean"),
            ("Product_Active", "boolean", "boolean"),
        ],
    ),
    (
        "Vendors",
        &[
            ("Vendor_Name", "text", "string"),
            ("Email", "email", "string"),
            ("Phone", "phone", "string"),
            ("Website", "website", "string"),
            ("Category", "picklist", "string"),
        ],
    ),
    (
        "Price_Books",
        &[
            ("Price_Book_Name", "text", "string"),
            ("Active", "boolean", "boolean"),
            ("Pricing_Model", "picklist", "string"),
            ("Description", "textarea", "string"),
        ],
    ),
    (
        "Quotes",
        &[
            ("Subject", "text", "string"),
            ("Quote_Stage", "picklist", "string"),
            ("Valid_Till", "date", "string"),
            ("Grand_Total", "currency", "double"),
            ("Account_Name", "lookup", "jsonobject"),
        ],
    ),
    (
        "Sales_Orders",
        &[
            ("Subject", "text", "string"),
            ("Status", "picklist", "string"),
            ("Due_Date", "date", "string"),
            ("Grand_Total", "currency", "double"),
            ("Account_Name", "lookup", "jsonobject"),
        ],
    ),
    (
        "Purchase_Orders",
        &[
            ("Subject", "text", "string"),
            ("Status", "picklist", "string"),
            ("PO_Date", "date", "string"),
            ("Grand_Total", "currency", "double"),
            ("Vendor_Name", "lookup", "jsonobject"),
        ],
    ),
    (
        "Invoices",
        &[
            ("Subject", "text", "string"),
            ("Status", "picklist", "string"),
            ("Invoice_Date", "date", "string"),
            ("Due_Date", "date", "string"),
            ("Grand_Total", "currency", "double"),
            ("Account_Name", "lookup", "jsonobject"),
        ],
    ),
];

/// The fields of Deals.
pub const DEAL_FIELDS: [Field; 11] = [
    ("Deal_Name", "text", "string"),
    ("Stage", "picklist", "string"),
    ("Amount", "currency", "double"),
    ("Probability", "integer", "integer"),
    ("Closing_Date", "date", "string"),
    ("Owner", "ownerlookup", "jsonobject"),
    ("Account_Name", "lookup", "jsonobject"),
    ("Lead_Source", "picklist", "string"),
    ("Tag", "multiselectpicklist", "jsonarray"),
    ("Created_Time", "datetime", "string"),
    ("Modified_Time", "datetime", "string"),
];

/// Every module's fields after its own: who owns it, its tags, when it changed.
const COMMON_FIELDS: [Field; 4] = [
    ("Owner", "ownerlookup", "jsonobject"),
    ("Tag", "multiselectpicklist", "jsonarray"),
    ("Created_Time", "datetime", "string"),
    ("Modified_Time", "datetime", "string"),
];

/// Text that CSV must carry exactly: separators, quotes, line breaks of both kinds,
/// spaces at the ends, non-ASCII.
const AWKWARD_TEXT: [&str; 6] = [
    "Called twice, no answer; will \"try\" again",
    "First line\r\nsecond line\nthird — ünïcödé ✓",
    "  padded both ends  ",
    "Ends with a quote\"",
    "日本語のメモ, 中文备注",
    "line\n\nafter a blank line",
];

/// One bulk read job.
#[derive(Debug, Clone)]
pub struct BulkJob {
    /// Its id.
    pub id: String,
    /// The module.
    pub module: String,
    /// The page asked for, from 1.
    pub page: usize,
    /// Polls answered so far.
    pub polls: u32,
    /// Whether it ends FAILED.
    pub fails: bool,
}

/// The stages a deal goes through.
pub const STAGES: [&str; 7] = [
    "Qualification",
    "Needs Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
    "Closed Lost to Competition",
];

/// The fake Zoho CRM's data, as its API serves it.
#[derive(Debug)]
pub struct ZohoWorld {
    /// Each module's records (Deals included), oldest change first.
    pub modules: BTreeMap<String, Vec<Value>>,
    /// Bulk read jobs created, by id.
    pub bulk_jobs: BTreeMap<String, BulkJob>,
    /// Modules whose next bulk jobs fail.
    pub failing_modules: Vec<String>,
    /// API calls the org may still make; `None`: no limit.
    pub credits: Option<u64>,
    /// Users.
    pub users: Vec<Value>,
    /// The access token handed out last (the only one accepted).
    pub access_token: String,
    /// Access tokens handed out.
    pub tokens_issued: u64,
    /// Calls the access token still answers before it expires, if it is to.
    expires_after: Option<u64>,
    client_id: String,
    client_secret: String,
    refresh_token: String,
    offset: FixedOffset,
    api_domain: String,
    next_job: u64,
    bulk_page_size: usize,
    bulk_polls: u32,
    downloads_per_minute: Option<u32>,
    downloads: VecDeque<Instant>,
}

/// Zoho writes times with the org's offset (here Bogotá's, -05:00).
fn zoho_time(t: DateTime<Utc>, offset: &FixedOffset) -> String {
    t.with_timezone(offset)
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn parse(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl ZohoWorld {
    fn generate(options: &ZohoOptions) -> ZohoWorld {
        let mut rng = Rng::new(options.seed);
        let offset = FixedOffset::west_opt(5 * 3600)
            .unwrap_or_else(|| FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!()));
        let names = [
            "Patricia Boyle",
            "Carlos Ruiz",
            "Mei Chen",
            "Ana Gómez",
            "Tom Baker",
            "Ravi Iyer",
        ];
        let users: Vec<Value> = (0..options.users)
            .map(|i| {
                let name = names[i % names.len()];
                let (first, last) = name.split_once(' ').unwrap_or((name, ""));
                json!({"id": format!("57257670000002{:05}", 35011 + i), "first_name": first, "last_name": last,
                       "full_name": name, "email": format!("{}@example.com", first.to_lowercase()),
                       "status": "active", "confirm": true,
                       "role": {"name": if i == 0 { "CEO" } else { "Sales" }, "id": "5725767000000026005"},
                       "profile": {"name": "Standard", "id": "5725767000000026011"},
                       "time_zone": "America/Bogota", "country": "CO",
                       "created_time": zoho_time(options.now - Duration::days(400), &offset),
                       "Modified_Time": zoho_time(options.now - Duration::days(30), &offset)})
            })
            .collect();
        let accounts = [
            "Acme Corp",
            "Globex",
            "Initech",
            "Umbrella",
            "Stark Industries",
            "Wayne Enterprises",
        ];
        let mut deals = Vec::new();
        for i in 0..options.deals {
            let created = options.now - Duration::minutes(rng.below(60 * 24 * 180) as i64 + 60);
            let modified = created + Duration::minutes(rng.below(60 * 24 * 10) as i64);
            let modified = modified.min(options.now - Duration::minutes(1));
            let stage = *rng.pick(&STAGES);
            let owner = rng.pick(&users).clone();
            let account = rng.pick(&accounts);
            // Most deals small, a few large (log-normal), in steps of 250; the draw stays,
            // so the rest of the world is as it was.
            let _ = rng.below(400);
            let amount = crate::shape::spread(&[options.seed, i as u64], 9_000.0, 0.9);
            let amount = (amount / 250.0).round().max(1.0) * 250.0;
            deals.push(json!({
                "id": format!("5725767000001{:06}", i),
                "Deal_Name": format!("{account} — deal {i}"),
                "Stage": stage,
                "Amount": amount,
                "Probability": match stage { "Closed Won" => 100, s if s.starts_with("Closed") => 0, _ => 10 + rng.below(80) as i64 },
                "Closing_Date": (created + Duration::days(rng.below(90) as i64)).format("%Y-%m-%d").to_string(),
                "Owner": {"id": owner["id"], "name": owner["full_name"], "email": owner["email"]},
                "Account_Name": {"id": format!("57257670000004{:05}", accounts.iter().position(|a| a == account).unwrap_or(0)), "name": account},
                "Lead_Source": *rng.pick(&["Web Form", "Cold Call", "Partner", "Trade Show"]),
                "Tag": if rng.chance(30) { json!(["priority"]) } else { json!([]) },
                "Created_Time": zoho_time(created, &offset),
                "Modified_Time": zoho_time(modified, &offset),
            }));
        }
        let mut modules = BTreeMap::new();
        modules.insert("Deals".to_string(), deals);
        for (m, (module, fields)) in MODULES.iter().enumerate() {
            if *module == "Deals" {
                continue;
            }
            let records = (0..options.records_per_module)
                .map(|i| generic_record(&mut rng, options, &offset, &users, m, i, fields))
                .collect();
            modules.insert(module.to_string(), records);
        }
        let mut world = ZohoWorld {
            modules,
            bulk_jobs: BTreeMap::new(),
            failing_modules: Vec::new(),
            credits: options.credits,
            users,
            access_token: format!("1000.{:016x}", rng.next_u64()),
            tokens_issued: 0,
            expires_after: None,
            client_id: options.client_id.clone(),
            client_secret: options.client_secret.clone(),
            refresh_token: options.refresh_token.clone(),
            offset,
            api_domain: String::new(),
            // Ids differ between runs of the fake, as Zoho's never repeat.
            next_job: 4_150_868_000_000_000_000
                + (Utc::now().timestamp_micros() as u64 % 1_000_000_000_000),
            bulk_page_size: options.bulk_page_size.max(1),
            bulk_polls: options.bulk_polls,
            downloads_per_minute: options.downloads_per_minute,
            downloads: VecDeque::new(),
        };
        world.sort();
        world
    }

    fn sort(&mut self) {
        for records in self.modules.values_mut() {
            records.sort_by_key(|d| {
                (
                    d["Modified_Time"].as_str().and_then(parse),
                    d["id"].as_str().map(String::from),
                )
            });
        }
    }

    /// The deals, oldest change first.
    pub fn deals(&self) -> &[Value] {
        self.records("Deals")
    }

    /// A module's records, oldest change first (none for an unknown module).
    pub fn records(&self, module: &str) -> &[Value] {
        self.modules.get(module).map(Vec::as_slice).unwrap_or(&[])
    }

    /// A module's fields: `(api_name, data_type, json_type)`.
    pub fn fields(module: &str) -> Option<Vec<Field>> {
        if module == "Deals" {
            return Some(DEAL_FIELDS.to_vec());
        }
        let (_, own) = MODULES.iter().find(|(m, _)| *m == module)?;
        Some(own.iter().chain(COMMON_FIELDS.iter()).copied().collect())
    }

    /// Adds a record to a module, changed at `at` (as a salesperson would).
    pub fn add_record(&mut self, module: &str, mut record: Value, at: DateTime<Utc>) {
        record["Modified_Time"] = json!(zoho_time(at, &self.offset));
        self.modules
            .entry(module.to_string())
            .or_default()
            .push(record);
        self.sort();
    }

    /// Deletes a record (a bulk read no longer has it; the records API neither).
    pub fn delete_record(&mut self, module: &str, id: &str) {
        if let Some(records) = self.modules.get_mut(module) {
            records.retain(|r| r["id"] != json!(id));
        }
    }

    /// The next bulk jobs of `module` end FAILED instead of COMPLETED.
    pub fn fail_bulk(&mut self, module: &str) {
        self.failing_modules.push(module.to_string());
    }

    /// The records of a bulk page, in id order, and whether a next page exists.
    pub fn bulk_page(&self, module: &str, page: usize) -> (Vec<&Value>, bool) {
        let mut records: Vec<&Value> = self.records(module).iter().collect();
        records.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
        let start = (page.max(1) - 1).saturating_mul(self.bulk_page_size);
        let end = start.saturating_add(self.bulk_page_size).min(records.len());
        let more = end < records.len();
        (records.get(start..end).unwrap_or(&[]).to_vec(), more)
    }

    /// The CSV of a bulk page, as Zoho writes it: a BOM, a header of API names with `Id`
    /// first, every field quoted, CRLF; lookups as their id, multi-select picklists
    /// joined by `;`, nulls as empty cells.
    pub fn bulk_csv(&self, module: &str, page: usize) -> Vec<u8> {
        let fields = ZohoWorld::fields(module).unwrap_or_default();
        let quote = |text: &str| format!("\"{}\"", text.replace('"', "\"\""));
        let mut out = "\u{feff}".as_bytes().to_vec();
        let header: Vec<String> = std::iter::once("Id")
            .chain(fields.iter().map(|f| f.0))
            .map(quote)
            .collect();
        out.extend_from_slice(header.join(",").as_bytes());
        out.extend_from_slice(b"\r\n");
        for record in self.bulk_page(module, page).0 {
            let cells: Vec<String> = std::iter::once("id")
                .chain(fields.iter().map(|f| f.0))
                .map(|name| quote(&csv_cell(&record[name])))
                .collect();
            out.extend_from_slice(cells.join(",").as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// Revokes the access token (as an hour passing does): the next call gets a 401.
    pub fn expire_token(&mut self) {
        self.access_token = format!("{}x", self.access_token);
    }

    /// The access token expires after `calls` more API calls.
    pub fn expire_token_after(&mut self, calls: u64) {
        self.expires_after = Some(calls);
    }

    /// Changes a deal's stage now (as a salesperson would).
    pub fn move_deal(&mut self, id: &str, stage: &str, at: DateTime<Utc>) {
        let time = zoho_time(at, &self.offset);
        let deals = self.modules.entry("Deals".into()).or_default();
        if let Some(deal) = deals.iter_mut().find(|d| d["id"] == json!(id)) {
            deal["Stage"] = json!(stage);
            deal["Modified_Time"] = json!(time);
        }
        self.sort();
    }
}

/// A record of a module other than Deals, its values by field type; about one text in
/// eight is awkward for CSV and one value in ten is null.
fn generic_record(
    rng: &mut Rng,
    options: &ZohoOptions,
    offset: &FixedOffset,
    users: &[Value],
    module: usize,
    i: usize,
    fields: &[Field],
) -> Value {
    let created = options.now - Duration::minutes(rng.below(60 * 24 * 300) as i64 + 60);
    let modified = (created + Duration::minutes(rng.below(60 * 24 * 20) as i64))
        .min(options.now - Duration::minutes(1));
    let mut record = serde_json::Map::new();
    record.insert(
        "id".into(),
        json!(format!("57257670{:02}{:09}", module + 10, i)),
    );
    for (name, data_type, _) in fields {
        let value = if rng.chance(10) && !name.ends_with("_Name") {
            Value::Null
        } else {
            match *data_type {
                "integer" => json!(rng.below(5000) as i64),
                "currency" | "double" => json!((rng.below(2_000_000) as f64) / 100.0),
                "boolean" => json!(rng.chance(50)),
                "date" => json!((created + Duration::days(rng.below(120) as i64))
                    .format("%Y-%m-%d")
                    .to_string()),
                "datetime" => json!(zoho_time(
                    created + Duration::minutes(rng.below(60 * 24 * 30) as i64),
                    offset
                )),
                "lookup" => json!({"id": format!("57257670000004{:05}", rng.below(6)),
                                   "name": format!("Related {}", rng.below(6))}),
                "picklist" => {
                    json!(*rng.pick(&["New", "Open", "In Review", "Closed", "High", "Low"]))
                }
                "email" => json!(format!("person{i}@example.com")),
                "phone" => json!(format!("+57 601 {:07}", rng.below(10_000_000))),
                "website" => json!(format!("https://www.example{i}.com")),
                _ if rng.chance(12) => json!(*rng.pick(&AWKWARD_TEXT)),
                _ => json!(format!("{} {i}", name.replace('_', " "))),
            }
        };
        record.insert(name.to_string(), value);
    }
    let owner = rng.pick(users);
    record.insert(
        "Owner".into(),
        json!({"id": owner["id"], "name": owner["full_name"], "email": owner["email"]}),
    );
    record.insert(
        "Tag".into(),
        if rng.chance(25) {
            json!(["priority", "q4"])
        } else {
            json!([])
        },
    );
    record.insert("Created_Time".into(), json!(zoho_time(created, offset)));
    record.insert("Modified_Time".into(), json!(zoho_time(modified, offset)));
    Value::Object(record)
}

/// A value as a bulk CSV cell.
fn csv_cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => items.iter().map(csv_cell).collect::<Vec<_>>().join(";"),
        Value::Object(o) => o.get("id").map(csv_cell).unwrap_or_default(),
    }
}

type Shared = Arc<Mutex<ZohoWorld>>;

/// A running fake Zoho CRM: its accounts server and API on one port.
pub struct FakeZoho {
    /// The server.
    pub server: Server,
    /// Its data, which tests may change.
    pub world: Shared,
    /// The client id it accepts.
    pub client_id: String,
    /// The client secret it accepts.
    pub client_secret: String,
    /// The refresh token it accepts.
    pub refresh_token: String,
}

/// This fake in the registry ([`crate::FAKES`]).
pub const FAKE: crate::FakeKind = crate::FakeKind::of::<FakeZoho>("zoho");

impl crate::SeededFake for FakeZoho {
    fn start_seeded(seed: u64, port: u16) -> std::io::Result<Self> {
        let options = ZohoOptions {
            seed,
            // The demo's 16 modules would take two minutes at Zoho's 10 downloads a
            // minute; the limit itself is tested with `ZohoOptions`.
            downloads_per_minute: None,
            ..Default::default()
        };
        Self::start_on(options, port)
    }
}

impl crate::RunningFake for FakeZoho {
    fn server(&self) -> &crate::Server {
        &self.server
    }

    fn describe(&self) -> Vec<String> {
        vec![
            format!("fake Zoho CRM (accounts and API) at {}", self.url()),
            format!("client id: {}", self.client_id),
            format!("client secret: {}", self.client_secret),
            format!("refresh token: {}", self.refresh_token),
        ]
    }

    fn settings(&self) -> String {
        format!(
            "# For the fake Zoho CRM: a real org needs its data centre's accounts_url\n\
             # and client_id_env, client_secret_env, refresh_token_env.\n\
             accounts_url = \"{}\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nrefresh_token = \"{}\"\n[http]\nrequests_per_second = 100\n",
            self.url(),
            self.client_id,
            self.client_secret,
            self.refresh_token
        )
    }

    fn wait(self: Box<Self>) {
        self.server.wait()
    }
}

impl FakeZoho {
    /// Starts it on a free port.
    pub fn start(options: ZohoOptions) -> std::io::Result<FakeZoho> {
        FakeZoho::start_on(options, 0)
    }

    /// Starts it on `port` (0: a free one).
    pub fn start_on(options: ZohoOptions, port: u16) -> std::io::Result<FakeZoho> {
        let world = Arc::new(Mutex::new(ZohoWorld::generate(&options)));
        let faults = Arc::new(Mutex::new(Faults::default()));
        let server = Server::spawn(router(world.clone()), faults, port)?;
        lock(&world).api_domain = server.base_url();
        Ok(FakeZoho {
            server,
            world,
            client_id: options.client_id,
            client_secret: options.client_secret,
            refresh_token: options.refresh_token,
        })
    }

    /// The accounts server and the API: one address.
    pub fn url(&self) -> String {
        self.server.base_url()
    }

    /// Its data, locked.
    pub fn world(&self) -> std::sync::MutexGuard<'_, ZohoWorld> {
        lock(&self.world)
    }
}

fn error(code: StatusCode, api_code: &str, message: &str) -> Response {
    (
        code,
        Json(json!({"code": api_code, "details": {}, "message": message, "status": "error"})),
    )
        .into_response()
}

fn router(world: Shared) -> Router {
    let api = Router::new()
        .route("/crm/v2/settings/fields", get(fields))
        .route("/crm/v2/users", get(users))
        .route("/crm/v2/{module}", get(records))
        .route("/crm/bulk/v2/read", post(create_bulk))
        .route("/crm/bulk/v2/read/{id}", get(poll_bulk))
        .route("/crm/bulk/v2/read/{id}/result", get(download_bulk))
        .route_layer(axum::middleware::from_fn_with_state(
            world.clone(),
            require_token,
        ));
    Router::new()
        .route("/oauth/v2/token", post(token))
        .merge(api)
        .with_state(world)
}

async fn token(State(world): State<Shared>, QueryParams(q): QueryParams<Query>) -> Response {
    let mut world = lock(&world);
    let ok = param(&q, "grant_type") == Some("refresh_token")
        && param(&q, "client_id") == Some(world.client_id.as_str())
        && param(&q, "client_secret") == Some(world.client_secret.as_str());
    if !ok {
        return Json(json!({"error": "invalid_client"})).into_response();
    }
    if param(&q, "refresh_token") != Some(world.refresh_token.as_str()) {
        return Json(json!({"error": "invalid_code"})).into_response();
    }
    world.tokens_issued += 1;
    Json(
        json!({"access_token": world.access_token, "api_domain": world.api_domain,
                "token_type": "Bearer", "expires_in": 3600}),
    )
    .into_response()
}

/// `Authorization: Zoho-oauthtoken <the access token>`, else 401 `INVALID_TOKEN`.
async fn require_token(
    State(world): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let token = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Zoho-oauthtoken "));
    {
        let mut world = lock(&world);
        let refused = || {
            error(
                StatusCode::UNAUTHORIZED,
                "INVALID_TOKEN",
                "invalid oauth token",
            )
        };
        if token != Some(world.access_token.as_str()) {
            return refused();
        }
        match world.expires_after {
            Some(0) => {
                world.expires_after = None;
                world.expire_token();
                return refused();
            }
            Some(n) => world.expires_after = Some(n - 1),
            None => {}
        }
        match world.credits {
            Some(0) => {
                return error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TOO_MANY_REQUESTS",
                    "the API credits of the day are used up",
                )
            }
            Some(n) => world.credits = Some(n - 1),
            None => {}
        }
    }
    next.run(request).await
}

/// `page` and `per_page` (at most 200), or the error to answer.
fn paging(q: &Query) -> Result<(usize, usize), Response> {
    let number = |name: &str, default: usize| match param(q, name) {
        None => Ok(default),
        Some(v) => v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                "INVALID_DATA",
                &format!("invalid {name}"),
            )
        }),
    };
    let page = number("page", 1)?;
    let per_page = number("per_page", 200)?;
    if per_page > 200 {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "INVALID_DATA",
            "per_page must be at most 200",
        ));
    }
    Ok((page, per_page))
}

fn page_of(items: &[Value], page: usize, per_page: usize, list: &str) -> Response {
    let start = (page - 1).saturating_mul(per_page);
    if start >= items.len() {
        return StatusCode::NO_CONTENT.into_response();
    }
    let slice = &items[start..(start + per_page).min(items.len())];
    Json(
        json!({list: slice, "info": {"per_page": per_page, "count": slice.len(), "page": page,
                                      "more_records": start + slice.len() < items.len()}}),
    )
    .into_response()
}

async fn fields(QueryParams(q): QueryParams<Query>) -> Response {
    let Some(fields) = param(&q, "module").and_then(ZohoWorld::fields) else {
        return invalid_module();
    };
    let fields: Vec<Value> = fields
        .iter()
        .map(|(api_name, data_type, json_type)| {
            json!({"api_name": api_name, "field_label": api_name.replace('_', " "),
                   "data_type": data_type, "json_type": json_type, "custom_field": false,
                   "visible": true})
        })
        .collect();
    Json(json!({ "fields": fields })).into_response()
}

fn invalid_module() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "INVALID_MODULE",
        "the module name given seems to be invalid",
    )
}

async fn users(State(world): State<Shared>, QueryParams(q): QueryParams<Query>) -> Response {
    let world = lock(&world);
    match paging(&q) {
        Ok((page, per_page)) => page_of(&world.users, page, per_page, "users"),
        Err(e) => e,
    }
}

async fn records(
    State(world): State<Shared>,
    Path(module): Path<String>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<Query>,
) -> Response {
    let world = lock(&world);
    if !world.modules.contains_key(&module) {
        return invalid_module();
    }
    let (page, per_page) = match paging(&q) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let since = match headers
        .get("if-modified-since")
        .map(|v| v.to_str().ok().and_then(parse))
    {
        None => None,
        Some(Some(t)) => Some(t),
        Some(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "INVALID_DATA",
                "If-Modified-Since is not a valid time",
            )
        }
    };
    // Only ascending Modified_Time order is served (what the source asks for).
    if param(&q, "sort_by").is_some_and(|s| s != "Modified_Time")
        || param(&q, "sort_order").is_some_and(|s| s != "asc")
    {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_DATA",
            "this fake sorts by Modified_Time asc only",
        );
    }
    let matching: Vec<Value> = world
        .records(&module)
        .iter()
        .filter(|d| {
            since.is_none_or(|s| {
                d["Modified_Time"]
                    .as_str()
                    .and_then(parse)
                    .is_some_and(|m| m > s)
            })
        })
        .cloned()
        .collect();
    page_of(&matching, page, per_page, "data")
}

fn job_state(world: &ZohoWorld, job: &BulkJob) -> &'static str {
    match job.polls {
        0 => "ADDED",
        n if n < world.bulk_polls.saturating_sub(1) => "QUEUED",
        n if n < world.bulk_polls => "IN PROGRESS",
        _ if job.fails => "FAILED",
        _ => "COMPLETED",
    }
}

/// `POST /crm/bulk/v2/read` with `{"query": {"module", "page"}, …}`: 201 and the new job.
async fn create_bulk(State(world): State<Shared>, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_DATA",
            "the body is not JSON",
        );
    };
    let Some(module) = body.pointer("/query/module").and_then(Value::as_str) else {
        return error(
            StatusCode::BAD_REQUEST,
            "REQUIRED_PARAM_MISSING",
            "query.module is required",
        );
    };
    let page = body
        .pointer("/query/page")
        .and_then(Value::as_u64)
        .unwrap_or(1) as usize;
    let mut world = lock(&world);
    if !world.modules.contains_key(module) {
        return invalid_module();
    }
    world.next_job += 1;
    let id = world.next_job.to_string();
    let fails = world.failing_modules.iter().any(|m| m == module);
    world.bulk_jobs.insert(
        id.clone(),
        BulkJob {
            id: id.clone(),
            module: module.to_string(),
            page: page.max(1),
            polls: 0,
            fails,
        },
    );
    let created = zoho_time(Utc::now(), &world.offset);
    (
        StatusCode::CREATED,
        Json(
            json!({"data": [{"status": "success", "code": "ADDED_SUCCESSFULLY",
            "message": "Added successfully.",
            "details": {"id": id, "operation": "read", "state": "ADDED",
                "created_by": {"id": "5725767000000235011", "name": "Patricia Boyle"},
                "created_time": created}}], "info": {}}),
        ),
    )
        .into_response()
}

/// `GET /crm/bulk/v2/read/{id}`: the job, one state further than at the last poll.
async fn poll_bulk(State(world): State<Shared>, Path(id): Path<String>) -> Response {
    let mut world = lock(&world);
    let Some(job) = world.bulk_jobs.get_mut(&id) else {
        return error(
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_FOUND",
            "the job does not exist",
        );
    };
    job.polls += 1;
    let job = job.clone();
    let state = job_state(&world, &job);
    let mut answer = json!({"id": job.id, "operation": "read", "state": state,
        "query": {"module": job.module, "page": job.page},
        "created_by": {"id": "5725767000000235011", "name": "Patricia Boyle"},
        "file_type": "csv"});
    if state == "COMPLETED" {
        let (records, more) = world.bulk_page(&job.module, job.page);
        let count = records.len();
        answer["result"] = json!({"page": job.page, "count": count,
            "per_page": world.bulk_page_size,
            "download_url": format!("/crm/bulk/v2/read/{}/result", job.id),
            "more_records": more});
    }
    Json(json!({ "data": [answer] })).into_response()
}

/// `GET /crm/bulk/v2/read/{id}/result`: the ZIP of a completed job's CSV.
async fn download_bulk(State(world): State<Shared>, Path(id): Path<String>) -> Response {
    let mut world = lock(&world);
    let Some(job) = world.bulk_jobs.get(&id).cloned() else {
        return error(
            StatusCode::NOT_FOUND,
            "RESOURCE_NOT_FOUND",
            "the job does not exist",
        );
    };
    if job_state(&world, &job) != "COMPLETED" {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_REQUEST",
            "the job has no result",
        );
    }
    if let Some(limit) = world.downloads_per_minute {
        let now = Instant::now();
        while world
            .downloads
            .front()
            .is_some_and(|t| now.duration_since(*t).as_secs() >= 60)
        {
            world.downloads.pop_front();
        }
        if world.downloads.len() >= limit as usize {
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_REQUESTS",
                "at most 10 bulk downloads a minute",
            );
        }
        world.downloads.push_back(now);
    }
    let csv = world.bulk_csv(&job.module, job.page);
    drop(world);
    match zipped(&format!("{}.csv", job.id), &csv) {
        Ok(zip) => ([("content-type", "application/zip")], zip).into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            &e.to_string(),
        ),
    }
}

fn zipped(name: &str, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file(name, options)
        .map_err(std::io::Error::other)?;
    zip.write_all(bytes)?;
    Ok(zip.finish().map_err(std::io::Error::other)?.into_inner())
}
