//! Output helpers shared by the benchmarks: numbers printed the way Python prints them (vLLM's
//! lines are f-strings of Python floats) and JSON files laid out as Python's `json.dump(indent=4)`.

use std::path::Path;

use serde::Serialize;

use crate::BenchError;

/// `x` as Python's `repr(float)`: the shortest text that reads back to `x`, with a `.0` on whole
/// numbers and exponent form outside [1e-4, 1e16).
pub fn py_float(x: f64) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "nan".into()
        } else if x > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let a = x.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        // Rust writes `1.5e-5`; Python writes `1.5e-05`: a signed exponent of at least two digits.
        let s = format!("{x:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    let s = format!("{x}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

/// Writes `value` as JSON with four-space indentation.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), BenchError> {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    value
        .serialize(&mut ser)
        .map_err(|e| BenchError::Invalid(format!("{}: {e}", path.display())))?;
    std::fs::write(path, buf).map_err(|e| BenchError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::py_float;

    #[test]
    fn floats_read_like_python() {
        assert_eq!(py_float(1.0), "1.0");
        assert_eq!(py_float(0.25), "0.25");
        assert_eq!(py_float(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(py_float(1.5e-5), "1.5e-05");
        assert_eq!(py_float(2e20), "2e+20");
        assert_eq!(py_float(123.456), "123.456");
    }
}
