//! `replay --plot`: an SVG of one series with its expected band, scores and alerts.
//!
//! Top panel: the values (blue), the detectors' expected value (grey line) and normal band
//! (shaded), firing episodes (red background; anomaly) and absences (orange background).
//! Bottom panel: the anomaly score per sample with the rule's threshold (dashed).
//! The SVG is written by hand; `.png` output rasterises it with resvg (text needs a system
//! font such as DejaVu Sans; without one the plot is drawn without its labels).

use std::fmt::Write as _;

use crate::alert::{Alert, AlertKind, AlertStatus};
use crate::engine::Outcome;
use crate::model::Model;
use crate::time::format_rfc3339;

#[derive(Default)]
pub struct PlotData {
    /// (dense index, series id, display name) of the plotted series.
    pub series: Option<(u32, u64, String)>,
    /// (ts, value, expected, lower, upper, score); NaN where not scored.
    points: Vec<[f64; 6]>,
    /// (kind, start, end) of each alert episode; end is NaN while still firing.
    episodes: Vec<(AlertKind, f64, f64)>,
    /// Under a false-alarm budget: the per-sample alert probability, and the band the next
    /// sample will be judged against. The score panel then shows the surprise, -log10 p / 16.
    pub budget_p: Option<f64>,
    pub next_band: Option<(f64, f64)>,
}

/// The surprise of a score `1 - p` on [0, 1]: -log10 p / 16.
fn surprise(score: f64) -> f64 {
    (-(1.0 - score).max(1e-16).log10() / 16.0).clamp(0.0, 1.0)
}

impl PlotData {
    pub fn push(&mut self, ts: i64, value: f64, outcome: &Outcome) {
        let (e, mut l, mut u, mut s) = match outcome {
            Outcome::Accepted(Some((v, _))) => (v.expected, v.lower, v.upper, v.score),
            _ => (f64::NAN, f64::NAN, f64::NAN, 0.0),
        };
        if self.budget_p.is_some() {
            s = surprise(s);
            if let Some((lo, hi)) = self.next_band.filter(|_| !e.is_nan()) {
                (l, u) = (lo, hi);
            }
        }
        self.points.push([ts as f64, value, e, l, u, s]);
    }

    pub fn alert(&mut self, a: &Alert) {
        if self
            .series
            .as_ref()
            .is_none_or(|(_, id, _)| *id != a.series)
        {
            return;
        }
        match a.state {
            AlertStatus::Firing => self.episodes.push((a.kind, a.event_time as f64, f64::NAN)),
            AlertStatus::Resolved => {
                if let Some(ep) = self
                    .episodes
                    .iter_mut()
                    .rev()
                    .find(|e| e.0 == a.kind && e.2.is_nan())
                {
                    ep.2 = a.event_time as f64;
                }
            }
        }
    }
}

const W: f64 = 1200.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP_H: f64 = 330.0;
const SCORE_Y: f64 = 380.0;
const SCORE_H: f64 = 90.0;
const H: f64 = 520.0;

/// Renders the plot as an SVG document.
pub fn render_svg(data: &PlotData, name: &str, model: &Model) -> String {
    let pts = &data.points;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{LEFT}" y="20" font-size="14" font-weight="bold">{}</text>
"#,
        escape(name)
    );
    if pts.is_empty() {
        svg.push_str("</svg>\n");
        return svg;
    }
    let sc = Scales::new(pts);
    episodes(&mut svg, &data.episodes, &sc);
    band(&mut svg, pts, &sc);
    polyline(&mut svg, pts, 2, "#868e96", 1.0, &sc, Scales::y);
    polyline(&mut svg, pts, 1, "#1864ab", 1.2, &sc, Scales::y);
    polyline(&mut svg, pts, 5, "#c92a2a", 1.0, &sc, Scales::ys);
    frame(&mut svg, data, model, &sc);
    svg
}

