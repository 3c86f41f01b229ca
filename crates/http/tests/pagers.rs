//! One [`Pager`] for every pagination style, against a server that pages 23 items.

use std::time::Duration;

use observes_http::{
    BodyError, HttpClient, HttpConfig, PageBudget, PagePosition, PageStyle, Pager, RetryPolicy,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use url::Url;

const ITEMS: u64 = 23;

/// Answers `GET /items?…` in the style the query asks for.
fn answer(target: &str) -> (String, Value) {
    let url = Url::parse(&format!("http://x{target}")).unwrap();
    let q = |k: &str| {
        url.query_pairs()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.into_owned())
    };
    let num = |k: &str, d: u64| q(k).and_then(|v| v.parse().ok()).unwrap_or(d);
    let slice = |from: u64, n: u64| -> Vec<Value> {
        (from..(from + n).min(ITEMS))
            .map(|i| json!({"id": i}))
            .collect()
    };
    match q("style").as_deref() {
        Some("offset") => (
            String::new(),
            json!(slice(num("offset", 0), num("limit", 10))),
        ),
        Some("cursor") => {
            let from = q("nextId").map_or(0, |c| c.trim_start_matches('c').parse().unwrap());
            let next = if from + 10 < ITEMS {
                json!(format!("c{}", from + 10))
            } else {
                Value::Null
            };
            (
                String::new(),
                json!({"entries": slice(from, 10), "nextId": next}),
            )
        }
        Some("nexturl") => {
            let from = num("after", 0);
            let next = if from + 10 < ITEMS {
                json!(format!("/items?style=nexturl&after={}", from + 10))
            } else {
                Value::Null
            };
            (
                String::new(),
                json!({"data": slice(from, 10), "links": {"next": next}}),
            )
        }
        Some("totals") => {
            let size = num("per_page", 10);
            let offset = q("skip").map(|s| s.parse::<u64>().unwrap());
            let from = offset.unwrap_or_else(|| (num("p", 1) - 1) * size);
            (
                String::new(),
                json!({"meta": {"total": ITEMS}, "results": slice(from, size)}),
            )
        }
        Some("pages") => (
            String::new(),
            json!(slice(
                (num("page", 1) - 1) * num("limit", 10),
                num("limit", 10)
            )),
        ),
        Some("header") => {
            let page = num("page", 1);
            let next = if page * 10 < ITEMS {
                (page + 1).to_string()
            } else {
                String::new()
            };
            (
                format!("x-next-page: {next}\r\n"),
                json!(slice((page - 1) * 10, 10)),
            )
        }
        Some("link") => {
            let from = num("after", 0);
            let link = if from + 10 < ITEMS {
                let host = q("host").unwrap_or_default();
                format!(
                    "link: <http://{host}/items?style=link&host={host}&after={}>; rel=\"next\"\r\n",
                    from + 10
                )
            } else {
                String::new()
            };
            (link, json!(slice(from, 10)))
        }
        // Matomo's shapes: an object keyed by day, a day's report an object, an array
        // of rows, a scalar or [] (no data); an error is a 200 with "result": "error".
        Some("keyed") => (
            String::new(),
            json!({
                "2026-03-05": {"nb_visits": 4},
                "2026-03-06": [{"label": "/a", "nb_hits": 2}, {"label": "/b", "nb_hits": 1}],
                "2026-03-07": [],
                "2026-03-08": 7,
            }),
        ),
        Some("empty-range") => (String::new(), json!([])),
        Some("refused") => (
            String::new(),
            json!({"result": "error", "message": "You can't access this resource as it requires 'view' access for the website id = 1."}),
        ),
        _ => (String::new(), json!({"error": "no style"})),
    }
}

async fn serve() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head);
                let target = text.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (headers, body) = answer(&target);
                let body = body.to_string();
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{headers}\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    addr
}

fn client() -> HttpClient {
    HttpClient::new(HttpConfig {
        timeout: Duration::from_secs(5),
        retry: RetryPolicy {
            max_attempts: 2,
            base: Duration::from_millis(5),
            max: Duration::from_millis(10),
        },
        ..HttpConfig::default()
    })
    .unwrap()
}

