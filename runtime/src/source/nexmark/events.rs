//! The Nexmark events (persons, auctions, bids) and how event n is made, after the reference
//! generator of Apache Beam's Nexmark suite (`org.apache.beam.sdk.nexmark.sources.generator`),
//! which the Flink and Arroyo ports follow: the same id spaces, hot sellers, bidders and
//! auctions, price distribution, channels and `extra` padding, each event drawn from
//! `new Random(eventId)`.

use std::fmt::Write;

use serde::Serialize;

use super::random::JavaRandom;

pub const FIRST_PERSON_ID: i64 = 1000;
pub const FIRST_AUCTION_ID: i64 = 1000;
pub const FIRST_CATEGORY_ID: i64 = 10;
const NUM_CATEGORIES: i32 = 5;
/// Ids past the last person or auction a bid or auction may name (they come soon).
const PERSON_ID_LEAD: i64 = 10;
const AUCTION_ID_LEAD: i64 = 10;
const HOT_SELLER_RATIO: i64 = 100;
const HOT_AUCTION_RATIO: i64 = 100;
const HOT_BIDDER_RATIO: i64 = 100;
const HOT_CHANNELS_RATIO: i32 = 2;
const CHANNELS_NUMBER: i32 = 10_000;
const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
const US_STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const US_CITIES: [&str; 10] =
    ["Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle", "Kent", "Cheyenne"];
const FIRST_NAMES: [&str; 11] = ["Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"];
const LAST_NAMES: [&str; 9] = ["Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"];
const MIN_STRING_LENGTH: i32 = 3;

/// The shape of the stream: the reference's `NexmarkConfiguration` defaults unless configured.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    pub person_proportion: i64,
    pub auction_proportion: i64,
    pub bid_proportion: i64,
    pub hot_auction_ratio: i32,
    pub hot_seller_ratio: i32,
    pub hot_bidder_ratio: i32,
    pub active_people: i64,
    pub in_flight_auctions: i64,
    pub avg_person_bytes: i32,
    pub avg_auction_bytes: i32,
    pub avg_bid_bytes: i32,
    /// Event time of event 0, ms since the epoch.
    pub start_ms: i64,
    /// Events per second of event time.
    pub event_rate: f64,
}

impl Shape {
    fn total_proportion(&self) -> i64 {
        self.person_proportion + self.auction_proportion + self.bid_proportion
    }

    /// The event time of event `number`: events are spaced evenly at `event_rate`.
    pub fn timestamp(&self, number: i64) -> i64 {
        self.start_ms + (number as f64 * 1000.0 / self.event_rate) as i64
    }

    /// The last person id (from 0) made at or before event `event`.
    fn last_base0_person_id(&self, event: i64) -> i64 {
        let (epoch, offset) = (event / self.total_proportion(), event % self.total_proportion());
        epoch * self.person_proportion + offset.min(self.person_proportion - 1)
    }

    /// The last auction id (from 0) made at or before event `event`.
    fn last_base0_auction_id(&self, event: i64) -> i64 {
        let (mut epoch, mut offset) = (event / self.total_proportion(), event % self.total_proportion());
        if offset < self.person_proportion {
            epoch -= 1;
            offset = self.auction_proportion - 1;
        } else if offset >= self.person_proportion + self.auction_proportion {
            offset = self.auction_proportion - 1;
        } else {
            offset -= self.person_proportion;
        }
        epoch * self.auction_proportion + offset
    }

    /// A person among the active ones (or soon to come), from 0.
    fn next_base0_person_id(&self, event: i64, random: &mut JavaRandom) -> i64 {
        let people = self.last_base0_person_id(event) + 1;
        let active = people.min(self.active_people);
        people - active + random.next_below(active + PERSON_ID_LEAD)
    }

    /// An auction among those in flight (or soon to come), from 0.
    fn next_base0_auction_id(&self, event: i64, random: &mut JavaRandom) -> i64 {
        let last = self.last_base0_auction_id(event);
        let first = (last - self.in_flight_auctions).max(0);
        first + random.next_below(last - first + 1 + AUCTION_ID_LEAD)
    }

