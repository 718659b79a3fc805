//! The bench's progress bar: one per workload, on stderr, drawn only once
//! the workload has run for [`SHOW_AFTER`] and only when stderr is a
//! terminal and the output is for people (not `--json` or `--csv`).
//!
//! Workloads count their operations where they record latencies
//! ([`crate::report::Latencies::record`], [`crate::report::record_latency`])
//! into one process-wide counter, in steps of [`COUNT_STEP_OPS`] so that
//! tasks on different cores do not write the counter's cache line on every
//! operation. A thread owned by [`Bar`] reads it every [`REDRAW_INTERVAL`].
//!
//! Invariants:
//! - The bar never writes to stdout, so the printed results stay the same
//!   with or without it.
//! - A finished or dropped [`Bar`] has stopped its thread and cleared its line.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A workload shorter than this draws no bar.
const SHOW_AFTER: Duration = Duration::from_secs(1);

/// How often the bar's thread reads the counter and redraws.
const REDRAW_INTERVAL: Duration = Duration::from_millis(100);

/// Operations a recorder counts locally before adding them to [`OPS_DONE`].
pub const COUNT_STEP_OPS: u64 = 64;

/// Operations recorded since the current bar started, in steps of
/// [`COUNT_STEP_OPS`].
static OPS_DONE: AtomicU64 = AtomicU64::new(0);

/// Adds `ops` recorded operations to the bar's count.
pub fn add(ops: u64) {
    OPS_DONE.fetch_add(ops, Ordering::Relaxed);
}

/// A progress bar for one workload; clears itself when finished or dropped.
pub struct Bar {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Bar {
    /// Starts the bar of `workload`, which runs about `total_ops`
    /// operations (`None`: unknown) or until `deadline`. `visible: false`
    /// (machine-readable output) never draws.
    pub fn start(
        workload: &'static str,
        total_ops: Option<u64>,
        deadline: Option<Duration>,
        visible: bool,
    ) -> Bar {
        OPS_DONE.store(0, Ordering::Relaxed);
        let stop = Arc::new(AtomicBool::new(false));
        if !visible || !std::io::stderr().is_terminal() {
            return Bar { stop, thread: None };
        }
        let bar = ProgressBar::with_draw_target(total_ops, ProgressDrawTarget::hidden());
        let template = match (total_ops, deadline) {
            (Some(_), Some(_)) => {
                "{prefix:>12} {wide_bar} {human_pos}/{human_len} ops, {per_sec}, {elapsed} ({msg})"
            }
            (Some(_), None) => "{prefix:>12} {wide_bar} {human_pos}/{human_len} ops, {per_sec}, eta {eta}",
            (None, _) => "{prefix:>12} {spinner} {human_pos} ops, {per_sec}, {elapsed}",
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style);
        }
        bar.set_prefix(workload);
        if let Some(limit) = deadline {
            bar.set_message(format!("stops at {} s", limit.as_secs()));
        }
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("bench-progress".into())
            .spawn(move || {
                let start = Instant::now();
                let mut shown = false;
                while !thread_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(REDRAW_INTERVAL);
                    if !shown && start.elapsed() >= SHOW_AFTER {
                        bar.set_draw_target(ProgressDrawTarget::stderr());
                        shown = true;
                    }
                    bar.set_position(OPS_DONE.load(Ordering::Relaxed));
                }
                bar.finish_and_clear();
            })
            .ok();
        Bar { stop, thread }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
