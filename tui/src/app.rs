//! The application state and how keys and background updates change it. No terminal and no
//! network here: the event loop (`lib.rs`) carries out the [`Action`]s, and rendering (`ui`)
//! only reads this state, so both can be tested directly.

use std::collections::VecDeque;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::config_check::ConfigState;
use crate::metrics_math::{counter_rate, parse_snapshot, Series, Snapshot};

/// How far back the charts and the latency quantiles look.
pub const WINDOW_SECS: f64 = 300.0;
const LATENCY_WINDOW_SECS: f64 = 60.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Chat,
    Dashboard,
    Config,
    Server,
}

pub const TABS: [(Tab, &str); 4] = [
    (Tab::Chat, "Chat"),
    (Tab::Dashboard, "Dashboard"),
    (Tab::Config, "Config"),
    (Tab::Server, "Server"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnswerStats {
    pub ttft: Option<f64>,
    pub tokens: u64,
    pub tokens_per_s: Option<f64>,
    pub stopped: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatMessage {
    pub role: Role,
    pub text: String,
    /// `reasoning_content` of a server with `--reasoning-parser` (shown dimmed, not sent back).
    pub reasoning: String,
    /// Tool calls of the answer: (name, arguments as streamed).
    pub tool_calls: Vec<(String, String)>,
    pub error: Option<String>,
    pub stats: Option<AnswerStats>,
}

#[derive(Debug, Clone)]
pub struct ChatState {
    pub messages: Vec<ChatMessage>,
    pub input: String,
    /// Lines scrolled up from the bottom of the history.
    pub scroll: u16,
    pub system_prompt: String,
    pub temperature: f64,
    pub max_tokens: u32,
    pub models: Vec<String>,
    pub model: usize,
    /// The request id of the answer being streamed, with its send time and first-token time.
    pub streaming: Option<(u64, f64, Option<f64>)>,
    pub notice: Option<String>,
    next_id: u64,
}

impl Default for ChatState {
    fn default() -> Self {
        ChatState {
            messages: Vec::new(),
            input: String::new(),
            scroll: 0,
            system_prompt: String::new(),
            temperature: 0.7,
            max_tokens: 256,
            models: Vec::new(),
            model: 0,
            streaming: None,
            notice: None,
            next_id: 1,
        }
    }
}

/// p50/p90/p99 of one latency histogram, in seconds.
pub type Quantiles = [Option<f64>; 3];

#[derive(Debug, Clone, Default)]
pub struct DashState {
    pub prompt_tps: Series,
    pub gen_tps: Series,
    pub latest: Option<Snapshot>,
    prev: Option<(f64, Snapshot)>,
    window: VecDeque<(f64, Snapshot)>,
    /// TTFT, inter-token and end-to-end latency quantiles, and whether they cover only the last
    /// minute (`true`) or the whole server lifetime (no requests in the last minute).
    pub latency: [Quantiles; 3],
    pub latency_recent: bool,
    pub last_error: Option<(f64, String)>,
    pub last_ok: Option<f64>,
}

#[derive(Debug, Clone, Default)]
pub struct ServerState {
    pub checked: bool,
    pub up: bool,
    pub health: String,
    pub version: Option<String>,
    pub models: Vec<(String, Option<u64>)>,
    /// Since when the TUI has seen the server up without interruption or restart.
    pub up_since: Option<f64>,
    pub last_error: Option<String>,
    pub last_check: Option<f64>,
}

/// One poll of the server's read-only endpoints.
#[derive(Debug, Clone)]
pub struct Poll {
    pub t: f64,
    pub metrics: Result<String, String>,
    pub health: Result<u16, String>,
    pub version: Option<String>,
    pub models: Option<Vec<(String, Option<u64>)>>,
}

#[derive(Debug, Clone)]
pub enum Update {
    Poll(Poll),
    ChatDelta {
        id: u64,
        text: String,
        t: f64,
    },
    /// A piece of the answer's reasoning.
    ChatReasoning {
        id: u64,
        text: String,
    },
    /// A tool call's start (with its name) or a fragment of its arguments.
    ChatToolCall {
        id: u64,
        index: usize,
        name: Option<String>,
        arguments: String,
    },
    ChatDone {
        id: u64,
        completion_tokens: Option<u64>,
        t: f64,
    },
    ChatError {
        id: u64,
        error: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    None,
    Quit,
    SendChat { id: u64, body: String },
    StopChat,
    ReloadConfig,
}

pub struct App {
    pub tab: Tab,
    pub help: bool,
    pub url: String,
    pub interval: f64,
    pub now: f64,
    pub chat: ChatState,
    pub dash: DashState,
    pub server: ServerState,
    pub config: ConfigState,
}

impl App {
    pub fn new(url: &str, interval: f64, config: ConfigState) -> App {
        App {
            tab: Tab::Chat,
            help: false,
            url: url.to_string(),
            interval,
            now: 0.0,
            chat: ChatState::default(),
            dash: DashState::default(),
            server: ServerState::default(),
            config,
        }
    }

    pub fn apply(&mut self, update: Update) {
        match update {
            Update::Poll(p) => self.apply_poll(p),
            Update::ChatDelta { id, text, t } => {
                let Some((sid, _, first)) = &mut self.chat.streaming else {
                    return;
                };
                if *sid != id {
                    return;
                }
                first.get_or_insert(t);
                if let Some(m) = self.chat.messages.last_mut() {
                    m.text.push_str(&text);
                    if let Some(s) = &mut m.stats {
                        s.tokens += 1;
                    }
                }
            }
            Update::ChatReasoning { id, text } => {
                if let Some(m) = self.streaming_answer(id) {
                    m.reasoning.push_str(&text);
                }
            }
            Update::ChatToolCall {
                id,
                index,
                name,
                arguments,
            } => {
                if let Some(m) = self.streaming_answer(id) {
                    while m.tool_calls.len() <= index {
                        m.tool_calls.push((String::new(), String::new()));
                    }
                    if let Some(n) = name {
                        m.tool_calls[index].0 = n;
                    }
                    m.tool_calls[index].1.push_str(&arguments);
                }
            }
            Update::ChatDone {
                id,
                completion_tokens,
                t,
            } => self.finish_answer(id, completion_tokens, t, None),
            Update::ChatError { id, error } => {
                let t = self.now;
                self.finish_answer(id, None, t, Some(error));
            }
        }
    }

    /// The answer being streamed for chat request `id`, if that is the one streaming.
    fn streaming_answer(&mut self, id: u64) -> Option<&mut ChatMessage> {
        match &self.chat.streaming {
            Some((sid, _, _)) if *sid == id => self.chat.messages.last_mut(),
            _ => None,
        }
    }

    fn finish_answer(
        &mut self,
        id: u64,
        completion_tokens: Option<u64>,
        t: f64,
        error: Option<String>,
    ) {
        let Some((sid, sent, first)) = self.chat.streaming else {
            return;
        };
        if sid != id {
            return;
        }
        self.chat.streaming = None;
        if let Some(m) = self.chat.messages.last_mut() {
            m.error = error;
            if let Some(s) = &mut m.stats {
                if let Some(n) = completion_tokens {
                    s.tokens = n;
                }
                s.ttft = first.map(|f| f - sent);
                s.tokens_per_s = first
                    .filter(|f| t > *f && s.tokens > 1)
                    .map(|f| (s.tokens - 1) as f64 / (t - f));
            }
        }
    }

    fn apply_poll(&mut self, p: Poll) {
        self.now = self.now.max(p.t);
        let t = p.t;
        let d = &mut self.dash;
        match p.metrics.and_then(|text| parse_snapshot(&text)) {
            Ok(snap) => {
                let rates = d.prev.as_ref().map(|(pt, prev)| {
                    (
                        counter_rate(prev.prompt_tokens, snap.prompt_tokens, t - pt),
                        counter_rate(prev.generation_tokens, snap.generation_tokens, t - pt),
                    )
                });
                let (pr, gr) = rates.unwrap_or((None, None));
                d.prompt_tps.push(t, pr, WINDOW_SECS);
                d.gen_tps.push(t, gr, WINDOW_SECS);
                d.window.push_back((t, snap.clone()));
                while d
                    .window
                    .front()
                    .is_some_and(|(wt, _)| *wt < t - LATENCY_WINDOW_SECS)
                {
                    d.window.pop_front();
                }
                let oldest = d.window.front().map(|(_, s)| s.clone()).unwrap_or_default();
                let recent = [
                    snap.ttft.since(&oldest.ttft),
                    snap.itl.since(&oldest.itl),
                    snap.e2e.since(&oldest.e2e),
                ];
                d.latency_recent = d.window.len() > 1 && recent[2].count > 0.0;
                let hists = if d.latency_recent {
                    recent
                } else {
                    [snap.ttft.clone(), snap.itl.clone(), snap.e2e.clone()]
                };
                for (q, h) in d.latency.iter_mut().zip(&hists) {
                    *q = [h.quantile(0.5), h.quantile(0.9), h.quantile(0.99)];
                }
                let restarted = d.latest.as_ref().is_some_and(|old| {
                    snap.generation_tokens < old.generation_tokens
                        || snap.prompt_tokens < old.prompt_tokens
                });
                if restarted {
                    self.server.up_since = Some(t);
                }
                d.prev = Some((t, snap.clone()));
                d.latest = Some(snap);
                d.last_ok = Some(t);
            }
            Err(e) => {
                d.prompt_tps.push(t, None, WINDOW_SECS);
                d.gen_tps.push(t, None, WINDOW_SECS);
                // The next rate must not average over the outage.
                d.prev = None;
                d.last_error = Some((t, e));
            }
        }
        let s = &mut self.server;
        s.checked = true;
        s.last_check = Some(t);
        match p.health {
            Ok(code) => {
                s.up = code == 200;
                s.health = format!("HTTP {code}");
                s.last_error = None;
            }
            Err(e) => {
                s.up = false;
                s.health = "unreachable".into();
                s.last_error = Some(e);
            }
        }
        if s.up {
            s.up_since.get_or_insert(t);
        } else {
            s.up_since = None;
        }
        if p.version.is_some() {
            s.version = p.version;
        }
        if let Some(models) = p.models {
            let names: Vec<String> = models.iter().map(|m| m.0.clone()).collect();
            if names != self.chat.models {
                let current = self.chat.models.get(self.chat.model).cloned();
                self.chat.model = current
                    .and_then(|c| names.iter().position(|n| *n == c))
                    .unwrap_or(0);
                self.chat.models = names;
            }
            s.models = models;
        }
    }

    pub fn on_key(&mut self, key: KeyEvent) -> Action {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            return Action::Quit;
        }
        if self.help {
            self.help = false;
            return Action::None;
        }
        match key.code {
            KeyCode::Tab => return self.switch(1),
            KeyCode::BackTab => return self.switch(TABS.len() - 1),
            KeyCode::F(n @ 1..=4) => {
                self.tab = TABS[n as usize - 1].0;
                return Action::None;
            }
            _ => {}
        }
        if self.tab == Tab::Chat {
            return self.chat_key(key);
        }
        match key.code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char(c @ '1'..='4') => self.tab = TABS[c as usize - '1' as usize].0,
            KeyCode::Char('r') if self.tab == Tab::Config => return Action::ReloadConfig,
            KeyCode::Up | KeyCode::Char('k') => {
                self.config.scroll = self.config.scroll.saturating_sub(1)
            }
            KeyCode::Down | KeyCode::Char('j') => {
                self.config.scroll = self.config.scroll.saturating_add(1)
            }
            KeyCode::PageUp => self.config.scroll = self.config.scroll.saturating_sub(10),
            KeyCode::PageDown => self.config.scroll = self.config.scroll.saturating_add(10),
            _ => {}
        }
        Action::None
    }

    fn switch(&mut self, step: usize) -> Action {
        let i = TABS.iter().position(|(t, _)| *t == self.tab).unwrap_or(0);
        self.tab = TABS[(i + step) % TABS.len()].0;
        Action::None
    }

    fn chat_key(&mut self, key: KeyEvent) -> Action {
        let c = &mut self.chat;
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        match key.code {
            KeyCode::Esc if c.streaming.is_some() => {
                let t = self.now;
                if let Some((id, _, _)) = self.chat.streaming {
                    self.finish_answer(id, None, t, None);
                    if let Some(s) = self.chat.messages.last_mut().and_then(|m| m.stats.as_mut()) {
                        s.stopped = true;
                    }
                }
                return Action::StopChat;
            }
            KeyCode::Esc => c.notice = None,
            KeyCode::Char('?') if c.input.is_empty() => self.help = true,
            KeyCode::Char('p') if ctrl && !c.models.is_empty() => {
                c.model = (c.model + 1) % c.models.len()
            }
            KeyCode::Char('j') if ctrl => c.input.push('\n'),
            KeyCode::Enter if alt || key.modifiers.contains(KeyModifiers::SHIFT) => {
                c.input.push('\n')
            }
            KeyCode::Enter => return self.submit(),
            KeyCode::Char(ch) if !ctrl => c.input.push(ch),
            KeyCode::Backspace => {
                c.input.pop();
            }
            KeyCode::PageUp | KeyCode::Up => {
                c.scroll = c
                    .scroll
                    .saturating_add(if key.code == KeyCode::Up { 1 } else { 10 })
            }
            KeyCode::PageDown | KeyCode::Down => {
                c.scroll = c
                    .scroll
                    .saturating_sub(if key.code == KeyCode::Down { 1 } else { 10 })
            }
            _ => {}
        }
        Action::None
    }

    /// Enter in the chat: a `/command` changes settings, anything else is sent to the model.
    fn submit(&mut self) -> Action {
        let c = &mut self.chat;
        let text = c.input.trim().to_string();
        if text.is_empty() {
            return Action::None;
        }
        c.input.clear();
        if let Some(cmd) = text.strip_prefix('/') {
            let (name, arg) = cmd
                .split_once(' ')
                .map(|(a, b)| (a, b.trim()))
                .unwrap_or((cmd, ""));
            c.notice = Some(match name {
                "system" => {
                    c.system_prompt = arg.to_string();
                    if arg.is_empty() {
                        "system prompt cleared".into()
                    } else {
                        "system prompt set".into()
                    }
                }
                "temp" | "temperature" => match arg.parse::<f64>() {
                    Ok(v) if (0.0..=2.0).contains(&v) => {
                        c.temperature = v;
                        format!("temperature = {v}")
                    }
                    _ => "usage: /temp 0.0..2.0".into(),
                },
                "max" | "max_tokens" => match arg.parse::<u32>() {
                    Ok(v) if v > 0 => {
                        c.max_tokens = v;
                        format!("max_tokens = {v}")
                    }
                    _ => "usage: /max N (N > 0)".into(),
                },
                "clear" => {
                    c.messages.clear();
                    c.scroll = 0;
                    "history cleared".into()
                }
                _ => format!("unknown command /{name}: try /system, /temp, /max, /clear"),
            });
            return Action::None;
        }
        if c.streaming.is_some() {
            c.input = text;
            c.notice = Some("an answer is still streaming: Esc stops it".into());
            return Action::None;
        }
        let mut messages = Vec::new();
        if !c.system_prompt.is_empty() {
            messages.push(serde_json::json!({"role": "system", "content": c.system_prompt}));
        }
        for m in c.messages.iter().filter(|m| m.error.is_none()) {
            let role = if m.role == Role::User {
                "user"
            } else {
                "assistant"
            };
            messages.push(serde_json::json!({"role": role, "content": m.text}));
        }
        messages.push(serde_json::json!({"role": "user", "content": text}));
        let mut body = serde_json::json!({
            "messages": messages,
            "stream": true,
            "stream_options": {"include_usage": true},
            "temperature": c.temperature,
            "max_tokens": c.max_tokens,
        });
        if let Some(model) = c.models.get(c.model) {
            body["model"] = serde_json::Value::String(model.clone());
        }
        let id = c.next_id;
        c.next_id += 1;
        c.messages.push(ChatMessage {
            role: Role::User,
            text,
            reasoning: String::new(),
            tool_calls: Vec::new(),
            error: None,
            stats: None,
        });
        c.messages.push(ChatMessage {
            role: Role::Assistant,
            text: String::new(),
            reasoning: String::new(),
            tool_calls: Vec::new(),
            error: None,
            stats: Some(AnswerStats::default()),
        });
        c.streaming = Some((id, self.now, None));
        c.scroll = 0;
        c.notice = None;
        Action::SendChat {
            id,
            body: body.to_string(),
        }
    }
}
