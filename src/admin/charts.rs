//! Charts drawn on the server as SVG: no scripts, no CDN. This module only computes
//! geometry and labels; `templates/charts.html` turns them into SVG elements, so every
//! label passes through the template's escaping like any other text on the page.

use serde::Serialize;

/// Colours for the actions, from the Okabe–Ito palette (told apart with colour-blindness).
pub const ACTIONS: [(&str, &str); 5] = [
    ("allow", "#0072B2"),
    ("monitor", "#009E73"),
    ("coach", "#E69F00"),
    ("block", "#D55E00"),
    ("none", "#8C8C8C"),
];

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 40.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 28.0;

#[derive(Debug, Serialize)]
pub struct Tick {
    pub y: f64,
    pub label: String,
}

#[derive(Debug, Serialize)]
pub struct XLabel {
    pub x: f64,
    pub text: String,
}

#[derive(Debug, Serialize)]
pub struct Segment {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    pub color: &'static str,
    pub title: String,
}

#[derive(Debug, Serialize)]
pub struct Legend {
    pub label: String,
    pub color: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub label: String,
    pub values: Vec<u64>,
    pub total: u64,
}

/// Bars over time, each split by series (stacked).
#[derive(Debug, Serialize)]
pub struct Stacked {
    pub id: String,
    pub title: String,
    pub desc: String,
    pub width: f64,
    pub height: f64,
    pub left: f64,
    pub right: f64,
    pub top: f64,
    pub bottom: f64,
    pub y_ticks: Vec<Tick>,
    pub segments: Vec<Segment>,
    pub x_labels: Vec<XLabel>,
    pub legend: Vec<Legend>,
    /// The same numbers as a table, for screen readers and for copying.
    pub series: Vec<String>,
    pub rows: Vec<Row>,
    pub empty: bool,
}

