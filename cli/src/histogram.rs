//! A log-linear histogram of `u64` values (latencies in nanoseconds): exact below 128, then
//! 64 buckets per power of two, so every value is kept within 1.6 % in a fixed 30 KiB,
//! however many are recorded. Quantiles are read back as the lower bound of the bucket that
//! holds them, kept within the smallest and largest values recorded.

/// A log-linear histogram of `u64` values: exact below 128, then 64 buckets per power of
/// two (1.6 % resolution); a fixed 30 KiB whatever the count, so a long run costs no memory.
#[derive(Clone, Debug)]
pub struct Histogram {
    /// Values per bucket ([`BUCKETS`] of them).
    counts: Vec<u64>,
    /// Values recorded.
    total: u64,
    /// The smallest value recorded (`u64::MAX` while empty).
    min: u64,
    /// The largest value recorded.
    max: u64,
}

/// Bits of sub-bucket index within a power of two.
const SUB_BITS: u32 = 6;
/// Buckets: 128 exact values, then 64 for each of the 57 powers of two above them (2^7 to
/// 2^63).
const BUCKETS: usize = (2 << SUB_BITS) + (57 << SUB_BITS);

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            total: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    /// The bucket of `v`: `v` itself below 128, else 64 per power of two by its top 7 bits.
    fn index(v: u64) -> usize {
        if v < 2 << SUB_BITS {
            return v as usize;
        }
        let shift = 63 - v.leading_zeros() - SUB_BITS;
        // `v >> shift` is in [64, 128): the top 7 bits of `v`.
        ((shift as usize) << SUB_BITS) + (v >> shift) as usize
    }

    /// The smallest value in bucket `i` (the inverse of [`index`](Self::index)).
    fn lower_bound(i: usize) -> u64 {
        if i < 2 << SUB_BITS {
            return i as u64;
        }
        let shift = (i >> SUB_BITS) - 1;
        (((i & ((1 << SUB_BITS) - 1)) + (1 << SUB_BITS)) as u64) << shift
    }

    /// Counts one value.
    pub fn record(&mut self, v: u64) {
        self.counts[Self::index(v)] += 1;
        self.total += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The smallest value recorded (0 if none).
    pub fn min(&self) -> u64 {
        if self.total == 0 { 0 } else { self.min }
    }

    /// The largest value recorded (0 if none).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0 to 1): the lower bound of the bucket holding it, kept
    /// within the smallest and largest values recorded (0 if none).
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::lower_bound(i).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_bound_their_values() {
        let mut last = 0;
        for v in (0..5000u64).chain([1 << 40, u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let i = Histogram::index(v);
            assert!(i < BUCKETS, "{v} -> {i}");
            assert!(
                i == last || i == last + 1 || v > 5000,
                "a bucket skipped at {v}"
            );
            last = i;
            let low = Histogram::lower_bound(i);
            assert!(low <= v, "{v}: lower bound {low}");
            // Within 1/64 of the value (exact below 128).
            assert!(v - low <= v >> SUB_BITS, "{v}: lower bound {low}");
            assert_eq!(Histogram::index(low), i);
        }
    }

    #[test]
    fn quantiles_of_a_known_set() {
        let mut h = Histogram::new();
        assert_eq!((h.quantile(0.5), h.min(), h.max()), (0, 0, 0));
        for v in 1..=100 {
            h.record(v);
        }
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile(0.5), 50);
        assert_eq!(h.quantile(0.99), 99);
        assert_eq!(h.quantile(1.0), 100);
        assert_eq!((h.min(), h.max()), (1, 100));
        h.record(1_000_000);
        let p100 = h.quantile(1.0);
        assert!((1_000_000 - (1_000_000 >> SUB_BITS)..=1_000_000).contains(&p100));
    }
}
