//! GBNF (the grammar format of llama.cpp, used in vLLM's structured-output docs) rewritten as
//! the Lark dialect llguidance compiles.
//!
//! A grammar is read as tokens, and a rule starts wherever a name is followed by `::=`, so rules
//! may span lines freely. Each rule is written back on one line: strings re-quoted as JSON,
//! character classes as regexes, rule names lower-cased (Lark reserves upper case for
//! terminals) and `root` reached from Lark's `start`.

use std::collections::HashMap;
use std::fmt::Write as _;

/// True when `grammar` is GBNF rather than Lark (vLLM tells them apart the same way).
pub fn is_gbnf(grammar: &str) -> bool {
    grammar.contains("::=")
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Define,
    Str(String),
    /// A character class already written as a Lark regex literal.
    Class(String),
    Any,
    Open,
    Close,
    Alt,
    Op(char),
    Repeat(String),
}

/// Rewrites a GBNF grammar as Lark. Errors name the line of the problem.
pub fn gbnf_to_lark(src: &str) -> Result<String, String> {
    let toks = lex(src)?;
    let mut rules: Vec<(String, Vec<Tok>)> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        match (&toks[i], toks.get(i + 1)) {
            (Tok::Name(n), Some(Tok::Define)) => {
                rules.push((n.clone(), Vec::new()));
                i += 2;
            }
            (t, _) => {
                let Some((_, body)) = rules.last_mut() else {
                    return Err(format!(
                        "the grammar must start with a rule (`name ::= ...`), not {t:?}"
                    ));
                };
                body.push(t.clone());
                i += 1;
            }
        }
    }
    if !rules.iter().any(|(n, _)| n == "root") {
        return Err("the grammar has no `root` rule".into());
    }
    let names = lark_names(rules.iter().map(|(n, _)| n.as_str()));
    let mut out = format!("start: {}\n", names["root"]);
    for (name, body) in &rules {
        if body.is_empty() {
            return Err(format!("rule `{name}` is empty"));
        }
        let _ = write!(out, "{}:", names[name.as_str()]);
        for t in body {
            out.push(' ');
            match t {
                Tok::Name(n) => match names.get(n.as_str()) {
                    Some(l) => out.push_str(l),
                    None => return Err(format!("rule `{name}` refers to undefined rule `{n}`")),
                },
                Tok::Str(s) => out.push_str(&serde_json::to_string(s).unwrap_or_default()),
                Tok::Class(c) => out.push_str(c),
                Tok::Any => out.push_str("/(?s:.)/"),
                Tok::Open => out.push('('),
                Tok::Close => out.push(')'),
                Tok::Alt => out.push('|'),
                Tok::Op(c) => out.push(*c),
                Tok::Repeat(r) => out.push_str(r),
                Tok::Define => unreachable!("definitions open rules"),
            }
        }
        out.push('\n');
    }
    Ok(out)
}

/// Lark rule names for GBNF names: lower case, starting with a letter, `start` kept free.
fn lark_names<'a>(gbnf: impl Iterator<Item = &'a str>) -> HashMap<&'a str, String> {
    let mut taken: Vec<String> = vec!["start".into()];
    let mut map = HashMap::new();
    for n in gbnf {
        if map.contains_key(n) {
            continue;
        }
        let mut base = n.to_lowercase().replace('-', "_");
        if !base.starts_with(|c: char| c.is_ascii_lowercase()) {
            base = format!("r_{base}");
        }
        let mut name = base.clone();
        let mut k = 1;
        while taken.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        taken.push(name.clone());
        map.insert(n, name);
    }
    map
}

fn lex(src: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    let line_of = |i: usize| {
        chars[..i.min(chars.len())]
            .iter()
            .filter(|&&c| c == '\n')
            .count()
            + 1
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            ':' if chars.get(i + 1) == Some(&':') && chars.get(i + 2) == Some(&'=') => {
                toks.push(Tok::Define);
                i += 3;
            }
            '"' => {
                let (s, next) =
                    string(&chars, i + 1).map_err(|e| format!("line {}: {e}", line_of(i)))?;
                toks.push(Tok::Str(s));
                i = next;
            }
            '[' => {
                let (s, next) =
                    class(&chars, i + 1).map_err(|e| format!("line {}: {e}", line_of(i)))?;
                toks.push(Tok::Class(s));
                i = next;
            }
            '{' => {
                let end = chars[i..].iter().position(|&c| c == '}').map(|p| i + p);
                let Some(end) = end else {
                    return Err(format!("line {}: unclosed `{{`", line_of(i)));
                };
                let inner: String = chars[i + 1..end]
                    .iter()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                let ok = !inner.is_empty()
                    && inner.chars().all(|c| c.is_ascii_digit() || c == ',')
                    && inner.matches(',').count() <= 1
                    && !inner.starts_with(',');
                if !ok {
                    return Err(format!("line {}: bad repetition `{{{inner}}}`", line_of(i)));
                }
                toks.push(Tok::Repeat(format!("{{{inner}}}")));
                i = end + 1;
            }
            '.' => {
                toks.push(Tok::Any);
                i += 1;
            }
            '(' => {
                toks.push(Tok::Open);
                i += 1;
            }
            ')' => {
                toks.push(Tok::Close);
                i += 1;
            }
            '|' => {
                toks.push(Tok::Alt);
                i += 1;
            }
            '*' | '+' | '?' => {
                toks.push(Tok::Op(c));
                i += 1;
            }
            c if c.is_ascii_alphanumeric() || c == '_' || c == '-' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '-')
                {
                    i += 1;
                }
                toks.push(Tok::Name(chars[start..i].iter().collect()));
            }
            other => return Err(format!("line {}: unexpected `{other}`", line_of(i))),
        }
    }
    Ok(toks)
}

