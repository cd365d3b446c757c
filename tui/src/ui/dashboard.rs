//! The Dashboard screen: load gauges, throughput charts (with gaps where scrapes failed),
//! latency quantiles and finished requests by reason.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Block, Borders, Chart, Dataset, Gauge, GraphType, Paragraph, Row, Table,
};
use ratatui::Frame;

use crate::app::{App, WINDOW_SECS};
use crate::metrics_math::Series;

use super::secs;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let d = &app.dash;
    let [top, charts, bottom, status] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Min(6),
        Constraint::Length(6),
        Constraint::Length(1),
    ])
    .areas(area);

    let [counts, kv] =
        Layout::horizontal([Constraint::Percentage(65), Constraint::Percentage(35)]).areas(top);
    let s = d.latest.clone().unwrap_or_default();
    let hit = if s.prefix_queries > 0.0 {
        format!("{:.1}%", 100.0 * s.prefix_hits / s.prefix_queries)
    } else {
        "-".into()
    };
    let key = Style::new().fg(Color::DarkGray);
    let known = d.latest.is_some();
    let num = |v: f64| if known { format!("{v:.0}") } else { "-".into() };
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled("running ", key),
            Span::styled(num(s.running), Style::new().add_modifier(Modifier::BOLD)),
            Span::styled("  waiting ", key),
            Span::styled(num(s.waiting), Style::new().add_modifier(Modifier::BOLD)),
            Span::styled("  preempt ", key),
            Span::raw(num(s.preemptions)),
            Span::styled("  prefix hit ", key),
            Span::raw(hit),
        ]))
        .block(Block::default().borders(Borders::ALL).title(" Requests ")),
        counts,
    );
    let usage = s.kv_cache_usage.clamp(0.0, 1.0);
    let kv_color = if usage > 0.9 {
        Color::Red
    } else if usage > 0.7 {
        Color::Yellow
    } else {
        Color::Green
    };
    frame.render_widget(
        Gauge::default()
            .block(Block::default().borders(Borders::ALL).title(" KV cache "))
            .gauge_style(Style::new().fg(kv_color))
            .ratio(usage)
            .label(if known {
                format!("{:.1}%", usage * 100.0)
            } else {
                "-".into()
            }),
        kv,
    );

    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(charts);
    chart(
        frame,
        left,
        app,
        &d.prompt_tps,
        "Prompt tokens/s",
        Color::Cyan,
    );
    chart(
        frame,
        right,
        app,
        &d.gen_tps,
        "Generation tokens/s",
        Color::Magenta,
    );

    let [lat, reasons] =
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(bottom);
    let rows = ["TTFT", "Inter-token", "End-to-end"]
        .iter()
        .zip(&d.latency)
        .map(|(name, q)| Row::new(vec![name.to_string(), secs(q[0]), secs(q[1]), secs(q[2])]));
    let title = if d.latency_recent {
        " Latency (last 1m) "
    } else {
        " Latency (since start) "
    };
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(12),
                Constraint::Length(8),
                Constraint::Length(8),
                Constraint::Length(8),
            ],
        )
        .header(Row::new(vec!["", "p50", "p90", "p99"]).style(key))
        .block(Block::default().borders(Borders::ALL).title(title)),
        lat,
    );
    let total = s.success.values().fold(0.0, |a, b| a + b);
    let mut lines: Vec<Line> = s
        .success
        .iter()
        .filter(|(_, n)| **n > 0.0)
        .map(|(reason, n)| {
            Line::from(format!(
                "{reason:<8} {n:>7.0} {:>5.1}%",
                100.0 * n / total.max(1.0)
            ))
        })
        .collect();
    if lines.is_empty() {
        lines.push(Line::styled("none yet", key));
    }
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(format!(" Finished: {total:.0} ")),
        ),
        reasons,
    );

    let line = match (&d.last_error, d.last_ok) {
        (Some((te, e)), ok) if ok.is_none_or(|ok| *te > ok) => Line::styled(
            format!(
                "scrape failing since {:.0}s: {e}",
                app.now - ok.unwrap_or(0.0).min(*te)
            ),
            Style::new().fg(Color::Red),
        ),
        (Some((te, e)), _) => {
            Line::styled(format!("last error {:.0}s ago: {e}", app.now - te), key)
        }
        (None, Some(_)) => Line::styled(
            format!(
                "scraping {}/metrics every {}s",
                server_root(&app.url),
                app.interval
            ),
            key,
        ),
        (None, None) => Line::styled("waiting for the first scrape…", key),
    };
    frame.render_widget(Paragraph::new(line), status);
}

fn server_root(url: &str) -> &str {
    url.trim_end_matches('/').trim_end_matches("/v1")
}

fn chart(frame: &mut Frame, area: Rect, app: &App, series: &Series, title: &str, color: Color) {
    let first = series.points.first().map(|p| p.0).unwrap_or(app.now);
    let span = (app.now - first).clamp(60.0, WINDOW_SECS);
    let segments: Vec<Vec<(f64, f64)>> = series
        .segments()
        .into_iter()
        .map(|seg| seg.into_iter().map(|(t, v)| (t - app.now, v)).collect())
        .collect();
    let datasets: Vec<Dataset> = segments
        .iter()
        .map(|seg| {
            Dataset::default()
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(Style::new().fg(color))
                .data(seg)
        })
        .collect();
    let top = (series.max() * 1.2).max(1.0);
    let now_label = series
        .last()
        .map(|v| format!("{v:.1}"))
        .unwrap_or_else(|| "-".into());
    let chart = Chart::new(datasets)
        .block(
            Block::default()
                .borders(Borders::ALL)
                .title(format!(" {title}: {now_label} ")),
        )
        .x_axis(
            Axis::default()
                .bounds([-span, 0.0])
                .labels([format!("-{:.0}s", span), "now".to_string()]),
        )
        .y_axis(
            Axis::default()
                .bounds([0.0, top])
                .labels(["0".to_string(), format!("{top:.0}")]),
        );
    frame.render_widget(chart, area);
}
