//! How an event is written: the flat JSON object serde would write for it (`type` first, then
//! the fields in order, camelCase), indexed as it is written, so no operator scans it again.

use std::sync::LazyLock;

use sluice_sdk::fields::{FieldName, ObjectWriter};

use super::events::{Auction, Bid, Event, Person};

impl Event {
    /// Writes the event into `out` (cleared first).
    pub fn write_object(&self, out: &mut ObjectWriter) {
        out.clear();
        match self {
            Event::Person(person) => write_person(person, out),
            Event::Auction(auction) => write_auction(auction, out),
            Event::Bid(bid) => write_bid(bid, out),
        }
    }
}

/// The events' field names, written once (with their quotes and colons).
struct Names {
    person: [FieldName; 9],
    auction: [FieldName; 11],
    bid: [FieldName; 8],
}

static NAMES: LazyLock<Names> = LazyLock::new(|| Names {
    person: ["type", "id", "name", "emailAddress", "creditCard", "city", "state", "dateTime", "extra"].map(FieldName::new),
    auction: ["type", "id", "itemName", "description", "initialBid", "reserve", "dateTime", "expires", "seller", "category", "extra"]
        .map(FieldName::new),
    bid: ["type", "auction", "bidder", "price", "channel", "url", "dateTime", "extra"].map(FieldName::new),
});

fn write_person(person: &Person, out: &mut ObjectWriter) {
    let [kind, id, name, email_address, credit_card, city, state, date_time, extra] = &NAMES.person;
    out.named_field_str(kind, "person");
    out.named_field_i64(id, person.id);
    out.named_field_str(name, &person.name);
    out.named_field_str(email_address, &person.email_address);
    out.named_field_str(credit_card, &person.credit_card);
    out.named_field_str(city, &person.city);
    out.named_field_str(state, &person.state);
    out.named_field_i64(date_time, person.date_time);
    out.named_field_str(extra, &person.extra);
}

fn write_auction(auction: &Auction, out: &mut ObjectWriter) {
    let [kind, id, item_name, description, initial_bid, reserve, date_time, expires, seller, category, extra] = &NAMES.auction;
    out.named_field_str(kind, "auction");
    out.named_field_i64(id, auction.id);
    out.named_field_str(item_name, &auction.item_name);
    out.named_field_str(description, &auction.description);
    out.named_field_i64(initial_bid, auction.initial_bid);
    out.named_field_i64(reserve, auction.reserve);
    out.named_field_i64(date_time, auction.date_time);
    out.named_field_i64(expires, auction.expires);
    out.named_field_i64(seller, auction.seller);
    out.named_field_i64(category, auction.category);
    out.named_field_str(extra, &auction.extra);
}

fn write_bid(bid: &Bid, out: &mut ObjectWriter) {
    let [kind, auction, bidder, price, channel, url, date_time, extra] = &NAMES.bid;
    out.named_field_str(kind, "bid");
    out.named_field_i64(auction, bid.auction);
    out.named_field_i64(bidder, bid.bidder);
    out.named_field_i64(price, bid.price);
    out.named_field_str(channel, &bid.channel);
    out.named_field_str(url, &bid.url);
    out.named_field_i64(date_time, bid.date_time);
    out.named_field_str(extra, &bid.extra);
}