    /// How long an auction lasts: on average, until `in_flight_auctions` more are made.
    fn next_auction_length_ms(&self, event: i64, random: &mut JavaRandom, timestamp: i64) -> i64 {
        let events_for_auctions = (self.in_flight_auctions * self.total_proportion()) / self.auction_proportion;
        let horizon = self.timestamp(event + events_for_auctions) - timestamp;
        1 + random.next_below((horizon * 2).max(1))
    }
}

/// A person, an auction or a bid, serialised as a flat JSON object with `type`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Event {
    Person(Person),
    Auction(Auction),
    Bid(Bid),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    pub id: i64,
    pub name: String,
    pub email_address: String,
    pub credit_card: String,
    pub city: String,
    pub state: String,
    pub date_time: i64,
    pub extra: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Auction {
    pub id: i64,
    pub item_name: String,
    pub description: String,
    pub initial_bid: i64,
    pub reserve: i64,
    pub date_time: i64,
    pub expires: i64,
    pub seller: i64,
    pub category: i64,
    pub extra: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bid {
    pub auction: i64,
    pub bidder: i64,
    pub price: i64,
    pub channel: String,
    pub url: String,
    pub date_time: i64,
    pub extra: String,
}

impl Event {
    /// Event number `number` of the stream (its id, from 0).
    pub fn make(shape: &Shape, number: i64) -> Event {
        let mut event = Event::Bid(Bid::default());
        event.remake(shape, number);
        event
    }

    /// Becomes event number `number`, reusing its strings' memory when it is of the same kind
    /// (a source makes millions: allocating and freeing each event's strings was a tenth of
    /// its time).
    pub fn remake(&mut self, shape: &Shape, number: i64) {
        let padding = self.remake_but_extra(shape, number);
        let extra = match self {
            Event::Person(person) => &mut person.extra,
            Event::Auction(auction) => &mut auction.extra,
            Event::Bid(bid) => &mut bid.extra,
        };
        push_ascii(extra, |bytes| padding.draw_into(bytes));
    }

    /// [`Event::remake`] but for `extra`, left empty: the padding is returned undrawn, for
    /// the source to write it straight into the record ([`Event::write_object_padded`])
    /// instead of drawing it into a string to copy.
    pub fn remake_but_extra(&mut self, shape: &Shape, number: i64) -> Padding {
        let random = JavaRandom::new(number);
        let timestamp = shape.timestamp(number);
        let remainder = number % shape.total_proportion();
        if remainder < shape.person_proportion {
            if !matches!(self, Event::Person(_)) {
                *self = Event::Person(Person::default());
            }
            if let Event::Person(person) = self {
                return fill_person(person, shape, number, random, timestamp);
            }
        } else if remainder < shape.person_proportion + shape.auction_proportion {
            if !matches!(self, Event::Auction(_)) {
                *self = Event::Auction(Auction::default());
            }
            if let Event::Auction(auction) = self {
                return fill_auction(auction, shape, number, random, timestamp);
            }
        } else {
            if !matches!(self, Event::Bid(_)) {
                *self = Event::Bid(Bid::default());
            }
            if let Event::Bid(bid) = self {
                return fill_bid(bid, shape, number, random, timestamp);
            }
        }
        Padding { random, length: 0 }
    }

    /// The record key: a person's or auction's id, a bid's auction.
    pub fn key(&self) -> i64 {
        match self {
            Event::Person(person) => person.id,
            Event::Auction(auction) => auction.id,
            Event::Bid(bid) => bid.auction,
        }
    }

    pub fn date_time(&self) -> i64 {
        match self {
            Event::Person(person) => person.date_time,
            Event::Auction(auction) => auction.date_time,
            Event::Bid(bid) => bid.date_time,
        }
    }
}

fn fill_person(person: &mut Person, shape: &Shape, number: i64, mut random: JavaRandom, timestamp: i64) -> Padding {
    let random = &mut random;
    person.id = shape.last_base0_person_id(number) + FIRST_PERSON_ID;
    set(&mut person.name, |name| {
        let _ = write!(name, "{} {}", pick(random, &FIRST_NAMES), pick(random, &LAST_NAMES));
    });
    set(&mut person.email_address, |email| {
        push_string(random, 7, b' ', email);
        email.push('@');
        push_string(random, 5, b' ', email);
        email.push_str(".com");
    });
    set(&mut person.credit_card, |card| {
        for part in 0..4 {
            let separator = if part == 0 { "" } else { " " };
            let _ = write!(card, "{separator}{:04}", random.next_int(10_000));
        }
    });
    set(&mut person.city, |city| city.push_str(pick(random, &US_CITIES)));
    set(&mut person.state, |state| state.push_str(pick(random, &US_STATES)));
    let size = 8 + person.name.len() + person.email_address.len() + person.credit_card.len() + person.city.len() + person.state.len();
    person.date_time = timestamp;
    person.extra.clear();
    Padding::after(random, size, shape.avg_person_bytes)
}

fn fill_auction(auction: &mut Auction, shape: &Shape, number: i64, mut random: JavaRandom, timestamp: i64) -> Padding {
    let random = &mut random;
    auction.id = shape.last_base0_auction_id(number) + FIRST_AUCTION_ID;
    auction.seller = if random.next_int(shape.hot_seller_ratio) > 0 {
        (shape.last_base0_person_id(number) / HOT_SELLER_RATIO) * HOT_SELLER_RATIO
    } else {
        shape.next_base0_person_id(number, random)
    } + FIRST_PERSON_ID;
    auction.category = FIRST_CATEGORY_ID + i64::from(random.next_int(NUM_CATEGORIES));
    auction.initial_bid = next_price(random);
    auction.date_time = timestamp;
    auction.expires = timestamp + shape.next_auction_length_ms(number, random, timestamp);
    set(&mut auction.item_name, |name| push_string(random, 20, b' ', name));
    set(&mut auction.description, |description| push_string(random, 100, b' ', description));
    auction.reserve = auction.initial_bid + next_price(random);
    let size = 8 + auction.item_name.len() + auction.description.len() + 8 + 8 + 8 + 8 + 8;
    auction.extra.clear();
    Padding::after(random, size, shape.avg_auction_bytes)
}

fn fill_bid(bid: &mut Bid, shape: &Shape, number: i64, mut random: JavaRandom, timestamp: i64) -> Padding {
    let random = &mut random;
    bid.auction = if random.next_int(shape.hot_auction_ratio) > 0 {
        (shape.last_base0_auction_id(number) / HOT_AUCTION_RATIO) * HOT_AUCTION_RATIO
    } else {
        shape.next_base0_auction_id(number, random)
    } + FIRST_AUCTION_ID;
    bid.bidder = if random.next_int(shape.hot_bidder_ratio) > 0 {
        (shape.last_base0_person_id(number) / HOT_BIDDER_RATIO) * HOT_BIDDER_RATIO + 1
    } else {
        shape.next_base0_person_id(number, random)
    } + FIRST_PERSON_ID;
    bid.price = next_price(random);
    if random.next_int(HOT_CHANNELS_RATIO) > 0 {
        let hot = random.next_int(HOT_CHANNELS.len() as i32) as usize;
        // The reference makes its hot channels' URLs once from its own random strings; here
        // they are the base URLs of channels 0 to 3, of the same shape.
        set(&mut bid.channel, |channel| channel.push_str(HOT_CHANNELS[hot]));
        // A hot channel's URL carries no id, as in the reference.
        set(&mut bid.url, |url| {
            push_base_url(hot as i32, url);
        });
    } else {
        let channel = random.next_int(CHANNELS_NUMBER);
        let mut number = itoa::Buffer::new();
        set(&mut bid.channel, |text| {
            text.push_str("channel-");
            text.push_str(number.format(channel));
        });
        set(&mut bid.url, |url| {
            // Java's `Math.abs(Integer.reverse(channel))`, nine channels in ten (below).
            if push_base_url(channel, url) {
                url.push_str("&channel_id=");
                url.push_str(number.format(channel.reverse_bits().wrapping_abs()));
            }
        });
    }
    bid.date_time = timestamp;
    bid.extra.clear();
    Padding::after(random, 32, shape.avg_bid_bytes)
}

/// Sets `text` to what `write` appends to it once it is cleared (its memory kept).
fn set(text: &mut String, write: impl FnOnce(&mut String)) {
    text.clear();
    write(text);
}

/// Appends `https://www.nexmark.com/<5>/<5>/<5>/item.htm?query=1`, the path drawn from the
/// channel (made once per channel: every bid names one); returns whether the channel's URL
/// also carries its `channel_id`.
fn push_base_url(channel: i32, out: &mut String) -> bool {
    static PATHS: std::sync::OnceLock<Vec<UrlPath>> = std::sync::OnceLock::new();
    let paths = PATHS.get_or_init(|| (0..CHANNELS_NUMBER).map(|channel| UrlPath::new(make_base_url(channel))).collect());
    match usize::try_from(channel).ok().and_then(|channel| paths.get(channel)).and_then(|path| Some((path.text()?, path.with_id()))) {
        Some((path, with_id)) => {
            out.push_str(URL_PREFIX);
            out.push_str(path);
            out.push_str(URL_SUFFIX);
            with_id
        }
        None => {
            let (url, with_id) = make_base_url(channel);
            out.push_str(&url);
            with_id
        }
    }
}

const URL_PREFIX: &str = "https://www.nexmark.com/";
const URL_SUFFIX: &str = "/item.htm?query=1";

/// The base URL of `channel`, and whether its bids' URLs carry `&channel_id=`: the reference
/// appends it nine times in ten, drawn once per channel from an unseeded generator; here the
/// draw follows the path's, from the channel number, so that runs are repeatable.
fn make_base_url(channel: i32) -> (String, bool) {
    let mut random = JavaRandom::new(i64::from(channel));
    let mut url = String::from(URL_PREFIX);
    for segment in 0..3 {
        push_string(&mut random, 5, b'_', &mut url);
        if segment < 2 {
            url.push('/');
        }
    }
    url.push_str(URL_SUFFIX);
    (url, random.next_int(10) > 0)
}

/// The part of a channel's base URL that varies (`abc/defg/hij`), kept in 16 bytes, its
/// length last (with, in its top bit, whether the channel's URLs carry their id): the table
/// of all 10,000 channels (160 KB) stays in a core's cache, where a `String` each (about 1 MB,
/// a pointer apart) cost a cache miss per bid on a random channel.
struct UrlPath([u8; 16]);

const WITH_ID: u8 = 0x80;

impl UrlPath {
    /// The path of `url`; empty (read as none) when it does not fit.
    fn new((url, with_id): (String, bool)) -> UrlPath {
        let mut bytes = [0; 16];
        let path = url.strip_prefix(URL_PREFIX).and_then(|rest| rest.strip_suffix(URL_SUFFIX)).unwrap_or_default();
        if let Some(slot) = bytes.get_mut(..path.len()).filter(|_| path.len() < 16) {
            slot.copy_from_slice(path.as_bytes());
            bytes[15] = path.len() as u8 | if with_id { WITH_ID } else { 0 };
        }
        UrlPath(bytes)
    }

    fn text(&self) -> Option<&str> {
        let length = usize::from(self.0[15] & !WITH_ID);
        std::str::from_utf8(&self.0[..length]).ok().filter(|path| !path.is_empty())
    }

    fn with_id(&self) -> bool {
        self.0[15] & WITH_ID != 0
    }
}

fn pick<'a>(random: &mut JavaRandom, choices: &[&'a str]) -> &'a str {
    choices[random.next_int(choices.len() as i32) as usize]
}

