//! The Nexmark events (persons, auctions, bids) and how event n is made, after the reference
//! generator of Apache Beam's Nexmark suite (`org.apache.beam.sdk.nexmark.sources.generator`),
//! which the Flink and Arroyo ports follow: the same id spaces, hot sellers, bidders and
//! auctions, price distribution, channels and `extra` padding, each event drawn from
//! `new Random(eventId)`.

use std::borrow::Cow;

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

#[derive(Debug, Clone, PartialEq, Serialize)]
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

#[derive(Debug, Clone, PartialEq, Serialize)]
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

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bid {
    pub auction: i64,
    pub bidder: i64,
    pub price: i64,
    /// Borrowed for the hot channels and the cached base URLs: no allocation for most bids.
    pub channel: Cow<'static, str>,
    pub url: Cow<'static, str>,
    pub date_time: i64,
    pub extra: String,
}

impl Event {
    /// Event number `number` of the stream (its id, from 0).
    pub fn make(shape: &Shape, number: i64) -> Event {
        let mut random = JavaRandom::new(number);
        let timestamp = shape.timestamp(number);
        let remainder = number % shape.total_proportion();
        if remainder < shape.person_proportion {
            Event::Person(person(shape, number, &mut random, timestamp))
        } else if remainder < shape.person_proportion + shape.auction_proportion {
            Event::Auction(auction(shape, number, &mut random, timestamp))
        } else {
            Event::Bid(bid(shape, number, &mut random, timestamp))
        }
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

fn person(shape: &Shape, number: i64, random: &mut JavaRandom, timestamp: i64) -> Person {
    let id = shape.last_base0_person_id(number) + FIRST_PERSON_ID;
    let name = format!("{} {}", pick(random, &FIRST_NAMES), pick(random, &LAST_NAMES));
    let email_address = format!("{}@{}.com", next_string(random, 7, b' '), next_string(random, 5, b' '));
    let credit_card = (0..4).map(|_| format!("{:04}", random.next_int(10_000))).collect::<Vec<_>>().join(" ");
    let city = pick(random, &US_CITIES).to_owned();
    let state = pick(random, &US_STATES).to_owned();
    let size = 8 + name.len() + email_address.len() + credit_card.len() + city.len() + state.len();
    let extra = next_extra(random, size, shape.avg_person_bytes);
    Person { id, name, email_address, credit_card, city, state, date_time: timestamp, extra }
}

fn auction(shape: &Shape, number: i64, random: &mut JavaRandom, timestamp: i64) -> Auction {
    let id = shape.last_base0_auction_id(number) + FIRST_AUCTION_ID;
    let seller = if random.next_int(shape.hot_seller_ratio) > 0 {
        (shape.last_base0_person_id(number) / HOT_SELLER_RATIO) * HOT_SELLER_RATIO
    } else {
        shape.next_base0_person_id(number, random)
    } + FIRST_PERSON_ID;
    let category = FIRST_CATEGORY_ID + i64::from(random.next_int(NUM_CATEGORIES));
    let initial_bid = next_price(random);
    let expires = timestamp + shape.next_auction_length_ms(number, random, timestamp);
    let item_name = next_string(random, 20, b' ');
    let description = next_string(random, 100, b' ');
    let reserve = initial_bid + next_price(random);
    let size = 8 + item_name.len() + description.len() + 8 + 8 + 8 + 8 + 8;
    let extra = next_extra(random, size, shape.avg_auction_bytes);
    Auction { id, item_name, description, initial_bid, reserve, date_time: timestamp, expires, seller, category, extra }
}

fn bid(shape: &Shape, number: i64, random: &mut JavaRandom, timestamp: i64) -> Bid {
    let auction = if random.next_int(shape.hot_auction_ratio) > 0 {
        (shape.last_base0_auction_id(number) / HOT_AUCTION_RATIO) * HOT_AUCTION_RATIO
    } else {
        shape.next_base0_auction_id(number, random)
    } + FIRST_AUCTION_ID;
    let bidder = if random.next_int(shape.hot_bidder_ratio) > 0 {
        (shape.last_base0_person_id(number) / HOT_BIDDER_RATIO) * HOT_BIDDER_RATIO + 1
    } else {
        shape.next_base0_person_id(number, random)
    } + FIRST_PERSON_ID;
    let price = next_price(random);
    let (channel, url) = if random.next_int(HOT_CHANNELS_RATIO) > 0 {
        let hot = random.next_int(HOT_CHANNELS.len() as i32) as usize;
        (Cow::Borrowed(HOT_CHANNELS[hot]), hot_url(hot))
    } else {
        let channel = random.next_int(CHANNELS_NUMBER);
        (Cow::Owned(format!("channel-{channel}")), Cow::Owned(format!("{}&channel_id={}", base_url(channel), channel.reverse_bits())))
    };
    let extra = next_extra(random, 32, shape.avg_bid_bytes);
    Bid { auction, bidder, price, channel, url, date_time: timestamp, extra }
}

/// The reference's fixed URLs of the hot channels (made once from its own random strings there;
/// fixed strings here, of the same shape).
fn hot_url(channel: usize) -> Cow<'static, str> {
    base_url(channel as i32)
}

/// `https://www.nexmark.com/<5>/<5>/<5>/item.htm?query=1`, the path drawn from the channel
/// (made once per channel: every bid names one).
fn base_url(channel: i32) -> Cow<'static, str> {
    static BASE_URLS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let urls = BASE_URLS.get_or_init(|| (0..CHANNELS_NUMBER).map(make_base_url).collect());
    match usize::try_from(channel).ok().and_then(|channel| urls.get(channel)) {
        Some(url) => Cow::Borrowed(url),
        None => Cow::Owned(make_base_url(channel)),
    }
}

fn make_base_url(channel: i32) -> String {
    let mut random = JavaRandom::new(i64::from(channel));
    let parts: Vec<String> = (0..3).map(|_| next_string(&mut random, 5, b'_')).collect();
    format!("https://www.nexmark.com/{}/{}/{}/item.htm?query=1", parts[0], parts[1], parts[2])
}

fn pick<'a>(random: &mut JavaRandom, choices: &[&'a str]) -> &'a str {
    choices[random.next_int(choices.len() as i32) as usize]
}

/// A price in cents: 10^(6·u) dollars, so mostly small, some very large.
fn next_price(random: &mut JavaRandom) -> i64 {
    (10f64.powf(random.next_double() * 6.0) * 100.0).round() as i64
}

/// Lowercase letters with an occasional `special`, 3 to `max_length` − 1 long, trimmed.
fn next_string(random: &mut JavaRandom, max_length: i32, special: u8) -> String {
    let length = MIN_STRING_LENGTH + random.next_int(max_length - MIN_STRING_LENGTH);
    let mut text = Vec::with_capacity(length as usize);
    for _ in 0..length {
        text.push(if random.next_int(13) == 0 { special } else { b'a' + random.next_int(26) as u8 });
    }
    ascii(text).trim().to_owned()
}

/// ASCII bytes as a string (the generator makes nothing else).
fn ascii(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_default()
}

/// Padding that brings the event to about `average` bytes (±20 %).
fn next_extra(random: &mut JavaRandom, size: usize, average: i32) -> String {
    let size = size as i32;
    if size > average {
        return String::new();
    }
    let wanted = average - size;
    let delta = (f64::from(wanted) * 0.2).round() as i32;
    let length = wanted - delta + if delta == 0 { 0 } else { random.next_int(2 * delta) };
    let mut text = Vec::new();
    random.push_letters(usize::try_from(length).unwrap_or(0), &mut text);
    ascii(text)
}
