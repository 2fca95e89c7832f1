//! The stream's shape against the reference's rules: proportions, id spaces, hot keys,
//! prices, sizes and event times.

use super::*;

fn shape() -> Shape {
    crate::config::NexmarkConfig::default().shape(1_767_225_600_000)
}

fn events(count: i64) -> Vec<Event> {
    let shape = shape();
    (0..count).map(|number| Event::make(&shape, number)).collect()
}

#[test]
fn persons_auctions_and_bids_come_in_the_1_3_46_proportion_with_sequential_ids() {
    let events = events(50_000);
    let persons: Vec<&Person> =
        events.iter().filter_map(|event| if let Event::Person(person) = event { Some(person) } else { None }).collect();
    let auctions: Vec<&Auction> =
        events.iter().filter_map(|event| if let Event::Auction(auction) = event { Some(auction) } else { None }).collect();
    assert_eq!((persons.len(), auctions.len(), events.len() - persons.len() - auctions.len()), (1_000, 3_000, 46_000));
    assert!(persons.iter().enumerate().all(|(n, person)| person.id == FIRST_PERSON_ID + n as i64));
    assert!(auctions.iter().enumerate().all(|(n, auction)| auction.id == FIRST_AUCTION_ID + n as i64));
    assert!(auctions.iter().all(|auction| (FIRST_CATEGORY_ID..FIRST_CATEGORY_ID + 5).contains(&auction.category)));
    assert!(auctions.iter().all(|auction| auction.reserve > auction.initial_bid && auction.expires > auction.date_time));
}

#[test]
fn bids_name_known_or_soon_made_auctions_and_people_and_hot_ones_most() {
    let events = events(50_000);
    let mut last_auction = FIRST_AUCTION_ID - 1;
    let mut last_person = FIRST_PERSON_ID - 1;
    let mut hot = 0;
    let mut bids = 0;
    for event in &events {
        match event {
            Event::Person(person) => last_person = person.id,
            Event::Auction(auction) => last_auction = auction.id,
            Event::Bid(bid) => {
                bids += 1;
                assert!(bid.auction <= last_auction + 10 && bid.auction >= FIRST_AUCTION_ID, "{bid:?}");
                assert!(bid.bidder <= last_person + 10 && bid.bidder >= FIRST_PERSON_ID, "{bid:?}");
                if (bid.auction - FIRST_AUCTION_ID) % 100 == 0 {
                    hot += 1;
                }
                assert!(bid.price >= 100 && bid.price <= 100_000_000, "prices from $1 to $1M: {}", bid.price);
            }
        }
    }
    // About half the bids go to the hot auction of their hundred (hot_auction_ratio 2). The
    // reference seeds java.util.Random with consecutive event numbers, whose first draws are
    // correlated: it gives 0.47 here, as this generator does.
    let share = f64::from(hot) / f64::from(bids);
    assert!((0.4..0.6).contains(&share), "hot auctions get {share:.3} of the bids");
}

#[test]
fn events_pad_to_the_reference_average_sizes_and_space_event_time_evenly() {
    let events = events(10_000);
    let average = |select: &dyn Fn(&Event) -> Option<usize>| {
        let sizes: Vec<usize> = events.iter().filter_map(select).collect();
        sizes.iter().sum::<usize>() as f64 / sizes.len() as f64
    };
    // The reference counts 8 bytes per number and the strings' lengths: about 200, 500, 100.
    let person = average(&|event| match event {
        Event::Person(p) => {
            Some(8 + p.name.len() + p.email_address.len() + p.credit_card.len() + p.city.len() + p.state.len() + p.extra.len())
        }
        _ => None,
    });
    let auction = average(&|event| match event {
        Event::Auction(a) => Some(8 + a.item_name.len() + a.description.len() + 40 + a.extra.len()),
        _ => None,
    });
    let bid = average(&|event| match event {
        Event::Bid(b) => Some(32 + b.extra.len()),
        _ => None,
    });
    assert!((190.0..210.0).contains(&person), "persons average {person}");
    assert!((475.0..525.0).contains(&auction), "auctions average {auction}");
    assert!((95.0..105.0).contains(&bid), "bids average {bid}");
    // 10,000 events a second of event time: 0.1 ms apart.
    let shape = shape();
    assert_eq!(shape.timestamp(10_000) - shape.timestamp(0), 1_000);
    assert!(events.windows(2).all(|pair| pair[0].date_time() <= pair[1].date_time()));
}

