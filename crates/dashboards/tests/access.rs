//! `observes dashboard serve` behind each access mode, over real HTTP on loopback: every
//! route refuses a request without credentials, a user sees only its groups' dashboards,
//! a wrong token or a forged proxy header is refused, and the log names each refusal
//! without a secret in it.

use std::io::Write;
use std::sync::{Arc, Mutex};

use observes_dashboards::access::{hash_secret, Access, AccessConfig};
use observes_dashboards::server::{serve, ServeConfig};

const TOKEN_A: &str = "obs-7c1f0d2e-finance-token";
const TOKEN_B: &str = "obs-93aa41b8-sales-token";
const PASSWORD: &str = "correct horse battery staple";

/// Everything the server logs, shared with the test.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// A GET with `headers`: the status, the head and the body.
fn get(base: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let r = observes_testkit::http_get(base, path, headers);
    (r.status, r.head, r.body)
}

struct Served {
    rt: tokio::runtime::Runtime,
    base: String,
    _dir: tempfile::TempDir,
}

/// Three dashboards (finance's, sales', and one for everyone) behind `access`.
fn served(access: &str) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let boards = dir.path().join("dashboards");
    std::fs::create_dir_all(&boards).unwrap();
    let board = |groups: &str, title: &str| {
        format!("title = \"{title}\"\n{groups}\n[[panels]]\ntitle = \"N\"\nkind = \"number\"\nsql = \"SELECT 42 AS n\"\n")
    };
    std::fs::write(
        boards.join("billing.toml"),
        board("groups = [\"finance\"]", "Billing"),
    )
    .unwrap();
    std::fs::write(
        boards.join("sales.toml"),
        board("groups = [\"sales\"]", "Sales"),
    )
    .unwrap();
    std::fs::write(boards.join("ci.toml"), board("", "CI")).unwrap();
    let config: AccessConfig = toml::from_str(access).unwrap();
    let access = Access::new(&config).unwrap();
    let config = ServeConfig {
        dashboards: boards,
        warehouse: format!("duckdb://{}", dir.path().join("w.duckdb").display()),
        query_timeout: std::time::Duration::from_secs(20),
        access: Arc::new(access),
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = listener.local_addr().unwrap().to_string();
    rt.spawn(serve(listener, config));
    Served {
        rt,
        base,
        _dir: dir,
    }
}

const ROUTES: [&str; 5] = [
    "/",
    "/d/billing",
    "/d/ci",
    "/d/billing/panel/0.csv",
    "/d/billing/export.html",
];

