//! Truncation: values kept only as coarse as needed (IP networks, times, number buckets).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Deserialize;
use sluice_sdk::FieldPath;
use sluice_sdk::serde_json::{Number, Value};

use crate::rfc3339;

/// One entry of `truncate`: a field and how coarse it becomes (`to`, or `bucket`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TruncateConfig {
    pub field: FieldPath,
    pub to: Option<TruncateTo>,
    /// With `to = "ip"`: the IPv4 network prefix kept, in bits.
    pub ipv4_prefix: Option<u8>,
    /// With `to = "ip"`: the IPv6 network prefix kept, in bits.
    pub ipv6_prefix: Option<u8>,
    /// The width of the buckets a number is floored to.
    pub bucket: Option<f64>,
}

/// What a field is truncated to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TruncateTo {
    /// The network of an IPv4 or IPv6 address.
    Ip,
    Second,
    Minute,
    Hour,
    Day,
}

/// A truncation ready to apply.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Truncation {
    Ip {
        ipv4_prefix: u8,
        ipv6_prefix: u8,
    },
    /// The start of the time's unit.
    Time {
        unit: TimeUnit,
    },
    /// The start of the number's bucket of this width.
    Bucket {
        width: f64,
    },
}

impl TruncateConfig {
    /// The truncation this entry describes, or why it describes none.
    pub fn truncation(&self) -> Result<Truncation, String> {
        let field = &self.field;
        match (self.to, self.bucket) {
            (Some(_), Some(_)) => Err(format!("truncate rule for {field}: give `to` or `bucket`, not both")),
            (None, None) => Err(format!(
                "truncate rule for {field}: say how coarse: to = \"ip\", \"second\", \"minute\", \"hour\" or \"day\", or bucket = <width>"
            )),
            (None, Some(width)) if width > 0.0 && width.is_finite() => self.without_prefixes(Truncation::Bucket { width }),
            (None, Some(_)) => Err(format!("truncate rule for {field}: `bucket` must be a number above 0")),
            (Some(to), None) => match to.time_unit() {
                Some(unit) => self.without_prefixes(Truncation::Time { unit }),
                None => self.ip(),
            },
        }
    }

    fn ip(&self) -> Result<Truncation, String> {
        let (ipv4_prefix, ipv6_prefix) = (self.ipv4_prefix.unwrap_or(24), self.ipv6_prefix.unwrap_or(48));
        if ipv4_prefix > 32 || ipv6_prefix > 128 {
            return Err(format!("truncate rule for {}: `ipv4_prefix` is at most 32 and `ipv6_prefix` at most 128", self.field));
        }
        Ok(Truncation::Ip { ipv4_prefix, ipv6_prefix })
    }

    fn without_prefixes(&self, truncation: Truncation) -> Result<Truncation, String> {
        if self.ipv4_prefix.is_some() || self.ipv6_prefix.is_some() {
            return Err(format!("truncate rule for {}: `ipv4_prefix` and `ipv6_prefix` apply only with to = \"ip\"", self.field));
        }
        Ok(truncation)
    }
}

impl TruncateTo {
    fn time_unit(self) -> Option<TimeUnit> {
        match self {
            TruncateTo::Ip => None,
            TruncateTo::Second => Some(TimeUnit::Second),
            TruncateTo::Minute => Some(TimeUnit::Minute),
            TruncateTo::Hour => Some(TimeUnit::Hour),
            TruncateTo::Day => Some(TimeUnit::Day),
        }
    }
}

/// The unit a time is truncated to (a day is 86,400 s of UTC for epoch times).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    Second,
    Minute,
    Hour,
    Day,
}

impl TimeUnit {
    pub fn millis(self) -> i64 {
        match self {
            TimeUnit::Second => 1_000,
            TimeUnit::Minute => 60_000,
            TimeUnit::Hour => 3_600_000,
            TimeUnit::Day => 86_400_000,
        }
    }
}

impl Truncation {
    /// The truncated value (not null); `None` when the value is not of a kind this truncation
    /// reads, and must then be redacted.
    pub fn apply(&self, value: &Value) -> Option<Value> {
        match (*self, value) {
            (Truncation::Ip { ipv4_prefix, ipv6_prefix }, Value::String(text)) => {
                let address = text.parse::<IpAddr>().ok()?;
                Some(Value::String(truncate_ip(address, ipv4_prefix, ipv6_prefix).to_string()))
            }
            (Truncation::Time { unit }, Value::Number(number)) => floor_millis(number, unit.millis()).map(Value::from),
            (Truncation::Time { unit }, Value::String(text)) => rfc3339::truncate(text, unit).map(Value::String),
            (Truncation::Bucket { width }, Value::Number(number)) => bucket(number, width),
            _ => None,
        }
    }
}

/// The address with the bits past the prefix cleared. An IPv4-mapped IPv6 address
/// (`::ffff:192.0.2.7`) is truncated as the IPv4 address it carries.
pub fn truncate_ip(address: IpAddr, ipv4_prefix: u8, ipv6_prefix: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(network_v4(v4, ipv4_prefix)),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V6(network_v4(v4, ipv4_prefix).to_ipv6_mapped()),
            None => IpAddr::V6(network_v6(v6, ipv6_prefix)),
        },
    }
}

fn network_v4(address: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix.min(32))).unwrap_or(0);
    Ipv4Addr::from(u32::from(address) & mask)
}

fn network_v6(address: Ipv6Addr, prefix: u8) -> Ipv6Addr {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix.min(128))).unwrap_or(0);
    Ipv6Addr::from(u128::from(address) & mask)
}

/// Epoch milliseconds floored to the unit (towards the past, also before 1970); a fraction of
/// a millisecond is floored first. `None` outside the range of i64 milliseconds.
pub fn floor_millis(number: &Number, unit_millis: i64) -> Option<i64> {
    let millis = match number.as_i64() {
        Some(millis) => millis,
        None => {
            let x = number.as_f64()?;
            if !(-9.2e18..9.2e18).contains(&x) {
                return None;
            }
            x.floor() as i64
        }
    };
    millis.div_euclid(unit_millis).checked_mul(unit_millis)
}

/// floor(x / width) × width: exact for integers and integral widths, else in floating point.
pub fn bucket(number: &Number, width: f64) -> Option<Value> {
    if let Some(x) = number.as_i64()
        && width.fract() == 0.0
        && width < 9.2e18
    {
        let width = width as i64;
        return x.div_euclid(width).checked_mul(width).map(Value::from);
    }
    // Above i64's range, an unsigned one is still exact (its floor is never negative).
    if let Some(x) = number.as_u64()
        && width.fract() == 0.0
        && width < 1.8e19
    {
        let width = width as u64;
        return Some(Value::from(x / width * width));
    }
    let x = number.as_f64()?;
    let floored = (x / width).floor() * width;
    floored.is_finite().then(|| sluice_sdk::json::number(floored))
}
