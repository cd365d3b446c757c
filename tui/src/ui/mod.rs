//! Rendering: a pure function of [`App`] to a frame, one module per screen.

pub mod chat;
pub mod config;
pub mod dashboard;
pub mod server;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Tabs, Wrap};
use ratatui::Frame;

use crate::app::{App, Tab, TABS};

pub fn draw(frame: &mut Frame, app: &App) {
    let [top, body, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let titles: Vec<Line> = TABS
        .iter()
        .enumerate()
        .map(|(i, (_, name))| Line::from(format!("F{} {name}", i + 1)))
        .collect();
    let selected = TABS.iter().position(|(t, _)| *t == app.tab).unwrap_or(0);
    let [tabs_area, status_area] =
        Layout::horizontal([Constraint::Min(0), Constraint::Length(18)]).areas(top);
    frame.render_widget(
        Tabs::new(titles)
            .select(selected)
            .highlight_style(Style::new().add_modifier(Modifier::REVERSED))
            .divider("|"),
        tabs_area,
    );
    let (label, color) = match (app.server.checked, app.server.up) {
        (false, _) => ("server: ...", Color::Gray),
        (true, true) => ("server: up", Color::Green),
        (true, false) => ("server: DOWN", Color::Red),
    };
    frame.render_widget(
        Paragraph::new(Span::styled(label, Style::new().fg(color))).right_aligned(),
        status_area,
    );
    match app.tab {
        Tab::Chat => chat::draw(frame, body, app),
        Tab::Dashboard => dashboard::draw(frame, body, app),
        Tab::Config => config::draw(frame, body, app),
        Tab::Server => server::draw(frame, body, app),
    }
    let hint = match app.tab {
        Tab::Chat => "Enter send  Alt+Enter newline  Esc stop  Ctrl+P model  PgUp/PgDn scroll  Tab next  Ctrl+C quit",
        Tab::Config => "Up/Down scroll  r reload  Tab/1-4 switch  ? help  q quit",
        _ => "Tab/1-4 switch  ? help  q quit",
    };
    frame.render_widget(
        Paragraph::new(hint).style(Style::new().fg(Color::DarkGray)),
        bottom,
    );
    if app.help {
        draw_help(frame, frame.area());
    }
}

const HELP: &[&str] = &[
    "Tabs: Tab / Shift+Tab, F1-F4; 1-4 outside the chat",
    "Quit: q outside the chat, Ctrl+C anywhere",
    "",
    "Chat",
    "  Enter send, Alt+Enter or Ctrl+J new line",
    "  Esc stop the answer, Ctrl+P next model",
    "  Up/Down, PgUp/PgDn scroll the history",
    "  ? (empty input) this help",
    "  /system TEXT  /temp T  /max N  /clear",
    "",
    "Dashboard: scraped from /metrics every interval",
    "Config: Up/Down scroll, r reload the file",
    "",
    "Any key closes this help.",
];

fn draw_help(frame: &mut Frame, area: Rect) {
    let w = area.width.min(56);
    let h = area.height.min(HELP.len() as u16 + 2);
    let popup = Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    };
    frame.render_widget(Clear, popup);
    let lines: Vec<Line> = HELP.iter().map(|l| Line::from(*l)).collect();
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(" Help ")),
        popup,
    );
}

/// Seconds as a short human duration: `850ms`, `1.24s`.
pub fn secs(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(s) if s < 1.0 => format!("{:.0}ms", s * 1000.0),
        Some(s) => format!("{s:.2}s"),
    }
}
