//! `java.util.Random`, bit for bit: the Nexmark reference generators (Apache Beam's, and the
//! Flink port) draw every event from `new Random(eventId)`, so the same generator in Rust
//! gives the same events.

const MULTIPLIER: u64 = 0x5_DEEC_E66D;
const ADDEND: u64 = 0xB;
const MASK: u64 = (1 << 48) - 1;

/// Draws [`JavaRandom::push_letters`] keeps in flight.
const LANES: usize = 4;
/// (multiplier, addend) of `LANES` steps at once.
const JUMP: (u64, u64) = jump(LANES);

/// The linear map of `steps` steps of the generator, as (multiplier, addend).
const fn jump(steps: usize) -> (u64, u64) {
    let (mut multiplier, mut addend) = (1u64, 0u64);
    let mut step = 0;
    while step < steps {
        multiplier = multiplier.wrapping_mul(MULTIPLIER) & MASK;
        addend = (addend.wrapping_mul(MULTIPLIER).wrapping_add(ADDEND)) & MASK;
        step += 1;
    }
    (multiplier, addend)
}

/// One step of the generator's linear map (one draw, or `JUMP`'s `LANES` draws).
#[inline]
fn step(seed: u64, (multiplier, addend): (u64, u64)) -> u64 {
    (seed.wrapping_mul(multiplier).wrapping_add(addend)) & MASK
}

/// Whether `nextInt(bound)` keeps the draw `bits` (Java's overflow test: bits − value +
/// (bound − 1) < 0 in 32-bit arithmetic means draw again).
#[inline]
fn accepted(bits: i32, bound: i32) -> bool {
    bits.wrapping_sub(bits % bound).wrapping_add(bound - 1) >= 0
}

/// A 48-bit linear congruential generator, as `java.util.Random`.
pub struct JavaRandom {
    seed: u64,
}

impl JavaRandom {
    pub fn new(seed: i64) -> JavaRandom {
        JavaRandom { seed: (seed as u64 ^ MULTIPLIER) & MASK }
    }

    #[inline]
    fn next(&mut self, bits: u32) -> i32 {
        self.seed = step(self.seed, (MULTIPLIER, ADDEND));
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

    /// `count` draws of `nextInt(26)` as lowercase letters, appended to `out`: the letters one
    /// draw at a time gives, with four draws in flight. Each draw waits for the seed before
    /// it; four seeds a jump of four steps apart wait for nothing but their own last jump.
    pub fn push_letters(&mut self, count: usize, out: &mut Vec<u8>) {
        out.reserve(count);
        let mut left = count;
        let mut lanes = self.next_seeds();
        while left >= LANES {
            let bits = lanes.map(|seed| (seed >> 17) as i32);
            if bits.iter().all(|&bits| accepted(bits, 26)) {
                out.extend(bits.map(|bits| b'a' + (bits % 26) as u8));
                self.seed = lanes[LANES - 1];
                lanes = lanes.map(|seed| step(seed, JUMP));
            } else {
                // A draw Java would redraw (about one in 90 million): these four one by one.
                out.extend((0..LANES).map(|_| b'a' + self.next_int(26) as u8));
                lanes = self.next_seeds();
            }
            left -= LANES;
        }
        out.extend((0..left).map(|_| b'a' + self.next_int(26) as u8));
    }

    /// The seeds of the next `LANES` draws.
    fn next_seeds(&self) -> [u64; LANES] {
        let mut seed = self.seed;
        [(); LANES].map(|()| {
            seed = step(seed, (MULTIPLIER, ADDEND));
            seed
        })
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

    /// Letters drawn four at a time are the letters drawn one at a time, also around a draw
    /// Java redraws (placed by hand: one in 90 million).
    #[test]
    fn letters_four_at_a_time_are_letters_one_at_a_time() {
        let one_at_a_time =
            |random: &mut JavaRandom, count: usize| -> Vec<u8> { (0..count).map(|_| b'a' + random.next_int(26) as u8).collect() };
        let redrawn = (2_147_483_630u64 << 17) | 12_345;
        let mut starts: Vec<u64> = (0..50).map(|seed| JavaRandom::new(seed).seed).collect();
        // Seeds whose 1st, 2nd, ... 9th next draw is one Java redraws.
        starts.extend((0..9).map(|steps| before(redrawn, steps + 1)));
        for start in starts {
            for count in [0, 1, 3, 4, 5, 8, 13, 77, 400] {
                let (mut serial, mut lanes) = (JavaRandom { seed: start }, JavaRandom { seed: start });
                let mut letters = Vec::new();
                lanes.push_letters(count, &mut letters);
                assert_eq!(letters, one_at_a_time(&mut serial, count), "seed {start}, {count} letters");
                assert_eq!(lanes.seed, serial.seed, "both end at the same seed");
            }
        }
    }

    /// The seed `steps` steps before `seed`.
    fn before(seed: u64, steps: usize) -> u64 {
        // The multiplier is odd, so it has an inverse modulo 2^48 (Newton's iteration).
        let mut inverse = MULTIPLIER;
        for _ in 0..6 {
            inverse = inverse.wrapping_mul(2u64.wrapping_sub(MULTIPLIER.wrapping_mul(inverse)));
        }
        (0..steps).fold(seed, |seed, _| (seed.wrapping_sub(ADDEND).wrapping_mul(inverse)) & MASK)
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
