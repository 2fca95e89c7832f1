//! The Nexmark source and queries: the stream is the same in any number of shares, and each
//! shipped query's output equals a direct computation over the same events.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::{Scratch, repo_root, run};

const EVENTS: u64 = 30_000;

/// A record as text with its keys sorted: records compare whatever their key order.
fn canonical(value: &Value) -> String {
    match value {
        Value::Object(object) => {
            let sorted: BTreeMap<&String, String> = object.iter().map(|(key, value)| (key, canonical(value))).collect();
            let members: Vec<String> = sorted.iter().map(|(key, value)| format!("{key:?}:{value}")).collect();
            format!("{{{}}}", members.join(","))
        }
        other => other.to_string(),
    }
}

fn sorted(records: impl IntoIterator<Item = Value>) -> Vec<String> {
    let mut lines: Vec<String> = records.into_iter().map(|record| canonical(&record)).collect();
    lines.sort();
    lines
}

/// The events of a `type = "nexmark"` source of `EVENTS` events at `parallelism`, as a sink
/// receives them.
fn raw_events(parallelism: usize) -> Vec<Value> {
    let scratch = Scratch::new();
    let path = scratch.pipeline(&format!(
        "[pipeline]\nname = \"raw\"\nparallelism = {parallelism}\n\n[[sources]]\ntype = \"nexmark\"\ncount = {EVENTS}\n\n\
         [[sinks]]\ntype = \"file\"\npath = \"events.jsonl\"\n"
    ));
    run(&path).expect("the raw stream runs");
    scratch.json_lines("events.jsonl")
}

#[test]
fn the_nexmark_stream_is_the_same_in_one_share_or_two() {
    let one = raw_events(1);
    assert_eq!(one.len() as u64, EVENTS);
    let kinds = |events: &[Value], kind: &str| events.iter().filter(|event| event["type"] == kind).count();
    assert_eq!((kinds(&one, "person"), kinds(&one, "auction"), kinds(&one, "bid")), (600, 1_800, 27_600));
    assert_eq!(sorted(one), sorted(raw_events(2)), "two shares make the same events");
}

/// Runs the shipped query `name` over `EVENTS` events; its output records.
fn query(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo_root().join(format!("pipelines/nexmark/{name}.toml"))).expect("the query");
    let plugins = repo_root().join("build/plugins");
    let text = text
        .replace("../../build/plugins", &plugins.display().to_string())
        .replace("${NEXMARK_EVENTS:-10000000}", &EVENTS.to_string())
        .replace("${NEXMARK_OUT:-/dev/null}", "out.jsonl");
    let scratch = Scratch::new();
    let path = scratch.write("query.toml", &text);
    let summary = run(&path).unwrap_or_else(|error| panic!("{name} runs: {error}"));
    assert_eq!(summary.dead_letters, 0, "{name}: no dead letter");
    scratch.json_lines("out.jsonl")
}

fn bids(events: &[Value]) -> impl Iterator<Item = &serde_json::Map<String, Value>> {
    events.iter().filter(|event| event["type"] == "bid").filter_map(Value::as_object)
}

fn columns(bid: &serde_json::Map<String, Value>, names: &[&str]) -> Value {
    Value::Object(names.iter().map(|name| ((*name).to_owned(), bid[*name].clone())).collect())
}

/// A computed number as the operators write it: integral values as integers.
fn number(value: f64) -> Value {
    if value.fract() == 0.0 && value.abs() < 9.0e15 { Value::from(value as i64) } else { Value::from(value) }
}

#[test]
fn nexmark_q0_to_q2_match_a_direct_computation() {
    let events = raw_events(1);
    let q0: Vec<Value> = bids(&events).map(|bid| columns(bid, &["auction", "bidder", "price", "dateTime", "extra"])).collect();
    assert_eq!(sorted(query("q0")), sorted(q0.clone()), "q0: every bid's columns");

    // 0.908 × an integer has at most three decimals; compared at the tenth of a thousandth
    // (serde_json's default float parser may be one unit in the last place off).
    let in_thousandths = |mut bid: Value| {
        let price = bid["price"].as_f64().expect("a price");
        bid["price"] = Value::from((price * 10_000.0).round() as i64);
        bid
    };
    let q1 = q0.iter().map(|bid| {
        let mut bid = bid.clone();
        bid["price"] = number(0.908 * bid["price"].as_f64().expect("a price"));
        in_thousandths(bid)
    });
    let actual = sorted(query("q1").into_iter().map(in_thousandths));
    assert_eq!(actual, sorted(q1), "q1: prices in euros");

    let q2: Vec<Value> = bids(&events)
        .filter(|bid| bid["auction"].as_i64().is_some_and(|auction| auction % 123 == 0))
        .map(|bid| columns(bid, &["auction", "price"]))
        .collect();
    assert!(q2.len() > 10, "q2 selects some bids: {}", q2.len());
    assert_eq!(sorted(query("q2")), sorted(q2), "q2: the bids on auctions divisible by 123");
}