/// Every id the pager yields, and how many pages it took.
async fn drain(mut pager: Pager) -> (Vec<u64>, usize) {
    let client = client();
    let mut ids = Vec::new();
    let mut pages = 0;
    while let Some(page) = pager.next_page(&client).await.unwrap() {
        pages += 1;
        ids.extend(page.items.iter().map(|i| i["id"].as_u64().unwrap()));
    }
    (ids, pages)
}

/// Each style with the listing it pages and where its pages keep their items.
fn styles(addr: &str) -> Vec<(PageStyle, Url, Option<String>)> {
    let url = |style: &str| {
        Url::parse(&format!("http://{addr}/items?style={style}&host={addr}")).unwrap()
    };
    let at = |p: &str| Some(p.to_string());
    vec![
        (PageStyle::NextPageHeader, url("header"), None),
        (PageStyle::LinkHeader, url("link"), None),
        (
            PageStyle::PageNumbers {
                page_param: "page".into(),
                limit_param: "limit".into(),
                limit: 10,
                total: None,
            },
            url("pages"),
            None,
        ),
        (
            PageStyle::Offset {
                offset_param: "offset".into(),
                limit_param: "limit".into(),
                limit: 10,
                total: None,
            },
            url("offset"),
            None,
        ),
        (
            PageStyle::BodyCursor {
                cursor: "/nextId".into(),
                cursor_param: "nextId".into(),
            },
            url("cursor"),
            at("/entries"),
        ),
        (
            PageStyle::BodyNextUrl {
                next: "/links/next".into(),
            },
            url("nexturl"),
            at("/data"),
        ),
        (
            PageStyle::PageNumbers {
                page_param: "p".into(),
                limit_param: "per_page".into(),
                limit: 10,
                total: at("/meta/total"),
            },
            url("totals"),
            at("/results"),
        ),
        (
            PageStyle::Offset {
                offset_param: "skip".into(),
                limit_param: "per_page".into(),
                limit: 10,
                total: at("/meta/total"),
            },
            url("totals"),
            at("/results"),
        ),
    ]
}

#[tokio::test]
async fn every_style_yields_every_item_once() {
    let addr = serve().await;
    for (style, url, records) in styles(&addr) {
        let pager = Pager::new(style.clone(), url, PageBudget::unlimited()).with_records(records);
        let (ids, pages) = drain(pager).await;
        assert_eq!(ids, (0..ITEMS).collect::<Vec<_>>(), "{style:?}");
        assert_eq!(pages, 3, "{style:?}");
    }
}

#[tokio::test]
async fn a_capped_pager_resumes_from_its_position_without_gaps() {
    let addr = serve().await;
    for (style, url, records) in styles(&addr) {
        let budget = PageBudget::new(2);
        let mut pager =
            Pager::new(style.clone(), url.clone(), budget.clone()).with_records(records.clone());
        let client = client();
        let mut ids = Vec::new();
        while let Some(page) = pager.next_page(&client).await.unwrap() {
            ids.extend(page.items.iter().map(|i| i["id"].as_u64().unwrap()));
        }
        assert!(pager.capped(), "{style:?}");
        assert_eq!(ids.len(), 20, "{style:?}");
        // The position survives a round trip through a bookmark.
        let saved = serde_json::to_value(pager.position().unwrap()).unwrap();
        let position: PagePosition = serde_json::from_value(saved).unwrap();
        let (rest, _) = drain(
            Pager::resume(style.clone(), url, Some(position), PageBudget::unlimited())
                .with_records(records),
        )
        .await;
        ids.extend(rest);
        assert_eq!(ids, (0..ITEMS).collect::<Vec<_>>(), "{style:?}");
    }
}

#[tokio::test]
async fn a_body_of_the_wrong_shape_is_a_clear_error() {
    let addr = serve().await;
    let url = Url::parse(&format!("http://{addr}/items?style=none")).unwrap();
    let mut pager = Pager::new(PageStyle::NextPageHeader, url, PageBudget::unlimited());
    let err = pager.next_page(&client()).await.unwrap_err().to_string();
    assert_eq!(
        err,
        format!("GET http://{addr}/items?style=none&page=1: unexpected response: expected a JSON array of items, got an object")
    );
}

