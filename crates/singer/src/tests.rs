use super::*;
use crate::parse::{fast_record, parse_message_by_serde};
use serde_json::json;
use std::io::Read;

/// Input that arrives in the given pieces, one per read, as from a pipe.
struct Pieces(std::collections::VecDeque<&'static str>);

impl Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(piece) = self.0.pop_front() else {
            return Ok(0);
        };
        buf[..piece.len()].copy_from_slice(piece.as_bytes());
        Ok(piece.len())
    }
}

fn block_lines(block: &LineBlock) -> Vec<(u64, String)> {
    block
        .lines()
        .map(|(n, l)| (n, String::from_utf8_lossy(l).into_owned()))
        .collect()
}

/// A block ends where the input has nothing more at hand after a whole line (a read
/// would wait for the tap), never inside a line, and at its size otherwise.
#[test]
fn blocks_end_where_the_input_pauses_or_fills() {
    let pieces = Pieces(["a\nb\n", "c", "c\n\nd\n", "e\nf", "\n"].into());
    let mut blocks = LineBlocks::new(pieces, 1 << 20);
    let mut seen = Vec::new();
    while let Some(block) = blocks.next_block().unwrap() {
        seen.push(block_lines(&block));
    }
    let line = |n: u64, s: &str| (n, s.to_string());
    assert_eq!(
        seen,
        vec![
            vec![line(1, "a"), line(2, "b")],
            vec![line(3, "cc"), line(5, "d")],
            vec![line(6, "e"), line(7, "f")],
        ]
    );

    // All at hand: blocks of about the size asked for.
    let text: String = (0..100).map(|i| format!("line {i:03}\n")).collect();
    let mut blocks = LineBlocks::new(std::io::Cursor::new(text), 90);
    let mut sizes = Vec::new();
    while let Some(block) = blocks.next_block().unwrap() {
        sizes.push(block.lines().count());
    }
    assert_eq!(sizes, vec![10; 10]);
}

/// The one-pass `RECORD` reader must read a line exactly as `serde_json` does, or
/// leave it to `serde_json`.
#[test]
fn the_fast_record_path_reads_lines_as_serde_does() {
    let good = r#"{"type":"RECORD","stream":"jobs","record":{"id":1,"a":[1,{"b":"c\n"}]},"version":2,"time_extracted":"2026-01-01T00:00:00Z"}"#;
    let mut lines: Vec<String> = vec![
        good.into(),
        r#" { "stream" : "s" , "type" : "RECORD" , "record" : { } } "#.into(),
        r#"{"type":"RECORD","stream":"s","record":{},"version":null,"time_extracted":null}"#.into(),
        r#"{"type":"RECORD","stream":"s","record":{},"extra":[1,2]}"#.into(),
        r#"{"type":"RECORD","stream":"s","record":{},"type":"RECORD"}"#.into(),
        r#"{"type":"RECORD","stream":"s","record":[]}"#.into(),
        r#"{"type":"RECORD","stream":"s","record":{},"version":1.5}"#.into(),
        r#"{"type":"RECORD","stream":"s","record":{},"version":"1"}"#.into(),
        r#"{"type":"RECORD","stream":"s","record":{},"time_extracted":5}"#.into(),
        r#"{"type":"RECORD","stream":"s\u0041","record":{}}"#.into(),
        r#"{"type":"RECORD","record":{}}"#.into(),
        r#"{"type":"STATE","value":{}}"#.into(),
        r#"{"type":"RECORD","stream":"s","record":{"a":1},"schema":{}}"#.into(),
        r#"{"type":"RECORD","stream":"s","record":{"a":1}} x"#.into(),
        "{\"type\":\"RECORD\",\"stream\":\"s\",\"record\":{\"a\":\"\u{1}\"}}".into(),
    ];
    // Every prefix of a good line, and the line with each byte dropped.
    for end in 0..good.len() {
        lines.push(good[..end].to_string());
        lines.push(format!("{}{}", &good[..end], &good[end + 1..]));
    }
    let mut fast = 0;
    for line in &lines {
        let want = parse_message_by_serde(line.as_bytes()).map_err(|e| e.to_string());
        if let Some(got) = fast_record(line.as_bytes()) {
            fast += 1;
            let want = want.unwrap_or_else(|e| panic!("{line}: fast read, serde refused: {e}"));
            let (Message::Record(got), Message::Record(want)) = (got, want) else {
                panic!("{line}: not a record both ways");
            };
            assert_eq!(got.stream, want.stream, "{line}");
            assert_eq!(got.version, want.version, "{line}");
            assert_eq!(got.time_extracted, want.time_extracted, "{line}");
            assert_eq!(
                got.record.to_json_string(),
                want.record.to_json_string(),
                "{line}"
            );
        }
        // Whichever way a line goes, parse_message answers what serde answers.
        let ours = parse_message(line.as_bytes()).map_err(|e| e.to_string());
        match (
            &ours,
            parse_message_by_serde(line.as_bytes()).map_err(|e| e.to_string()),
        ) {
            (Ok(_), Ok(_)) => {}
            (Err(a), Err(b)) => assert_eq!(a, &b, "{line}"),
            (a, b) => panic!("{line}: {a:?} vs {b:?}"),
        }
    }
    assert!(fast >= 5, "the fast path took only {fast} lines");
}

