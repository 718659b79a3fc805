//! One benchmark result and its two printed forms: a db_bench-like aligned
//! line for people and one JSON object per line for scripts.
//!
//! Latencies are kept in an `hdrhistogram` of nanoseconds and printed in
//! microseconds with two decimals.
//!
//! Invariants:
//! - The JSON fields every workload has come first, in a fixed order; a
//!   workload's own fields ([`Extra`]) follow, so scripts that read the
//!   common fields never see them move.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Highest latency a histogram tracks: one minute, in nanoseconds. Larger
/// samples are clamped to it (and still counted).
const MAX_TRACKED_LATENCY_NS: u64 = 60_000_000_000;

/// Significant decimal digits the histograms keep (0.1% relative error).
const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;

/// An empty latency histogram in nanoseconds.
#[expect(
    clippy::expect_used,
    reason = "the bounds are constants that new_with_bounds accepts"
)]
pub fn new_latency_histogram() -> Histogram<u64> {
    // NOTE: low >= 1, high >= 2 * low and sigfig <= 5 hold for the constants,
    // so this cannot fail at run time.
    Histogram::new_with_bounds(1, MAX_TRACKED_LATENCY_NS, LATENCY_SIGNIFICANT_DIGITS)
        .expect("valid histogram bounds")
}

/// Records one operation's latency, clamping outliers to the tracked range.
pub fn record_latency(histogram: &mut Histogram<u64>, latency: Duration) {
    record_ns(histogram, duration_ns(latency));
    count_for_progress(histogram.len());
}

fn record_ns(histogram: &mut Histogram<u64>, ns: u64) {
    histogram.saturating_record(ns.min(MAX_TRACKED_LATENCY_NS));
}

/// Counts one recorded operation, the `recorded`-th of its recorder, for
/// the progress bar (in steps, see [`crate::progress`]).
fn count_for_progress(recorded: u64) {
    if recorded.is_multiple_of(crate::progress::COUNT_STEP_OPS) {
        crate::progress::add(crate::progress::COUNT_STEP_OPS);
    }
}

fn duration_ns(latency: Duration) -> u64 {
    u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX)
}

/// One task's operation latencies in nanoseconds, as recorded inside a
/// timed section: pushes onto memory reserved before the clock starts.
///
/// A histogram per task is about 220 KB; at 1,024 tasks, making them inside
/// the timed section cost 226 MB of page faults and zeroing, and recording
/// into them, scattered over that memory, still took 5% of a `perf` profile
/// when they were made before it. [`histogram_of`] builds the workload's
/// histogram once the clock has stopped.
#[derive(Debug, Default)]
pub struct Latencies(Vec<u64>);

impl Latencies {
    /// Room for `ops` latencies, reserved now.
    pub fn with_capacity(ops: u64) -> Self {
        Latencies(Vec::with_capacity(usize::try_from(ops).unwrap_or(0)))
    }

    /// Records one operation's latency.
    pub fn record(&mut self, latency: Duration) {
        self.0.push(duration_ns(latency));
        count_for_progress(self.0.len() as u64);
    }
}

/// One histogram of every latency in `tasks`.
pub fn histogram_of<'a>(tasks: impl IntoIterator<Item = &'a Latencies>) -> Histogram<u64> {
    let mut histogram = new_latency_histogram();
    for &ns in tasks.into_iter().flat_map(|task| &task.0) {
        record_ns(&mut histogram, ns);
    }
    histogram
}

/// A workload-specific result, printed after the common fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Extra {
    /// JSON field name; also the label in the human line.
    pub name: &'static str,
    /// The value.
    pub value: ExtraValue,
}

/// The value of an [`Extra`].
#[derive(Debug, Clone, PartialEq)]
pub enum ExtraValue {
    /// A count, printed as an integer.
    Count(u64),
    /// A measure, printed with two decimals.
    Decimal2(f64),
    /// A short text, printed as a JSON string (as it is in the human line).
    Text(String),
}

impl Extra {
    /// A count.
    pub fn count(name: &'static str, value: u64) -> Self {
        Extra {
            name,
            value: ExtraValue::Count(value),
        }
    }

    /// A measure printed with two decimals.
    pub fn decimal2(name: &'static str, value: f64) -> Self {
        Extra {
            name,
            value: ExtraValue::Decimal2(value),
        }
    }

    /// A short text.
    pub fn text(name: &'static str, value: String) -> Self {
        Extra {
            name,
            value: ExtraValue::Text(value),
        }
    }
}

impl serde::Serialize for ExtraValue {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ExtraValue::Count(n) => serializer.serialize_u64(*n),
            ExtraValue::Decimal2(x) => serializer.serialize_f64(rounded(*x, 2)),
            ExtraValue::Text(s) => serializer.serialize_str(s),
        }
    }
}

