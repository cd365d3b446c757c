//! The Chat screen: settings line, history (scrolled from the bottom), input box.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

use crate::app::{App, Role};

use super::secs;

pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let c = &app.chat;
    let input_lines = c.input.split('\n').count().clamp(1, 6) as u16;
    let [settings, history, notice, input] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(input_lines + 2),
    ])
    .areas(area);

    let model = c
        .models
        .get(c.model)
        .map(String::as_str)
        .unwrap_or("(server default)");
    let system = if c.system_prompt.is_empty() {
        "none".to_string()
    } else {
        format!("{:?}", c.system_prompt)
    };
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled("model ", Style::new().fg(Color::DarkGray)),
            Span::styled(model.to_string(), Style::new().add_modifier(Modifier::BOLD)),
            Span::styled("  temp ", Style::new().fg(Color::DarkGray)),
            Span::raw(format!("{}", c.temperature)),
            Span::styled("  max ", Style::new().fg(Color::DarkGray)),
            Span::raw(c.max_tokens.to_string()),
            Span::styled("  system ", Style::new().fg(Color::DarkGray)),
            Span::raw(system),
        ])),
        settings,
    );

    let block = Block::default().borders(Borders::ALL);
    let inner = block.inner(history);
    let width = inner.width.max(1) as usize;
    let mut lines: Vec<Line> = Vec::new();
    if c.messages.is_empty() {
        lines.push(Line::styled(
            "Type a message and press Enter. ? for help.",
            Style::new().fg(Color::DarkGray),
        ));
    }
    for (i, m) in c.messages.iter().enumerate() {
        let (who, color) = match m.role {
            Role::User => ("you", Color::Cyan),
            Role::Assistant => ("model", Color::Green),
        };
        lines.push(Line::styled(
            format!("{who}:"),
            Style::new().fg(color).add_modifier(Modifier::BOLD),
        ));
        let streaming = c.streaming.is_some() && i + 1 == c.messages.len();
        let dim = Style::new()
            .fg(Color::DarkGray)
            .add_modifier(Modifier::ITALIC);
        for l in wrap(&m.reasoning, width)
            .into_iter()
            .filter(|_| !m.reasoning.is_empty())
        {
            lines.push(Line::styled(l, dim));
        }
        for (name, args) in &m.tool_calls {
            let frame = Style::new().fg(Color::Yellow);
            lines.push(Line::styled(format!("┌ tool call: {name}"), frame));
            for l in wrap(args, width.saturating_sub(2).max(1)) {
                lines.push(Line::from(vec![Span::styled("│ ", frame), Span::raw(l)]));
            }
            lines.push(Line::styled("└", frame));
        }
        let busy = !m.reasoning.is_empty() || !m.tool_calls.is_empty();
        let text = if streaming && m.text.is_empty() && !busy {
            "…"
        } else {
            m.text.as_str()
        };
        if !(text.is_empty() && m.error.is_some()) {
            for l in wrap(text, width) {
                lines.push(Line::raw(l));
            }
        }
        if let Some(e) = &m.error {
            for l in wrap(&format!("error: {e}"), width) {
                lines.push(Line::styled(l, Style::new().fg(Color::Red)));
            }
        }
        if let (Some(s), false, None) = (&m.stats, streaming, &m.error) {
            let mut stat = format!(
                "TTFT {}  {} tokens  {}",
                secs(s.ttft),
                s.tokens,
                s.tokens_per_s
                    .map(|r| format!("{r:.1} tok/s"))
                    .unwrap_or_else(|| "- tok/s".into())
            );
            if s.stopped {
                stat.push_str("  (stopped)");
            }
            lines.push(Line::styled(stat, Style::new().fg(Color::DarkGray)));
        }
    }
    let height = inner.height as usize;
    let max_scroll = lines.len().saturating_sub(height);
    let from_bottom = (c.scroll as usize).min(max_scroll);
    let top = max_scroll - from_bottom;
    let visible: Vec<Line> = lines.into_iter().skip(top).take(height).collect();
    let title = if from_bottom > 0 {
        format!(" History (scrolled up {from_bottom}) ")
    } else {
        " History ".to_string()
    };
    frame.render_widget(Paragraph::new(visible).block(block.title(title)), history);

    let note = match (&c.notice, c.streaming.is_some()) {
        (Some(n), _) => Span::styled(n.clone(), Style::new().fg(Color::Yellow)),
        (None, true) => Span::styled("streaming… Esc stops", Style::new().fg(Color::Yellow)),
        (None, false) => Span::raw(""),
    };
    frame.render_widget(Paragraph::new(note), notice);

    let input_block = Block::default().borders(Borders::ALL).title(" Message ");
    let inner_w = input_block.inner(input).width.max(1) as usize;
    let all: Vec<&str> = c.input.split('\n').collect();
    let shown: Vec<Line> = all
        .iter()
        .skip(all.len().saturating_sub(input_lines as usize))
        .map(|l| {
            let chars: Vec<char> = l.chars().collect();
            let start = chars.len().saturating_sub(inner_w.saturating_sub(1));
            Line::raw(chars[start..].iter().collect::<String>())
        })
        .collect();
    frame.render_widget(Paragraph::new(shown).block(input_block), input);
    let last_len = all
        .last()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        .min(inner_w.saturating_sub(1));
    let rows = all.len().min(input_lines as usize) as u16;
    frame.set_cursor_position((input.x + 1 + last_len as u16, input.y + rows));
}

/// Wraps at spaces where possible, hard-breaking words longer than the width.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        let mut len = 0;
        for word in para.split(' ') {
            let wlen = word.chars().count();
            if len > 0 && len + 1 + wlen > width {
                out.push(std::mem::take(&mut line));
                len = 0;
            }
            if len > 0 {
                line.push(' ');
                len += 1;
            }
            for ch in word.chars() {
                if len == width {
                    out.push(std::mem::take(&mut line));
                    len = 0;
                }
                line.push(ch);
                len += 1;
            }
        }
        out.push(line);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn wraps_words_and_long_runs() {
        assert_eq!(super::wrap("aa bb cc", 5), vec!["aa bb", "cc"]);
        assert_eq!(super::wrap("abcdefg", 3), vec!["abc", "def", "g"]);
        assert_eq!(super::wrap("a\nb", 10), vec!["a", "b"]);
    }
}