/// The plot's axes: time from `t0` to `t1` across, values from `ymin` to `ymax` up the top
/// panel, scores from 0 to 1 up the bottom panel.
struct Scales {
    t0: f64,
    t1: f64,
    ymin: f64,
    ymax: f64,
}

impl Scales {
    /// Time spans the points; values span the values, plus the band where it stays within 3×
    /// the value range. `pts` is not empty.
    fn new(pts: &[[f64; 6]]) -> Scales {
        let t0 = pts[0][0];
        let t1 = pts[pts.len() - 1][0].max(t0 + 1.0);
        let finite = |i: usize| pts.iter().map(move |p| p[i]).filter(|v| v.is_finite());
        let (vmin, vmax) = finite(1).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
        let span = (vmax - vmin).max(1e-9);
        let (lo_lim, hi_lim) = (vmin - span, vmax + span);
        let band_lo = finite(3).filter(|v| *v >= lo_lim).fold(vmin, f64::min);
        let band_hi = finite(4).filter(|v| *v <= hi_lim).fold(vmax, f64::max);
        let (ymin, ymax) = (band_lo, band_hi.max(band_lo + 1e-9));
        Scales { t0, t1, ymin, ymax }
    }

    fn x(&self, t: f64) -> f64 {
        LEFT + (t - self.t0) / (self.t1 - self.t0) * (W - LEFT - RIGHT)
    }

    fn y(&self, v: f64) -> f64 {
        30.0 + (1.0 - (v.clamp(self.ymin, self.ymax) - self.ymin) / (self.ymax - self.ymin)) * TOP_H
    }

    fn ys(&self, s: f64) -> f64 {
        SCORE_Y + (1.0 - s.clamp(0.0, 1.0)) * SCORE_H
    }
}

/// Alert episodes as background spans.
fn episodes(svg: &mut String, episodes: &[(AlertKind, f64, f64)], sc: &Scales) {
    for &(kind, start, end) in episodes {
        let end = if end.is_nan() { sc.t1 } else { end };
        let color = if kind == AlertKind::Absence {
            "#ffd8a8"
        } else {
            "#ffc9c9"
        };
        let (x0, x1) = (sc.x(start), sc.x(end).max(sc.x(start) + 2.0));
        let _ = writeln!(
            svg,
            r#"<rect x="{x0:.1}" y="30" width="{:.1}" height="{:.1}" fill="{color}"/>"#,
            x1 - x0,
            SCORE_Y + SCORE_H - 30.0
        );
    }
}

/// The normal band, drawn as one polygon per contiguous scored run.
fn band(svg: &mut String, pts: &[[f64; 6]], sc: &Scales) {
    let mut run: Vec<&[f64; 6]> = Vec::new();
    let flush = |run: &mut Vec<&[f64; 6]>, svg: &mut String| {
        if run.len() > 1 {
            let mut d = String::new();
            for p in run.iter() {
                let _ = write!(d, "{:.1},{:.1} ", sc.x(p[0]), sc.y(p[4]));
            }
            for p in run.iter().rev() {
                let _ = write!(d, "{:.1},{:.1} ", sc.x(p[0]), sc.y(p[3]));
            }
            let _ = writeln!(
                svg,
                r##"<polygon points="{d}" fill="#d0ebff" stroke="none"/>"##
            );
        }
        run.clear();
    };
    for p in pts {
        if p[3].is_finite() && p[4].is_finite() {
            run.push(p);
        } else {
            flush(&mut run, svg);
        }
    }
    flush(&mut run, svg);
}

/// Column `col` of the points as a line, placed vertically by `yf`.
fn polyline(
    svg: &mut String,
    pts: &[[f64; 6]],
    col: usize,
    color: &str,
    width: f64,
    sc: &Scales,
    yf: fn(&Scales, f64) -> f64,
) {
    let mut d = String::new();
    for p in pts.iter().filter(|p| p[col].is_finite()) {
        let _ = write!(d, "{:.1},{:.1} ", sc.x(p[0]), yf(sc, p[col]));
    }
    let _ = writeln!(
        svg,
        r#"<polyline points="{d}" fill="none" stroke="{color}" stroke-width="{width}"/>"#
    );
}