/// The extras of a report as the JSON fields that follow the common ones,
/// in their order.
struct JsonExtras<'a>(&'a [Extra]);

impl serde::Serialize for JsonExtras<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for extra in self.0 {
            map.serialize_entry(extra.name, &extra.value)?;
        }
        map.end()
    }
}

/// One JSON line of a [`Report`]. The field order here is the output
/// format (see [`Report::to_json`]); serde writes struct fields in
/// declaration order.
#[derive(serde::Serialize)]
struct JsonLine<'a> {
    workload: &'a str,
    ops: u64,
    secs: f64,
    ops_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
    syncs: u64,
    avg_group_size: f64,
    concurrency: usize,
    io_backend: &'a str,
    #[serde(flatten)]
    extras: JsonExtras<'a>,
}

/// `x` rounded to `decimals` decimal places, so that its JSON form carries
/// no more digits than the human line; 0 for NaN and infinity, which JSON
/// cannot hold.
fn rounded(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    if x.is_finite() {
        (x * scale).round() / scale
    } else {
        0.0
    }
}

impl std::fmt::Display for ExtraValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExtraValue::Count(n) => write!(f, "{n}"),
            // NOTE: a ratio that has none prints as 0, as in the JSON line
            // (JSON has no NaN or infinity).
            ExtraValue::Decimal2(x) if !x.is_finite() => f.write_str("0.00"),
            ExtraValue::Decimal2(x) => write!(f, "{x:.2}"),
            ExtraValue::Text(s) => f.write_str(s),
        }
    }
}

/// The outcome of one workload.
#[derive(Debug)]
pub struct Report {
    /// db_bench workload name, e.g. `"fillsync"`.
    pub workload: &'static str,
    /// Operations completed.
    pub ops: u64,
    /// Wall time of the timed section.
    pub elapsed: Duration,
    /// Per-operation latency in nanoseconds.
    pub latency_ns: Histogram<u64>,
    /// fdatasyncs issued during the timed section.
    pub syncs: u64,
    /// Write batches made durable per sync (0 when there was no sync).
    pub avg_group_size: f64,
    /// Concurrent tasks that issued the operations.
    pub concurrency: usize,
    /// The I/O backend that carried them: a ringdb backend name, or `"std"`
    /// for the raw-disk baseline.
    pub io_backend: &'static str,
    /// The workload's own results, in the order they are printed.
    pub extras: Vec<Extra>,
}

impl Report {
    /// The value of extra `name`, if the workload reported one.
    #[cfg(test)]
    pub fn extra(&self, name: &str) -> Option<ExtraValue> {
        self.extras
            .iter()
            .find(|extra| extra.name == name)
            .map(|extra| extra.value.clone())
    }

    fn secs(&self) -> f64 {
        self.elapsed.as_secs_f64()
    }

    pub fn ops_per_sec(&self) -> f64 {
        let secs = self.secs();
        if secs > 0.0 { self.ops as f64 / secs } else { 0.0 }
    }

    pub fn quantile_us(&self, quantile: f64) -> f64 {
        self.latency_ns.value_at_quantile(quantile) as f64 / 1000.0
    }

    fn max_us(&self) -> f64 {
        self.latency_ns.max() as f64 / 1000.0
    }

