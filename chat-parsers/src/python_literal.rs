//! A small parser of Python literals (strings, numbers, True/False/None, lists, tuples and
//! dicts), converted to JSON values. Used by the `pythonic` tool parser and for `object`/`array`
//! parameters of `qwen3_xml` that the model wrote in Python syntax.

use serde_json::{Map, Number, Value};

/// The text is not a (complete) Python literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Invalid;

pub(crate) type PyResult<T> = Result<T, Invalid>;

/// Parses `src` as exactly one Python literal (surrounding whitespace allowed).
pub(crate) fn parse_value(src: &str) -> PyResult<Value> {
    let mut c = Cursor::new(src);
    let v = c.value()?;
    c.skip_ws();
    if c.at_end() {
        Ok(v)
    } else {
        Err(Invalid)
    }
}

pub(crate) struct Cursor<'a> {
    src: &'a str,
    pub(crate) pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        Cursor { src, pos: 0 }
    }

    pub(crate) fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    pub(crate) fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    pub(crate) fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    pub(crate) fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    pub(crate) fn eat(&mut self, want: char) -> PyResult<()> {
        match self.bump() {
            Some(c) if c == want => Ok(()),
            _ => Err(Invalid),
        }
    }

    /// An identifier; dots are allowed inside so that `module.func` names work.
    pub(crate) fn ident(&mut self) -> PyResult<&'a str> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            let ok = c.is_alphanumeric() || c == '_' || (c == '.' && self.pos > start);
            let first_digit = self.pos == start && c.is_ascii_digit();
            if !ok || first_digit {
                break;
            }
            self.bump();
        }
        let id = self.src.get(start..self.pos).unwrap_or("");
        if id.is_empty() {
            Err(Invalid)
        } else {
            Ok(id)
        }
    }

    pub(crate) fn value(&mut self) -> PyResult<Value> {
        self.skip_ws();
        match self.peek().ok_or(Invalid)? {
            '\'' | '"' => self.strings(false).map(Value::String),
            '[' => {
                self.bump();
                self.sequence(']').map(Value::Array)
            }
            '(' => self.tuple(),
            '{' => self.dict(),
            '0'..='9' | '-' | '+' | '.' => self.number(),
            _ => {
                let id = self.ident()?;
                match id {
                    "True" => Ok(Value::Bool(true)),
                    "False" => Ok(Value::Bool(false)),
                    "None" => Ok(Value::Null),
                    // String prefixes: raw strings keep their backslashes.
                    "r" | "R" | "u" | "U" if matches!(self.peek(), Some('\'' | '"')) => self
                        .strings(id.eq_ignore_ascii_case("r"))
                        .map(Value::String),
                    _ => Err(Invalid),
                }
            }
        }
    }

    /// Items up to `close` (the opening bracket is consumed); a trailing comma is allowed.
    fn sequence(&mut self, close: char) -> PyResult<Vec<Value>> {
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some(close) {
                self.bump();
                return Ok(items);
            }
            items.push(self.value()?);
            self.skip_ws();
            match self.bump() {
                Some(',') => {}
                Some(c) if c == close => return Ok(items),
                _ => return Err(Invalid),
            }
        }
    }

    /// `()`, `(x,)`, `(x, y)` become arrays; `(x)` is just `x` in parentheses.
    fn tuple(&mut self) -> PyResult<Value> {
        self.eat('(')?;
        self.skip_ws();
        if self.peek() == Some(')') {
            self.bump();
            return Ok(Value::Array(Vec::new()));
        }
        let first = self.value()?;
        self.skip_ws();
        match self.bump() {
            Some(')') => Ok(first),
            Some(',') => {
                let mut items = vec![first];
                items.extend(self.sequence(')')?);
                Ok(Value::Array(items))
            }
            _ => Err(Invalid),
        }
    }

    fn dict(&mut self) -> PyResult<Value> {
        self.eat('{')?;
        let mut map = Map::new();
        loop {
            self.skip_ws();
            if self.peek() == Some('}') {
                self.bump();
                return Ok(Value::Object(map));
            }
            // JSON keys are strings: Python's json.dumps converts scalar keys the same way.
            let key = match self.value()? {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null => "null".to_string(),
                _ => return Err(Invalid),
            };
            self.skip_ws();
            self.eat(':')?;
            let value = self.value()?;
            map.insert(key, value);
            self.skip_ws();
            match self.bump() {
                Some(',') => {}
                Some('}') => return Ok(Value::Object(map)),
                _ => return Err(Invalid),
            }
        }
    }

    fn number(&mut self) -> PyResult<Value> {
        let start = self.pos;
        if matches!(self.peek(), Some('+' | '-')) {
            self.bump();
        }
        let body_start = self.pos;
        let mut prev = ' ';
        while let Some(c) = self.peek() {
            let exp_sign = matches!(c, '+' | '-') && matches!(prev, 'e' | 'E');
            if !(c.is_ascii_alphanumeric() || c == '_' || c == '.' || exp_sign) {
                break;
            }
            prev = c;
            self.bump();
        }
        let text: String = self.src.get(start..self.pos).unwrap_or("").replace('_', "");
        let body = self
            .src
            .get(body_start..self.pos)
            .unwrap_or("")
            .replace('_', "");
        let negative = text.starts_with('-');
        let lower = body.to_ascii_lowercase();
        let radix = [("0x", 16), ("0o", 8), ("0b", 2)]
            .into_iter()
            .find(|(p, _)| lower.starts_with(p));
        if let Some((prefix, radix)) = radix {
            let magnitude =
                i64::from_str_radix(&lower[prefix.len()..], radix).map_err(|_| Invalid)?;
            return Ok(Value::from(if negative { -magnitude } else { magnitude }));
        }
        if body.is_empty() || !body.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
            return Err(Invalid);
        }
        if body.contains(['.', 'e', 'E']) {
            let f: f64 = text.parse().map_err(|_| Invalid)?;
            return Number::from_f64(f).map(Value::Number).ok_or(Invalid);
        }
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = body.parse::<u64>() {
            if !negative {
                return Ok(Value::from(u));
            }
        }
        // Python ints are unbounded; beyond 64 bits keep the value approximately.
        let f: f64 = text.parse().map_err(|_| Invalid)?;
        Number::from_f64(f).map(Value::Number).ok_or(Invalid)
    }

    /// A string literal followed by any adjacent literals (`"a" "b"` is `"ab"` in Python).
    fn strings(&mut self, raw: bool) -> PyResult<String> {
        let mut s = self.string(raw)?;
        loop {
            let save = self.pos;
            self.skip_ws();
            if matches!(self.peek(), Some('\'' | '"')) {
                s.push_str(&self.string(false)?);
            } else {
                self.pos = save;
                return Ok(s);
            }
        }
    }

    fn string(&mut self, raw: bool) -> PyResult<String> {
        let quote = self.bump().ok_or(Invalid)?;
        let triple_quote: String = [quote, quote].iter().collect();
        let triple = self.rest().starts_with(&triple_quote);
        if triple {
            self.pos += 2;
        }
        let mut out = String::new();
        loop {
            let c = self.bump().ok_or(Invalid)?;
            if c == quote {
                if !triple {
                    return Ok(out);
                }
                if self.rest().starts_with(&triple_quote) {
                    self.pos += 2;
                    return Ok(out);
                }
                out.push(c);
            } else if c == '\n' && !triple {
                return Err(Invalid);
            } else if c == '\\' {
                let e = self.bump().ok_or(Invalid)?;
                if raw {
                    out.push('\\');
                    out.push(e);
                } else {
                    self.escape(e, &mut out)?;
                }
            } else {
                out.push(c);
            }
        }
    }

    fn escape(&mut self, e: char, out: &mut String) -> PyResult<()> {
        let c = match e {
            '\n' => return Ok(()), // line continuation
            '\\' | '\'' | '"' => e,
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'v' => '\u{b}',
            'a' => '\u{7}',
            'x' => self.hex_char(2)?,
            'u' => self.hex_char(4)?,
            'U' => self.hex_char(8)?,
            '0'..='7' => {
                let mut code = e.to_digit(8).ok_or(Invalid)?;
                for _ in 0..2 {
                    match self.peek().and_then(|c| c.to_digit(8)) {
                        Some(d) => {
                            code = code * 8 + d;
                            self.bump();
                        }
                        None => break,
                    }
                }
                char::from_u32(code).ok_or(Invalid)?
            }
            // Python keeps unknown escapes as written.
            _ => {
                out.push('\\');
                e
            }
        };
        out.push(c);
        Ok(())
    }

    fn hex_char(&mut self, digits: usize) -> PyResult<char> {
        let mut code: u32 = 0;
        for _ in 0..digits {
            let d = self.bump().and_then(|c| c.to_digit(16)).ok_or(Invalid)?;
            code = code.checked_mul(16).ok_or(Invalid)? + d;
        }
        char::from_u32(code).ok_or(Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars() {
        assert_eq!(parse_value("'Paris'"), Ok(json!("Paris")));
        assert_eq!(
            parse_value(r#""it's \"x\"\n\t\u00e9\x41""#),
            Ok(json!("it's \"x\"\n\té\u{41}"))
        );
        assert_eq!(parse_value(r"r'a\nb'"), Ok(json!("a\\nb")));
        assert_eq!(parse_value("'''a'b\nc'''"), Ok(json!("a'b\nc")));
        assert_eq!(parse_value("'a' \"b\""), Ok(json!("ab")));
        assert_eq!(parse_value("42"), Ok(json!(42)));
        assert_eq!(parse_value("-7"), Ok(json!(-7)));
        assert_eq!(parse_value("2.5"), Ok(json!(2.5)));
        assert_eq!(parse_value("1e3"), Ok(json!(1000.0)));
        assert_eq!(parse_value("1_000"), Ok(json!(1000)));
        assert_eq!(parse_value("0x1F"), Ok(json!(31)));
        assert_eq!(parse_value("True"), Ok(json!(true)));
        assert_eq!(parse_value("None"), Ok(Value::Null));
    }

    #[test]
    fn containers() {
        assert_eq!(
            parse_value("{'a': [1, (2, 3), ()], \"b\": {'c': None}, 1: (4,), 'd': (5)}"),
            Ok(json!({"a": [1, [2, 3], []], "b": {"c": null}, "1": [4], "d": 5}))
        );
        assert_eq!(parse_value("[1, 2,]"), Ok(json!([1, 2])));
    }

    #[test]
    fn invalid() {
        for s in [
            "", "'abc", "[1, 2", "{'a' 1}", "foo", "1 2", "'a\nb'", "-", "nan", "{[1]: 2}",
            "'\\x4'",
        ] {
            assert_eq!(parse_value(s), Err(Invalid), "{s:?}");
        }
    }
}
