//! Zoho CRM's bulk read (`/crm/bulk/v2/read`, `reference/zoho-crm.md`): the answers about
//! a job, and its result, a ZIP holding one CSV of at most 200,000 records, read as
//! records typed by the module's field metadata.
//!
//! The CSV is read a record at a time from the ZIP entry as it inflates: a page's memory
//! is one record, whatever its size. Everything in it is text; a cell becomes what its
//! field's type in [`super::module_schema`] says (an empty cell is null): integers,
//! numbers and booleans parsed (a cell that does not parse is an error naming the module,
//! page, line and field), a lookup `{"id": …}` (the CSV holds only the id), a multi-select
//! picklist the list of its `;`-separated values, and anything else the text, byte for
//! byte.

use std::io::{Read, Seek};

use serde_json::{json, Map, Value};

/// Where a job is (`state` in the API's answers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Created, not yet queued.
    Added,
    /// Waiting for Zoho to run it.
    Queued,
    /// Running.
    InProgress,
    /// Done: its result can be downloaded.
    Completed,
    /// Failed: a new job must be created.
    Failed,
    /// A state this client does not know (kept as given).
    Other(String),
}

impl JobState {
    /// A state as the API writes it.
    pub fn parse(text: &str) -> JobState {
        match text {
            "ADDED" => JobState::Added,
            "QUEUED" => JobState::Queued,
            "IN PROGRESS" => JobState::InProgress,
            "COMPLETED" => JobState::Completed,
            "FAILED" | "FAILURE" => JobState::Failed,
            other => JobState::Other(other.to_string()),
        }
    }

    /// The state as the API writes it.
    pub fn as_str(&self) -> &str {
        match self {
            JobState::Added => "ADDED",
            JobState::Queued => "QUEUED",
            JobState::InProgress => "IN PROGRESS",
            JobState::Completed => "COMPLETED",
            JobState::Failed => "FAILED",
            JobState::Other(text) => text,
        }
    }

    /// Whether the job may still complete.
    pub fn pending(&self) -> bool {
        matches!(
            self,
            JobState::Added | JobState::Queued | JobState::InProgress
        )
    }
}

/// A completed job's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobResult {
    /// The page of the module it holds, from 1.
    pub page: u32,
    /// Records in it.
    pub count: u64,
    /// The download's path (relative to the API domain).
    pub download_url: String,
    /// Whether a job for the next page is needed.
    pub more_records: bool,
}

/// A bulk-read job, as `GET /crm/bulk/v2/read/{id}` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Its id.
    pub id: String,
    /// Where it is.
    pub state: JobState,
    /// The module it reads.
    pub module: String,
    /// The page it was asked for.
    pub page: u32,
    /// Its result, once completed.
    pub result: Option<JobResult>,
}

/// The job in an answer's `data[0]`: a poll's (`{"data": [{"id", "state", "query",
/// "result"}]}`) or a creation's (`{"data": [{"status", "code", "details": {"id",
/// "state"}}]}`, with the query it was created with).
pub fn parse_job(body: &Value, asked: Option<(&str, u32)>) -> Result<Job, String> {
    let first = body
        .pointer("/data/0")
        .ok_or("expected {\"data\": [{...}]}")?;
    if first.get("status").and_then(Value::as_str) == Some("error") {
        return Err(format!(
            "Zoho refused the job: {} ({})",
            first
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no message"),
            first
                .get("code")
                .and_then(Value::as_str)
                .unwrap_or("no code")
        ));
    }
    let job = first.get("details").unwrap_or(first);
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let id = text(job.get("id")).ok_or("the job has no id")?;
    let state = job
        .get("state")
        .and_then(Value::as_str)
        .map(JobState::parse)
        .ok_or_else(|| format!("job {id} has no state"))?;
    let (module, page) = match (job.get("query").or(first.get("query")), asked) {
        (Some(query), _) => (
            // v2 names the module as text, later versions as {"api_name": …}.
            text(query.get("module"))
                .or_else(|| text(query.pointer("/module/api_name")))
                .ok_or_else(|| format!("job {id}: its query has no module"))?,
            query.get("page").and_then(Value::as_u64).unwrap_or(1) as u32,
        ),
        (None, Some((module, page))) => (module.to_string(), page),
        (None, None) => return Err(format!("job {id} has no query")),
    };
    let result = match (&state, job.get("result")) {
        (JobState::Completed, Some(r)) => Some(JobResult {
            page: r.get("page").and_then(Value::as_u64).unwrap_or(page as u64) as u32,
            count: r
                .get("count")
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("job {id}: its result has no count"))?,
            download_url: r
                .get("download_url")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("job {id}: its result has no download_url"))?
                .to_string(),
            more_records: r
                .get("more_records")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        }),
        (JobState::Completed, None) => {
            return Err(format!("job {id} is COMPLETED without a result"))
        }
        _ => None,
    };
    Ok(Job {
        id,
        state,
        module,
        page,
        result,
    })
}

