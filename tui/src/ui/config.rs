//! The Config screen: the problems `vllmd` would report for the `--config` file, then the
//! effective settings (defaults + file).

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, Wrap};
use ratatui::Frame;

use crate::app::App;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let c = &app.config;
    let Some(path) = &c.path else {
        frame.render_widget(
            Paragraph::new(vec![
                Line::raw("No config file: start with --config serve.yaml to check it here."),
                Line::raw(""),
                Line::raw("The same check runs without the UI: vllm config validate FILE"),
            ])
            .block(Block::default().borders(Borders::ALL).title(" Config ")),
            area,
        );
        return;
    };
    let mut lines: Vec<Line> = Vec::new();
    if let Some(e) = &c.read_error {
        lines.push(Line::styled(e.clone(), Style::new().fg(Color::Red)));
    } else if c.problems.is_empty() {
        lines.push(Line::styled(
            "valid: vllmd accepts this file",
            Style::new().fg(Color::Green).add_modifier(Modifier::BOLD),
        ));
    }
    for p in &c.problems {
        let at = p
            .line
            .map(|l| format!("line {l}"))
            .unwrap_or_else(|| "-".into());
        let key = p.key.clone().unwrap_or_default();
        let mut text = format!("{at:>8}  {key}: {}", p.message);
        if let Some(s) = &p.suggestion {
            text.push_str(&format!(" (did you mean `{s}`?)"));
        }
        lines.push(Line::styled(text, Style::new().fg(Color::Red)));
    }
    if let Some(w) = &c.no_effect {
        lines.push(Line::styled(
            format!("warning: {w}"),
            Style::new().fg(Color::Yellow),
        ));
    }
    let inner_w = area.width.saturating_sub(2).max(1) as usize;
    let wanted = lines
        .iter()
        .map(|l| l.width().div_ceil(inner_w).max(1) as u16)
        .sum::<u16>()
        + 2;
    // With no settings to show (the file does not load), the problems get all the room.
    let max_top = if c.settings.is_empty() {
        area.height.saturating_sub(3)
    } else {
        (area.height / 2).max(3)
    };
    let [top, table] =
        Layout::vertical([Constraint::Length(wanted.min(max_top)), Constraint::Min(3)]).areas(area);
    let title = format!(" {} - {} problem(s) ", path.display(), c.problems.len());
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(title)),
        top,
    );
    let key = Style::new().fg(Color::DarkGray);
    let rows = c
        .settings
        .iter()
        .skip(c.scroll as usize)
        .map(|(flag, value, source)| {
            let style = if *source == "default" {
                Style::new()
            } else {
                Style::new().fg(Color::Yellow)
            };
            Row::new(vec![flag.clone(), value.clone(), source.to_string()]).style(style)
        });
    let shown = if c.settings.is_empty() {
        " No effective settings: the file does not load ".to_string()
    } else {
        format!(
            " Effective settings ({}-{} of {}) ",
            (c.scroll as usize + 1).min(c.settings.len()),
            c.settings.len(),
            c.settings.len()
        )
    };
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Percentage(45),
                Constraint::Percentage(40),
                Constraint::Length(8),
            ],
        )
        .header(Row::new(vec!["flag", "value", "source"]).style(key))
        .block(Block::default().borders(Borders::ALL).title(shown)),
        table,
    );
}
