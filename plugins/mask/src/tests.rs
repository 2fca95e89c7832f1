//! Native tests of `mask`: the HMAC against RFC 4231, every rule, the key and record policies, the refusals, and properties.

use proptest::prelude::*;
use sluice_sdk::serde_json::{self, Value, json};
use sluice_sdk::testing::{Harness, json_batch, json_values};
use sluice_sdk::{Batch, Distribution};

use super::*;

/// The key of most tests, granted as the secret `mask-key`.
const KEY: &str = "correct horse battery staple";

/// HMAC-SHA-256(KEY, text) for a few texts, computed independently (Python's `hmac`).
const HMAC_OF_7: &str = "2f44b79788b639c3741e796765da66181b067918d3fcc47abb44b835c44cdbcf";
const HMAC_OF_U12: &str = "9fe5da44471cadb49b0a56210d3020bbea3fa33eaf7fe7078380bf45aff7c5f2";

/// `settings` plus the key granted as a secret and named by `secret`.
fn keyed(settings: Value) -> Value {
    let mut config = json!({"secret": "mask-key", "sluice_secrets": {"mask-key": KEY}});
    config.as_object_mut().expect("an object").extend(settings.as_object().cloned().unwrap_or_default());
    config
}

fn mask(config: Value) -> Harness<Mask> {
    Harness::new(config).expect("valid configuration")
}

fn refusal(config: Value) -> String {
    Harness::<Mask>::new(config).err().expect("refused")
}

/// The masked payload of one record.
fn masked(mask: &mut Harness<Mask>, payload: Value) -> Value {
    let out = mask.process_json(&[(payload, 5)]);
    json_values(&out.batch).pop().expect("one record emitted")
}

/// The first `bytes` bytes of a hex digest, as a pseudonym.
fn short(digest: &str, bytes: usize) -> String {
    digest[..2 * bytes].to_owned()
}

fn counter(name: &str) -> u64 {
    sluice_sdk::host::native_metrics().counters.get(name).copied().unwrap_or(0)
}

/// Whether some run of 4 characters of `key` appears in `message`.
fn quotes_part_of(message: &str, key: &str) -> bool {
    let characters: Vec<char> = key.chars().collect();
    characters.windows(4).any(|window| message.contains(&window.iter().collect::<String>()))
}

#[test]
fn the_pseudonym_is_hmac_sha256_as_rfc_4231_gives_it() {
    // RFC 4231 test case 1, through the configuration: key 0x0b × 20, data "Hi There".
    let config = json!({"secret": "k", "key_encoding": "hex", "sluice_secrets": {"k": "0b".repeat(20)}, "pseudonymise": ["data"], "pseudonym_bytes": 32});
    let out = masked(&mut mask(config), json!({"data": "Hi There"}));
    assert_eq!(out, json!({"data": "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"}));
    // Test case 2 (a 4-byte key, below what a configuration accepts) through the function.
    let pseudonymiser = Pseudonymiser::new(b"Jefe", 32, String::new()).expect("keyed");
    let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
    assert_eq!(pseudonymiser.pseudonym(b"what do ya want for nothing?"), expected);
}

#[test]
fn equal_values_get_equal_pseudonyms_in_every_field_and_instance_and_other_keys_give_others() {
    let config = keyed(json!({"pseudonymise": ["user_id", "buyer"]}));
    let first = masked(&mut mask(config.clone()), json!({"user_id": "u12", "buyer": "u12"}));
    let second = masked(&mut mask(config), json!({"buyer": "u12"}));
    assert_eq!(first["user_id"], json!(short(HMAC_OF_U12, 16)), "the default keeps 16 bytes");
    assert_eq!(first["buyer"], first["user_id"], "the same value in two fields");
    assert_eq!(second["buyer"], first["user_id"], "another instance (a restart) with the same key");
    let other_key = json!({"secret": "k", "sluice_secrets": {"k": "another key of enough length"}, "pseudonymise": ["user_id"]});
    let other = masked(&mut mask(other_key), json!({"user_id": "u12"}));
    assert_ne!(other["user_id"], first["user_id"]);
}