/// What a result could not be read for.
#[derive(Debug, thiserror::Error)]
pub enum ResultError {
    /// Not a ZIP, or not one CSV in it.
    #[error("{module} page {page}: the result is not a ZIP with one CSV: {reason}")]
    Archive {
        /// The module.
        module: String,
        /// The page.
        page: u32,
        /// What is wrong.
        reason: String,
    },
    /// A CSV record that cannot be read (cut short, a wrong number of fields).
    #[error("{module} page {page}, line {line}: {reason}")]
    Csv {
        /// The module.
        module: String,
        /// The page.
        page: u32,
        /// The CSV line the record starts on, from 1 (the header's).
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// A cell that is not of its field's type.
    #[error("{module} page {page}, line {line}, field {field}: {value:?} is not {expected}")]
    Cell {
        /// The module.
        module: String,
        /// The page.
        page: u32,
        /// The CSV line the record starts on.
        line: u64,
        /// The field's API name.
        field: String,
        /// The cell.
        value: String,
        /// What the field's type wants.
        expected: &'static str,
    },
    /// The consumer of the records failed or stopped.
    #[error("{module} page {page}: the records could not be handed on")]
    Emit {
        /// The module.
        module: String,
        /// The page.
        page: u32,
        /// Why.
        #[source]
        source: Box<crate::SourceError>,
    },
}

/// How a column's cells become JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cell {
    Text,
    Integer,
    Number,
    Boolean,
    Lookup,
    List,
}

fn cell_kind(schema: Option<&Value>) -> Cell {
    let Some(schema) = schema else {
        return Cell::Text;
    };
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if types.contains(&"integer") {
        Cell::Integer
    } else if types.contains(&"number") {
        Cell::Number
    } else if types.contains(&"boolean") {
        Cell::Boolean
    } else if types.contains(&"object") {
        Cell::Lookup
    } else if types.contains(&"array") {
        Cell::List
    } else {
        Cell::Text
    }
}

