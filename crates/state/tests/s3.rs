//! The state store on a real S3-compatible server (started by ./scripts/test).

use std::time::Duration;

use observes_state::{StateError, StateStore};
use serde_json::json;

fn store() -> StateStore {
    let bucket = observes_testkit::s3_bucket();
    StateStore::open(&format!("s3://{bucket}/observes/prod")).unwrap()
}

#[tokio::test]
async fn state_round_trips_on_s3() {
    let store = store();
    assert_eq!(store.get("etl/gitlab").await.unwrap(), None);
    store.put("etl/gitlab", &json!({"b": 1})).await.unwrap();
    assert_eq!(
        store.get("etl/gitlab").await.unwrap(),
        Some(json!({"b": 1}))
    );
    store.put("etl/gitlab", &json!({"b": 2})).await.unwrap();
    assert_eq!(
        store.get("etl/gitlab").await.unwrap(),
        Some(json!({"b": 2}))
    );
    store.clear("etl/gitlab").await.unwrap();
    assert_eq!(store.get("etl/gitlab").await.unwrap(), None);
}

#[tokio::test]
async fn the_lock_is_a_conditional_put_on_s3() {
    let store = store();
    let lock = store
        .lock("p", "run-1", Duration::from_secs(60))
        .await
        .unwrap();
    let err = store
        .lock("p", "run-2", Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StateError::Locked { ref owner, .. } if owner == "run-1"),
        "{err}"
    );
    store.unlock(lock).await.unwrap();
    let stale = store
        .lock("p", "run-2", Duration::from_millis(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    // Expired: taken over with a conditional update on the lock's ETag.
    let lock3 = store
        .lock("p", "run-3", Duration::from_secs(60))
        .await
        .unwrap();
    store.unlock(stale).await.unwrap();
    assert!(store
        .lock("p", "run-4", Duration::from_secs(60))
        .await
        .is_err());
    store.unlock(lock3).await.unwrap();
}
