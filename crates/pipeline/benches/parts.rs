//! Throughput of each stage on CI-job-like records: Singer parsing, normalizing to Arrow,
//! and the whole load into an in-memory DuckDB. `cargo bench -p observes-pipeline`
//! (`BENCH_RECORDS=N` to change the size). The end-to-end comparison with dlt and DuckDB's
//! own reader is `bench/run`.

use std::sync::Arc;
use std::time::Instant;

use observes_load::{LoadConfig, Loader};
use observes_model::{IdAllocator, Layout, Normalizer};
use observes_pipeline::sources::synthetic::{self, SyntheticConfig};
use observes_pipeline::{drive, MessageStream};
use observes_singer::{Message, MessageReader, MessageWriter};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn report(stage: &str, records: u64, bytes: usize, start: Instant) {
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{stage:<28} {records} records in {secs:.3}s: {:>10.0} records/s, {:>7.1} MB/s",
        records as f64 / secs,
        bytes as f64 / 1e6 / secs
    );
}

fn main() {
    let records: u64 = std::env::var("BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    let config = SyntheticConfig {
        records,
        seed: 1,
        checkpoint_every: 50_000,
    };
    let mut writer = MessageWriter::new(Vec::new());
    for m in synthetic::messages(&config, 0) {
        writer.write(&m).unwrap();
    }
    let singer = writer.into_inner();

    let start = Instant::now();
    let mut parsed = Vec::with_capacity(records as usize + 16);
    for line in MessageReader::new(&singer[..]) {
        parsed.push(line.unwrap().message);
    }
    report("parse Singer", records, singer.len(), start);

    let layout =
        Arc::new(Layout::compile("jobs", &synthetic::jobs_schema(), &["id".into()], 255).unwrap());
    let mut normalizer = Normalizer::new(layout);
    let mut ids = IdAllocator::new(1);
    let start = Instant::now();
    let mut rows = 0;
    for message in &parsed {
        if let Message::Record(r) = message {
            normalizer.push(&r.record, &mut ids).unwrap();
            if normalizer.buffered_rows() >= 50_000 {
                rows += normalizer
                    .take_batches()
                    .iter()
                    .map(|(_, b)| b.num_rows())
                    .sum::<usize>();
            }
        }
    }
    rows += normalizer
        .take_batches()
        .iter()
        .map(|(_, b)| b.num_rows())
        .sum::<usize>();
    report("normalize to Arrow", records, singer.len(), start);
    println!("{:<28} {rows} rows in all tables", "");

    let mut wh = observes_warehouse::connect("duckdb://:memory:").unwrap();
    let start = Instant::now();
    let mut loader = Loader::begin(wh.as_mut(), LoadConfig::new("bench", "ci")).unwrap();
    let mut stream = MessageStream::from_reader(std::io::Cursor::new(singer.clone()));
    drive(&mut loader, &mut stream, |_| Ok(())).unwrap();
    loader.finish().unwrap();
    report("Singer to DuckDB (append)", records, singer.len(), start);
}