/// One escaped character at `chars[i]` (just after the backslash): the character and the index
/// after it.
fn escape(chars: &[char], i: usize) -> Result<(char, usize), String> {
    let hex = |n: usize| -> Result<(char, usize), String> {
        let digits: String = chars
            .get(i + 1..i + 1 + n)
            .ok_or("truncated escape")?
            .iter()
            .collect();
        let v = u32::from_str_radix(&digits, 16).map_err(|_| format!("bad escape `{digits}`"))?;
        let c = char::from_u32(v).ok_or_else(|| format!("escape {v:#x} is not a character"))?;
        Ok((c, i + 1 + n))
    };
    match chars.get(i) {
        Some('n') => Ok(('\n', i + 1)),
        Some('r') => Ok(('\r', i + 1)),
        Some('t') => Ok(('\t', i + 1)),
        Some('x') => hex(2),
        Some('u') => hex(4),
        Some('U') => hex(8),
        Some(&c) => Ok((c, i + 1)),
        None => Err("a backslash ends the grammar".into()),
    }
}

fn string(chars: &[char], mut i: usize) -> Result<(String, usize), String> {
    let mut s = String::new();
    loop {
        match chars.get(i) {
            None => return Err("unterminated string".into()),
            Some('"') => return Ok((s, i + 1)),
            Some('\\') => {
                let (c, next) = escape(chars, i + 1)?;
                s.push(c);
                i = next;
            }
            Some(&c) => {
                s.push(c);
                i += 1;
            }
        }
    }
}

/// A class (`chars[i]` is just after `[`) as a Lark regex literal, every character re-escaped
/// in regex syntax so nothing of GBNF's escaping leaks into the regex.
fn class(chars: &[char], mut i: usize) -> Result<(String, usize), String> {
    let mut out = String::from("/[");
    if chars.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    let mut empty = true;
    loop {
        let (c, next) = match chars.get(i) {
            None => return Err("unterminated character class".into()),
            Some(']') => break,
            Some('\\') => escape(chars, i + 1)?,
            Some(&c) => (c, i + 1),
        };
        i = next;
        empty = false;
        push_class_char(&mut out, c);
        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|&c| c != ']') {
            let (hi, next) = match chars.get(i + 1) {
                Some('\\') => escape(chars, i + 2)?,
                Some(&c) => (c, i + 2),
                None => return Err("unterminated character class".into()),
            };
            if hi < c {
                return Err(format!("bad range `{c}-{hi}`"));
            }
            out.push('-');
            push_class_char(&mut out, hi);
            i = next;
        }
    }
    if empty {
        return Err("empty character class".into());
    }
    out.push_str("]/");
    Ok((out, i + 1))
}

fn push_class_char(out: &mut String, c: char) {
    if c.is_ascii_alphanumeric() || (!c.is_ascii() && !c.is_control() && !c.is_whitespace()) {
        out.push(c);
    } else if c.is_ascii_punctuation() {
        out.push('\\');
        out.push(c);
    } else {
        let _ = write!(out, "\\x{{{:x}}}", c as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vllm_docs_sql_grammar_converts() {
        // The example grammar of vLLM's structured-outputs documentation.
        let g = r#"
root ::= select_statement
select_statement ::= "SELECT " column " from " table " where " condition
column ::= "col_1 " | "col_2 "
table ::= "table_1 " | "table_2 "
condition ::= column "= " number
number ::= "1 " | "2 "
"#;
        assert!(is_gbnf(g));
        let lark = gbnf_to_lark(g).unwrap();
        assert!(lark.starts_with("start: root\n"));
        assert!(lark.contains("column: \"col_1 \" | \"col_2 \""));
    }

    #[test]
    fn classes_escapes_repeats_and_multiline_rules() {
        let g = "root ::= item (\",\" item){0,3}\n  # a comment\nitem ::= [a-z0-9_\\-]+ | [^\\n\\]] |\n  \"\\x41\\u00e9\" ws-rule\nws-rule ::= [ \\t]* .?";
        let lark = gbnf_to_lark(g).unwrap();
        assert!(lark.contains(r"/[a-z0-9\_\-]/ +"), "{lark}");
        assert!(lark.contains(r"/[^\x{a}\]]/"), "{lark}");
        assert!(lark.contains("\"Aé\" ws_rule"), "{lark}");
        assert!(lark.contains(") {0,3}"), "{lark}");
        assert!(lark.contains("/(?s:.)/ ?"), "{lark}");
    }

    #[test]
    fn bad_grammars_are_errors_not_panics() {
        for g in [
            "item ::= \"a\"",
            "root ::= \"a",
            "root ::= [a-",
            "root ::= foo",
            "root ::= [z-a]",
            "root ::= \"a\" {x}",
            "\"a\" root ::= \"b\"",
            "root ::= \\",
            "root ::= @",
            "root ::=",
        ] {
            assert!(gbnf_to_lark(g).is_err(), "{g}");
        }
    }
}