#[test]
fn an_event_depends_on_its_number_alone() {
    let shape = shape();
    assert_eq!(Event::make(&shape, 12_345), Event::make(&shape, 12_345));
    let json = serde_json::to_value(Event::make(&shape, 7)).expect("json");
    assert_eq!(json["type"], "bid");
    assert!(json["dateTime"].is_i64() && json["auction"].is_i64() && json["channel"].is_string(), "{json}");
    let person = serde_json::to_value(Event::make(&shape, 50)).expect("json");
    assert_eq!(person["type"], "person");
    assert_eq!(person["id"], 1_001);
    assert!(person["emailAddress"].as_str().is_some_and(|email| email.ends_with(".com")));
}

#[test]
fn events_are_written_as_serde_would_write_them_and_indexed() {
    let mut object = ObjectWriter::new();
    for event in events(5_000) {
        event.write_object(&mut object);
        let mut written = Vec::new();
        object.write_to(&mut written);
        assert_eq!(String::from_utf8(written.clone()).unwrap(), serde_json::to_string(&event).unwrap());
        let mut batch = sluice_sdk::Batch::new();
        batch.push_object(None, &object, 0);
        let mut scanned = Vec::new();
        assert!(sluice_sdk::fields::append_index(&written, &mut scanned));
        let fields = batch.events[0].fields.expect("indexed");
        let index = &batch.bytes[fields.offset as usize..(fields.offset + fields.length) as usize];
        assert_eq!(index, &scanned[..], "the index written is the one a scan builds");
    }
}

/// The source's way (remade but for `extra`, which is drawn as it is written) writes what
/// making the event whole and writing it writes: the same text, the same index.
#[test]
fn events_padded_as_written_are_the_events_made_whole() {
    let shape = shape();
    let (mut whole, mut padded) = (ObjectWriter::new(), ObjectWriter::new());
    let mut event = Event::make(&shape, 0);
    let mut backslashes = 0;
    for number in 0..5_000 {
        Event::make(&shape, number).write_object(&mut whole);
        let padding = event.remake_but_extra(&shape, number);
        event.write_object_padded(padding, &mut padded);
        let (mut whole_batch, mut padded_batch) = (sluice_sdk::Batch::new(), sluice_sdk::Batch::new());
        whole_batch.push_object(None, &whole, 0);
        padded_batch.push_object(None, &padded, 0);
        assert_eq!(String::from_utf8_lossy(&padded_batch.bytes), String::from_utf8_lossy(&whole_batch.bytes), "event {number}");
        assert_eq!(padded_batch.events, whole_batch.events, "event {number}: the same value and index spans");
        backslashes += usize::from(padded_batch.bytes.windows(2).any(|pair| pair == b"\\\\"));
    }
    assert!(backslashes > 1_000, "escaped backslashes were written ({backslashes} events)");
}

#[test]
fn an_event_remade_in_place_is_the_event_made_afresh() {
    let shape = shape();
    let mut reused = Event::make(&shape, 0);
    // Across kinds (persons, auctions and bids alternate) and back.
    for number in (0..400).chain([50, 51, 7, 3, 50]) {
        reused.remake(&shape, number);
        assert_eq!(reused, Event::make(&shape, number), "event {number}");
    }
}

/// The stream is pinned: any change to the events a seed gives shows here (the digest was
/// taken when a `channel-N` URL's id became the reference's `Math.abs(Integer.reverse(N))`,
/// on nine channels in ten; `extra` is the reference's `nextExactString`, and the test of that
/// function holds what Java printed).
#[test]
fn the_first_events_are_the_pinned_ones() {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    for event in events(3_000) {
        digest.update(serde_json::to_vec(&event).unwrap());
        digest.update(b"\n");
    }
    assert_eq!(hex::encode(digest.finalize()), PINNED_DIGEST);
}

const PINNED_DIGEST: &str = "8019652ce6ceb5be02ebe301c63e610cefa8375300dda3aa97c1aa8b877fea1d";
