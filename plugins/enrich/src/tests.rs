//! Native tests of the join: matching, placement of the row, policies and configuration.

use sluice_sdk::Batch;
use sluice_sdk::serde_json::{Value, json};
use sluice_sdk::testing::{Harness, json_values};

use crate::Enrich;

fn inline(extra: Value) -> Value {
    let mut config = json!({
        "key": "item_id",
        "table": {
            "i1": {"category": "books", "brand": "acme"},
            "7": {"category": "toys"},
            "7.5": {"category": "halves"}
        }
    });
    if let (Some(config), Value::Object(extra)) = (config.as_object_mut(), extra) {
        config.extend(extra);
    }
    config
}

fn run(config: Value, records: &[Value]) -> sluice_sdk::Output {
    let mut op = Harness::<Enrich>::new(config).unwrap();
    op.process_json(&records.iter().map(|record| (record.clone(), 5)).collect::<Vec<_>>())
}

fn unmatched_so_far() -> u64 {
    sluice_sdk::host::native_metrics().counters.get("unmatched").copied().unwrap_or(0)
}

#[test]
fn inline_rows_are_merged_into_matching_records_and_misses_pass_counted() {
    let before = unmatched_so_far();
    let out = run(inline(json!({})), &[json!({"item_id": "i1", "n": 1}), json!({"item_id": "i9"}), json!({"n": 2})]);
    assert_eq!(
        json_values(&out.batch),
        vec![json!({"item_id": "i1", "n": 1, "category": "books", "brand": "acme"}), json!({"item_id": "i9"}), json!({"n": 2})]
    );
    assert_eq!(unmatched_so_far() - before, 2);
    assert!(out.rejected.is_empty());
}

