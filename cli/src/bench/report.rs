//! The bench's results: a table with ratios against native for people, JSON for
//! machines, and an SVG chart.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context as _, Result};
use plotters::prelude::*;
use serde::Serialize;

/// One figure: what was measured on which server.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Figure {
    /// The scenario: `ping-pong 64 B x 1`, `stream 64 KiB`, `start-up`, `idle`.
    pub scenario: String,
    /// The server (or, for start-up, the runtime).
    pub server: String,
    /// The main figure, in `unit`.
    pub value: f64,
    /// `round trips/s`, `GB/s`, `ms`, `KiB/conn`.
    pub unit: &'static str,
    /// Whether more is better (throughput) or less (latency, time, memory).
    pub higher_is_better: bool,
    /// Round-trip latency percentiles, for ping-pong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_us: Option<f64>,
}

/// Everything one run measured, and how.
#[derive(Debug, Serialize)]
pub(super) struct Report {
    /// The machine: logical cores.
    pub cores: usize,
    /// The settings the run used.
    pub settings: serde_json::Value,
    /// Every figure.
    pub figures: Vec<Figure>,
}

impl Report {
    /// The baseline a figure is compared with: native (a thread per connection) for
    /// servers, `wasmtime run` for start-up.
    fn baseline(figure: &Figure) -> &'static str {
        if figure.scenario == "start-up" {
            "wasmtime run"
        } else {
            "native"
        }
    }

    /// The figure as a multiple of its baseline's, oriented so above 1 is better.
    pub fn ratio(&self, figure: &Figure) -> Option<f64> {
        self.ratio_to(figure, Self::baseline(figure))
    }

    /// The figure as a multiple of server `base`'s in the same scenario, oriented so
    /// above 1 is better.
    pub fn ratio_to(&self, figure: &Figure, base: &str) -> Option<f64> {
        let base = self
            .figures
            .iter()
            .find(|other| other.scenario == figure.scenario && other.server == base)?;
        (base.value > 0.0 && figure.value > 0.0).then(|| {
            if figure.higher_is_better {
                figure.value / base.value
            } else {
                base.value / figure.value
            }
        })
    }

    /// The table: one row per figure, its ratio against the baseline and against the
    /// native event loop (`native-loop`; 1.00× is even, above is better).
    pub fn table(&self) -> String {
        // Columns as wide as their longest entry: scenario and server names vary.
        let width = |column: fn(&Figure) -> usize, title: &str| {
            self.figures
                .iter()
                .map(column)
                .chain([title.chars().count()])
                .max()
                .unwrap_or(0)
        };
        let scenario = width(|figure| figure.scenario.chars().count(), "scenario");
        let server = width(|figure| figure.server.chars().count(), "server");
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<scenario$} {:<server$} {:>14} {:<12} {:>9} {:>9} {:>8} {:>8}",
            "scenario", "server", "value", "unit", "p50 µs", "p99 µs", "ratio", "vs loop"
        );
        for figure in &self.figures {
            let micros = |value: Option<f64>| value.map_or_else(String::new, |v| format!("{v:.1}"));
            let times = |ratio: Option<f64>| ratio.map_or_else(String::new, |r| format!("{r:.2}×"));
            let _ = writeln!(
                out,
                "{:<scenario$} {:<server$} {:>14} {:<12} {:>9} {:>9} {:>8} {:>8}",
                figure.scenario,
                figure.server,
                format_value(figure.value),
                figure.unit,
                micros(figure.p50_us),
                micros(figure.p99_us),
                times(self.ratio(figure)),
                times(self.ratio_to(figure, "native-loop")),
            );
        }
        out
    }

    /// Writes the report as JSON.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(path, json + "\n").with_context(|| format!("write {}", path.display()))
    }

    /// Draws each figure's ratio as grouped bars, one group per scenario, into an SVG
    /// file: one panel against the thread-per-connection native server (start-up:
    /// against `wasmtime run`), one against the native event loop. Every ratio is
    /// oriented so a taller bar is better, lower-is-better figures included.
    pub fn write_chart(&self, path: &Path) -> Result<()> {
        type Ratio<'a> = Box<dyn Fn(&Figure) -> Option<f64> + 'a>;
        let panels: Vec<(&str, Ratio<'_>)> = vec![
            (
                "× native, a thread per connection (start-up: × wasmtime run)",
                Box::new(|figure: &Figure| self.ratio(figure)),
            ),
            (
                "× native-loop, one event loop",
                Box::new(|figure: &Figure| self.ratio_to(figure, "native-loop")),
            ),
        ];
        let panels: Vec<_> = panels
            .into_iter()
            .filter(|(_, ratio)| self.figures.iter().any(|figure| ratio(figure).is_some()))
            .collect();
        let servers: Vec<&str> = self.figures.iter().fold(Vec::new(), |mut servers, figure| {
            if !servers.contains(&figure.server.as_str()) {
                servers.push(&figure.server);
            }
            servers
        });
        let groups = self
            .figures
            .iter()
            .map(|figure| &figure.scenario)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        // The legend gets its own column right of the plots, so it covers no bar.
        const LEGEND: u32 = 190;
        const PANEL: u32 = 460;
        let width = 240 * groups.max(1) as u32 + 120 + LEGEND;
        let height = PANEL * panels.len().max(1) as u32;
        let root = SVGBackend::new(path, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let (plots, legend) = root.split_horizontally(width - LEGEND);
        for (area, (title, ratio)) in plots
            .split_evenly((panels.len().max(1), 1))
            .iter()
            .zip(&panels)
        {
            self.draw_panel(area, title, ratio, &servers)?;
        }
        for (series, server) in servers.iter().enumerate() {
            let colour = Palette99::pick(series).to_rgba();
            let y = 60 + 22 * i32::try_from(series).unwrap_or(i32::MAX / 32);
            legend
                .draw(&Rectangle::new([(8, y - 6), (20, y + 6)], colour.filled()))
                .map_err(plot_error)?;
            legend
                .draw(&Text::new(
                    (*server).to_owned(),
                    (26, y - 7),
                    ("sans-serif", 14),
                ))
                .map_err(plot_error)?;
        }
        root.present().map_err(plot_error)?;
        Ok(())
    }

    /// One panel: each figure `ratio` gives, grouped by scenario, coloured by its
    /// server's place in `servers`.
    fn draw_panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, plotters::coord::Shift>,
        title: &str,
        ratio: &dyn Fn(&Figure) -> Option<f64>,
        servers: &[&str],
    ) -> Result<()> {
        // Groups are the scenarios with a ratio to draw here.
        let mut scenarios: Vec<(&str, &str)> = Vec::new();
        for figure in self.figures.iter().filter(|figure| ratio(figure).is_some()) {
            if !scenarios.iter().any(|(name, _)| *name == figure.scenario) {
                scenarios.push((&figure.scenario, figure.unit));
            }
        }
        let bars: Vec<(usize, usize, f64)> = self
            .figures
            .iter()
            .filter_map(|figure| {
                let group = scenarios.iter().position(|(s, _)| *s == figure.scenario)?;
                let series = servers.iter().position(|s| *s == figure.server)?;
                Some((group, series, ratio(figure)?))
            })
            .collect();
        let top = bars.iter().map(|bar| bar.2).fold(1.2, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!(
                    "sockbox bench: {title} (taller is better), {} cores",
                    self.cores
                ),
                ("sans-serif", 18),
            )
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..scenarios.len().max(1) as f64, 0f64..top)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(scenarios.len() * 2 + 1)
            .x_label_formatter(&|x| {
                let index = x.floor() as usize;
                let centred = (x - x.floor() - 0.5).abs() < 0.01;
                match scenarios.get(index) {
                    // Each group says what its ratio is of.
                    Some((name, unit)) if centred => format!("{name} ({unit})"),
                    _ => String::new(),
                }
            })
            .y_desc("ratio")
            .draw()
            .map_err(plot_error)?;
        let slot = 0.8 / servers.len().max(1) as f64;
        for series in 0..servers.len() {
            let colour = Palette99::pick(series).to_rgba();
            let rects = bars
                .iter()
                .filter(|bar| bar.1 == series)
                .map(|&(group, _, ratio)| {
                    let left = group as f64 + 0.1 + slot * series as f64;
                    Rectangle::new([(left, 0.0), (left + slot * 0.9, ratio)], colour.filled())
                });
            chart.draw_series(rects).map_err(plot_error)?;
        }
        chart
            .draw_series(std::iter::once(PathElement::new(
                [(0.0, 1.0), (scenarios.len() as f64, 1.0)],
                BLACK.stroke_width(1),
            )))
            .map_err(plot_error)?;
        Ok(())
    }
}

fn plot_error(err: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("draw the chart: {err}")
}

/// A figure with three significant digits and thousands separators.
fn format_value(value: f64) -> String {
    if value >= 1000.0 {
        let whole = value.round() as u64;
        let digits = whole.to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}