/// A price in cents: 10^(6·u) dollars, so mostly small, some very large.
fn next_price(random: &mut JavaRandom) -> i64 {
    (10f64.powf(random.next_double() * 6.0) * 100.0).round() as i64
}

/// Appends lowercase letters with an occasional `special`, 3 to `max_length` − 1 of them,
/// trimmed of spaces at both ends.
fn push_string(random: &mut JavaRandom, max_length: i32, special: u8, out: &mut String) {
    let length = MIN_STRING_LENGTH + random.next_int(max_length - MIN_STRING_LENGTH);
    let start = out.len();
    push_ascii(out, |bytes| {
        bytes.extend((0..length).map(|_| if random.next_int(13) == 0 { special } else { b'a' + random.next_int(26) as u8 }));
    });
    let end = start + out[start..].trim_end().len();
    out.truncate(end);
    let leading = out[start..].len() - out[start..].trim_start().len();
    out.drain(start..start + leading);
}

/// Appends the ASCII bytes `write` appends (the string's memory kept; the generator makes
/// nothing but ASCII, so nothing is replaced).
fn push_ascii(out: &mut String, write: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = std::mem::take(out).into_bytes();
    write(&mut bytes);
    *out = String::from_utf8(bytes).unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned());
}

/// An event's `extra`, not drawn yet: padding that brings the event to about its average size
/// (±20 %), the reference's `nextExtra`, drawn last.
#[derive(Debug, Clone)]
pub struct Padding {
    random: JavaRandom,
    length: usize,
}

