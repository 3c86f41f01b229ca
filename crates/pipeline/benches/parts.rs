//! Throughput of each stage on CI-job-like records: Singer parsing, normalizing to Arrow,
//! and the whole load into an in-memory DuckDB. `cargo bench -p observes-pipeline`
//! (`BENCH_RECORDS=N` to change the size). The end-to-end comparison with dlt and DuckDB's
//! own reader is `bench/run`.

use std::sync::Arc;
use std::time::Instant;

use observes_load::{LoadConfig, LoadError, Loader};
use observes_model::{IdAllocator, Layout, Normalizer};
use observes_pipeline::sources::synthetic::{self, SyntheticConfig};
use observes_pipeline::MessageStream;
use observes_singer::{Message, MessageReader, MessageWriter};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// CPU seconds this process has used, all threads (from /proc: user + system ticks).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

struct Stage {
    wall: Instant,
    cpu: f64,
}

fn start() -> Stage {
    Stage {
        wall: Instant::now(),
        cpu: cpu_seconds(),
    }
}

fn report(stage: &str, records: u64, bytes: usize, start: Stage) {
    let secs = start.wall.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - start.cpu;
    println!(
        "{stage:<28} {records} records in {secs:.3}s ({cpu:.2} CPU s): {:>10.0} records/s, {:>7.1} MB/s",
        records as f64 / secs,
        bytes as f64 / 1e6 / secs
    );
}

fn main() {
    let records: u64 = std::env::var("BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);
    // BENCH_SHAPE=wide: GitLab-shaped records (synthetic::Shape).
    let shape = std::env::var("BENCH_SHAPE").unwrap_or_else(|_| "narrow".into());
    let config = SyntheticConfig {
        records,
        seed: 1,
        checkpoint_every: 50_000,
        shape: shape.parse().expect("BENCH_SHAPE is narrow or wide"),
    };
    let mut writer = MessageWriter::new(Vec::new());
    for m in synthetic::messages(&config, 0) {
        writer.write(&m).unwrap();
    }
    let singer = writer.into_inner();

    let started = start();
    let mut messages = 0;
    for line in MessageReader::new(&singer[..]) {
        line.unwrap();
        messages += 1;
    }
    report("read Singer", records, singer.len(), started);
    assert!(messages as u64 > records);

    let layout =
        Arc::new(Layout::compile("jobs", &config.shape.schema(), &["id".into()], 255).unwrap());
    let mut normalizer = Normalizer::new(layout);
    let mut ids = IdAllocator::new(1);
    let normalize_only = std::env::var("BENCH_STAGES").as_deref() == Ok("normalize");
    let started = start();
    let mut batches = Vec::new();
    for line in MessageReader::new(&singer[..]) {
        if let Message::Record(r) = line.unwrap().message {
            normalizer.push(&r.record, &mut ids).unwrap();
            if normalizer.buffered_rows() >= 50_000 {
                let taken = normalizer.take_batches();
                if !normalize_only {
                    batches.extend(taken);
                }
            }
        }
    }
    batches.extend(normalizer.take_batches());
    report(
        "read and normalize to Arrow",
        records,
        singer.len(),
        started,
    );
    let rows: usize = batches.iter().map(|(_, b)| b.num_rows()).sum();
    println!("{:<28} {rows} rows in all tables", "");
    if normalize_only {
        return;
    }

    // The warehouse's share alone: the same batches stored in a DuckDB file.
    let dir = tempfile::tempdir().unwrap();
    let url = format!("duckdb://{}", dir.path().join("store.duckdb").display());
    let mut wh = observes_warehouse::connect(&url).unwrap();
    let layout = normalizer.layout().clone();
    wh.execute("CREATE SCHEMA ci", &[]).unwrap();
    for table in &layout.tables {
        let dialect = wh.dialect();
        wh.execute(
            &observes_warehouse::sql::create_table(dialect, "ci", &table.name, &table.columns),
            &[],
        )
        .unwrap();
    }
    let started = start();
    wh.begin().unwrap();
    for (i, batch) in &batches {
        wh.bulk_append("ci", &layout.tables[*i].name, batch)
            .unwrap();
    }
    wh.commit().unwrap();
    report("store batches in DuckDB", records, singer.len(), started);

    let mut wh = observes_warehouse::connect("duckdb://:memory:").unwrap();
    let started = start();
    let mut loader = Loader::begin(wh.as_mut(), LoadConfig::new("bench", "ci")).unwrap();
    let mut stream = MessageStream::from_reader(std::io::Cursor::new(singer.clone()));
    loader
        .drive(&mut stream, |_| Ok::<(), LoadError>(()))
        .unwrap();
    loader.finish().unwrap();
    report("Singer to DuckDB (append)", records, singer.len(), started);
}
