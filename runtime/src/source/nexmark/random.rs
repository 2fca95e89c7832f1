//! `java.util.Random`, bit for bit: the Nexmark reference generators (Apache Beam's, and the
//! Flink port) draw every event from `new Random(eventId)`, so the same generator in Rust
//! gives the same events.

const MULTIPLIER: u64 = 0x5_DEEC_E66D;
const ADDEND: u64 = 0xB;
const MASK: u64 = (1 << 48) - 1;
/// Two steps at once: `seed · MULTIPLIER² + ADDEND · (MULTIPLIER + 1)`, modulo 2⁴⁸.
const MULTIPLIER_SQUARED: u64 = MULTIPLIER.wrapping_mul(MULTIPLIER) & MASK;
const ADDEND_TWICE: u64 = ADDEND.wrapping_mul(MULTIPLIER + 1) & MASK;

/// Whether `nextInt(bound)` keeps the draw `bits` (Java's overflow test: bits − value +
/// (bound − 1) < 0 in 32-bit arithmetic means draw again).
#[inline]
fn accepted(bits: i32, bound: i32) -> bool {
    bits.wrapping_sub(bits % bound).wrapping_add(bound - 1) >= 0
}

/// 26²: a draw's six characters are the base-26 digits of three numbers below it.
const SQUARE: u32 = 26 * 26;

/// The characters of every two base-26 digits, by sign of the draw they come from (made at
/// compile time).
static PAIRS: Pairs = Pairs::new();

/// `'a' + d` (a draw ≥ 0) and `'a' − d` (a draw < 0) for the two base-26 digits d of every
/// number below 26², lowest first: three lookups in tables small enough to stay in the
/// fastest cache give a draw's six characters, where computing them was a fifth of Nexmark
/// q2's time (six divisions and six remainders).
struct Pairs {
    positive: [[u8; 2]; SQUARE as usize],
    negative: [[u8; 2]; SQUARE as usize],
}

impl Pairs {
    const fn new() -> Pairs {
        let mut pairs = Pairs { positive: [[0; 2]; SQUARE as usize], negative: [[0; 2]; SQUARE as usize] };
        let mut number = 0;
        while number < SQUARE as usize {
            let (low, high) = ((number % 26) as u8, (number / 26) as u8);
            pairs.positive[number] = [b'a' + low, b'a' + high];
            pairs.negative[number] = [b'a' - low, b'a' - high];
            number += 1;
        }
        pairs
    }

    /// The six characters `'a' + rnd % 26; rnd /= 26` makes of `draw`, in Java's truncating
    /// arithmetic: the digits of its magnitude, added or taken away by its sign.
    #[inline]
    fn six(&self, draw: i32) -> [u8; 6] {
        let magnitude = draw.unsigned_abs();
        let table = if draw < 0 { &self.negative } else { &self.positive };
        let pair = |number: u32| table[(number % SQUARE) as usize];
        let ([a, b], [c, d], [e, f]) = (pair(magnitude), pair(magnitude / SQUARE), pair(magnitude / (SQUARE * SQUARE)));
        [a, b, c, d, e, f]
    }
}

/// A 48-bit linear congruential generator, as `java.util.Random`.
#[derive(Debug, Clone)]
pub struct JavaRandom {
    seed: u64,
}

impl JavaRandom {
    pub fn new(seed: i64) -> JavaRandom {
        JavaRandom { seed: (seed as u64 ^ MULTIPLIER) & MASK }
    }

    #[inline]
    fn next(&mut self, bits: u32) -> i32 {
        self.seed = (self.seed.wrapping_mul(MULTIPLIER).wrapping_add(ADDEND)) & MASK;
        (self.seed >> (48 - bits)) as i64 as i32
    }

    /// `nextInt()`.
    #[cfg(test)]
    pub fn next_i32(&mut self) -> i32 {
        self.next(32)
    }

    /// `nextInt(bound)`: uniform in `0..bound`; `bound` must be positive.
    #[inline]
    pub fn next_int(&mut self, bound: i32) -> i32 {
        debug_assert!(bound > 0);
        if bound & (bound - 1) == 0 {
            return ((i64::from(bound) * i64::from(self.next(31))) >> 31) as i32;
        }
        loop {
            let bits = self.next(31);
            let value = bits % bound;
            if accepted(bits, bound) {
                return value;
            }
        }
    }

    /// The `length` characters of the reference's `StringsGenerator.nextExactString`, given to
    /// `each` six at a time with how many of them are taken (six but in the last call): one
    /// `nextInt()` makes six, each `'a' + rnd % 26` then `rnd /= 26`. Java's remainder keeps
    /// the dividend's sign, so a negative draw gives the characters from `H` to `` ` `` (a
    /// backslash among them), as the reference's do.
    #[inline]
    pub fn exact_string(&mut self, length: usize, mut each: impl FnMut([u8; 6], usize)) {
        let mut left = length;
        // Two draws at a time, both computed from the seed before them (the second by the
        // generator's square): the two multiplications no longer wait for each other.
        while left >= 12 {
            let first = (self.seed.wrapping_mul(MULTIPLIER).wrapping_add(ADDEND)) & MASK;
            self.seed = (self.seed.wrapping_mul(MULTIPLIER_SQUARED).wrapping_add(ADDEND_TWICE)) & MASK;
            each(PAIRS.six((first >> 16) as i64 as i32), 6);
            each(PAIRS.six((self.seed >> 16) as i64 as i32), 6);
            left -= 12;
        }
        while left > 0 {
            let draw = self.next(32);
            let six = PAIRS.six(draw);
            let taken = left.min(six.len());
            each(six, taken);
            left -= taken;
        }
    }

