//! Medians and spreads of repeated measurements.

use serde::Serialize;

/// Several runs of one measurement, summarized.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// The median run.
    pub median: f64,
    /// The lowest run.
    pub min: f64,
    /// The highest run.
    pub max: f64,
    /// Every run, in the order measured.
    pub runs: Vec<f64>,
}

impl Summary {
    /// Summarizes `runs` (at least one).
    ///
    /// # Panics
    /// If `runs` is empty or holds a NaN.
    pub fn of(runs: &[f64]) -> Self {
        assert!(!runs.is_empty(), "a summary needs at least one run");
        let mut sorted = runs.to_vec();
        sorted.sort_by(|a, b| a.partial_cmp(b).expect("no NaN in measurements"));
        Summary {
            median: median_of_sorted(&sorted),
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            runs: runs.to_vec(),
        }
    }

    /// The spread, `(max - min) / median`, in percent.
    pub fn spread_percent(&self) -> f64 {
        if self.median == 0.0 { 0.0 } else { (self.max - self.min) / self.median.abs() * 100.0 }
    }
}

/// The median of sorted values (the mean of the two middle ones for an even count).
pub fn median_of_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 { sorted[n / 2] } else { (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0 }
}

/// The `p`-th percentile (0..=100) of `values`, nearest rank.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).expect("no NaN in measurements"));
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_spread() {
        let s = Summary::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(s.spread_percent(), 100.0);
        assert_eq!(Summary::of(&[1.0, 2.0, 3.0, 4.0]).median, 2.5);
    }

    #[test]
    fn percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), 50.0);
        assert_eq!(percentile(&values, 99.0), 99.0);
        assert_eq!(percentile(&values, 100.0), 100.0);
    }
}