/// A step of 1, 2 or 5 × 10ⁿ so that about four steps cover `max`.
fn nice_step(max: u64) -> u64 {
    let target = max.div_ceil(4).max(1);
    let mut p = 1u64;
    loop {
        for m in [1, 2, 5] {
            let s = p.saturating_mul(m);
            if s >= target {
                return s;
            }
        }
        if p > u64::MAX / 10 {
            return u64::MAX;
        }
        p *= 10;
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// `labels[i]` names bucket `i`; `counts[i][s]` is series `s` in bucket `i`; `series` gives
/// each series its name and colour. Every `label_every`-th bucket is labelled on the axis.
pub fn stacked(
    id: &str,
    title: &str,
    labels: &[String],
    series: &[(&str, &'static str)],
    counts: &[Vec<u64>],
    label_every: usize,
) -> Stacked {
    let totals: Vec<u64> = counts.iter().map(|c| c.iter().sum()).collect();
    let max = totals.iter().copied().max().unwrap_or(0);
    let step = nice_step(max);
    let top_value = max.div_ceil(step).max(1).saturating_mul(step);
    let plot_h = HEIGHT - TOP - BOTTOM;
    let plot_w = WIDTH - LEFT - RIGHT;
    let scale = |v: u64| v as f64 / top_value as f64 * plot_h;
    let base = HEIGHT - BOTTOM;

    let mut y_ticks = Vec::new();
    let mut v = 0u64;
    while v <= top_value {
        y_ticks.push(Tick {
            y: round1(base - scale(v)),
            label: v.to_string(),
        });
        match v.checked_add(step) {
            Some(n) => v = n,
            None => break,
        }
    }

    let n = labels.len().max(1);
    let slot = plot_w / n as f64;
    let bar_w = round1((slot * 0.8).max(1.0));
    let mut segments = Vec::new();
    let mut x_labels = Vec::new();
    for (i, label) in labels.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
        let mut y = base;
        for (s, (name, color)) in series.iter().enumerate() {
            let c = counts.get(i).and_then(|c| c.get(s)).copied().unwrap_or(0);
            if c == 0 {
                continue;
            }
            let h = scale(c);
            y -= h;
            segments.push(Segment {
                x: round1(x),
                y: round1(y),
                w: bar_w,
                h: round1(h.max(0.5)),
                color,
                title: format!("{label}: {name} {c}"),
            });
        }
        if label_every > 0 && i % label_every == 0 {
            x_labels.push(XLabel {
                x: round1(LEFT + slot * i as f64 + slot / 2.0),
                text: label.clone(),
            });
        }
    }

    let rows = labels
        .iter()
        .enumerate()
        .map(|(i, label)| Row {
            label: label.clone(),
            values: (0..series.len())
                .map(|s| counts.get(i).and_then(|c| c.get(s)).copied().unwrap_or(0))
                .collect(),
            total: totals.get(i).copied().unwrap_or(0),
        })
        .collect();
    Stacked {
        id: id.to_string(),
        title: title.to_string(),
        desc: format!(
            "{} bars, one per period; the tallest is {max}.",
            labels.len()
        ),
        width: WIDTH,
        height: HEIGHT,
        left: LEFT,
        right: WIDTH - RIGHT,
        top: TOP,
        bottom: base,
        y_ticks,
        segments,
        x_labels,
        legend: series
            .iter()
            .map(|(label, color)| Legend {
                label: label.to_string(),
                color,
            })
            .collect(),
        series: series.iter().map(|(s, _)| s.to_string()).collect(),
        rows,
        empty: max == 0,
    }
}

#[derive(Debug, Serialize)]
pub struct HRow {
    pub label: String,
    /// Where the row's text sits.
    pub text_y: f64,
    pub bar_y: f64,
    pub bar_w: f64,
    pub value: String,
    pub value_x: f64,
}

/// Horizontal bars, one per item, largest first.
#[derive(Debug, Serialize)]
pub struct HBars {
    pub id: String,
    pub title: String,
    pub desc: String,
    pub width: f64,
    pub height: f64,
    pub bar_x: f64,
    pub bar_h: f64,
    pub color: &'static str,
    pub rows: Vec<HRow>,
    pub empty: bool,
}

const ROW_H: f64 = 26.0;
const LABEL_W: f64 = 150.0;
const VALUE_W: f64 = 80.0;
/// Items shown at most; the rest are summed into "others".
pub const MAX_BARS: usize = 12;

pub fn hbars(
    id: &str,
    title: &str,
    items: &[(String, u64)],
    color: &'static str,
    format: fn(u64) -> String,
) -> HBars {
    let mut items: Vec<(String, u64)> = items.to_vec();
    items.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    if items.len() > MAX_BARS {
        let rest: u64 = items[MAX_BARS - 1..].iter().map(|(_, v)| *v).sum();
        items.truncate(MAX_BARS - 1);
        items.push(("(others)".to_string(), rest));
    }
    let max = items.iter().map(|(_, v)| *v).max().unwrap_or(0);
    let bar_room = WIDTH - LABEL_W - VALUE_W;
    let rows: Vec<HRow> = items
        .iter()
        .enumerate()
        .map(|(i, (label, v))| {
            let w = if max == 0 {
                0.0
            } else {
                (*v as f64 / max as f64 * bar_room).max(if *v > 0 { 1.0 } else { 0.0 })
            };
            let top = 4.0 + ROW_H * i as f64;
            let short: String = if label.chars().count() > 20 {
                let mut s: String = label.chars().take(19).collect();
                s.push('…');
                s
            } else {
                label.clone()
            };
            HRow {
                label: short,
                text_y: round1(top + ROW_H * 0.62),
                bar_y: round1(top + 3.0),
                bar_w: round1(w),
                value: format(*v),
                value_x: round1(LABEL_W + w + 6.0),
            }
        })
        .collect();
    HBars {
        id: id.to_string(),
        title: title.to_string(),
        desc: format!("{} bars, largest first.", rows.len()),
        width: WIDTH,
        height: round1(8.0 + ROW_H * rows.len() as f64),
        bar_x: LABEL_W,
        bar_h: ROW_H - 6.0,
        color,
        empty: max == 0,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round() {
        assert_eq!(nice_step(0), 1);
        assert_eq!(nice_step(7), 2);
        assert_eq!(nice_step(40), 10);
        assert_eq!(nice_step(41), 20);
        assert_eq!(nice_step(1999), 500);
    }

    #[test]
    fn stacked_bars_fit_the_plot() {
        let labels: Vec<String> = (0..24).map(|h| format!("{h:02}:00")).collect();
        let mut counts = vec![vec![0u64; 2]; 24];
        counts[3] = vec![5, 2];
        counts[10] = vec![0, 9];
        let c = stacked(
            "t",
            "Decisions",
            &labels,
            &[("allow", "#000"), ("coach", "#111")],
            &counts,
            6,
        );
        assert!(!c.empty);
        assert_eq!(c.segments.len(), 3);
        for s in &c.segments {
            assert!(s.y >= c.top - 0.1 && s.y + s.h <= c.bottom + 0.6, "{s:?}");
            assert!(s.x >= c.left && s.x + s.w <= c.right + 0.1, "{s:?}");
        }
        assert_eq!(c.x_labels.len(), 4);
        assert_eq!(c.y_ticks.last().unwrap().label, "10");
        assert_eq!(c.rows[3].total, 7);
        let empty = stacked("e", "E", &labels, &[("allow", "#000")], &[], 6);
        assert!(empty.empty);
    }

    #[test]
    fn horizontal_bars_rank_and_fold_the_tail() {
        let items: Vec<(String, u64)> = (0..20).map(|i| (format!("c{i}"), i as u64)).collect();
        let c = hbars("h", "Requests", &items, "#000", |v| v.to_string());
        assert_eq!(c.rows.len(), MAX_BARS);
        assert_eq!(c.rows[0].label, "c19");
        assert_eq!(c.rows.last().unwrap().label, "(others)");
        assert!(c
            .rows
            .iter()
            .all(|r| r.bar_w <= WIDTH - LABEL_W - VALUE_W + 0.1));
    }
}
