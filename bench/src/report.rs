//! The rows a run measures, printed as a table or written as JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::machine::Machine;
use crate::stats::Summary;

/// Whether a bigger or a smaller value is better, which decides how a target reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// A time or a size: smaller is better.
    Lower,
    /// A rate: bigger is better.
    Higher,
}

/// What a row is measured against.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// An absolute bound: at most (for [`Better::Lower`]) or at least this value.
    Value {
        /// The bound, in the row's unit.
        bound: f64,
    },
    /// At most this multiple of the row's floor.
    FloorRatio {
        /// The largest acceptable `median / floor.median`.
        ratio: f64,
    },
    /// At most this multiple of another row's median (by its figure id).
    RowRatio {
        /// The other row's `figure`.
        of: String,
        /// The largest acceptable `median / other.median`.
        ratio: f64,
    },
}

/// One measured figure.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Its id in BENCHMARKS.md: `1a`, `2`, `4-10000`, ...
    pub figure: String,
    /// What was measured.
    pub name: String,
    /// The unit of the values: `µs/step`, `exec/s`, `bytes/exec`, ...
    pub unit: String,
    /// The store it ran on, with its durability.
    pub store: String,
    /// Whether lower or higher is better.
    pub better: Better,
    /// The runs, summarized.
    pub value: Summary,
    /// The physical floor measured in the same run, in the same unit, and what it is.
    pub floor: Option<(String, Summary)>,
    /// The targets the issue sets.
    pub targets: Vec<Target>,
    /// Anything a reader needs to read the number (sizes, batch sizes, percentiles).
    pub note: String,
}

impl Row {
    /// A row without floor, target or note.
    pub fn new(figure: &str, name: &str, unit: &str, store: &str, better: Better, value: Summary) -> Self {
        Row {
            figure: figure.to_owned(),
            name: name.to_owned(),
            unit: unit.to_owned(),
            store: store.to_owned(),
            better,
            value,
            floor: None,
            targets: Vec::new(),
            note: String::new(),
        }
    }

    /// With a floor measured in the same run.
    pub fn floor(mut self, what: &str, floor: Summary) -> Self {
        self.floor = Some((what.to_owned(), floor));
        self
    }

    /// With a target.
    pub fn target(mut self, target: Target) -> Self {
        self.targets.push(target);
        self
    }

    /// With a note.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }

    /// The median over the floor's median, if there is a floor.
    pub fn floor_ratio(&self) -> Option<f64> {
        self.floor.as_ref().map(|(_, floor)| self.value.median / floor.median)
    }
}

/// A whole run: the machine and every row.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// What it ran on.
    pub machine: Machine,
    /// How it was invoked (`--quick` or not).
    pub quick: bool,
    /// The load averages when each figure began.
    pub loads: Vec<String>,
    /// The load averages when the run ended.
    pub load_after: String,
    /// The figures, in order.
    pub rows: Vec<Row>,
    /// Figures that were not measured, and why.
    pub skipped: Vec<String>,
}

/// Whether `row` meets `target`, given the other rows of its report.
pub fn meets(row: &Row, target: &Target, rows: &[Row]) -> Option<bool> {
    let median = row.value.median;
    match target {
        Target::Value { bound } => Some(match row.better {
            Better::Lower => median <= *bound,
            Better::Higher => median >= *bound,
        }),
        Target::FloorRatio { ratio } => row.floor_ratio().map(|r| r <= *ratio),
        Target::RowRatio { of, ratio } => {
            rows.iter().find(|other| other.figure == *of).map(|other| median / other.value.median <= *ratio)
        }
    }
}

/// How a target reads in the table.
pub fn describe(row: &Row, target: &Target) -> String {
    match target {
        Target::Value { bound } => {
            let op = if row.better == Better::Lower { "<=" } else { ">=" };
            format!("{op} {} {}", number(*bound), row.unit)
        }
        Target::FloorRatio { ratio } => format!("<= {ratio}x floor"),
        Target::RowRatio { of, ratio } => format!("<= {ratio}x {of}"),
    }
}