/// Reads a result ZIP: its one CSV, a record at a time, each typed by `schema` (the
/// module's, from [`super::module_schema`]) and handed to `emit`. Returns the records
/// read. The header's `Id` (any case) becomes `id`.
pub fn read_result<R: Read + Seek>(
    zip: R,
    module: &str,
    page: u32,
    schema: &Value,
    mut emit: impl FnMut(Map<String, Value>) -> Result<(), crate::SourceError>,
) -> Result<u64, ResultError> {
    let archive_error = |reason: String| ResultError::Archive {
        module: module.to_string(),
        page,
        reason,
    };
    let mut archive = zip::ZipArchive::new(zip).map_err(|e| archive_error(e.to_string()))?;
    if archive.len() != 1 {
        return Err(archive_error(format!("it holds {} files", archive.len())));
    }
    let entry = archive
        .by_index(0)
        .map_err(|e| archive_error(e.to_string()))?;
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(entry);
    // Lines are counted here, not taken from the reader's positions, which lag a line
    // behind with CRLF endings.
    let csv_error = |e: csv::Error, line: u64| {
        let reason = match e.kind() {
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => format!("{len} fields where the header has {expected_len}"),
            csv::ErrorKind::Utf8 { .. } => "a field that is not UTF-8".to_string(),
            // A ZIP entry whose checksum or length does not match reads as an I/O error.
            _ => e.to_string(),
        };
        ResultError::Csv {
            module: module.to_string(),
            page,
            line,
            reason,
        }
    };
    let properties = schema.get("properties");
    let headers = csv.headers().map_err(|e| csv_error(e, 1))?.clone();
    let mut next_line = 1 + newlines(&headers) + 1;
    let columns: Vec<(String, Cell)> = headers
        .iter()
        .map(|name| {
            // A BOM before the first header is Excel's, not the field's.
            let name = name.trim_start_matches('\u{feff}');
            let name = if name.eq_ignore_ascii_case("id") {
                "id"
            } else {
                name
            };
            let kind = match name {
                "id" => Cell::Text,
                _ => cell_kind(properties.and_then(|p| p.get(name))),
            };
            (name.to_string(), kind)
        })
        .collect();
    if !columns.iter().any(|(name, _)| name == "id") {
        return Err(ResultError::Csv {
            module: module.to_string(),
            page,
            line: 1,
            reason: "the header has no Id column".into(),
        });
    }
    let mut record = csv::StringRecord::new();
    let mut read = 0u64;
    loop {
        let line = next_line;
        if !csv
            .read_record(&mut record)
            .map_err(|e| csv_error(e, line))?
        {
            break;
        }
        // A quoted field may span lines.
        next_line += 1 + newlines(&record);
        let mut out = Map::new();
        for ((name, kind), text) in columns.iter().zip(record.iter()) {
            let bad = |expected: &'static str| ResultError::Cell {
                module: module.to_string(),
                page,
                line,
                field: name.clone(),
                value: crate::truncate(text, 100).to_string(),
                expected,
            };
            let value = if text.is_empty() {
                Value::Null
            } else {
                match kind {
                    Cell::Text => json!(text),
                    Cell::Integer => {
                        json!(text.parse::<i64>().map_err(|_| bad("a whole number"))?)
                    }
                    Cell::Number => text
                        .parse::<f64>()
                        .ok()
                        .filter(|n| n.is_finite())
                        .and_then(serde_json::Number::from_f64)
                        .map(Value::Number)
                        .ok_or_else(|| bad("a number"))?,
                    Cell::Boolean => match text {
                        "true" => json!(true),
                        "false" => json!(false),
                        _ => return Err(bad("true or false")),
                    },
                    Cell::Lookup => json!({ "id": text }),
                    Cell::List => json!(text.split(';').collect::<Vec<_>>()),
                }
            };
            out.insert(name.clone(), value);
        }
        emit(out).map_err(|source| ResultError::Emit {
            module: module.to_string(),
            page,
            source: Box::new(source),
        })?;
        read += 1;
    }
    Ok(read)
}

fn newlines(record: &csv::StringRecord) -> u64 {
    record.iter().map(|f| f.matches('\n').count() as u64).sum()
}

/// A result ZIP of `rows` under `header`, as Zoho sends it (for the fake and the tests):
/// one deflated CSV, every field quoted, lines ending in CRLF, with a BOM if asked.
pub fn write_result(header: &[&str], rows: &[Vec<String>], bom: bool) -> std::io::Result<Vec<u8>> {
    let mut text = Vec::new();
    if bom {
        text.extend_from_slice("\u{feff}".as_bytes());
    }
    {
        let mut csv = csv::WriterBuilder::new()
            .quote_style(csv::QuoteStyle::Always)
            .terminator(csv::Terminator::CRLF)
            // Written as given, so the tests can write malformed results too.
            .flexible(true)
            .from_writer(&mut text);
        csv.write_record(header).map_err(std::io::Error::other)?;
        for row in rows {
            csv.write_record(row).map_err(std::io::Error::other)?;
        }
        csv.flush()?;
    }
    zip_of(&text)
}