#[test]
fn numbers_are_pseudonymised_by_value_so_7_and_7_0_agree_and_null_stays_null() {
    let mut mask = mask(keyed(json!({"pseudonymise": ["n", "m", "gone", "nothing"], "prefix": "p_", "pseudonym_bytes": 8})));
    let out = masked(&mut mask, json!({"n": 7, "m": 7.0, "gone": null}));
    assert_eq!(out["n"], json!(format!("p_{}", short(HMAC_OF_7, 8))));
    assert_eq!(out["m"], out["n"]);
    assert_eq!(out["gone"], Value::Null);
    assert!(out.get("nothing").is_none(), "a missing field stays missing");
    let objects = masked(&mut mask, json!({"n": {"b": [1.0, 2], "a": 1}}));
    assert_eq!(objects["n"], json!(format!("p_{}", short("3fb4b607546a971703d805bfdcc824cdff3d55b70b7e47b09283cb627f7ef1c6", 8))));
}

#[test]
fn redact_and_drop_reach_nested_fields_and_leave_missing_ones_missing() {
    let config = keyed(json!({
        "pseudonymise": ["customer.email"],
        "redact": ["customer.address.street", "note", "absent.field"],
        "drop": ["customer.phone", "items.0.card", "a.b.c"],
        "redaction": "***",
    }));
    let input = json!({
        "customer": {"email": "ann@example.com", "phone": "+44 20 7946 0000", "address": {"street": "1 High St", "city": "Leeds"}},
        "items": [{"card": "4111111111111111", "sku": "x"}, {"sku": "y"}],
        "note": null,
        "a": {"b": 5},
        "amount": 12.5,
    });
    let out = masked(&mut mask(config), input);
    let email = out["customer"]["email"].as_str().expect("a pseudonym");
    assert_eq!(email.len(), 32);
    let expected = json!({
        "customer": {"email": email, "address": {"street": "***", "city": "Leeds"}},
        "items": [{"sku": "x"}, {"sku": "y"}],
        "note": null,
        "a": {"b": 5},
        "amount": 12.5,
    });
    assert_eq!(out, expected);
    let order: Vec<&String> = out["customer"].as_object().expect("object").keys().collect();
    assert_eq!(order, ["email", "address"], "the other fields keep their order");
}

#[test]
fn ip_addresses_keep_their_network_prefix() {
    let config = json!({"record_key": "drop", "truncate": [
        {"field": "ip", "to": "ip"},
        {"field": "wide", "to": "ip", "ipv4_prefix": 16, "ipv6_prefix": 32},
        {"field": "none", "to": "ip", "ipv4_prefix": 0, "ipv6_prefix": 128},
    ]});
    let mut mask = mask(config);
    let cases = [
        ("ip", "203.0.113.77", "203.0.113.0"),
        ("ip", "2001:db8:85a3:8d3:1319:8a2e:370:7348", "2001:db8:85a3::"),
        ("ip", "2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::"),
        ("ip", "::ffff:198.51.100.23", "::ffff:198.51.100.0"),
        ("wide", "203.0.113.77", "203.0.0.0"),
        ("wide", "2001:db8:85a3::1", "2001:db8::"),
        ("none", "203.0.113.77", "0.0.0.0"),
        ("none", "2001:db8::1", "2001:db8::1"),
    ];
    for (field, address, network) in cases {
        assert_eq!(masked(&mut mask, json!({field: address}))[field], json!(network), "{field} {address}");
    }
}

#[test]
fn epoch_milliseconds_are_floored_also_before_1970() {
    let units = ["second", "minute", "hour", "day"];
    let truncate: Vec<Value> = units.iter().map(|unit| json!({"field": unit, "to": unit})).collect();
    let mut mask = mask(json!({"record_key": "drop", "truncate": truncate}));
    let out = masked(
        &mut mask,
        json!({"second": 1_700_000_000_123_i64, "minute": 1_700_000_059_999_i64, "hour": 1_700_000_000_000_i64, "day": 1_700_000_000_000_i64}),
    );
    assert_eq!(
        out,
        json!({"second": 1_700_000_000_000_i64, "minute": 1_700_000_040_000_i64, "hour": 1_699_999_200_000_i64, "day": 1_699_920_000_000_i64})
    );
    let out = masked(&mut mask, json!({"second": -1, "minute": -1_500, "hour": -3_600_000, "day": -1}));
    assert_eq!(out, json!({"second": -1_000, "minute": -60_000, "hour": -3_600_000, "day": -86_400_000}));
    let out = masked(&mut mask, json!({"second": 1_999.9, "minute": -0.5}));
    assert_eq!(out, json!({"second": 1_000, "minute": -60_000}), "fractions of a millisecond are floored too");
}