    /// `nextLong()`.
    pub fn next_long(&mut self) -> i64 {
        (i64::from(self.next(32)) << 32).wrapping_add(i64::from(self.next(32)))
    }

    /// `nextDouble()`: uniform in `[0, 1)` with 53 bits.
    pub fn next_double(&mut self) -> f64 {
        let high = i64::from(self.next(26)) << 27;
        (high + i64::from(self.next(27))) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// The reference's `LongGenerator.nextLong(random, n)`: uniform in `0..n`.
    pub fn next_below(&mut self, n: i64) -> i64 {
        if n < i64::from(i32::MAX) { i64::from(self.next_int(n.max(1) as i32)) } else { (self.next_long() % n).abs() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Java printed for `nextExactString(new Random(seed), 40)` as the reference writes
    /// it, then the next `nextInt()`.
    #[test]
    fn exact_strings_are_the_references() {
        let printed = [
            (0, "UO]S[NUIH\\IYupusyi[WQLZUKaPM``skhrshZZPZ", 502_539_523),
            (42, "LRaSUMpwhutt^[[ZTWymsoiraqjophTK\\VIMbrke", -1_255_373_459),
            (7, "R]K`XNIOJ[PaQXZUPUvqzmmdriwqxvbyxajvVIJV", -1_105_573_998),
        ];
        for (seed, text, next) in printed {
            let mut random = JavaRandom::new(seed);
            let mut out = Vec::new();
            random.exact_string(40, |six, taken| out.extend_from_slice(&six[..taken]));
            assert_eq!(String::from_utf8_lossy(&out), text, "seed {seed}");
            assert_eq!(random.next_i32(), next, "seed {seed}: one draw per six characters");
        }
        let mut random = JavaRandom::new(0);
        let mut out = Vec::new();
        random.exact_string(0, |six, taken| out.extend_from_slice(&six[..taken]));
        assert!(out.is_empty());
    }

    /// Drawing two at a time gives the characters and leaves the seed as drawing one at a time.
    #[test]
    fn exact_strings_two_draws_at_a_time_are_one_at_a_time() {
        for (seed, length) in (0..50).flat_map(|seed| (0..40).map(move |length| (seed * 7_919 - 99, length))) {
            let (mut paired, mut single) = (JavaRandom::new(seed), JavaRandom::new(seed));
            let mut out = Vec::new();
            paired.exact_string(length, |six, taken| out.extend_from_slice(&six[..taken]));
            let expected: Vec<u8> = (0..length.div_ceil(6)).flat_map(|_| PAIRS.six(single.next(32))).take(length).collect();
            assert_eq!(out, expected, "seed {seed}, length {length}");
            assert_eq!(paired.next_i32(), single.next_i32(), "seed {seed}, length {length}");
        }
    }

    /// The table gives what the reference's loop computes, at the extremes of a draw too.
    #[test]
    fn six_characters_by_table_are_the_references_loop() {
        let by_loop = |draw: i32| {
            let mut rnd = draw;
            [(); 6].map(|()| {
                let character = (i32::from(b'a') + rnd % 26) as u8;
                rnd /= 26;
                character
            })
        };
        let extremes =
            [0, 1, -1, 25, -25, 26, -26, i32::MAX, i32::MIN, i32::MIN + 1, 675, 676, -676, 17_575, 17_576, -17_576, 456_976, -456_976];
        let mut random = JavaRandom::new(3);
        for draw in extremes.into_iter().chain((0..100_000).map(|_| random.next_i32())) {
            assert_eq!(PAIRS.six(draw), by_loop(draw), "draw {draw}");
        }
    }

    #[test]
    fn draws_what_java_util_random_draws() {
        // Values printed by Java: new Random(0).nextInt(), new Random(42).nextInt(),
        // new Random(0).nextDouble().
        assert_eq!(JavaRandom::new(0).next_i32(), -1_155_484_576);
        assert_eq!(JavaRandom::new(42).next_i32(), -1_170_105_035);
        assert_eq!(JavaRandom::new(0).next_double(), 0.730_967_787_376_657);
        // nextInt(bound) of a power of two uses the high bits.
        let mut random = JavaRandom::new(0);
        assert!((0..1000).all(|_| (0..16).contains(&random.next_int(16))));
        let mut random = JavaRandom::new(7);
        assert!((0..1000).all(|_| (0..13).contains(&random.next_int(13))));
    }
}
