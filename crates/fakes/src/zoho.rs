//! A fake Zoho CRM (API v2) and its accounts server on one address, following
//! `reference/zoho-crm.md`: the refresh grant by query parameters (a refused grant is a
//! 200 with `{"error": …}`), `Authorization: Zoho-oauthtoken …`, field metadata, module
//! records with `page`/`per_page` (at most 200), `sort_by`/`sort_order`,
//! `If-Modified-Since` and `info.more_records`, 204 when nothing matches, and users.

use std::sync::{Arc, Mutex};

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
        }
    }
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
    /// Deals.
    pub deals: Vec<Value>,
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
            deals.push(json!({
                "id": format!("5725767000001{:06}", i),
                "Deal_Name": format!("{account} — deal {i}"),
                "Stage": stage,
                "Amount": (rng.below(400) + 10) as f64 * 250.0,
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
        let mut world = ZohoWorld {
            deals,
            users,
            access_token: format!("1000.{:016x}", rng.next_u64()),
            tokens_issued: 0,
            expires_after: None,
            client_id: options.client_id.clone(),
            client_secret: options.client_secret.clone(),
            refresh_token: options.refresh_token.clone(),
            offset,
            api_domain: String::new(),
        };
        world.sort();
        world
    }

    fn sort(&mut self) {
        self.deals.sort_by_key(|d| {
            (
                d["Modified_Time"].as_str().and_then(parse),
                d["id"].as_str().map(String::from),
            )
        });
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
        if let Some(deal) = self.deals.iter_mut().find(|d| d["id"] == json!(id)) {
            deal["Stage"] = json!(stage);
            deal["Modified_Time"] = json!(time);
        }
        self.sort();
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
            ..Default::default()
        };
        Self::start_on(options, port)
    }
}

impl crate::RunningFake for FakeZoho {
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
    if param(&q, "module") != Some("Deals") {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_MODULE",
            "the module name given seems to be invalid",
        );
    }
    let field = |api_name: &str, data_type: &str, json_type: &str| {
        json!({"api_name": api_name, "field_label": api_name.replace('_', " "), "data_type": data_type,
               "json_type": json_type, "custom_field": false, "visible": true})
    };
    Json(json!({"fields": [
        field("Deal_Name", "text", "string"), field("Stage", "picklist", "string"),
        field("Amount", "currency", "double"), field("Probability", "integer", "integer"),
        field("Closing_Date", "date", "string"), field("Owner", "ownerlookup", "jsonobject"),
        field("Account_Name", "lookup", "jsonobject"), field("Lead_Source", "picklist", "string"),
        field("Tag", "multiselectpicklist", "jsonarray"),
        field("Created_Time", "datetime", "string"), field("Modified_Time", "datetime", "string"),
    ]}))
    .into_response()
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
    if module != "Deals" {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_MODULE",
            "the module name given seems to be invalid",
        );
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
        .deals
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