#[test]
fn rfc3339_times_are_truncated_in_their_own_offset_and_lose_their_fraction() {
    let units = ["second", "minute", "hour", "day"];
    let truncate: Vec<Value> = units.iter().map(|unit| json!({"field": unit, "to": unit})).collect();
    let mut mask = mask(json!({"record_key": "drop", "truncate": truncate}));
    let time = "2024-03-10T14:37:52.123456+05:30";
    let out = masked(&mut mask, json!({"second": time, "minute": time, "hour": time, "day": time}));
    let expected = json!({
        "second": "2024-03-10T14:37:52+05:30",
        "minute": "2024-03-10T14:37:00+05:30",
        "hour": "2024-03-10T14:00:00+05:30",
        "day": "2024-03-10T00:00:00+05:30",
    });
    assert_eq!(out, expected);
    assert_eq!(masked(&mut mask, json!({"day": "2024-02-29T23:59:59Z"}))["day"], json!("2024-02-29T00:00:00Z"));
    assert_eq!(masked(&mut mask, json!({"hour": "1969-12-31t23:59:60.5-00:00"}))["hour"], json!("1969-12-31t23:00:00-00:00"));
    let malformed = [
        "2023-02-29T00:00:00Z",
        "2024-03-10T14:37:52",
        "2024-03-10T14:37:52.+05:30",
        "2024-03-10T24:00:00Z",
        "2024-03-10T14:37:52+5:30",
        "2024-3-10T14:37:52Z",
        "2024-03-10",
        "yesterday",
        "２０２４-03-10T14:37:52Z",
    ];
    for text in malformed {
        assert_eq!(masked(&mut mask, json!({"hour": text}))["hour"], json!("[redacted]"), "{text}");
    }
}

#[test]
fn buckets_floor_towards_minus_infinity() {
    let mut mask = mask(json!({"record_key": "drop", "truncate": [{"field": "n", "bucket": 10}, {"field": "x", "bucket": 0.5}]}));
    let cases = [(json!(15), json!(10)), (json!(0), json!(0)), (json!(-1), json!(-10)), (json!(-10), json!(-10)), (json!(-11), json!(-20))];
    for (value, bucket) in cases {
        assert_eq!(masked(&mut mask, json!({"n": value}))["n"], bucket, "{value}");
    }
    assert_eq!(masked(&mut mask, json!({"n": 19.99}))["n"], json!(10));
    assert_eq!(masked(&mut mask, json!({"x": -0.25}))["x"], json!(-0.5));
    assert_eq!(masked(&mut mask, json!({"x": 2.75}))["x"], json!(2.5));
    assert_eq!(masked(&mut mask, json!({"x": 3}))["x"], json!(3));
    let above_i64 = masked(&mut mask, json!({"n": 18_446_744_073_709_551_615_u64}))["n"].clone();
    assert_eq!(above_i64, json!(18_446_744_073_709_551_610_u64), "exact above i64's range too");
}

#[test]
fn values_a_truncation_cannot_read_are_redacted_and_counted() {
    let config = json!({"record_key": "drop", "redaction": "[gone]", "truncate": [
        {"field": "ip", "to": "ip"}, {"field": "ts", "to": "hour"}, {"field": "age", "bucket": 10},
    ]});
    let mut mask = mask(config);
    let before = counter("untruncatable_redacted");
    let out = masked(&mut mask, json!({"ip": "fe80::1%eth0", "ts": true, "age": "42"}));
    assert_eq!(out, json!({"ip": "[gone]", "ts": "[gone]", "age": "[gone]"}));
    let out = masked(&mut mask, json!({"ip": 42, "ts": [1], "age": {"years": 42}}));
    assert_eq!(out, json!({"ip": "[gone]", "ts": "[gone]", "age": "[gone]"}));
    assert_eq!(masked(&mut mask, json!({"ip": null, "ts": 18_446_744_073_709_551_615_u64})), json!({"ip": null, "ts": "[gone]"}));
    assert_eq!(counter("untruncatable_redacted") - before, 7);
}

/// A batch of one record with a key and a header.
fn keyed_record(key: &[u8], payload: &Value) -> Batch {
    let mut batch = Batch::new();
    let payload = sluice_sdk::serde_json::to_vec(payload).expect("JSON");
    batch.push(Some(key), &payload, 1_700_000_000_000, [(&b"trace"[..], &b"abc"[..])]);
    batch
}