fn events_of<'a>(events: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a serde_json::Map<String, Value>> {
    events.iter().filter(move |event| event["type"] == kind).filter_map(Value::as_object)
}

#[test]
fn nexmark_q3_and_q8_joins_match_a_direct_computation() {
    let events = raw_events(1);
    // q3: auctions of category 10 joined with their sellers in OR, ID or CA.
    let persons: BTreeMap<i64, &serde_json::Map<String, Value>> = events_of(&events, "person")
        .filter(|person| ["OR", "ID", "CA"].iter().any(|state| person["state"] == *state))
        .map(|person| (person["id"].as_i64().expect("an id"), person))
        .collect();
    let q3: Vec<Value> = events_of(&events, "auction")
        .filter(|auction| auction["category"] == 10)
        .filter_map(|auction| {
            let person = persons.get(&auction["seller"].as_i64()?)?;
            Some(serde_json::json!({"id": auction["id"], "name": person["name"], "city": person["city"], "state": person["state"]}))
        })
        .collect();
    assert!(q3.len() > 10, "q3 finds some sellers: {}", q3.len());
    assert_eq!(sorted(query("q3")), sorted(q3), "q3: local sellers");

    // q8: persons with an auction of theirs in the 10-second window they registered in.
    let window = |event: &serde_json::Map<String, Value>| event["dateTime"].as_i64().expect("a time").div_euclid(10_000) * 10_000;
    let sellers: std::collections::BTreeSet<(i64, i64)> =
        events_of(&events, "auction").map(|auction| (auction["seller"].as_i64().expect("a seller"), window(auction))).collect();
    let q8: Vec<Value> = events_of(&events, "person")
        .filter(|person| sellers.contains(&(person["id"].as_i64().expect("an id"), window(person))))
        .map(|person| serde_json::json!({"id": person["id"], "name": person["name"], "starttime": window(person)}))
        .collect();
    assert!(q8.len() > 10, "q8 finds some new sellers: {}", q8.len());
    assert_eq!(sorted(query("q8")), sorted(q8), "q8: new users who sell");
}

#[test]
fn nexmark_q5_and_q7_match_a_direct_computation() {
    let events = raw_events(1);
    let bids: Vec<(i64, i64, &serde_json::Map<String, Value>)> = events_of(&events, "bid")
        .map(|bid| (bid["dateTime"].as_i64().expect("a time"), bid["auction"].as_i64().expect("an auction"), bid))
        .collect();
    // q5: per 10 s window sliding by 2 s, the auctions with the most bids.
    let mut counts: BTreeMap<i64, BTreeMap<i64, u64>> = BTreeMap::new();
    for (time, auction, _) in &bids {
        let last_start = time - time.rem_euclid(2_000);
        for start in (last_start - 8_000..=last_start).step_by(2_000) {
            *counts.entry(start).or_default().entry(*auction).or_default() += 1;
        }
    }
    let mut q5 = Vec::new();
    for (start, auctions) in &counts {
        let most = auctions.values().copied().max().unwrap_or(0);
        q5.extend(
            auctions
                .iter()
                .filter(|(_, num)| **num == most)
                .map(|(auction, num)| serde_json::json!({"auction": auction, "num": num, "starttime": start})),
        );
    }
    assert_eq!(sorted(query("q5")), sorted(q5), "q5: hot items");

    // q7: per 10 s window, the bids at its highest price.
    let mut highest: BTreeMap<i64, i64> = BTreeMap::new();
    for (time, _, bid) in &bids {
        let price = bid["price"].as_i64().expect("a price");
        let entry = highest.entry(time - time.rem_euclid(10_000)).or_insert(price);
        *entry = (*entry).max(price);
    }
    let q7: Vec<Value> = bids
        .iter()
        .filter(|(time, _, bid)| highest[&(time - time.rem_euclid(10_000))] == bid["price"].as_i64().expect("a price"))
        .map(|(_, _, bid)| columns(bid, &["auction", "price", "bidder", "dateTime", "extra"]))
        .collect();
    assert!(!q7.is_empty());
    assert_eq!(sorted(query("q7")), sorted(q7), "q7: highest bids");
}

/// A winning bid: the auction's closing time, id, seller and category, and its highest bid
/// among those placed within [dateTime, expires].
struct Winner {
    expires: i64,
    seller: i64,
    category: i64,
    price: i64,
}

