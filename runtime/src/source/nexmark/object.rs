//! How an event is written: the flat JSON object serde would write for it (`type` first, then
//! the fields in order, camelCase), indexed as it is written, so no operator scans it again.

use std::sync::LazyLock;

use sluice_sdk::fields::{FieldName, ObjectWriter};

use super::events::{Auction, Bid, Event, Padding, Person};

impl Event {
    /// Writes the event into `out` (cleared first).
    pub fn write_object(&self, out: &mut ObjectWriter) {
        self.write(Extra::Text(self.extra()), out);
    }

    /// Writes an event made by [`Event::remake_but_extra`] into `out` (cleared first), its
    /// `extra` drawn from `padding` as it is written: the object [`Event::write_object`]
    /// writes for the event [`Event::remake`] makes.
    pub fn write_object_padded(&self, padding: Padding, out: &mut ObjectWriter) {
        self.write(Extra::Undrawn(padding), out);
    }

    fn write(&self, extra: Extra<'_>, out: &mut ObjectWriter) {
        out.clear();
        let name = match self {
            Event::Person(person) => write_person(person, out),
            Event::Auction(auction) => write_auction(auction, out),
            Event::Bid(bid) => write_bid(bid, out),
        };
        match extra {
            Extra::Text(text) => out.named_field_str(name, text),
            Extra::Undrawn(padding) => out.named_field_written(name, |text| padding.write_json(text)),
        }
    }

    fn extra(&self) -> &str {
        match self {
            Event::Person(person) => &person.extra,
            Event::Auction(auction) => &auction.extra,
            Event::Bid(bid) => &bid.extra,
        }
    }
}

/// The last field of every event: drawn already, or to draw as it is written.
enum Extra<'a> {
    Text(&'a str),
    Undrawn(Padding),
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

/// Writes every field but `extra`, and returns the name of `extra`, for the caller to write it.
fn write_person(person: &Person, out: &mut ObjectWriter) -> &'static FieldName {
    let [kind, id, name, email_address, credit_card, city, state, date_time, extra] = &NAMES.person;
    out.named_field_str(kind, "person");
    out.named_field_i64(id, person.id);
    out.named_field_str(name, &person.name);
    out.named_field_str(email_address, &person.email_address);
    out.named_field_str(credit_card, &person.credit_card);
    out.named_field_str(city, &person.city);
    out.named_field_str(state, &person.state);
    out.named_field_i64(date_time, person.date_time);
    extra
}

/// Writes every field but `extra`, and returns the name of `extra`, for the caller to write it.
fn write_auction(auction: &Auction, out: &mut ObjectWriter) -> &'static FieldName {
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
    extra
}

/// Writes every field but `extra`, and returns the name of `extra`, for the caller to write it.
fn write_bid(bid: &Bid, out: &mut ObjectWriter) -> &'static FieldName {
    let [kind, auction, bidder, price, channel, url, date_time, extra] = &NAMES.bid;
    out.named_field_str(kind, "bid");
    out.named_field_i64(auction, bid.auction);
    out.named_field_i64(bidder, bid.bidder);
    out.named_field_i64(price, bid.price);
    out.named_field_str(channel, &bid.channel);
    out.named_field_str(url, &bid.url);
    out.named_field_i64(date_time, bid.date_time);
    extra
}