#[test]
fn the_record_key_is_pseudonymised_like_the_field_it_copies_or_dropped_or_kept() {
    let batch = keyed_record(b"u12", &json!({"user_id": "u12"}));
    let out = mask(keyed(json!({"pseudonymise": ["user_id"]}))).process(&batch);
    let record = out.batch.get(0).expect("emitted");
    let expected = short(HMAC_OF_U12, 16);
    assert_eq!(record.key(), Some(expected.as_bytes()), "the key joins the field's pseudonym");
    assert_eq!(json_values(&out.batch)[0]["user_id"], json!(expected));
    assert_eq!(record.timestamp(), 1_700_000_000_000, "the event time is kept");
    let dropped = mask(json!({"record_key": "drop", "redact": ["user_id"]})).process(&batch);
    assert_eq!(dropped.batch.get(0).expect("emitted").key(), None);
    let kept = mask(json!({"record_key": "keep", "redact": ["user_id"]})).process(&batch);
    assert_eq!(kept.batch.get(0).expect("emitted").key(), Some(&b"u12"[..]));
}

#[test]
fn headers_are_kept_unless_dropped() {
    let batch = keyed_record(b"k", &json!({"a": 1}));
    let kept = mask(json!({"record_key": "drop", "drop": ["a"]})).process(&batch);
    assert_eq!(kept.batch.get(0).expect("emitted").header("trace"), Some(&b"abc"[..]));
    let dropped = mask(json!({"record_key": "keep", "headers": "drop"})).process(&batch);
    let record = dropped.batch.get(0).expect("emitted");
    assert_eq!((record.headers().count(), record.value()), (0, &b"{\"a\":1}"[..]));
}

/// Records 0 and 1 are not JSON objects, record 2 is.
fn mixed_batch() -> Batch {
    let mut batch = Batch::new();
    batch.push(None, b"ann@example.com is not JSON", 1, []);
    batch.push(None, b"[\"ann@example.com\"]", 2, []);
    batch.push(None, b"{\"email\": \"ann@example.com\"}", 3, []);
    batch
}

#[test]
fn records_that_are_not_json_objects_are_dropped_and_counted_or_rejected() {
    let before = counter("invalid_dropped");
    let out = mask(json!({"record_key": "drop", "redact": ["email"]})).process(&mixed_batch());
    assert_eq!(json_values(&out.batch), vec![json!({"email": "[redacted]"})]);
    assert!(out.rejected.is_empty());
    assert_eq!(counter("invalid_dropped") - before, 2);
    let out = mask(json!({"record_key": "drop", "redact": ["email"], "invalid": "reject"})).process(&mixed_batch());
    assert_eq!(out.rejected.iter().map(|rejection| rejection.index).collect::<Vec<_>>(), vec![0, 1]);
    assert!(out.rejected.iter().all(|rejection| !rejection.reason.contains("ann@")), "reasons quote no content");
    assert_eq!(out.batch.len(), 1);
}