impl Padding {
    /// The padding of an event of `size` bytes (as the reference counts them) that should
    /// weigh `average`, its length drawn from `random`.
    fn after(random: &mut JavaRandom, size: usize, average: i32) -> Padding {
        let size = i32::try_from(size).unwrap_or(i32::MAX);
        if size > average {
            return Padding { random: random.clone(), length: 0 };
        }
        let wanted = average - size;
        let delta = (f64::from(wanted) * 0.2).round() as i32;
        let length = wanted - delta + if delta == 0 { 0 } else { random.next_int(2 * delta) };
        Padding { random: random.clone(), length: usize::try_from(length).unwrap_or(0) }
    }

    /// Appends the characters, in order.
    fn draw_into(mut self, out: &mut Vec<u8>) {
        out.reserve(self.length);
        self.random.exact_string(self.length, |six, taken| out.extend_from_slice(&six[..taken]));
    }

    /// Appends the padding as a JSON string. Its characters run from `H` to `z`: a backslash
    /// is the only one JSON escapes.
    pub fn write_json(mut self, out: &mut Vec<u8>) {
        out.reserve(2 * self.length + 2);
        out.push(b'"');
        self.random.exact_string(self.length, |six, taken| {
            if taken == six.len() && !six.contains(&b'\\') {
                out.extend_from_slice(&six);
                return;
            }
            for &character in &six[..taken] {
                if character == b'\\' {
                    out.push(b'\\');
                }
                out.push(character);
            }
        });
        out.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table gives every channel the URL drawn for it: three segments, each followed by a
    /// slash, then `item.htm?query=1`, as the reference's `getNextUrl` writes them.
    #[test]
    fn base_urls_from_the_table_are_the_drawn_ones() {
        let drawn = |channel: i32| {
            let mut random = JavaRandom::new(i64::from(channel));
            let mut url = String::from("https://www.nexmark.com/");
            for _ in 0..3 {
                push_string(&mut random, 5, b'_', &mut url);
                url.push('/');
            }
            url + "item.htm?query=1"
        };
        let mut with_id = 0;
        for channel in (-2..CHANNELS_NUMBER + 2).chain([i32::MIN, i32::MAX]) {
            let mut url = String::from("before ");
            with_id += usize::from(push_base_url(channel, &mut url));
            assert_eq!(url, format!("before {}", drawn(channel)), "channel {channel}");
        }
        // Nine in ten, as in the reference.
        assert!((8_800..=9_200).contains(&with_id), "{with_id} of 10,006 channels carry their id");
    }

    /// Java's `Math.abs(Integer.reverse(n))`: channel 5's id is 1610612736 (it was written
    /// without the absolute value, -1610612736); channel 1's stays `Integer.MIN_VALUE`, as
    /// Java's `Math.abs` leaves it.
    #[test]
    fn a_channel_id_is_the_absolute_value_of_the_reversed_bits() {
        assert_eq!(5i32.reverse_bits().wrapping_abs(), 1_610_612_736);
        assert_eq!(1i32.reverse_bits().wrapping_abs(), i32::MIN);
    }
}
