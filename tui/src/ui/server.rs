//! The Server screen: health, version, served models and how long the server has been up.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table};
use ratatui::Frame;

use crate::app::App;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let s = &app.server;
    let key = Style::new().fg(Color::DarkGray);
    let (state, color) = match (s.checked, s.up) {
        (false, _) => ("checking…", Color::Gray),
        (true, true) => ("UP", Color::Green),
        (true, false) => ("DOWN", Color::Red),
    };
    let uptime = match s.up_since {
        Some(since) => duration(app.now - since),
        None => "-".into(),
    };
    let max_len = s
        .models
        .first()
        .and_then(|m| m.1)
        .map(|n| n.to_string())
        .unwrap_or_else(|| "-".into());
    let mut lines = vec![
        Line::from(vec![
            Span::styled("URL          ", key),
            Span::raw(app.url.clone()),
        ]),
        Line::from(vec![
            Span::styled("Status       ", key),
            Span::styled(state, Style::new().fg(color).add_modifier(Modifier::BOLD)),
            Span::raw(format!(
                "  /health: {}",
                if s.health.is_empty() { "-" } else { &s.health }
            )),
        ]),
        Line::from(vec![
            Span::styled("Version      ", key),
            Span::raw(s.version.clone().unwrap_or_else(|| "-".into())),
        ]),
        Line::from(vec![Span::styled("Max len      ", key), Span::raw(max_len)]),
        Line::from(vec![
            Span::styled("Up for       ", key),
            Span::raw(uptime),
            Span::styled("  (as seen by this TUI)", key),
        ]),
    ];
    if let Some(e) = &s.last_error {
        lines.push(Line::styled(
            format!("Last error   {e}"),
            Style::new().fg(Color::Red),
        ));
    }
    let n = lines.len() as u16 + 2;
    let [info, models] =
        ratatui::layout::Layout::vertical([Constraint::Length(n), Constraint::Min(3)]).areas(area);
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(" Server ")),
        info,
    );
    let rows = s.models.iter().map(|(id, len)| {
        Row::new(vec![
            id.clone(),
            len.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
        ])
    });
    frame.render_widget(
        Table::new(rows, [Constraint::Min(20), Constraint::Length(14)])
            .header(Row::new(vec!["model", "max_model_len"]).style(key))
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(" Served models (/v1/models) "),
            ),
        models,
    );
}

pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
    }
}