    /// One JSON object, no trailing newline. Field order is part of the
    /// output format: `workload, ops, secs, ops_per_sec, p50_us, p99_us,
    /// p999_us, max_us, syncs, avg_group_size`, then `concurrency,
    /// io_backend`, then the extras in their order. Decimals are rounded as
    /// the human line prints them (`secs` to 6 places, `ops_per_sec` to 1,
    /// the rest to 2) and written in their shortest form (`1.5`, not
    /// `1.50`).
    #[expect(
        clippy::expect_used,
        reason = "a struct of numbers and strings with string keys always serializes"
    )]
    pub fn to_json(&self) -> String {
        let line = JsonLine {
            workload: self.workload,
            ops: self.ops,
            secs: rounded(self.secs(), 6),
            ops_per_sec: rounded(self.ops_per_sec(), 1),
            p50_us: rounded(self.quantile_us(0.50), 2),
            p99_us: rounded(self.quantile_us(0.99), 2),
            p999_us: rounded(self.quantile_us(0.999), 2),
            max_us: rounded(self.max_us(), 2),
            syncs: self.syncs,
            avg_group_size: rounded(self.avg_group_size, 2),
            concurrency: self.concurrency,
            io_backend: self.io_backend,
            extras: JsonExtras(&self.extras),
        };
        serde_json::to_string(&line).expect("a report serializes")
    }

    /// One CSV row under [`CSV_HEADER`], no trailing newline: the common
    /// fields in the JSON order, then the extras as one quoted
    /// `name=value;name=value` field.
    pub fn to_csv(&self) -> String {
        let extras: Vec<String> = self
            .extras
            .iter()
            .map(|extra| format!("{}={}", extra.name, extra.value))
            .collect();
        format!(
            "{},{},{:.6},{:.1},{:.2},{:.2},{:.2},{:.2},{},{:.2},{},{},\"{}\"",
            self.workload,
            self.ops,
            self.secs(),
            self.ops_per_sec(),
            self.quantile_us(0.50),
            self.quantile_us(0.99),
            self.quantile_us(0.999),
            self.max_us(),
            self.syncs,
            self.avg_group_size,
            self.concurrency,
            self.io_backend,
            extras.join(";").replace('"', "'"),
        )
    }

    /// One aligned, db_bench-like line, no trailing newline.
    pub fn to_human(&self) -> String {
        let mut out = format!(
            "{:<16} : {:>12.1} ops/s  {:>9} ops {:>8.3} s  p50 {:>9.2}  p99 {:>9.2}  \
             p99.9 {:>9.2}  max {:>10.2} us  syncs {:>8}  avg group {:>7.2}  [{} x{}]",
            self.workload,
            self.ops_per_sec(),
            self.ops,
            self.secs(),
            self.quantile_us(0.50),
            self.quantile_us(0.99),
            self.quantile_us(0.999),
            self.max_us(),
            self.syncs,
            self.avg_group_size,
            self.io_backend,
            self.concurrency,
        );
        for extra in &self.extras {
            let _ = write!(out, "  {} {}", extra.name, extra.value);
        }
        out
    }
}

/// The header line of [`Report::to_csv`]'s rows.
pub const CSV_HEADER: &str = "workload,ops,secs,ops_per_sec,p50_us,p99_us,p999_us,max_us,syncs,avg_group_size,concurrency,io_backend,extras";

