//! TLS as the URL asks, with libpq's meaning of `sslmode`. The test server has a
//! self-signed certificate (Debian's, or the one `scripts/postgres-for-tests` makes).

use observes_warehouse::SqlValue;

fn encrypted(url: &str) -> SqlValue {
    let mut wh = observes_warehouse::connect(url).unwrap();
    wh.query(
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        &[],
    )
    .unwrap()[0][0]
        .clone()
}

#[test]
fn sslmode_is_honoured() {
    let db = observes_testkit::TestDatabase::create();
    assert_eq!(
        encrypted(&format!("{}?sslmode=require", db.url)),
        SqlValue::Bool(true)
    );
    assert_eq!(
        encrypted(&format!("{}?sslmode=prefer", db.url)),
        SqlValue::Bool(true)
    );
    assert_eq!(
        encrypted(&format!("{}?sslmode=disable", db.url)),
        SqlValue::Bool(false)
    );
    // verify-full checks the certificate: a self-signed one is refused.
    let err = match observes_warehouse::connect(&format!("{}?sslmode=verify-full", db.url)) {
        Ok(_) => panic!("a self-signed certificate passed verification"),
        Err(e) => observes_runtime::chain(&e).to_string(),
    };
    assert!(err.contains("certificate"), "{err}");
    let err = match observes_warehouse::connect(&format!("{}?sslmode=sometimes", db.url)) {
        Ok(_) => panic!("accepted an unknown sslmode"),
        Err(e) => observes_runtime::chain(&e).to_string(),
    };
    assert!(err.ends_with("unknown sslmode \"sometimes\""), "{err}");
}