/// Fields no rule names pass with their exact text: a number beyond the range of a 64-bit
/// float, an integer past 64 bits, `-0` and escapes are written as the record has them, and
/// the record is masked like any other.
#[test]
fn fields_no_rule_names_keep_their_exact_text() {
    let mut batch = Batch::new();
    batch.push(None, br#"{"email": "ann@example.com", "unrelated": 1e400, "id": 18446744073709551617, "zero": -0, "s": "\u00e9"}"#, 1, []);
    let out = mask(json!({"record_key": "drop", "redact": ["email"], "invalid": "reject"})).process(&batch);
    assert!(out.rejected.is_empty());
    let written: Vec<&[u8]> = out.batch.iter().map(|record| record.value()).collect();
    assert_eq!(written, [br#"{"email":"[redacted]","unrelated":1e400,"id":18446744073709551617,"zero":-0,"s":"\u00e9"}"#.as_slice()]);
    let mut scratch = String::new();
    let pseudonymiser = Pseudonymiser::new(KEY.as_bytes(), 16, String::new()).expect("keyed");
    let first = pseudonymiser.pseudonym_of_text(&raw("18446744073709551617"), &mut scratch);
    let second = pseudonymiser.pseudonym_of_text(&raw("18446744073709551616"), &mut scratch);
    assert_ne!(first, second, "ids a double cannot tell apart keep distinct pseudonyms");
    assert_eq!(first, pseudonymiser.pseudonym_of_text(&raw("1.8446744073709551617e19"), &mut scratch), "one number, one pseudonym");
}

fn raw(text: &str) -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string(text.to_owned()).expect("JSON")
}

/// Of a name an object repeats, the first value is masked and written; the second is gone.
#[test]
fn of_a_repeated_name_the_first_value_remains() {
    let mut batch = Batch::new();
    batch.push(None, br#"{"email": "ann@example.com", "n": 1, "email": "bob@example.com", "n": 2}"#, 1, []);
    let out = mask(json!({"record_key": "drop", "truncate": [{"field": "n", "bucket": 10}]})).process(&batch);
    assert_eq!(String::from_utf8_lossy(out.batch.get(0).map_or(&b""[..], |record| record.value())), r#"{"email":"ann@example.com","n":0}"#);
}

#[test]
fn it_refuses_to_start_without_a_usable_key_and_never_quotes_the_key() {
    let no_secret = refusal(json!({"pseudonymise": ["user_id"]}));
    assert!(no_secret.contains("secrets = {"), "{no_secret}");
    let key_by_default = refusal(json!({"redact": ["user_id"]}));
    assert!(key_by_default.contains("record_key"), "the default record_key pseudonymises: {key_by_default}");
    let short_key = "Zq7#Xv9!Lm2$";
    let cases = [
        (json!({"secret": "k", "sluice_secrets": {"k": short_key}, "pseudonymise": ["a"]}), short_key, "shorter than 16 bytes"),
        (json!({"secret": "k", "sluice_files": {"k": "Zq7#Xv9!Lm2$\n\n"}}), short_key, "shorter than 16 bytes"),
        (
            json!({"secret": "k", "key_encoding": "hex", "sluice_secrets": {"k": "0g1h2i3j4k5l6m7n8o9p0q1r2s3t"}}),
            "0g1h2i3j4k5l6m7n8o9p0q1r2s3t",
            "not hexadecimal",
        ),
        (
            json!({"secret": "k", "key_encoding": "hex", "sluice_secrets": {"k": "a1b2c3d4e5f6a7b8c9d0e"}}),
            "a1b2c3d4e5f6a7b8c9d0e",
            "not hexadecimal",
        ),
        (
            json!({"secret": "k", "key_encoding": "base64", "sluice_secrets": {"k": "Wq9*Rt5&Yu3^Io1%Pa7"}}),
            "Wq9*Rt5&Yu3^Io1%Pa7",
            "not base64",
        ),
        (json!({"secret": "Kx9$mQ2#vL7@pR4!wN6%", "sluice_secrets": {"k": KEY}}), "Kx9$mQ2#vL7@pR4!wN6%", "names no secret"),
        (
            json!({"hmac_key": "Kx9$mQ2#vL7@pR4!wN6%", "record_key": "drop", "drop": ["a"]}),
            "Kx9$mQ2#vL7@pR4!wN6%",
            "unknown field `hmac_key`",
        ),
    ];
    for (config, key, reason) in cases {
        let refused = refusal(config);
        assert!(refused.contains(reason), "{refused}");
        assert!(!quotes_part_of(&refused, key), "the refusal quotes part of the key: {refused}");
    }
}

#[test]
fn the_key_reads_alike_from_a_secret_or_a_file_as_text_hex_or_base64() {
    let expected = json!({"user_id": short(HMAC_OF_U12, 16)});
    let sources = [
        json!({"secret": "k", "sluice_secrets": {"k": KEY}}),
        json!({"secret": "k", "sluice_files": {"k": format!("{KEY}\r\n")}}),
        json!({"secret": "k", "key_encoding": "hex", "sluice_files": {"k": "636f727265637420686f727365206261747465727920737461706c65\n"}}),
        json!({"secret": "k", "key_encoding": "base64", "sluice_secrets": {"k": "Y29ycmVjdCBob3JzZSBiYXR0ZXJ5IHN0YXBsZQ=="}}),
        json!({"secret": "k", "key_encoding": "base64", "sluice_secrets": {"k": "Y29ycmVjdCBob3JzZSBiYXR0ZXJ5IHN0YXBsZQ"}}),
        json!({"secret": "k", "sluice_secrets": {"k": KEY}, "sluice_files": {"k": "a file of the same name, not read"}}),
    ];
    for source in sources {
        let mut config = source.clone();
        config["pseudonymise"] = json!(["user_id"]);
        assert_eq!(masked(&mut mask(config), json!({"user_id": "u12"})), expected, "{source}");
    }
}

#[test]
fn the_configuration_debug_text_names_secrets_but_shows_no_value() {
    let config: MaskConfig = sluice_sdk::serde_json::from_value(keyed(json!({"pseudonymise": ["a"]}))).expect("parses");
    let text = format!("{config:?}");
    assert!(text.contains("mask-key") && !text.contains(KEY), "{text}");
}

#[test]
fn a_field_is_masked_by_exactly_one_rule() {
    let cases = [
        (json!({"pseudonymise": ["email"], "redact": ["email"]}), "in both `pseudonymise` and `redact`"),
        (json!({"drop": ["email", "email"]}), "listed twice in `drop`"),
        (json!({"drop": ["email"], "truncate": [{"field": "email", "to": "ip"}]}), "in both `drop` and `truncate`"),
        (json!({"drop": ["customer"], "redact": ["customer.name"]}), "customer.name (in `redact`) lies inside customer (in `drop`)"),
        (json!({"pseudonymise": ["a.b.c"], "redact": ["a.b"]}), "a.b.c (in `pseudonymise`) lies inside a.b (in `redact`)"),
    ];
    for (rules, reason) in cases {
        let refused = refusal(keyed(rules));
        assert!(refused.contains(reason), "{refused}");
    }
    assert!(Harness::<Mask>::new(keyed(json!({"drop": ["customer.name"], "redact": ["customer.named"]}))).is_ok());
}

#[test]
fn configuration_mistakes_are_refused_with_the_key_to_fix() {
    let cases = [
        (json!({"pseudonymise": ["a"], "pseudonym_bytes": 7}), "`pseudonym_bytes`"),
        (json!({"pseudonymise": ["a"], "pseudonym_bytes": 33}), "`pseudonym_bytes`"),
        (json!({"truncate": [{"field": "t", "to": "hour", "bucket": 10}]}), "not both"),
        (json!({"truncate": [{"field": "t"}]}), "say how coarse"),
        (json!({"truncate": [{"field": "t", "bucket": 0}]}), "above 0"),
        (json!({"truncate": [{"field": "t", "bucket": -5}]}), "above 0"),
        (json!({"truncate": [{"field": "t", "to": "ip", "ipv4_prefix": 33}]}), "at most 32"),
        (json!({"truncate": [{"field": "t", "to": "hour", "ipv6_prefix": 64}]}), "only with to = \"ip\""),
        (json!({"truncate": [{"field": "t", "to": "week"}]}), "unknown variant `week`"),
        (json!({"truncate": [{"field": "t", "to": "hour", "sluice_docs_probe": 1}]}), "unknown field `sluice_docs_probe`"),
        (json!({"redact": ["a..b"]}), "invalid field path"),
    ];
    for (config, reason) in cases {
        let refused = refusal(keyed(config));
        assert!(refused.contains(reason), "{refused}");
    }
    let nothing = refusal(json!({"record_key": "keep"}));
    assert!(nothing.contains("nothing to mask"), "{nothing}");
}

#[test]
fn array_indexes_name_the_elements_of_the_record_as_it_came() {
    let emails = json!({"emails": ["a@x", "b@x", "c@x"]});
    for drop in [json!(["emails.0", "emails.1"]), json!(["emails.1", "emails.0"]), json!(["emails.+0", "emails.01"])] {
        let out = masked(&mut mask(json!({"record_key": "drop", "drop": drop})), emails.clone());
        assert_eq!(out, json!({"emails": ["c@x"]}), "{drop}");
    }
    let config = json!({"record_key": "drop", "drop": ["ips.0"], "truncate": [{"field": "ips.1", "to": "ip"}]});
    let out = masked(&mut mask(config), json!({"ips": ["203.0.113.77", "198.51.100.23", "192.0.2.9"]}));
    assert_eq!(out, json!({"ips": ["198.51.100.0", "192.0.2.9"]}), "the truncation reads element 1 before the drop moves it");
    let config = keyed(json!({"pseudonymise": ["list.2"], "redact": ["list.3.card"], "drop": ["list.0", "list.1.card", "list.4"]}));
    let cards: Vec<Value> = (0..5).map(|index| json!({"card": format!("card {index}"), "sku": index})).collect();
    let out = masked(&mut mask(config), json!({"list": cards}));
    let mut scratch = String::new();
    let pseudonymiser = Pseudonymiser::new(KEY.as_bytes(), 16, String::new()).expect("keyed");
    let third = pseudonym_of_value(&pseudonymiser, &cards[2], &mut scratch).expect("not null");
    assert_eq!(out, json!({"list": [{"sku": 1}, third, {"card": "[redacted]", "sku": 3}]}));
}

#[test]
fn index_spellings_of_one_element_are_one_field() {
    let cases = [
        (json!({"drop": ["emails.0", "emails.00"]}), "emails.0 is listed twice (as emails.00) in `drop`"),
        (json!({"drop": ["emails.+0"], "redact": ["emails.0"]}), "emails.0 is in both `redact` and `drop` (as emails.+0)"),
        (json!({"drop": ["list.0"], "redact": ["list.00.card"]}), "list.00.card (in `redact`) lies inside list.0 (in `drop`)"),
    ];
    for (rules, reason) in cases {
        let refused = refusal(keyed(rules));
        assert!(refused.contains(reason), "{refused}");
    }
    assert!(Harness::<Mask>::new(keyed(json!({"drop": ["list.0", "list.0x"]}))).is_ok(), "0x is a name, not an index");
}

#[test]
fn a_path_that_does_not_resolve_reaches_the_top_level_key_spelt_with_its_dots() {
    let config = keyed(json!({
        "pseudonymise": ["user.id"],
        "redact": ["context.name", "context.none"],
        "drop": ["context.device"],
        "truncate": [{"field": "context.ip", "to": "ip"}, {"field": "context.ts", "to": "hour"}],
    }));
    let mut mask = mask(config);
    let input = json!({
        "user.id": "u12", "context.name": "Ann", "context.device": "phone", "context.ip": "203.0.113.77",
        "context.ts": 1_700_000_000_123_i64, "context.none": null, "other": 1,
    });
    let expected = json!({
        "user.id": short(HMAC_OF_U12, 16), "context.name": "[redacted]", "context.ip": "203.0.113.0",
        "context.ts": 1_699_999_200_000_i64, "context.none": null, "other": 1,
    });
    assert_eq!(masked(&mut mask, input), expected);
    let nested = json!({"context": {"ip": "198.51.100.23", "device": "phone"}, "context.ip": "192.0.2.9", "context.device": "tablet"});
    let out = masked(&mut mask, nested);
    let expected = json!({"context": {"ip": "198.51.100.0"}, "context.ip": "192.0.2.0"});
    assert_eq!(out, expected, "both the nested field and the key with dots are masked");
    let not_an_object = masked(&mut mask, json!({"context": "a string", "context.name": "Ann"}));
    assert_eq!(not_an_object, json!({"context": "a string", "context.name": "[redacted]"}));
}

#[test]
fn it_keeps_no_state_and_runs_on_any_instance() {
    let mask = mask(json!({"record_key": "drop", "drop": ["a"]}));
    assert_eq!(mask.info().distribution, Distribution::Any);
    assert!(mask.snapshot().bytes.is_empty());
    let batch = json_batch(&[(json!({"a": 1, "b": 2}), 9)]);
    let restored = Harness::<Mask>::restored(json!({"record_key": "drop", "drop": ["a"]}), mask.snapshot());
    assert_eq!(json_values(&restored.expect("restores").process(&batch).batch), vec![json!({"b": 2})]);
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|window| window == needle)
}

/// The ways `text` could stand in output bytes: as it is, and escaped as a JSON string.
fn spellings(text: &str) -> [Vec<u8>; 2] {
    let escaped = sluice_sdk::serde_json::to_string(text).expect("a string serialises");
    [text.as_bytes().to_vec(), escaped.as_bytes()[1..escaped.len() - 1].to_vec()]
}

proptest! {
    /// Whatever the strings in masked fields (and in the record key), none of them appears in
    /// the output record, in any spelling, and the output is a JSON object.
    #[test]
    fn no_masked_value_reaches_the_output(values in proptest::collection::vec("\\PC{4,24}", 6), key in "\\PC{4,24}") {
        let config = keyed(json!({
            "pseudonymise": ["user_id", "contact.email"],
            "redact": ["name"],
            "drop": ["phone"],
            "truncate": [{"field": "ip", "to": "ip"}, {"field": "seen", "to": "minute"}],
        }));
        let payload = json!({
            "user_id": values[0], "contact": {"email": values[1], "kept": "k"}, "name": values[2],
            "phone": values[3], "ip": values[4], "seen": values[5], "other": 1,
        });
        let out = mask(config).process(&keyed_record(key.as_bytes(), &payload));
        prop_assert_eq!(out.batch.len(), 1);
        let record = out.batch.get(0).expect("emitted");
        let parsed: Value = sluice_sdk::serde_json::from_slice(record.value()).expect("valid JSON");
        prop_assert!(parsed.is_object());
        for original in values.iter().chain([&key]) {
            for spelling in spellings(original) {
                prop_assert!(!contains(record.value(), &spelling), "{:?} in {:?}", original, String::from_utf8_lossy(record.value()));
                prop_assert!(!contains(record.key().unwrap_or_default(), &spelling));
            }
        }
    }

    /// Whatever bytes arrive, a record comes out as a JSON object or not at all.
    #[test]
    fn the_output_is_always_a_json_object(prefix in "\\{\"name\":|\\[|\"|", payload in proptest::collection::vec(any::<u8>(), 0..40)) {
        let mut bytes = prefix.into_bytes();
        bytes.extend_from_slice(&payload);
        let mut batch = Batch::new();
        batch.push(None, &bytes, 0, []);
        batch.push(None, br#"{"name": "Ann", "age": 41}"#, 0, []);
        let out = mask(json!({"record_key": "drop", "redact": ["name"], "truncate": [{"field": "age", "bucket": 10}]})).process(&batch);
        prop_assert!(!out.batch.is_empty() && out.batch.len() <= 2);
        for record in out.batch.iter() {
            let parsed: Value = sluice_sdk::serde_json::from_slice(record.value()).expect("valid JSON");
            prop_assert!(parsed.is_object());
        }
        let last = json_values(&out.batch).pop();
        prop_assert_eq!(last, Some(json!({"name": "[redacted]", "age": 40})));
    }

    /// Whatever rules name elements of an array (or fields inside them), with whatever index
    /// spelling, each element is masked as its rule says, counted by its index in the record as
    /// it came, and no original value of a masked element appears in the output.
    #[test]
    fn indexed_rules_mask_the_elements_they_name_and_no_other(
        elements in proptest::collection::vec(("[a-z@. ]{1,10}", any::<bool>(), any::<bool>(), 0_u8..5, 0_usize..3), 1..8),
    ) {
        let (mut pseudonymise, mut redact, mut drop, mut truncate) = (vec![], vec![], vec![], vec![]);
        let (mut input, mut expected, mut masked_values) = (vec![], vec![], vec![]);
        let pseudonymiser = Pseudonymiser::new(KEY.as_bytes(), 16, String::new()).expect("keyed");
        let mut scratch = String::new();
        for (index, (text, wrapped, whole, action, spelling)) in elements.iter().enumerate() {
            // The mark «index» makes each value occur nowhere else.
            let value = format!("«{index}»{text}");
            let element = if *wrapped { json!({"card": value, "sku": index}) } else { json!(value) };
            input.push(element.clone());
            let index_text = [format!("{index}"), format!("0{index}"), format!("+{index}")][*spelling].clone();
            let on_card = *wrapped && !*whole;
            let path = if on_card { format!("list.{index_text}.card") } else { format!("list.{index_text}") };
            let target = if on_card { json!(value) } else { element.clone() };
            let masked_target = match action {
                1 => {
                    pseudonymise.push(path);
                    Some(json!(pseudonym_of_value(&pseudonymiser, &target, &mut scratch).expect("not null")))
                }
                2 => {
                    redact.push(path);
                    Some(json!("[redacted]"))
                }
                3 => {
                    drop.push(path);
                    None
                }
                4 => {
                    truncate.push(json!({"field": path, "to": "ip"}));
                    Some(json!("[redacted]"))
                }
                _ => Some(target),
            };
            if *action != 0 {
                masked_values.push(value);
            }
            match (on_card, masked_target) {
                (true, Some(card)) => expected.push(json!({"card": card, "sku": index})),
                (true, None) => expected.push(json!({"sku": index})),
                (false, Some(element)) => expected.push(element),
                (false, None) => {}
            }
        }
        let config = keyed(json!({"pseudonymise": pseudonymise, "redact": redact, "drop": drop, "truncate": truncate}));
        let out = mask(config).process(&json_batch(&[(json!({"list": input}), 5)]));
        let record = out.batch.get(0).expect("emitted");
        for value in &masked_values {
            for spelling in spellings(value) {
                prop_assert!(!contains(record.value(), &spelling), "{:?} in {:?}", value, String::from_utf8_lossy(record.value()));
            }
        }
        prop_assert_eq!(json_values(&out.batch).pop(), Some(json!({"list": expected})));
    }
}

/// The pseudonym of `value` written as JSON text.
fn pseudonym_of_value(pseudonymiser: &Pseudonymiser, value: &Value, scratch: &mut String) -> Option<String> {
    pseudonymiser.pseudonym_of_text(&serde_json::value::to_raw_value(value).expect("JSON"), scratch)
}
