//! The state store on a real S3-compatible server (started by ./scripts/test): the same
//! checks as on a local folder, the lock through S3's conditional puts.

use observes_state::{conformance, StateStore};

fn store() -> StateStore {
    let bucket = observes_testkit::s3_bucket();
    StateStore::open(&format!("s3://{bucket}/observes/prod")).unwrap()
}

#[tokio::test]
async fn state_round_trips_on_s3() {
    conformance::round_trip(&store()).await;
}

#[tokio::test]
async fn the_lock_is_a_conditional_put_on_s3() {
    conformance::lock(&store()).await;
}
