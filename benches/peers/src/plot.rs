//! SVG plots of the medians: durable-put throughput and p99 latency against
//! writers, read throughput against readers.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;

use crate::BoxError;
use crate::engines::Kind;
use crate::workloads::Cell;

type Medians = BTreeMap<(String, usize, &'static str), Cell>;

const COLORS: [RGBColor; 6] = [
    RGBColor(200, 30, 30),
    RGBColor(30, 90, 200),
    RGBColor(40, 150, 60),
    RGBColor(120, 120, 120),
    RGBColor(200, 120, 0),
    RGBColor(130, 50, 160),
];

/// Writes `durable_put_throughput.svg`, `durable_put_p99.svg` and
/// `read_throughput.svg` into `out`.
pub fn write_all(out: &Path, kinds: &[Kind], medians: &Medians) -> Result<(), BoxError> {
    let series = |workload: &str, kind: Kind, value: fn(&Cell) -> f64| -> Vec<(f64, f64)> {
        medians
            .values()
            .filter(|c| c.workload == workload && c.engine == kind.name())
            .map(|c| (c.n as f64, value(c)))
            .collect()
    };
    let durable: Vec<(String, Vec<(f64, f64)>)> = kinds
        .iter()
        .map(|&k| (k.name().to_string(), series("durable put", k, |c| c.ops_per_sec)))
        .collect();
    line_plot(
        &out.join("durable_put_throughput.svg"),
        "Durable puts: throughput vs writers",
        "writers",
        "puts/s",
        &durable,
    )?;
    let p99: Vec<(String, Vec<(f64, f64)>)> = kinds
        .iter()
        .map(|&k| (k.name().to_string(), series("durable put", k, |c| c.p99_us)))
        .collect();
    line_plot(
        &out.join("durable_put_p99.svg"),
        "Durable puts: p99 latency vs writers",
        "writers",
        "p99 µs",
        &p99,
    )?;
    let mut reads = Vec::new();
    for &k in kinds.iter().filter(|&&k| k != Kind::Raw) {
        for (workload, label) in [
            ("readrandom (small cache)", "small cache"),
            ("readrandom (big cache)", "big cache"),
        ] {
            reads.push((
                format!("{} {label}", k.name()),
                series(workload, k, |c| c.ops_per_sec),
            ));
        }
    }
    line_plot(
        &out.join("read_throughput.svg"),
        "readrandom: throughput vs readers",
        "readers",
        "gets/s",
        &reads,
    )?;
    Ok(())
}

/// A log-log line plot of `series` (name, points).
fn line_plot(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<(), BoxError> {
    let points = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x_max, mut y_min, mut y_max) = (1.0f64, f64::MAX, 1.0f64);
    for &(x, y) in points {
        x_max = x_max.max(x);
        y_min = y_min.min(y.max(1e-3));
        y_max = y_max.max(y);
    }
    if y_min == f64::MAX {
        y_min = 1.0;
    }
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(
            (1.0..x_max * 1.5).log_scale(),
            (y_min / 1.5..y_max * 1.5).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}