fn read_all(input: &str) -> Vec<Result<Line, String>> {
    MessageReader::new(input.as_bytes())
        .map(|r| r.map_err(|e| observes_runtime::chain(&e).to_string()))
        .collect()
}

#[test]
fn reads_every_message_kind_with_optional_fields() {
    let input = r#"{"type":"SCHEMA","stream":"s","schema":{"type":"object"},"key_properties":["id"],"bookmark_properties":["updated_at"]}

{"type":"RECORD","stream":"s","record":{"id":1},"version":3,"time_extracted":"2026-01-01T00:00:00Z"}
{"type":"STATE","value":{"bookmarks":{"s":1}}}
{"type":"ACTIVATE_VERSION","stream":"s","version":3}
"#;
    let lines: Vec<Line> = read_all(input).into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[1].number, 3, "blank lines still count");
    assert_eq!(
        lines[0].message,
        Message::Schema(SchemaMessage {
            stream: "s".into(),
            schema: json!({"type":"object"}),
            key_properties: vec!["id".into()],
            bookmark_properties: vec!["updated_at".into()],
        })
    );
    match &lines[1].message {
        Message::Record(r) => {
            assert_eq!(r.version, Some(3));
            assert_eq!(r.time_extracted.as_deref(), Some("2026-01-01T00:00:00Z"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        lines[3].message,
        Message::ActivateVersion(ActivateVersionMessage {
            stream: "s".into(),
            version: 3
        })
    );
}

#[test]
fn round_trips_through_the_writer() {
    let input = r#"{"type":"SCHEMA","stream":"s","schema":{"type":"object"},"key_properties":["id"]}
{"type":"RECORD","stream":"s","record":{"id":1,"name":"a"}}
{"type":"STATE","value":{"x":1}}
{"type":"ACTIVATE_VERSION","stream":"s","version":2}
"#;
    let mut writer = MessageWriter::new(Vec::new());
    for line in read_all(input) {
        writer.write(&line.unwrap().message).unwrap();
    }
    assert_eq!(String::from_utf8(writer.into_inner()).unwrap(), input);
}

#[test]
fn malformed_input_is_located() {
    let cases = [
        (
            "{\"type\":\"RECORD\",",
            "line 1: malformed JSON at column 17: EOF while parsing a value",
        ),
        (
            "[1,2]",
            "line 1: a message must be a JSON object with a \"type\"",
        ),
        (
            "{\"stream\":\"s\"}",
            "line 1: a message must be a JSON object with a \"type\"",
        ),
        (
            "{\"type\":\"RECORDS\",\"stream\":\"s\"}",
            "line 1: unknown message type \"RECORDS\"",
        ),
        (
            "{\"type\":\"RECORD\",\"stream\":\"s\"}",
            "line 1: RECORD message for stream \"s\" has no \"record\"",
        ),
        (
            "{\"type\":\"RECORD\",\"record\":{}}",
            "line 1: RECORD message has no \"stream\"",
        ),
        (
            "{\"type\":\"RECORD\",\"stream\":\"s\",\"record\":[1]}",
            "line 1: RECORD message for stream \"s\": \"record\" must be a JSON object",
        ),
        (
            "{\"type\":\"SCHEMA\",\"stream\":\"s\"}",
            "line 1: SCHEMA message for stream \"s\" has no \"schema\"",
        ),
        (
            "{\"type\":\"SCHEMA\",\"stream\":\"s\",\"schema\":true}",
            "line 1: SCHEMA message for stream \"s\": \"schema\" must be a JSON object",
        ),
        (
            "{\"type\":\"SCHEMA\",\"stream\":\"s\",\"schema\":{},\"key_properties\":\"id\"}",
            "line 1: SCHEMA message for stream \"s\": \"key_properties\" must be a list of strings",
        ),
        (
            "{\"type\":\"STATE\"}",
            "line 1: STATE message has no \"value\"",
        ),
        (
            "{\"type\":\"ACTIVATE_VERSION\",\"stream\":\"s\",\"version\":\"x\"}",
            "line 1: ACTIVATE_VERSION message for stream \"s\": \"version\" must be an integer",
        ),
        (
            "{\"type\":\"RECORD\",\"stream\":\"s\",\"record\":{}} trailing",
            "line 1: malformed JSON at column 44: trailing characters",
        ),
    ];
    for (input, expected) in cases {
        let got = read_all(input);
        assert_eq!(got.len(), 1, "{input}");
        assert_eq!(got[0].as_ref().unwrap_err(), expected, "{input}");
    }
}

#[test]
fn a_leading_byte_order_mark_is_skipped_on_the_first_line_only() {
    let state = "{\"type\":\"STATE\",\"value\":1}";
    let input = format!("\u{feff}{state}\n\u{feff}{state}\n");
    let got = read_all(&input);
    assert!(got[0].is_ok(), "{:?}", got[0]);
    assert_eq!(
        got[1].as_ref().unwrap_err(),
        "line 2: malformed JSON at column 1: expected value"
    );
    let mut blocks = LineBlocks::new(input.as_bytes(), 1 << 20);
    let block = blocks.next_block().unwrap().unwrap();
    let lines: Vec<_> = block.lines().map(|(n, text)| (n, text.to_vec())).collect();
    assert_eq!(lines[0], (1, state.as_bytes().to_vec()));
    assert!(lines[1].1.starts_with(b"\xEF\xBB\xBF"));
}

#[test]
fn errors_name_the_right_line() {
    let input = "{\"type\":\"STATE\",\"value\":1}\n\n{oops\n";
    let got = read_all(input);
    assert!(got[0].is_ok());
    assert!(got[1]
        .as_ref()
        .unwrap_err()
        .starts_with("line 3: malformed JSON at column 2: "));
}

#[test]
fn a_record_line_that_is_not_utf8_is_left_to_serde_which_names_the_error() {
    let good = r#"{"type":"RECORD","stream":"s","record":{"name":"Zürich 東京 😀"}}"#;
    assert!(scan_record_line(good.as_bytes(), |_, c| c.skip_value(0).map(|_| ())).is_ok());
    // A byte sequence no UTF-8 text holds, inside a string and where a key would be.
    for bad in [
        b"{\"type\":\"RECORD\",\"stream\":\"s\",\"record\":{\"name\":\"Z\xFCrich\"}}".as_slice(),
        b"{\"type\":\"RECORD\",\"stream\":\"s\",\"record\":{\"\xE6\x9D\":1}}",
    ] {
        assert!(scan_record_line(bad, |_, c| c.skip_value(0).map(|_| ())).is_err());
        let error = parse_message(bad).unwrap_err().to_string();
        assert!(
            error.contains("UTF-8") || error.contains("unicode"),
            "{error}"
        );
    }
}
