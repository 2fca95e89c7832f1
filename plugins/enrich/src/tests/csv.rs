//! Tests of the CSV reader: the RFC 4180 cases, line numbers, errors, and a round trip.

use proptest::prelude::*;

use crate::{CsvReader, CsvRecord};

fn read(text: &str) -> Result<Vec<(usize, Vec<String>)>, String> {
    CsvReader::new(text).map(|record| record.map(|CsvRecord { line, fields }| (line, fields))).collect()
}

fn fields(values: &[&str]) -> Vec<String> {
    values.iter().map(|value| value.to_string()).collect()
}

#[test]
fn plain_records_with_any_line_ending_and_blank_lines() {
    let text = "\u{feff}a,b,c\r\n1, two ,3\n\n\r\n4,,\r5,6,7";
    assert_eq!(
        read(text).unwrap(),
        vec![(1, fields(&["a", "b", "c"])), (2, fields(&["1", " two ", "3"])), (5, fields(&["4", "", ""])), (6, fields(&["5", "6", "7"]))]
    );
}

#[test]
fn quoted_fields_hold_commas_quotes_and_line_breaks() {
    let text = "\"a,b\",\"say \"\"hi\"\"\",\"\"\n\"multi\r\nline\",\"\"\"\",é\nnext,\"\",x\n";
    assert_eq!(
        read(text).unwrap(),
        vec![(1, fields(&["a,b", "say \"hi\"", ""])), (2, fields(&["multi\r\nline", "\"", "é"])), (4, fields(&["next", "", "x"]))]
    );
}

#[test]
fn errors_name_their_line_and_end_the_reading() {
    assert_eq!(read("a\n\"b\nc"), Err("line 2: a quoted field is never closed".into()));
    assert_eq!(read("a\n\"b\"c\n"), Err("line 2: unexpected text after the closing quote of field 1".into()));
    assert_eq!(read("a\n\"x\ny\" ,z"), Err("line 3: unexpected text after the closing quote of field 1".into()));
    assert!(read("a,b\nc,d\"e\n").unwrap_err().starts_with("line 2: a quote inside an unquoted field"));
    let mut reader = CsvReader::new("\"open\nrest,of\nfile");
    assert!(reader.next().is_some_and(|record| record.is_err()));
    assert!(reader.next().is_none(), "no records after an error");
}

#[test]
fn empty_texts_have_no_records() {
    assert_eq!(read("").unwrap(), vec![]);
    assert_eq!(read("\r\n\n").unwrap(), vec![]);
    assert_eq!(read(",").unwrap(), vec![(1, fields(&["", ""]))]);
}

/// Writes records as CSV, quoting every field that needs it (and some that do not).
fn write(records: &[Vec<String>], quote_all: bool, line_end: &str) -> String {
    let mut text = String::new();
    for record in records {
        let quoted: Vec<String> = record
            .iter()
            .map(|field| {
                let needs_quotes = field.is_empty() || field.contains([',', '"', '\n', '\r']);
                if quote_all || needs_quotes { format!("\"{}\"", field.replace('"', "\"\"")) } else { field.clone() }
            })
            .collect();
        text.push_str(&quoted.join(","));
        text.push_str(line_end);
    }
    text
}

proptest! {
    #[test]
    fn written_records_read_back_the_same(
        records in prop::collection::vec(prop::collection::vec("[a-z ,\"\r\né€]{0,6}", 1..5), 0..8),
        quote_all in any::<bool>(),
        crlf in any::<bool>(),
    ) {
        let text = write(&records, quote_all, if crlf { "\r\n" } else { "\n" });
        let read_back: Result<Vec<Vec<String>>, String> = CsvReader::new(&text).map(|record| record.map(|record| record.fields)).collect();
        prop_assert_eq!(read_back, Ok(records));
    }
}
