//! Two small readings of JSON text that a plugin does for nearly every record, written so that
//! they stay cheap in WebAssembly: comparing a field's name without a call to `memcmp` (a
//! byte-by-byte loop in a Wasm build), and reading a plain decimal number exactly without
//! `str::parse`'s general algorithm.

/// Whether `a` and `b` hold the same bytes: lengths first, then eight bytes at a time, inline.
/// (Slice equality calls `memcmp`, which a Wasm build compiles to a loop over single bytes
/// behind a call; field names are short and compared for every record.)
#[inline]
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (mut a, mut b) = (a, b);
    while let (Some((x, rest_a)), Some((y, rest_b))) = (a.split_first_chunk::<8>(), b.split_first_chunk::<8>()) {
        if u64::from_ne_bytes(*x) != u64::from_ne_bytes(*y) {
            return false;
        }
        (a, b) = (rest_a, rest_b);
    }
    if let (Some((x, rest_a)), Some((y, rest_b))) = (a.split_first_chunk::<4>(), b.split_first_chunk::<4>()) {
        if u32::from_ne_bytes(*x) != u32::from_ne_bytes(*y) {
            return false;
        }
        (a, b) = (rest_a, rest_b);
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

/// Powers of ten that `f64` holds exactly.
const EXACT_POWERS_OF_TEN: [f64; 23] =
    [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22];

/// Every integer up to this one is an exact `f64`.
const EXACT_INTEGERS: u64 = 1 << 53;

/// The value of `text` when it is a plain decimal, `-?digits(.digits)?`, of at most 19 digits
/// that make an integer of at most 2^53, with at most 22 of them after the point; `None` for anything else
/// (exponents, longer numbers, other text), which the caller reads the general way.
///
/// This is the exact fast path of Clinger's algorithm, the one `str::parse` itself takes for
/// such numbers: the digits' integer and the power of ten are both exact `f64`s, so the one
/// correctly rounded division gives the correctly rounded value of the decimal.
#[inline]
pub fn plain_decimal(text: &[u8]) -> Option<f64> {
    let (negative, digits) = match text.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, text),
    };
    let (whole, fraction) = match digits.iter().position(|&byte| byte == b'.') {
        Some(point) => (&digits[..point], Some(&digits[point + 1..])),
        None => (digits, None),
    };
    if whole.is_empty() || fraction.is_some_and(<[u8]>::is_empty) || whole.len() + fraction.map_or(0, <[u8]>::len) > 19 {
        return None;
    }
    let fraction = fraction.unwrap_or_default();
    let mut integer: u64 = 0;
    for &byte in whole.iter().chain(fraction) {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        // At most 19 digits: below 10^19 < 2^64.
        integer = integer * 10 + u64::from(digit);
    }
    if integer > EXACT_INTEGERS || fraction.len() >= EXACT_POWERS_OF_TEN.len() {
        return None;
    }
    let magnitude = integer as f64 / EXACT_POWERS_OF_TEN[fraction.len()];
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_compare_as_slices_do() {
        let words: [&[u8]; 12] = [
            b"",
            b"a",
            b"b",
            b"ab",
            b"user",
            b"usex",
            b"price",
            b"prices",
            b"category",
            b"categorz",
            b"a-long-field-name",
            b"a-long-field-namf",
        ];
        for a in words {
            for b in words {
                assert_eq!(same_bytes(a, b), a == b, "{a:?} {b:?}");
            }
        }
        for length in 0..40 {
            let a: Vec<u8> = (0..length).map(|i| i as u8).collect();
            for at in 0..length {
                let mut b = a.clone();
                b[at] ^= 0x40;
                assert!(!same_bytes(&a, &b));
            }
            assert!(same_bytes(&a, &a.clone()));
        }
    }

    #[test]
    fn plain_decimals_read_as_str_parse_reads_them() {
        let fast = [
            "0",
            "-0",
            "1",
            "-1",
            "5",
            "12.5",
            "0.1",
            "0.3",
            "-0.000001",
            "99.99",
            "9007199254740992",
            "123456789.123456",
            "0.000000000000000001",
            "1797.693134862315",
            "00012",
            "3.14159265358979",
        ];
        for text in fast {
            let expected: f64 = text.parse().expect("a number");
            let value = plain_decimal(text.as_bytes()).unwrap_or_else(|| panic!("{text} takes the fast path"));
            assert_eq!(value.to_bits(), expected.to_bits(), "{text}");
        }
        // Beyond 2^53, more than 19 digits or 22 decimals: the general reading.
        for text in ["9007199254740993", "1.0000000000000000000001", "0.00000000000000000000001", "12345678901234567890"] {
            assert_eq!(plain_decimal(text.as_bytes()), None, "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_plain_decimal_reads_as_str_parse_reads_it(whole in 0u64..u64::MAX, fraction in proptest::option::of("[0-9]{1,24}"), negative: bool, cut in 0u32..20) {
            let whole = whole / 10u64.pow(cut);
            let text = format!("{}{whole}{}", if negative { "-" } else { "" }, fraction.map(|digits| format!(".{digits}")).unwrap_or_default());
            if let Some(value) = plain_decimal(text.as_bytes()) {
                let expected: f64 = text.parse().expect("a number");
                proptest::prop_assert_eq!(value.to_bits(), expected.to_bits(), "{}", text);
            }
        }
    }

    #[test]
    fn other_texts_are_left_to_the_general_reading() {
        for text in [
            "",
            "-",
            ".5",
            "5.",
            "1e5",
            "1E-3",
            "+1",
            "1.5e3",
            "1.2.3",
            "12a",
            "--1",
            "- 1",
            "1 ",
            "NaN",
            "inf",
            "12345678901234567890",
            "0x10",
        ] {
            assert_eq!(plain_decimal(text.as_bytes()), None, "{text:?}");
        }
    }
}