#[test]
fn every_mode_guards_every_route_and_logs_refusals_without_secrets() {
    let log = Log::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    // Tokens: finance's and sales', each a user with its groups.
    let users = format!(
        "[[users]]\nname = \"fin\"\nhash = {:?}\ngroups = [\"finance\"]\n[[users]]\nname = \"sal\"\nhash = {:?}\ngroups = [\"sales\"]\n",
        hash_secret(TOKEN_A).unwrap(),
        hash_secret(TOKEN_B).unwrap()
    );
    let s = served(&format!("mode = \"token\"\n{users}"));
    for route in ROUTES {
        let (status, head, _) = get(&s.base, route, &[]);
        assert_eq!(status, 401, "{route} without credentials");
        assert!(
            head.contains("www-authenticate: Bearer realm=\"observes\""),
            "{head}"
        );
        let (status, _, _) = get(&s.base, route, &[("Authorization", "Bearer obs-wrong")]);
        assert_eq!(status, 401, "{route} with a wrong token");
        let (status, _, _) = get(&s.base, route, &[("Authorization", "Basic Zm9vOmJhcg==")]);
        assert_eq!(status, 401, "{route} with basic credentials in token mode");
    }
    let finance = [("Authorization", format!("Bearer {TOKEN_A}"))];
    let finance: Vec<(&str, &str)> = finance.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, index) = get(&s.base, "/", &finance);
    assert_eq!(status, 200);
    assert!(index.contains("href=\"/d/billing\"") && index.contains("href=\"/d/ci\""));
    assert!(
        !index.contains("/d/sales"),
        "sales' dashboard is not listed: {index}"
    );
    for (route, expected) in [
        ("/d/billing", 200),
        ("/d/ci", 200),
        ("/d/billing/panel/0.csv", 200),
        ("/d/sales", 403),
        ("/d/sales/panel/0.csv", 403),
        ("/d/billing/export.html", 200),
        ("/d/sales/export.html", 403),
    ] {
        let (status, _, body) = get(&s.base, route, &finance);
        assert_eq!(status, expected, "{route} for finance: {body}");
    }
    let (_, _, csv) = get(&s.base, "/d/billing/panel/0.csv", &finance);
    assert_eq!(csv, "n\n42\n");
    let (_, _, refused) = get(&s.base, "/d/sales", &finance);
    assert_eq!(refused, "user \"fin\" may not open \"sales\"\n");
    let (status, _, _) = get(
        &s.base,
        "/d/sales",
        &[("Authorization", &format!("Bearer {TOKEN_B}"))],
    );
    assert_eq!(status, 200, "sales' token opens sales'");
    drop(s.rt);

    // HTTP basic, with the same hashes.
    let basic_users = format!(
        "[[users]]\nname = \"ana\"\nhash = {:?}\ngroups = [\"*\"]\n",
        hash_secret(PASSWORD).unwrap()
    );
    let s = served(&format!("mode = \"basic\"\n{basic_users}"));
    let basic = |user: &str, password: &str| {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    };
    let (status, head, _) = get(&s.base, "/d/sales", &[]);
    assert_eq!(status, 401);
    assert!(
        head.contains("www-authenticate: Basic realm=\"observes\""),
        "{head}"
    );
    let right = basic("ana", PASSWORD);
    let wrong = basic("ana", "not the password");
    let stranger = basic("eve", PASSWORD);
    assert_eq!(
        get(&s.base, "/d/sales", &[("Authorization", &right)]).0,
        200
    );
    assert_eq!(
        get(&s.base, "/d/sales", &[("Authorization", &right)]).0,
        200,
        "remembered"
    );
    assert_eq!(
        get(&s.base, "/d/sales", &[("Authorization", &wrong)]).0,
        401
    );
    assert_eq!(
        get(&s.base, "/d/sales", &[("Authorization", &stranger)]).0,
        401
    );
    drop(s.rt);

    // A proxy that signs users in: believed from its address only.
    let proxied = "mode = \"proxy\"\nproxy_groups_header = \"X-Forwarded-Groups\"\ntrusted_proxies = [\"127.0.0.0/8\"]\n[[users]]\nname = \"ana@example.com\"\ngroups = [\"finance\"]\n";
    let s = served(proxied);
    let email = [("X-Forwarded-Email", "ana@example.com")];
    assert_eq!(get(&s.base, "/d/billing", &[]).0, 401, "no header");
    assert_eq!(get(&s.base, "/d/billing", &email).0, 200);
    assert_eq!(get(&s.base, "/d/sales", &email).0, 403);
    let with_groups = [
        ("X-Forwarded-Email", "bo@example.com"),
        ("X-Forwarded-Groups", "sales, support"),
    ];
    assert_eq!(
        get(&s.base, "/d/sales", &with_groups).0,
        200,
        "the proxy's groups count"
    );
    drop(s.rt);
    let s = served("mode = \"proxy\"\ntrusted_proxies = [\"10.0.0.7\"]\n");
    for route in ROUTES {
        assert_eq!(
            get(&s.base, route, &email).0,
            401,
            "{route}: a forged header"
        );
    }
    drop(s.rt);

    let text = log.text();
    for secret in [TOKEN_A, TOKEN_B, PASSWORD, "obs-wrong", "not the password"] {
        assert!(
            !text.contains(secret),
            "{secret:?} reached the log:\n{text}"
        );
    }
    assert!(!text.contains(&right[6..]) && !text.contains(&wrong[6..]));
    for reason in [
        "reason=no credentials",
        "reason=an unknown token",
        "reason=an unreadable Authorization header (expected Bearer TOKEN)",
        "reason=a wrong password for user \"ana\"",
        "reason=an unknown user name",
        "reason=X-Forwarded-Email came from 127.0.0.1, which is not a trusted proxy",
        "dashboard request denied: not in the dashboard's groups viewer=user \"fin\" dashboard=\"sales\"",
    ] {
        assert!(text.contains(reason), "the log names {reason:?}:\n{text}");
    }
    assert!(text.contains("path=\"/d/billing/panel/0.csv\""), "{text}");
}