/// A ZIP holding `csv` as its one file, deflated.
pub fn zip_of(csv: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("result.csv", options)
        .map_err(std::io::Error::other)?;
    zip.write_all(csv)?;
    Ok(zip.finish().map_err(std::io::Error::other)?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        super::super::module_schema(&[
            json!({"api_name": "Deal_Name", "data_type": "text", "json_type": "string"}),
            json!({"api_name": "Amount", "data_type": "currency", "json_type": "double"}),
            json!({"api_name": "Probability", "data_type": "integer", "json_type": "integer"}),
            json!({"api_name": "Won", "data_type": "boolean", "json_type": "boolean"}),
            json!({"api_name": "Owner", "data_type": "ownerlookup", "json_type": "jsonobject"}),
            json!({"api_name": "Tag", "data_type": "multiselectpicklist", "json_type": "jsonarray"}),
            json!({"api_name": "Closing_Date", "data_type": "date", "json_type": "string"}),
        ])
        .unwrap()
    }

    const HEADER: [&str; 8] = [
        "Id",
        "Deal_Name",
        "Amount",
        "Probability",
        "Won",
        "Owner",
        "Tag",
        "Closing_Date",
    ];

    fn read(bytes: Vec<u8>) -> Result<Vec<Map<String, Value>>, String> {
        let mut records = Vec::new();
        read_result(std::io::Cursor::new(bytes), "Deals", 3, &schema(), |r| {
            records.push(r);
            Ok(())
        })
        .map_err(|e| e.to_string())?;
        Ok(records)
    }

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn cells_are_typed_by_their_fields_and_text_is_kept_byte_for_byte() {
        let name = "Acme, \"Big\" deal\r\nsecond line\nthird — ünïcödé ✓";
        let zip = write_result(
            &HEADER,
            &[
                row(&[
                    "1",
                    name,
                    "1234.50",
                    "30",
                    "true",
                    "77",
                    "a;b c",
                    "2026-10-01",
                ]),
                row(&["2", "", "", "", "", "", "", ""]),
            ],
            true,
        )
        .unwrap();
        let records = read(zip).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(
            Value::Object(records[0].clone()),
            json!({"id": "1", "Deal_Name": name, "Amount": 1234.5, "Probability": 30, "Won": true,
                   "Owner": {"id": "77"}, "Tag": ["a", "b c"], "Closing_Date": "2026-10-01"})
        );
        assert!(records[1].iter().all(|(k, v)| k == "id" || v.is_null()));
        // Without a BOM, and with unknown columns kept as text.
        let zip = write_result(&["ID", "Custom_Field"], &[row(&["9", " padded "])], false).unwrap();
        assert_eq!(
            Value::Object(read(zip).unwrap().remove(0)),
            json!({"id": "9", "Custom_Field": " padded "})
        );
    }

    #[test]
    fn the_reference_sample_reads_as_zoho_wrote_it() {
        // The sample row of `reference/zoho-crm.md`, with the documented header, LF endings.
        let csv = "\"Id\",\"Owner\",\"First_Name\",\"Last_Name\",\"Email\",\"Lead_Source\",\"Created_Time\"\n\
                   \"5725767000000419001\",\"5725767000000235011\",\"Ana\",\"Gómez\",\"ana@example.com\",\"Web Form\",\"2024-01-08T09:14:03-05:00\"\n";
        let schema = super::super::module_schema(&[
            json!({"api_name": "Owner", "data_type": "ownerlookup", "json_type": "jsonobject"}),
            json!({"api_name": "Created_Time", "data_type": "datetime", "json_type": "string"}),
        ])
        .unwrap();
        let mut records = Vec::new();
        read_result(
            std::io::Cursor::new(zip_of(csv.as_bytes()).unwrap()),
            "Leads",
            1,
            &schema,
            |r| {
                records.push(Value::Object(r));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(
            records,
            [
                json!({"id": "5725767000000419001", "Owner": {"id": "5725767000000235011"},
                    "First_Name": "Ana", "Last_Name": "Gómez", "Email": "ana@example.com",
                    "Lead_Source": "Web Form", "Created_Time": "2024-01-08T09:14:03-05:00"})
            ]
        );
    }

    #[test]
    fn malformed_results_are_named_by_module_page_line_and_field() {
        let bad_cell = |column: usize, value: &str| {
            let mut cells = vec!["1", "n", "1", "1", "true", "7", "a", "2026-01-01"];
            cells[column] = value;
            let zip = write_result(&HEADER, &[row(&cells), row(&cells)], false).unwrap();
            read(zip).unwrap_err()
        };
        assert_eq!(
            bad_cell(3, "3.5"),
            "Deals page 3, line 2, field Probability: \"3.5\" is not a whole number"
        );
        assert_eq!(
            bad_cell(2, "12,5"),
            "Deals page 3, line 2, field Amount: \"12,5\" is not a number"
        );
        assert_eq!(
            bad_cell(2, "NaN"),
            "Deals page 3, line 2, field Amount: \"NaN\" is not a number"
        );
        assert_eq!(
            bad_cell(4, "yes"),
            "Deals page 3, line 2, field Won: \"yes\" is not true or false"
        );
        // A record of the wrong width, after one that spans three lines.
        let zip = write_result(
            &["Id", "Deal_Name"],
            &[row(&["1", "a\nb\nc"]), row(&["2"])],
            false,
        )
        .unwrap();
        assert_eq!(
            read(zip).unwrap_err(),
            "Deals page 3, line 5: 1 fields where the header has 2"
        );
        let zip = write_result(&["Deal_Name"], &[row(&["x"])], false).unwrap();
        assert_eq!(
            read(zip).unwrap_err(),
            "Deals page 3, line 1: the header has no Id column"
        );
        assert!(read(b"Id,Name\n1,x\n".to_vec())
            .unwrap_err()
            .starts_with("Deals page 3: the result is not a ZIP with one CSV: "));
        // Two files in the archive.
        let mut two = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for name in ["a.csv", "b.csv"] {
            two.start_file(name, zip::write::SimpleFileOptions::default())
                .unwrap();
            std::io::Write::write_all(&mut two, b"Id\n1\n").unwrap();
        }
        let two = two.finish().unwrap().into_inner();
        assert_eq!(
            read(two).unwrap_err(),
            "Deals page 3: the result is not a ZIP with one CSV: it holds 2 files"
        );
    }

    #[test]
    fn a_damaged_archive_is_an_error_never_fewer_records() {
        let rows: Vec<Vec<String>> = (0..2000)
            .map(|i| row(&[&i.to_string(), &format!("deal number {i} with some text")]))
            .collect();
        let zip = write_result(&["Id", "Deal_Name"], &rows, false).unwrap();
        // Cut short, or one byte of the compressed data changed.
        let mut cut = zip.clone();
        cut.truncate(zip.len() / 2);
        assert!(read(cut).is_err());
        let mut flipped = zip.clone();
        flipped[zip.len() / 3] ^= 0x55;
        match read(flipped) {
            Err(e) => assert!(e.starts_with("Deals page 3"), "{e}"),
            Ok(records) => panic!("a damaged archive read as {} records", records.len()),
        }
        assert_eq!(read(zip).unwrap().len(), 2000);
    }

    #[test]
    fn job_answers_are_read_in_every_state_and_refusals_are_named() {
        let created = json!({"data": [{"status": "success", "code": "ADDED_SUCCESSFULLY",
            "details": {"id": "41508", "operation": "read", "state": "ADDED"}}], "info": {}});
        let job = parse_job(&created, Some(("Leads", 2))).unwrap();
        assert_eq!(
            (job.id.as_str(), &job.state, job.module.as_str(), job.page),
            ("41508", &JobState::Added, "Leads", 2)
        );
        assert!(job.state.pending());
        let done = json!({"data": [{"id": "41508", "state": "COMPLETED",
            "query": {"module": "Leads", "page": 2},
            "result": {"page": 2, "count": 200000, "per_page": 200000,
                       "download_url": "/crm/bulk/v2/read/41508/result", "more_records": true}}]});
        let job = parse_job(&done, None).unwrap();
        assert_eq!(
            job.result,
            Some(JobResult {
                page: 2,
                count: 200_000,
                download_url: "/crm/bulk/v2/read/41508/result".into(),
                more_records: true
            })
        );
        let running = json!({"data": [{"id": 41508, "state": "IN PROGRESS",
            "query": {"module": {"api_name": "Leads"}}}]});
        let job = parse_job(&running, None).unwrap();
        assert_eq!(
            (job.id.as_str(), &job.state, job.page),
            ("41508", &JobState::InProgress, 1)
        );
        let failed =
            json!({"data": [{"id": "1", "state": "FAILURE", "query": {"module": "Leads"}}]});
        assert!(!parse_job(&failed, None).unwrap().state.pending());
        let refused = json!({"data": [{"status": "error", "code": "LIMIT_EXCEEDED",
            "message": "API credits exhausted"}]});
        assert_eq!(
            parse_job(&refused, Some(("Leads", 1))).unwrap_err(),
            "Zoho refused the job: API credits exhausted (LIMIT_EXCEEDED)"
        );
        for (body, message) in [
            (json!({}), "expected {\"data\": [{...}]}"),
            (json!({"data": [{"state": "ADDED"}]}), "the job has no id"),
            (json!({"data": [{"id": "1"}]}), "job 1 has no state"),
            (
                json!({"data": [{"id": "1", "state": "COMPLETED", "query": {"module": "L"}}]}),
                "job 1 is COMPLETED without a result",
            ),
            (
                json!({"data": [{"id": "1", "state": "COMPLETED", "query": {"module": "L"},
                    "result": {"count": 1}}]}),
                "job 1: its result has no download_url",
            ),
        ] {
            assert_eq!(parse_job(&body, None).unwrap_err(), message, "{body}");
        }
    }

    proptest::proptest! {
        /// Any text, any number of fields and rows, BOM or not: what Zoho's CSV writer
        /// quoted comes back byte for byte.
        #[test]
        fn any_text_round_trips(
            rows in proptest::collection::vec(proptest::collection::vec("(?s).{0,40}", 3), 0..20),
            bom in proptest::bool::ANY,
        ) {
            let rows: Vec<Vec<String>> = rows
                .into_iter()
                .enumerate()
                .map(|(i, mut r)| { r.insert(0, i.to_string()); r })
                .collect();
            let zip = write_result(&["Id", "A", "B", "C"], &rows, bom).unwrap();
            let mut got = Vec::new();
            read_result(std::io::Cursor::new(zip), "M", 1, &json!({}), |r| { got.push(r); Ok(()) })
                .unwrap();
            proptest::prop_assert_eq!(got.len(), rows.len());
            for (record, row) in got.iter().zip(&rows) {
                for (name, cell) in ["id", "A", "B", "C"].iter().zip(row) {
                    let want = if cell.is_empty() { Value::Null } else { json!(cell) };
                    proptest::prop_assert_eq!(&record[*name], &want);
                }
            }
        }

        /// Arbitrary bytes are an error or records, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let _ = read_result(std::io::Cursor::new(bytes), "M", 1, &json!({}), |_| Ok(()));
        }
    }
}