#[tokio::test]
async fn a_total_in_the_body_spares_the_empty_last_request() {
    let addr = serve().await;
    let url = Url::parse(&format!("http://{addr}/items?style=totals")).unwrap();
    let style = |total: Option<String>| PageStyle::Offset {
        offset_param: "skip".into(),
        limit_param: "per_page".into(),
        limit: ITEMS,
        total,
    };
    let pager = |total| {
        Pager::new(style(total), url.clone(), PageBudget::unlimited())
            .with_records(Some("/results".into()))
    };
    assert_eq!(drain(pager(None)).await, ((0..ITEMS).collect(), 2));
    assert_eq!(
        drain(pager(Some("/meta/total".into()))).await,
        ((0..ITEMS).collect(), 1)
    );
}

#[tokio::test]
async fn records_or_a_total_not_where_the_definition_says_are_clear_errors() {
    let addr = serve().await;
    let url = Url::parse(&format!("http://{addr}/items?style=totals")).unwrap();
    let offset = |total: Option<&str>| PageStyle::Offset {
        offset_param: "skip".into(),
        limit_param: "per_page".into(),
        limit: 10,
        total: total.map(str::to_string),
    };
    let error = |style: PageStyle, records: &'static str| {
        let url = url.clone();
        async move {
            Pager::new(style, url, PageBudget::unlimited())
                .with_records(Some(records.to_string()))
                .next_page(&client())
                .await
                .unwrap_err()
                .to_string()
        }
    };
    let page =
        format!("GET http://{addr}/items?style=totals&per_page=10&skip=0: unexpected response");
    assert_eq!(
        error(offset(None), "/items").await,
        format!("{page}: expected an array of items at \"/items\", found nothing")
    );
    assert_eq!(
        error(offset(None), "/meta").await,
        format!("{page}: expected an array of items at \"/meta\", got an object")
    );
    assert_eq!(
        error(offset(Some("/meta/count")), "/results").await,
        format!("{page}: expected the total, a number, at \"/meta/count\", found nothing")
    );
}

#[tokio::test]
async fn records_keyed_by_a_field_take_the_key_and_errors_in_a_200_body_fail() {
    let addr = serve().await;
    let page = |style: &str| {
        let url = Url::parse(&format!("http://{addr}/items?style={style}")).unwrap();
        async move {
            Pager::new(PageStyle::LinkHeader, url, PageBudget::unlimited())
                .with_keyed_by(Some("date".into()))
                .with_error(Some(BodyError {
                    pointer: "/result".into(),
                    value: "error".into(),
                    message: Some("/message".into()),
                }))
                .next_page(&client())
                .await
        }
    };
    let items = page("keyed").await.unwrap().unwrap().items;
    assert_eq!(
        items,
        vec![
            json!({"date": "2026-03-05", "nb_visits": 4}),
            json!({"date": "2026-03-06", "label": "/a", "nb_hits": 2}),
            json!({"date": "2026-03-06", "label": "/b", "nb_hits": 1}),
            json!({"date": "2026-03-08", "value": 7}),
        ]
    );
    assert_eq!(
        page("empty-range").await.unwrap().unwrap().items,
        Vec::<Value>::new()
    );
    assert_eq!(
        page("refused").await.unwrap_err().to_string(),
        format!("GET http://{addr}/items?style=refused: unexpected response: the answer is an error: You can't access this resource as it requires 'view' access for the website id = 1.")
    );
    // Not keyed as said: a clear error, not records named after the body's fields.
    let url = Url::parse(&format!("http://{addr}/items?style=offset")).unwrap();
    let err = Pager::new(PageStyle::LinkHeader, url, PageBudget::unlimited())
        .with_keyed_by(Some("date".into()))
        .next_page(&client())
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!("GET http://{addr}/items?style=offset: unexpected response: expected an object keyed by date, got an array")
    );
}