/// The winning bid of every auction with a bid in its interval, in closing order.
fn winning_bids(events: &[Value]) -> Vec<Winner> {
    let field = |event: &serde_json::Map<String, Value>, name: &str| event[name].as_i64().unwrap_or_else(|| panic!("{name} in {event:?}"));
    let auctions: BTreeMap<i64, &serde_json::Map<String, Value>> =
        events_of(events, "auction").map(|auction| (field(auction, "id"), auction)).collect();
    let mut highest: BTreeMap<i64, i64> = BTreeMap::new();
    for bid in bids(events) {
        let Some(auction) = auctions.get(&field(bid, "auction")) else { continue };
        let placed = field(bid, "dateTime");
        if (field(auction, "dateTime")..=field(auction, "expires")).contains(&placed) {
            let best = highest.entry(field(auction, "id")).or_insert(i64::MIN);
            *best = (*best).max(field(bid, "price"));
        }
    }
    let mut winners: Vec<Winner> = highest
        .iter()
        .map(|(id, price)| {
            let auction = auctions[id];
            Winner {
                expires: field(auction, "expires"),
                seller: field(auction, "seller"),
                category: field(auction, "category"),
                price: *price,
            }
        })
        .collect();
    winners.sort_by_key(|winner| winner.expires);
    winners
}

/// Whether `actual` is `expected` up to a relative 1e-9.
fn close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() <= 1e-9 * expected.abs().max(1.0)
}

#[test]
fn nexmark_q4_and_q6_winning_bids_match_a_direct_computation() {
    let events = raw_events(1);
    let winners = winning_bids(&events);
    assert!(winners.len() > 500, "auctions with a winning bid: {}", winners.len());

    // q4: per 10 s in which auctions of a category closed, the average winning price of every
    // auction of that category closed so far, and how many closed in the interval.
    let mut closed: BTreeMap<(i64, i64), Vec<i64>> = BTreeMap::new();
    for winner in &winners {
        let interval_end = winner.expires - winner.expires.rem_euclid(10_000) + 10_000;
        closed.entry((interval_end, winner.category)).or_default().push(winner.price);
    }
    let mut totals: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    let mut expected = BTreeMap::new();
    for ((interval_end, category), prices) in &closed {
        let total = totals.entry(*category).or_default();
        *total = (total.0 + prices.iter().sum::<i64>(), total.1 + prices.len() as i64);
        expected.insert((*interval_end, *category), (total.0 as f64 / total.1 as f64, prices.len() as u64));
    }
    let q4 = query("q4");
    assert_eq!(q4.len(), expected.len(), "q4: one record per interval and category");
    for record in &q4 {
        let key = (record["interval_end"].as_i64().expect("interval_end"), record["category"].as_i64().expect("category"));
        let (average, count) = expected.get(&key).unwrap_or_else(|| panic!("q4: unexpected {record}"));
        assert_eq!(record["count"].as_u64(), Some(*count), "q4: {record}");
        assert!(close(record["avg_price"].as_f64().expect("avg_price"), *average), "q4: {record}, expected {average}");
    }

    // q6: per seller and closing millisecond, the average of the seller's last 10 winning
    // prices. Auctions of a seller closing in the same millisecond are not ordered (by the
    // query either): when only some of them are among the last 10, the average lies between
    // that of the cheapest and that of the dearest choice.
    let mut by_seller: BTreeMap<(i64, i64), Vec<i64>> = BTreeMap::new();
    for winner in &winners {
        by_seller.entry((winner.seller, winner.expires)).or_default().push(winner.price);
    }
    let mut last_ten: BTreeMap<i64, std::collections::VecDeque<(i64, i64)>> = BTreeMap::new();
    let mut expected = BTreeMap::new();
    for ((seller, expires), prices) in &by_seller {
        let kept = last_ten.entry(*seller).or_default();
        kept.extend(prices.iter().map(|price| (*expires, *price)));
        while kept.len() > 10 {
            kept.pop_front();
        }
        // The oldest group may be cut: any `taken` of its prices may be the ones kept.
        let oldest = kept.front().map(|(closing, _)| *closing).unwrap_or_default();
        let taken = kept.iter().filter(|(closing, _)| *closing == oldest).count();
        let rest: i64 = kept.iter().filter(|(closing, _)| *closing != oldest).map(|(_, price)| price).sum();
        let mut group = by_seller[&(*seller, oldest)].clone();
        group.sort_unstable();
        let low = (rest + group[..taken].iter().sum::<i64>()) as f64 / kept.len() as f64;
        let high = (rest + group[group.len() - taken..].iter().sum::<i64>()) as f64 / kept.len() as f64;
        expected.insert((expires + 1, *seller), (low, high, prices.len() as u64));
    }
    let q6 = query("q6");
    assert_eq!(q6.len(), expected.len(), "q6: one record per seller and closing millisecond");
    for record in &q6 {
        let key = (record["interval_end"].as_i64().expect("interval_end"), record["seller"].as_i64().expect("seller"));
        let (low, high, count) = expected.get(&key).unwrap_or_else(|| panic!("q6: unexpected {record}"));
        let average = record["avg_price"].as_f64().expect("avg_price");
        assert_eq!(record["count"].as_u64(), Some(*count), "q6: {record}");
        assert!(average >= low - 1e-9 * low && average <= high + 1e-9 * high, "q6: {record}, expected within [{low}, {high}]");
    }
}
