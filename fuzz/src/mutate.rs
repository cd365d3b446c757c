//! Mutations: byte "havoc" (flips, interesting integers, inserts, deletes, splices, repeats)
//! for every format, and structure-aware edits of one value for JSON inputs.

use serde_json::Value;

/// SplitMix64: tiny, seedable, and the same on every platform and Rust release, so an
/// iteration number keeps naming the same input.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The generator of iteration `i` of a run seeded with `seed`.
    pub fn for_iteration(seed: u64, i: u64) -> Rng {
        let mut r = Rng(seed ^ i.wrapping_mul(0xd134_2543_de82_ef95));
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True `num` times out of `den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next_u64() % den < num
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.below(items.len())])
    }
}

/// Values that break size arithmetic: zero, one, sign and width boundaries, and the sizes a
/// parser might allocate from.
const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    9,
    12,
    13,
    16,
    31,
    32,
    64,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x3ff,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    1 << 40,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    u64::MAX - 1,
    u64::MAX,
];

fn interesting(rng: &mut Rng) -> u64 {
    INTERESTING[rng.below(INTERESTING.len())]
}

/// Applies 1 to 8 stacked byte-level mutations.
pub fn havoc(
    input: &mut Vec<u8>,
    rng: &mut Rng,
    corpus: &[Vec<u8>],
    dictionary: &[Vec<u8>],
    kind: super::driver::InputKind,
) {
    let rounds = 1 + rng.below(8);
    for _ in 0..rounds {
        havoc_once(input, rng, corpus, dictionary, kind);
    }
}

fn havoc_once(
    input: &mut Vec<u8>,
    rng: &mut Rng,
    corpus: &[Vec<u8>],
    dictionary: &[Vec<u8>],
    kind: super::driver::InputKind,
) {
    let len = input.len();
    let pos = rng.below(len + 1);
    // Binary formats get more integer overwrites; text formats more dictionary words.
    let op = match kind {
        super::driver::InputKind::Binary if rng.chance(1, 3) => 3,
        super::driver::InputKind::Text | super::driver::InputKind::Json if rng.chance(1, 4) => 8,
        _ => rng.below(13),
    };
    match op {
        0 if len > 0 => input[pos.min(len - 1)] ^= 1 << rng.below(8),
        1 if len > 0 => input[pos.min(len - 1)] = rng.next_u64() as u8,
        2 if len > 0 => input[pos.min(len - 1)] = interesting(rng) as u8,
        3 => {
            // An interesting integer of width 1, 2, 4 or 8, little-endian (GGUF's order).
            let width = 1 << rng.below(4);
            let v = interesting(rng).to_le_bytes();
            let bytes = &v[..width];
            if pos + width <= len {
                input[pos..pos + width].copy_from_slice(bytes);
            } else {
                input.splice(pos..pos, bytes.iter().copied());
            }
        }
        4 if len >= 8 => {
            // Small add/subtract on a u32 or u64: off-by-one lengths and counts.
            let width = if rng.chance(1, 2) { 4 } else { 8 };
            let at = rng.below(len - width + 1);
            let delta = 1 + rng.below(16) as u64;
            let mut buf = [0u8; 8];
            buf[..width].copy_from_slice(&input[at..at + width]);
            let v = u64::from_le_bytes(buf);
            let v = if rng.chance(1, 2) {
                v.wrapping_add(delta)
            } else {
                v.wrapping_sub(delta)
            };
            input[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
        }
        5 if len > 0 => {
            let n = 1 + rng.below((len / 8).clamp(1, 256));
            let end = (pos + n).min(len);
            input.drain(pos.min(len)..end);
        }
        6 if len > 0 => {
            // Copy a chunk elsewhere (inserting).
            let from = rng.below(len);
            let n = 1 + rng.below((len - from).min(64));
            let chunk = input[from..from + n].to_vec();
            input.splice(pos..pos, chunk);
        }
        7 => {
            let n = 1 + rng.below(16);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            input.splice(pos..pos, bytes);
        }
        8 => {
            if let Some(word) = rng.pick(dictionary) {
                let word = word.clone();
                if rng.chance(1, 2) || pos + word.len() > len {
                    input.splice(pos..pos, word);
                } else {
                    input[pos..pos + word.len()].copy_from_slice(&word);
                }
            }
        }
        9 => {
            // Splice: this input's head with another seed's tail.
            if let Some(other) = rng.pick(corpus) {
                let cut = rng.below(other.len() + 1);
                input.truncate(pos);
                input.extend_from_slice(&other[cut..]);
            }
        }
        10 if len > 0 => input.truncate(pos),
        11 if len > 0 => {
            // One chunk repeated many times: deep nesting, long runs, quadratic paths.
            let from = rng.below(len);
            let n = 1 + rng.below((len - from).min(8));
            let most = if rng.chance(1, 4) { 5000 } else { 64 };
            let times = 2 + rng.below(most);
            let chunk = input[from..from + n].repeat(times);
            input.splice(pos..pos, chunk);
        }
        _ => {
            if len > 0 {
                input[pos.min(len - 1)] = rng.next_u64() as u8;
            } else {
                input.push(rng.next_u64() as u8);
            }
        }
    }
}

/// Replaces, removes or adds one value somewhere in a JSON document; `None` when the input
/// is not JSON.
pub fn json(input: &[u8], rng: &mut Rng, dictionary: &[Vec<u8>]) -> Option<Vec<u8>> {
    let mut doc: Value = serde_json::from_slice(input).ok()?;
    let edits = 1 + rng.below(3);
    for _ in 0..edits {
        let mut nodes = 0;
        count(&doc, &mut nodes);
        let target = rng.below(nodes);
        let mut seen = 0;
        edit_nth(&mut doc, target, &mut seen, rng, dictionary);
    }
    serde_json::to_vec(&doc).ok()
}

fn count(v: &Value, n: &mut usize) {
    *n += 1;
    match v {
        Value::Array(a) => a.iter().for_each(|x| count(x, n)),
        Value::Object(o) => o.values().for_each(|x| count(x, n)),
        _ => {}
    }
}

fn edit_nth(v: &mut Value, target: usize, seen: &mut usize, rng: &mut Rng, dict: &[Vec<u8>]) {
    if *seen == target {
        edit(v, rng, dict);
        *seen += 1;
        return;
    }
    *seen += 1;
    match v {
        Value::Array(a) => {
            for x in a.iter_mut() {
                if *seen > target {
                    return;
                }
                edit_nth(x, target, seen, rng, dict);
            }
        }
        Value::Object(o) => {
            for x in o.values_mut() {
                if *seen > target {
                    return;
                }
                edit_nth(x, target, seen, rng, dict);
            }
        }
        _ => {}
    }
}

fn word(rng: &mut Rng, dict: &[Vec<u8>]) -> String {
    rng.pick(dict)
        .map(|w| String::from_utf8_lossy(w).into_owned())
        .unwrap_or_else(|| "x".into())
}

/// A hostile JSON value: boundary numbers, odd strings, deep or wide structures.
fn hostile_value(rng: &mut Rng, dict: &[Vec<u8>]) -> Value {
    match rng.below(16) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(1, 2)),
        2 => Value::from(interesting(rng)),
        3 => Value::from(-(interesting(rng) as i64)),
        4 => serde_json::json!([1e308, -1e308, 0.5, -0.0, 1e-320, 2.5e9][rng.below(6)]),
        5 => Value::String(String::new()),
        6 => Value::String(word(rng, dict)),
        7 => Value::String(word(rng, dict).repeat(1 + rng.below(2000))),
        8 => Value::String(
            [
                "\u{0}",
                "\u{fffd}",
                "\u{202e}",
                "{{ 7*7 }}",
                "{% for x in range(99999999) %}x{% endfor %}",
                "<|im_end|>",
                "<|endoftext|>",
                "</tool_call>",
                "<tool_call>{\"name\": 1}",
                "\u{1F600}",
                "a\r\nb",
            ][rng.below(11)]
            .to_string(),
        ),
        9 => Value::Array(vec![]),
        10 => Value::Object(Default::default()),
        11 => {
            // Nested arrays: deep, but below serde_json's recursion limit of 128 on reading.
            let depth = 1 + rng.below(120);
            (0..depth).fold(Value::Null, |acc, _| Value::Array(vec![acc]))
        }
        12 => Value::Array(
            (0..1 + rng.below(300))
                .map(|_| Value::from(rng.below(70_000)))
                .collect(),
        ),
        13 => {
            let mut o = serde_json::Map::new();
            o.insert(word(rng, dict), hostile_scalar(rng, dict));
            Value::Object(o)
        }
        _ => hostile_scalar(rng, dict),
    }
}

fn hostile_scalar(rng: &mut Rng, dict: &[Vec<u8>]) -> Value {
    match rng.below(4) {
        0 => Value::from(rng.below(100) as i64 - 10),
        1 => Value::String(word(rng, dict)),
        2 => Value::from(rng.below(1000) as f64 / 100.0),
        _ => Value::Bool(rng.chance(1, 2)),
    }
}

fn edit(v: &mut Value, rng: &mut Rng, dict: &[Vec<u8>]) {
    match v {
        Value::Object(o) if rng.chance(1, 2) => {
            if !o.is_empty() && rng.chance(1, 3) {
                let key = o.keys().nth(rng.below(o.len())).cloned();
                if let Some(k) = key {
                    o.remove(&k);
                }
            } else {
                o.insert(word(rng, dict), hostile_value(rng, dict));
            }
        }
        Value::Array(a) if rng.chance(1, 2) => {
            if !a.is_empty() && rng.chance(1, 3) {
                let i = rng.below(a.len());
                a.remove(i);
            } else if !a.is_empty() && rng.chance(1, 2) {
                // Duplicate an element (many messages, many tools, many stops).
                let i = rng.below(a.len());
                let copies = 1 + rng.below(50);
                let item = a[i].clone();
                a.extend(std::iter::repeat_n(item, copies));
            } else {
                a.push(hostile_value(rng, dict));
            }
        }
        _ => *v = hostile_value(rng, dict),
    }
}