#[test]
fn enriched_records_keep_their_key_time_and_headers() {
    let mut batch = Batch::new();
    batch.push(Some(b"k"), br#"{"item_id": "i1"}"#, 42, [(&b"trace"[..], &b"t1"[..])]);
    let out = Harness::<Enrich>::new(inline(json!({}))).unwrap().process(&batch);
    let record = out.batch.get(0).unwrap();
    assert_eq!((record.key(), record.timestamp(), record.header("trace")), (Some(&b"k"[..]), 42, Some(&b"t1"[..])));
}

#[test]
fn into_puts_the_row_under_a_field_and_merging_respects_overwrite() {
    let record = json!({"item_id": "i1", "category": "mine", "product": {"old": true}});
    let merged = run(inline(json!({})), std::slice::from_ref(&record));
    assert_eq!(json_values(&merged.batch), vec![json!({"item_id": "i1", "category": "mine", "product": {"old": true}, "brand": "acme"})]);
    let overwritten = run(inline(json!({"overwrite": true})), std::slice::from_ref(&record));
    assert_eq!(json_values(&overwritten.batch)[0]["category"], json!("books"));

    let into = run(inline(json!({"into": "details.item"})), &[json!({"item_id": "i1"})]);
    assert_eq!(json_values(&into.batch), vec![json!({"item_id": "i1", "details": {"item": {"category": "books", "brand": "acme"}}})]);
    let kept = run(inline(json!({"into": "product"})), std::slice::from_ref(&record));
    assert_eq!(json_values(&kept.batch), vec![record.clone()], "an existing `into` field wins without overwrite");
    let replaced = run(inline(json!({"into": "product", "overwrite": true})), std::slice::from_ref(&record));
    assert_eq!(json_values(&replaced.batch)[0]["product"], json!({"category": "books", "brand": "acme"}));

    let blocked = run(inline(json!({"into": "category.detail"})), std::slice::from_ref(&record));
    assert_eq!(blocked.rejected.len(), 1);
    assert!(blocked.rejected[0].reason.contains("is not an object"), "{}", blocked.rejected[0].reason);
}

#[test]
fn numbers_match_keys_by_their_canonical_text() {
    let records =
        [json!({"item_id": 7}), json!({"item_id": 7.0}), json!({"item_id": "7"}), json!({"item_id": 7.5}), json!({"item_id": 70})];
    let out = run(inline(json!({"into": "p"})), &records);
    let categories: Vec<Value> = json_values(&out.batch).iter().map(|record| record["p"]["category"].clone()).collect();
    assert_eq!(categories, vec![json!("toys"), json!("toys"), json!("toys"), json!("halves"), Value::Null]);
    let mut batch = Batch::new();
    batch.push(None, br#"{"item_id": 7e0}"#, 0, []);
    batch.push(None, br#"{"item_id": "\u0069\u0031"}"#, 0, []);
    let out = Harness::<Enrich>::new(inline(json!({}))).unwrap().process(&batch);
    let categories: Vec<Value> = json_values(&out.batch).iter().map(|record| record["category"].clone()).collect();
    assert_eq!(categories, vec![json!("toys"), json!("books")], "escaped strings match their plain spelling");
}

#[test]
fn missing_policies_drop_or_reject_and_bad_keys_are_always_rejected() {
    let records = [json!({"item_id": "i9"}), json!({"item_id": null}), json!({"item_id": true}), json!({"item_id": "i1"})];
    let dropped = run(inline(json!({"missing": "drop"})), &records);
    assert_eq!(dropped.batch.len(), 1);
    let reasons: Vec<_> = dropped.rejected.iter().map(|r| (r.index, r.reason.as_str())).collect();
    assert_eq!(reasons, vec![(2, "key field item_id is a boolean, not a string or number")]);

    let rejected = run(inline(json!({"missing": "reject"})), &records);
    let reasons: Vec<_> = rejected.rejected.iter().map(|r| (r.index, r.reason.as_str())).collect();
    assert_eq!(
        reasons,
        vec![
            (0, "no table row for item_id \"i9\""),
            (1, "key field item_id is missing or null"),
            (2, "key field item_id is a boolean, not a string or number")
        ]
    );
    let mut batch = Batch::new();
    batch.push(None, b"{\"item_id\": \"i1\"", 0, []);
    let out = Harness::<Enrich>::new(inline(json!({}))).unwrap().process(&batch);
    assert!(out.rejected[0].reason.contains("not valid JSON"), "{}", out.rejected[0].reason);
}

/// A configuration reading the granted file `catalog`.
fn from_file(format: &str, contents: &str) -> Value {
    json!({"key": "sku", "file": "catalog", "file_format": format, "file_key": "id", "sluice_files": {"catalog": contents}})
}

#[test]
fn json_lines_files_give_rows_without_their_key_field() {
    let contents = "\u{feff}{\"id\": \"a\", \"name\": \"Apple\", \"tags\": [\"fruit\"]}\r\n\n   \n{\"id\": 12, \"name\": \"Twelve\"}\n";
    let mut op = Harness::<Enrich>::new(from_file("json-lines", contents)).unwrap();
    assert_eq!(op.operator().table().len(), 2);
    let out = op.process_json(&[(json!({"sku": "a"}), 0), (json!({"sku": 12.0}), 0), (json!({"sku": "12"}), 0)]);
    assert_eq!(
        json_values(&out.batch),
        vec![
            json!({"sku": "a", "name": "Apple", "tags": ["fruit"]}),
            json!({"sku": 12.0, "name": "Twelve"}),
            json!({"sku": "12", "name": "Twelve"})
        ]
    );
}

/// Numbers join by their exact value, from records and from files alike, and rows keep the
/// exact text of their values: ids a double cannot tell apart find their own rows.
#[test]
fn numbers_past_a_double_join_their_own_rows_exactly() {
    let contents =
        "{\"id\": 18446744073709551617, \"name\": \"odd\", \"weight\": 1.50}\n{\"id\": 18446744073709551616, \"name\": \"even\"}\n";
    let mut op = Harness::<Enrich>::new(from_file("json-lines", contents)).unwrap();
    let mut batch = Batch::new();
    batch.push(None, br#"{"sku": 18446744073709551617}"#, 0, []);
    batch.push(None, br#"{"sku": 1.8446744073709551616e19}"#, 0, []);
    batch.push(None, br#"{"sku": 18446744073709551618}"#, 0, []);
    let out = op.process(&batch);
    let written: Vec<&[u8]> = out.batch.iter().map(|record| record.value()).collect();
    assert_eq!(
        written,
        [
            br#"{"sku":18446744073709551617,"name":"odd","weight":1.50}"#.as_slice(),
            br#"{"sku":1.8446744073709551616e19,"name":"even"}"#.as_slice(),
            br#"{"sku": 18446744073709551618}"#.as_slice()
        ]
    );
}

#[test]
fn csv_files_keep_values_as_strings_with_quoted_commas_and_quotes() {
    let contents = "name,id,note\r\n\"Smith, John\",1,\"said \"\"hi\"\"\"\r\nPlain,2,\"two\nlines\"\r\n,3,\n";
    let mut op = Harness::<Enrich>::new(from_file("csv", contents)).unwrap();
    let out = op.process_json(&[(json!({"sku": 1}), 0), (json!({"sku": "2"}), 0), (json!({"sku": "3"}), 0)]);
    assert_eq!(
        json_values(&out.batch),
        vec![
            json!({"sku": 1, "name": "Smith, John", "note": "said \"hi\""}),
            json!({"sku": "2", "name": "Plain", "note": "two\nlines"}),
            json!({"sku": "3", "name": "", "note": ""})
        ]
    );
}

#[test]
fn a_file_that_is_not_granted_names_the_files_key_to_add() {
    let mut config = from_file("csv", "id\n");
    config["sluice_files"] = json!({"other": "id\n"});
    let error = Harness::<Enrich>::new(config.clone()).err().unwrap();
    assert_eq!(
        error,
        "file \"catalog\" is not granted to this operator: add `files = { catalog = \"path/to/file\" }` to its [[operators]] entry"
    );
    config.as_object_mut().unwrap().remove("sluice_files");
    config["file"] = json!("my catalog");
    assert!(Harness::<Enrich>::new(config).err().unwrap().contains("`files = { \"my catalog\" = "));
}

#[test]
fn malformed_files_are_refused_naming_the_line() {
    let refuse = |format: &str, contents: &str| Harness::<Enrich>::new(from_file(format, contents)).err().unwrap();
    let lines = "{\"id\": \"a\"}\n\n{\"id\": \"b\",}\n";
    assert!(
        refuse("json-lines", lines).starts_with("file \"catalog\" line 3: not valid JSON: trailing comma"),
        "{}",
        refuse("json-lines", lines)
    );
    assert_eq!(refuse("json-lines", "[1]"), "file \"catalog\" line 1: an array where an object was expected");
    assert_eq!(refuse("json-lines", "{\"id\": 1}\n{\"ID\": 2}"), "file \"catalog\" line 2: no value for the key field \"id\"");
    assert_eq!(
        refuse("json-lines", "{\"id\": false}"),
        "file \"catalog\" line 1: the key field \"id\" is a boolean, not a string or number"
    );
    assert_eq!(refuse("json-lines", "{\"id\": 1}\n{\"id\": 1.0}"), "file \"catalog\" line 2: the key \"1\" appears on an earlier line too");
    assert_eq!(refuse("csv", "id,name\n1,a\n2,b,c\n"), "file \"catalog\" line 3: 3 fields, but the header names 2 columns");
    assert_eq!(refuse("csv", "id,name\n1,\"a\n\n2,b\n"), "file \"catalog\" line 2: a quoted field is never closed");
    assert!(refuse("csv", "id,name\n1,\"a\"\"\nb\"x\n").starts_with("file \"catalog\" line 3: unexpected text after the closing quote"));
    assert!(refuse("csv", "id,name\n1,5\" disk\n").starts_with("file \"catalog\" line 2: a quote inside an unquoted field"));
    assert_eq!(refuse("csv", "sku,name\n1,a\n"), "file \"catalog\" has no column \"id\" for `file_key` (its columns: sku, name)");
    assert_eq!(refuse("csv", "id,id\n"), "file \"catalog\" line 1: the header names column \"id\" twice");
    assert_eq!(refuse("csv", "\n\n"), "file \"catalog\" is empty: its first line must name the columns");
}

#[test]
fn tables_over_the_limits_are_refused() {
    let big = format!("id\n{}", "x".repeat(crate::MAX_BYTES));
    assert!(refuse_message(from_file("csv", &big)).contains("more than the 64 MiB a table may hold"));
    let mut many = String::from("id\n");
    for row in 0..=crate::MAX_ROWS {
        many.push_str(&row.to_string());
        many.push('\n');
    }
    assert_eq!(refuse_message(from_file("csv", &many)), "file \"catalog\" line 1000002: more than the 1000000 rows a table may hold");
}

fn refuse_message(config: Value) -> String {
    Harness::<Enrich>::new(config).err().unwrap()
}

#[test]
fn configuration_errors_are_explained() {
    assert!(refuse_message(json!({"key": "k"})).starts_with("no table: set `table`"));
    let mut both = from_file("csv", "id\n");
    both["table"] = json!({});
    assert!(refuse_message(both).contains("are exclusive"));
    let mut no_format = from_file("csv", "id\n");
    no_format.as_object_mut().unwrap().remove("file_format");
    assert!(refuse_message(no_format).contains("`file` needs `file_format`"));
    let mut no_key = from_file("csv", "id\n");
    no_key.as_object_mut().unwrap().remove("file_key");
    assert!(refuse_message(no_key).contains("`file` needs `file_key`"));
    assert!(refuse_message(inline(json!({"file_key": "id"}))).contains("apply only with `file`"));
    assert_eq!(refuse_message(inline(json!({"table": {"i1": "books"}}))), "`table` row \"i1\" is a string, not a table of fields");
    assert!(refuse_message(inline(json!({"missing": "keep"}))).contains("unknown variant"));
    assert!(refuse_message(inline(json!({"file_format": "xml"}))).contains("unknown variant"));
    assert!(refuse_message(inline(json!({"merge": true}))).contains("unknown field"));
    assert!(refuse_message(json!({"table": {}})).contains("missing field `key`"));
    assert!(refuse_message(inline(json!({"into": "a..b"}))).contains("invalid field path"));
}

mod csv;

#[test]
fn a_repeated_key_field_joins_and_is_written_by_its_first_value() {
    let mut batch = Batch::new();
    batch.push(None, br#"{"item_id":"i1","n":1,"item_id":"7"}"#, 0, []);
    let out = Harness::<Enrich>::new(inline(json!({}))).unwrap().process(&batch);
    assert_eq!(json_values(&out.batch), vec![json!({"item_id": "i1", "n": 1, "category": "books", "brand": "acme"})]);
}

/// The record's own fields pass with their exact text (parsing it into a map would write the
/// id as 18446744073709552000 and `-0` as `-0.0`).
#[test]
fn enriched_records_keep_the_exact_text_of_their_fields() {
    let mut op = Harness::<Enrich>::new(inline(json!({}))).unwrap();
    let mut batch = Batch::new();
    batch.push(None, br#"{"item_id": "i1", "id": 18446744073709551617, "z": -0, "p": 1.50, "n": {"big": 1e400}}"#, 5, []);
    let out = op.process(&batch);
    let written: Vec<&[u8]> = out.batch.iter().map(|record| record.value()).collect();
    assert_eq!(
        written,
        [br#"{"item_id":"i1","id":18446744073709551617,"z":-0,"p":1.50,"n":{"big": 1e400},"category":"books","brand":"acme"}"#.as_slice()]
    );
}

#[test]
fn into_at_the_key_needs_overwrite_and_inside_it_is_refused() {
    let refusal = |extra: Value| Harness::<Enrich>::new(inline(extra)).err().unwrap_or_default();
    assert!(refusal(json!({"into": "item_id"})).contains("without `overwrite = true`"), "{}", refusal(json!({"into": "item_id"})));
    assert!(refusal(json!({"into": "item_id.x", "overwrite": true})).contains("inside the key"));
    let replaced = run(inline(json!({"into": "item_id", "overwrite": true})), &[json!({"item_id": "i1"})]);
    assert_eq!(json_values(&replaced.batch), vec![json!({"item_id": {"category": "books", "brand": "acme"}})]);
}
