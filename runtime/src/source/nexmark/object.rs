//! How an event is written: the flat JSON object serde would write for it (`type` first, then
//! the fields in order, camelCase), indexed as it is written, so no operator scans it again.

use sluice_sdk::fields::ObjectWriter;

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

fn write_person(person: &Person, out: &mut ObjectWriter) {
    out.field_str("type", "person");
    out.field_i64("id", person.id);
    out.field_str("name", &person.name);
    out.field_str("emailAddress", &person.email_address);
    out.field_str("creditCard", &person.credit_card);
    out.field_str("city", &person.city);
    out.field_str("state", &person.state);
    out.field_i64("dateTime", person.date_time);
    out.field_str("extra", &person.extra);
}

fn write_auction(auction: &Auction, out: &mut ObjectWriter) {
    out.field_str("type", "auction");
    out.field_i64("id", auction.id);
    out.field_str("itemName", &auction.item_name);
    out.field_str("description", &auction.description);
    out.field_i64("initialBid", auction.initial_bid);
    out.field_i64("reserve", auction.reserve);
    out.field_i64("dateTime", auction.date_time);
    out.field_i64("expires", auction.expires);
    out.field_i64("seller", auction.seller);
    out.field_i64("category", auction.category);
    out.field_str("extra", &auction.extra);
}

fn write_bid(bid: &Bid, out: &mut ObjectWriter) {
    out.field_str("type", "bid");
    out.field_i64("auction", bid.auction);
    out.field_i64("bidder", bid.bidder);
    out.field_i64("price", bid.price);
    out.field_str("channel", &bid.channel);
    out.field_str("url", &bid.url);
    out.field_i64("dateTime", bid.date_time);
    out.field_str("extra", &bid.extra);
}
