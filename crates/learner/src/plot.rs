//! PNG line plots through `plotters` (bitmap backend, embedded Ubuntu font), encoded with
//! `image` and written atomically.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use crate::error::{Error, Result};

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        );
    });
}

/// A line of a plot.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points `(x, y)`.
    pub points: Vec<(f64, f64)>,
}

/// A marked point (e.g. a learning-rate suggestion).
#[derive(Debug, Clone)]
pub struct Marker {
    /// Legend label.
    pub label: String,
    /// Position.
    pub x: f64,
    /// Position.
    pub y: f64,
}

/// What to draw.
#[derive(Debug, Clone)]
pub struct LinePlot {
    /// Title.
    pub title: String,
    /// x-axis label.
    pub x_label: String,
    /// y-axis label.
    pub y_label: String,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// The lines.
    pub series: Vec<Series>,
    /// Marked points.
    pub markers: Vec<Marker>,
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

impl LinePlot {
    /// Renders to an RGB image of `width × height`.
    ///
    /// # Errors
    /// [`Error::Plot`] naming `path` (used only in the message).
    pub fn render(&self, width: u32, height: u32, path: &Path) -> Result<image::RgbImage> {
        register_font();
        let err = |e: &dyn std::fmt::Display| Error::Plot {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let pts = self
            .series
            .iter()
            .flat_map(|s| s.points.iter())
            .chain(std::iter::empty())
            .filter(|(x, y)| x.is_finite() && y.is_finite() && (!self.log_x || *x > 0.0))
            .copied()
            .collect::<Vec<_>>();
        if pts.is_empty() {
            return Err(err(&"nothing to plot"));
        }
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for (x, y) in &pts {
            x0 = x0.min(*x);
            x1 = x1.max(*x);
            y0 = y0.min(*y);
            y1 = y1.max(*y);
        }
        if x1 <= x0 {
            x1 = x0 + if self.log_x { x0 } else { 1.0 };
        }
        let pad = ((y1 - y0) * 0.05).max(1e-6);
        let (y0, y1) = (y0 - pad, y1 + pad);
        let mut buf = vec![255u8; (width * height * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| err(&e))?;
            macro_rules! draw {
                ($chart:expr) => {{
                    let mut chart = $chart;
                    let log_x = self.log_x;
                    let fmt_x = move |x: &f64| tick_label(*x, log_x);
                    chart
                        .configure_mesh()
                        .x_label_formatter(&fmt_x)
                        .x_desc(self.x_label.as_str())
                        .y_desc(self.y_label.as_str())
                        .draw()
                        .map_err(|e| err(&e))?;
                    for (i, s) in self.series.iter().enumerate() {
                        let c = COLORS[i % COLORS.len()];
                        chart
                            .draw_series(LineSeries::new(
                                s.points
                                    .iter()
                                    .copied()
                                    .filter(|(x, y)| x.is_finite() && y.is_finite()),
                                c.stroke_width(2),
                            ))
                            .map_err(|e| err(&e))?
                            .label(s.label.as_str())
                            .legend(move |(x, y)| {
                                PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                            });
                    }
                    for (i, m) in self.markers.iter().enumerate() {
                        let c = COLORS[(i + self.series.len()) % COLORS.len()];
                        chart
                            .draw_series(std::iter::once(Circle::new((m.x, m.y), 6, c.filled())))
                            .map_err(|e| err(&e))?
                            .label(m.label.as_str())
                            .legend(move |(x, y)| Circle::new((x + 8, y), 5, c.filled()));
                    }
                    chart
                        .configure_series_labels()
                        .background_style(WHITE.mix(0.8))
                        .border_style(BLACK)
                        .draw()
                        .map_err(|e| err(&e))?;
                }};
            }
            let mut builder = ChartBuilder::on(&root);
            builder
                .caption(self.title.as_str(), ("sans-serif", 22))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(60);
            if self.log_x {
                draw!(
                    builder
                        .build_cartesian_2d((x0..x1).log_scale(), y0..y1)
                        .map_err(|e| err(&e))?
                );
            } else {
                draw!(
                    builder
                        .build_cartesian_2d(x0..x1, y0..y1)
                        .map_err(|e| err(&e))?
                );
            }
            root.present().map_err(|e| err(&e))?;
        }
        image::RgbImage::from_raw(width, height, buf).ok_or_else(|| err(&"buffer size"))
    }

    /// Renders and writes a PNG atomically.
    ///
    /// # Errors
    /// [`Error::Plot`] or [`Error::Io`] naming `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let img = self.render(800, 500, path)?;
        let mut bytes = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| Error::Plot {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        crate::write_atomic(path, &bytes)?;
        Ok(())
    }
}

/// An axis tick as a person writes it: `1e-5`, `3e-2`, `2.5e-3` on a log axis (no
/// `9.999999999999999e-6`), and at most four significant digits on a linear one.
///
/// ```
/// use fastburn_learner::tick_label;
/// assert_eq!(tick_label(9.999999999999999e-6, true), "1e-5");
/// assert_eq!(tick_label(0.030000000000000002, true), "3e-2");
/// assert_eq!(tick_label(0.0025, true), "2.5e-3");
/// assert_eq!(tick_label(10.0, true), "1e1");
/// assert_eq!(tick_label(2.0000000000000004, false), "2");
/// assert_eq!(tick_label(0.30000000000000004, false), "0.3");
/// ```
pub fn tick_label(x: f64, log: bool) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    if log && x > 0.0 {
        let mut e = x.log10().floor();
        let mut m = ((x / 10f64.powf(e)) * 100.0).round() / 100.0;
        if m >= 10.0 {
            m /= 10.0;
            e += 1.0;
        }
        let m = format!("{m}");
        let m = m.trim_end_matches(".0");
        return format!("{m}e{}", e as i64);
    }
    let r = format!("{:.4}", x);
    let r = r.trim_end_matches('0').trim_end_matches('.');
    if r == "-0" { "0".into() } else { r.to_string() }
}