/// The closing summary of a run for people: one line per workload with its
/// throughput and median and tail latency, and for the durable workloads
/// (`fillsync`) the ratio of their throughput to `rawsync`'s in the same
/// run (the disk's single-writer limit), when the run had one.
pub fn summary_table(reports: &[Report]) -> String {
    let rawsync = reports
        .iter()
        .find(|r| r.workload == "rawsync")
        .map(Report::ops_per_sec)
        .filter(|&x| x > 0.0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nsummary{}",
        if rawsync.is_some() {
            " (vs rawsync: durable throughput over the raw pwrite+fdatasync loop of this run)"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "{:<16} {:>12} {:>10} {:>10} {:>11} {:>10}",
        "workload", "ops/s", "p50 us", "p99 us", "concurrency", "vs rawsync"
    );
    for report in reports {
        let durable = matches!(report.workload, "rawsync" | "fillsync");
        let ratio = match (durable, rawsync) {
            (true, Some(raw)) => format!("{:.2}x", report.ops_per_sec() / raw),
            _ => "-".to_string(),
        };
        let _ = writeln!(
            out,
            "{:<16} {:>12.1} {:>10.2} {:>10.2} {:>11} {:>10}",
            report.workload,
            report.ops_per_sec(),
            report.quantile_us(0.50),
            report.quantile_us(0.99),
            report.concurrency,
            ratio
        );
    }
    out
}

/// CPU time (user and system) the whole process has used so far, over all
/// its threads: the same measure for ringdb and for the raw loop.
pub fn process_cpu_time() -> Duration {
    // SAFETY: getrusage only writes the zeroed struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a `rusage`; RUSAGE_SELF is always valid.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

/// The `cpu_us_per_op` extra: process CPU time over the timed section,
/// per operation.
pub fn cpu_per_op(cpu: Duration, ops: u64) -> Extra {
    Extra::decimal2("cpu_us_per_op", cpu.as_secs_f64() * 1e6 / ops.max(1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_of_counts_every_task_latency_and_clamps_outliers() {
        let mut first = Latencies::with_capacity(2);
        first.record(Duration::from_micros(100));
        first.record(Duration::from_micros(300));
        let mut second = Latencies::with_capacity(1);
        second.record(Duration::from_secs(3_600));
        let empty = Latencies::default();
        let histogram = histogram_of([&first, &second, &empty]);
        assert_eq!(histogram.len(), 3);
        assert_eq!(histogram.min(), histogram.lowest_equivalent(100_000));
        assert!(histogram.equivalent(histogram.value_at_quantile(0.5), 300_000));
        assert!(histogram.equivalent(histogram.max(), MAX_TRACKED_LATENCY_NS));
    }

    fn report(workload: &'static str, ops: u64, latency: Duration) -> Report {
        let mut latency_ns = new_latency_histogram();
        for _ in 0..ops {
            record_latency(&mut latency_ns, latency);
        }
        Report {
            workload,
            ops,
            elapsed: Duration::from_secs(1),
            latency_ns,
            syncs: ops,
            avg_group_size: 1.0,
            concurrency: 4,
            io_backend: "uring",
            extras: vec![
                Extra::count("flushes", 2),
                Extra::text("level_tables", "L0:1 L1:2".into()),
            ],
        }
    }

    #[test]
    fn the_summary_puts_durable_workloads_against_rawsync() {
        let reports = [
            report("rawsync", 1000, Duration::from_micros(1000)),
            report("fillsync", 500, Duration::from_micros(2000)),
            report("fillrandom", 100_000, Duration::from_micros(3)),
        ];
        let summary = summary_table(&reports);
        let line = |name: &str| summary.lines().find(|l| l.starts_with(name)).unwrap().to_string();
        assert!(line("rawsync").ends_with(" 1.00x"), "{summary}");
        assert!(line("fillsync").ends_with(" 0.50x"), "{summary}");
        assert!(line("fillsync").contains(" 500.0 "), "{summary}");
        assert!(line("fillrandom").ends_with(" -"), "{summary}");
        // Without a rawsync in the run there is nothing to compare with.
        let alone = summary_table(&reports[1..]);
        assert!(!alone.contains('x'), "{alone}");
    }

    #[test]
    fn csv_rows_match_the_header() {
        let row = report("fillsync", 10, Duration::from_micros(100)).to_csv();
        let columns = CSV_HEADER.split(',').count();
        assert_eq!(row.split(',').count(), columns, "{row}");
        assert!(row.starts_with("fillsync,10,1.000000,10.0,"), "{row}");
        assert!(
            row.ends_with(",4,uring,\"flushes=2;level_tables=L0:1 L1:2\""),
            "{row}"
        );
    }

    #[test]
    fn json_fields_come_in_the_documented_order() {
        let mut latency_ns = new_latency_histogram();
        record_latency(&mut latency_ns, Duration::from_micros(100));
        let report = Report {
            workload: "fillsync",
            ops: 1,
            elapsed: Duration::from_millis(2),
            latency_ns,
            syncs: 1,
            avg_group_size: 1.0,
            concurrency: 1,
            io_backend: "uring",
            extras: vec![
                Extra::count("found", 7),
                Extra::decimal2("size_mib", 1.5),
                Extra::text("level_tables", "L0:2 L1:5".to_string()),
            ],
        };
        let json = report.to_json();
        let order = [
            "workload",
            "ops",
            "secs",
            "ops_per_sec",
            "p50_us",
            "p99_us",
            "p999_us",
            "max_us",
            "syncs",
            "avg_group_size",
            "concurrency",
            "io_backend",
            "found",
            "size_mib",
            "level_tables",
        ];
        let positions: Vec<usize> = order
            .iter()
            .map(|field| json.find(&format!("\"{field}\":")).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{json}");
        assert!(
            json.starts_with("{\"workload\":\"fillsync\",\"ops\":1,"),
            "{json}"
        );
        assert!(
            json.ends_with(",\"found\":7,\"size_mib\":1.5,\"level_tables\":\"L0:2 L1:5\"}"),
            "{json}"
        );
        assert!(!json.contains('\n'));
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["secs"], 0.002);
        assert_eq!(value["ops_per_sec"], 500.0);
        assert_eq!(value["syncs"], 1);
        assert_eq!(value["avg_group_size"], 1.0);
        assert_eq!(value["concurrency"], 1);
        assert_eq!(value["io_backend"], "uring");
        assert_eq!(value.as_object().unwrap().len(), order.len());
        assert!(
            report
                .to_human()
                .ends_with("  found 7  size_mib 1.50  level_tables L0:2 L1:5")
        );
    }

    #[test]
    fn json_strings_are_escaped_and_decimals_rounded() {
        let mut report = report("fillsync", 3, Duration::from_micros(100));
        report.elapsed = Duration::from_nanos(1_234_567_891);
        report.avg_group_size = f64::NAN;
        report.extras = vec![
            Extra::text("note", "a\"b\\c\n".to_string()),
            Extra::decimal2("ratio", 2.0 / 3.0),
            Extra::decimal2("none", f64::INFINITY),
        ];
        let json = report.to_json();
        assert!(json.contains(r#""note":"a\"b\\c\n""#), "{json}");
        assert!(json.contains("\"secs\":1.234568,"), "{json}");
        assert!(json.contains("\"ops_per_sec\":2.4,"), "{json}");
        assert!(json.contains("\"avg_group_size\":0.0,"), "{json}");
        assert!(json.ends_with(",\"ratio\":0.67,\"none\":0.0}"), "{json}");
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["note"], "a\"b\\c\n");
    }
}