/// A value with three significant digits (or more before the point), thousands separated.
pub fn number(value: f64) -> String {
    let abs = value.abs();
    let text = if abs >= 100.0 {
        format!("{value:.0}")
    } else if abs >= 10.0 {
        format!("{value:.1}")
    } else if abs >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    };
    let (int, frac) = text.split_once('.').map_or((text.as_str(), None), |(i, f)| (i, Some(f)));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(frac) => format!("{sign}{grouped}.{frac}"),
        None => format!("{sign}{grouped}"),
    }
}

impl Report {
    /// The table, as Markdown (which also reads well in a terminal).
    pub fn table(&self) -> String {
        let m = &self.machine;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "machine: {} cores, {}, Linux {}; {}; load {} at start, {} at end{}\n",
            m.cores,
            m.cpu,
            m.kernel,
            m.date,
            m.load,
            self.load_after,
            if self.quick { "; --quick" } else { "" }
        );
        out.push_str("| fig | measure | store | median | spread (min–max, runs) | floor | ratio | target | met |\n");
        out.push_str("|---|---|---|---:|---|---:|---:|---|---|\n");
        for row in &self.rows {
            let v = &row.value;
            let spread =
                format!("{}–{} ({}, ±{:.0}%)", number(v.min), number(v.max), v.runs.len(), v.spread_percent() / 2.0);
            let floor = row.floor.as_ref().map_or(String::new(), |(what, f)| format!("{} ({what})", number(f.median)));
            let ratio = row.floor_ratio().map_or(String::new(), |r| format!("{r:.2}x"));
            let targets: Vec<String> = row.targets.iter().map(|t| describe(row, t)).collect();
            let met: Vec<&str> = row
                .targets
                .iter()
                .map(|t| match meets(row, t, &self.rows) {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "?",
                })
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} {} | {} | {} | {} | {} | {} |",
                row.figure,
                row.name,
                row.store,
                number(v.median),
                row.unit,
                spread,
                floor,
                ratio,
                targets.join(", "),
                met.join(", ")
            );
        }
        if !self.loads.is_empty() {
            let _ = writeln!(out, "\nload averages (1, 5, 15 min) as each figure began: {}", self.loads.join("; "));
        }
        let notes: Vec<&Row> = self.rows.iter().filter(|row| !row.note.is_empty()).collect();
        if !notes.is_empty() {
            out.push('\n');
            for row in notes {
                let _ = writeln!(out, "- {}: {}", row.figure, row.note);
            }
        }
        for skipped in &self.skipped {
            let _ = writeln!(out, "- skipped: {skipped}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(number(1234567.8), "1,234,568");
        assert_eq!(number(12.345), "12.3");
        assert_eq!(number(1.2345), "1.23");
        assert_eq!(number(0.01234), "0.012");
        assert_eq!(number(-5000.0), "-5,000");
    }

    #[test]
    fn targets() {
        let row = Row::new("1", "x", "µs", "memory", Better::Lower, Summary::of(&[4.0]))
            .floor("f", Summary::of(&[2.0]))
            .target(Target::Value { bound: 5.0 })
            .target(Target::FloorRatio { ratio: 1.3 });
        assert_eq!(meets(&row, &row.targets[0], &[]), Some(true));
        assert_eq!(meets(&row, &row.targets[1], &[]), Some(false));
        let rate = Row::new("3", "x", "exec/s", "sqlite", Better::Higher, Summary::of(&[6000.0]));
        assert_eq!(meets(&rate, &Target::Value { bound: 5000.0 }, &[]), Some(true));
        let other = Row::new("4a", "x", "ms", "sqlite", Better::Lower, Summary::of(&[1.0]));
        let rel = Row::new("4b", "x", "ms", "sqlite", Better::Lower, Summary::of(&[1.1]));
        let target = Target::RowRatio { of: "4a".into(), ratio: 1.2 };
        assert_eq!(meets(&rel, &target, &[other]), Some(true));
    }
}