/// The threshold line, the panels' frames, the axis labels and the legend; closes the SVG.
fn frame(svg: &mut String, data: &PlotData, model: &Model, sc: &Scales) {
    let threshold = match data.budget_p {
        Some(p) => surprise(1.0 - p),
        None => model.rules.first().map_or(1.0, |r| r.threshold),
    };
    let score_label = if data.budget_p.is_some() {
        "surprise -log10(p)/16 (red, dashed line: the alert level)"
    } else {
        "score (red, dashed line: threshold)"
    };
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#495057" stroke-dasharray="4 3"/>
<rect x="{LEFT}" y="30" width="{:.1}" height="{TOP_H}" fill="none" stroke="#adb5bd"/>
<rect x="{LEFT}" y="{SCORE_Y}" width="{:.1}" height="{SCORE_H}" fill="none" stroke="#adb5bd"/>
<text x="{:.1}" y="42" text-anchor="end">{}</text>
<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>
<text x="{:.1}" y="{:.1}" text-anchor="end">score</text>
<text x="{LEFT}" y="{:.1}">{}</text>
<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>
<text x="{:.1}" y="{:.1}">value (blue), expected (grey), normal band (light blue), anomaly episodes (red), absences (orange); {score_label}</text>
</svg>
"##,
        W - RIGHT,
        sc.ys(threshold),
        sc.ys(threshold),
        W - LEFT - RIGHT,
        W - LEFT - RIGHT,
        LEFT - 4.0,
        fmt_num(sc.ymax),
        LEFT - 4.0,
        30.0 + TOP_H,
        fmt_num(sc.ymin),
        LEFT - 4.0,
        SCORE_Y + SCORE_H / 2.0,
        SCORE_Y + SCORE_H + 16.0,
        format_rfc3339(sc.t0 as i64),
        W - RIGHT,
        SCORE_Y + SCORE_H + 16.0,
        format_rfc3339(sc.t1 as i64),
        LEFT,
        H - 6.0,
    );
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 1e5 || (v != 0.0 && v.abs() < 1e-2) {
        format!("{v:.3e}")
    } else {
        format!("{v:.2}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Why a plot could not be rasterised to PNG.
#[derive(Debug, thiserror::Error)]
pub enum PngError {
    #[error("cannot render the plot: {0}")]
    Render(#[source] resvg::usvg::Error),
    #[error("cannot render the plot: empty image")]
    Empty,
    #[error("cannot encode the plot as PNG: {0}")]
    Encode(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Rasterises an SVG document to PNG bytes.
pub fn svg_to_png(svg: &str) -> Result<Vec<u8>, PngError> {
    use resvg::{tiny_skia, usvg};
    let mut opt = usvg::Options::default();
    let db = opt.fontdb_mut();
    db.load_system_fonts();
    // map the SVG's generic `sans-serif` to a sans family that is installed (DejaVu Sans on
    // Debian), else to any installed family
    let family = {
        let families: Vec<String> = db
            .faces()
            .filter_map(|f| f.families.first().map(|(n, _)| n.clone()))
            .collect();
        families
            .iter()
            .find(|n| n.as_str() == "DejaVu Sans")
            .or_else(|| families.iter().find(|n| n.contains("Sans")))
            .or_else(|| families.first())
            .cloned()
    };
    if let Some(family) = family {
        db.set_sans_serif_family(family.clone());
        opt.font_family = family;
    }
    let tree = usvg::Tree::from_str(svg, &opt).map_err(PngError::Render)?;
    let size = tree.size().to_int_size();
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height()).ok_or(PngError::Empty)?;
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap
        .encode_png()
        .map_err(|e| PngError::Encode(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_that_is_no_svg_cannot_be_rendered() {
        let e = svg_to_png("not an svg").unwrap_err();
        assert!(matches!(e, PngError::Render(_)));
        assert!(e.to_string().starts_with("cannot render the plot: "), "{e}");
    }
}
