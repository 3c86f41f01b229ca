//! A Zoho bulk read page of 200,000 records (Zoho's largest), read from its ZIP as the
//! pipeline reads it: records per second, and the peak RSS while reading, beside the
//! same for a page of 20,000. Memory is flat when the two peaks match.
//!
//! `cargo bench -p observes-sources --bench zoho_bulk` (Linux: the peak is VmHWM, reset
//! through /proc/self/clear_refs before each read).

use std::io::Write;
use std::time::Instant;

use observes_fakes::zoho::{Field, ZohoWorld};
use observes_sources::zoho::{bulk, module_schema};
use serde_json::json;

/// The fake org's Leads: its fields, as its field metadata gives them.
fn fields() -> Vec<Field> {
    ZohoWorld::fields("Leads").expect("the fake has Leads")
}

/// Record `i`'s cell of a field, by the field's type; a quarter of the long texts are
/// awkward for CSV.
fn cell(i: usize, (name, data_type, _): &Field) -> String {
    match *data_type {
        "integer" => (i % 5000).to_string(),
        "currency" | "double" => format!("{}.{:02}", i * 7 % 100_000, i % 100),
        "boolean" => i.is_multiple_of(2).to_string(),
        "date" => "1990-05-17".into(),
        "datetime" => "2024-03-05T14:02:11+05:30".into(),
        "ownerlookup" | "lookup" => format!("5725767000000{:06}", i % 40),
        "multiselectpicklist" if i.is_multiple_of(3) => "priority;q4".into(),
        "multiselectpicklist" => String::new(),
        "picklist" => ["Web Form", "Cold Call", "Partner"][i % 3].to_string(),
        "email" => format!("person{i}@example.com"),
        "textarea" => match i % 4 {
            0 => format!("Called twice, no answer; will \"try\" again ({i})"),
            1 => format!("First line\r\nsecond line\nthird — ünïcödé ✓ {i}"),
            2 => String::new(),
            _ => format!("A longer note about lead {i}, with enough text to look like what sales people write after a call."),
        },
        _ => format!("{name} {i} Gómez"),
    }
}

/// Writes a result ZIP of `rows` records to a temporary file, a row at a time.
fn page(rows: usize) -> std::fs::File {
    let file = tempfile::tempfile().expect("a temporary file");
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("page.csv", options).expect("a zip entry");
    zip.write_all("\u{feff}".as_bytes()).expect("write");
    {
        let mut csv = csv::WriterBuilder::new()
            .quote_style(csv::QuoteStyle::Always)
            .terminator(csv::Terminator::CRLF)
            .from_writer(&mut zip);
        let fields = fields();
        let mut header = vec!["Id"];
        header.extend(fields.iter().map(|f| f.0));
        csv.write_record(&header).expect("write");
        for i in 0..rows {
            let mut row = vec![format!("57257670{i:011}")];
            row.extend(fields.iter().map(|f| cell(i, f)));
            csv.write_record(&row).expect("write");
        }
        csv.flush().expect("flush");
    }
    let mut file = zip.finish().expect("the zip");
    std::io::Seek::rewind(&mut file).expect("rewind");
    file
}

fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() {
    let fields: Vec<serde_json::Value> = fields()
        .iter()
        .map(|(name, data_type, json_type)| {
            json!({"api_name": name, "data_type": data_type, "json_type": json_type})
        })
        .collect();
    let schema = module_schema(&fields).expect("a schema");
    for rows in [20_000usize, 200_000] {
        let file = page(rows);
        let zipped = file.metadata().map(|m| m.len()).unwrap_or(0);
        reset_peak();
        let before = peak_rss_kib();
        let started = Instant::now();
        let mut bytes = 0usize;
        let read = bulk::read_result(file, "Leads", 1, &schema, |record| {
            // What the loader gets: each record, whole; measured by its JSON's length.
            bytes += serde_json::Value::Object(record).to_string().len();
            Ok(())
        })
        .expect("the page reads");
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(read, rows as u64);
        println!(
            "zoho bulk page of {rows} records ({:.1} MB zipped, {:.0} MB as JSON): {:.2} s, {:.0} records/s, peak RSS {} MiB (before reading: {} MiB)",
            zipped as f64 / 1e6,
            bytes as f64 / 1e6,
            seconds,
            rows as f64 / seconds,
            peak_rss_kib().map_or("?".into(), |k| (k / 1024).to_string()),
            before.map_or("?".into(), |k| (k / 1024).to_string()),
        );
    }
}
