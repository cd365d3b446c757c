//! Prometheus text exposition format 0.0.4, laid out the way Python's `prometheus_client`
//! (which vLLM uses) lays it out: counters named `<name>_total`, a `<name>_created` gauge family
//! after each counter and histogram, labels sorted by name, values in Go-style float syntax.
//! Matching it byte for byte keeps dashboards, recording rules and scrape diffs interchangeable.

use std::borrow::Cow;
use std::fmt::Write;

use super::histogram::Histogram;

/// `Content-Type` of [`super::Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Label pairs, values unescaped. Order does not matter: they are sorted when written.
pub type Labels<'a> = [(&'a str, &'a str)];

/// A float the way `prometheus_client` prints it: Python's `repr`, except that positive values
/// with more than six integer digits switch to an exponent as Go's `strconv` does.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let s = python_repr(v);
    if v > 0.0 {
        if let Some(dot) = s.find('.') {
            if dot > 6 {
                let digits = format!("{}{}", &s[1..dot], &s[dot + 1..]);
                let mantissa = format!("{}.{}", &s[..1], digits);
                let mantissa = mantissa.trim_end_matches(['0', '.']);
                return format!("{mantissa}e+{:02}", dot - 1);
            }
        }
    }
    s
}

/// Python's `repr(float)`: shortest round-trip digits, fixed notation for exponents in
/// [-4, 16), scientific (`1e-05`, `1.5e+16`) outside it, and always a `.0` on whole numbers.
pub fn python_repr(v: f64) -> String {
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    // Rust's `{:e}` gives the same shortest digits Python picks, e.g. `1.5e-5`.
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let fixed = format!("{v}");
        if fixed.contains('.') {
            fixed
        } else {
            fixed + ".0"
        }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    }
}

/// Label values: backslash, double quote and line feed are the only characters the format escapes.
pub fn escape_label_value(s: &str) -> Cow<'_, str> {
    if !s.contains(['\\', '"', '\n']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// HELP text escapes backslash and line feed only (a quote is literal there).
fn escape_help(s: &str) -> Cow<'_, str> {
    if !s.contains(['\\', '\n']) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.replace('\\', "\\\\").replace('\n', "\\n"))
}

/// Whether `name` is a legal label name in the 0.0.4 format (and not a reserved `__` one).
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

/// One counter series: labels, value, creation time (Unix seconds).
pub struct CounterSeries<'a> {
    pub labels: Vec<(&'a str, &'a str)>,
    pub value: f64,
    pub created: f64,
}

/// One histogram series.
pub struct HistogramSeries<'a> {
    pub labels: Vec<(&'a str, &'a str)>,
    pub histogram: &'a Histogram,
    pub created: f64,
}

/// Accumulates the exposition text.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    pub fn new() -> Self {
        Exposition {
            out: String::with_capacity(64 * 1024),
        }
    }

    pub fn finish(self) -> String {
        self.out
    }

    fn header(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &Labels<'_>, value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            let mut sorted: Vec<&(&str, &str)> = labels.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(b.0));
            self.out.push('{');
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label_value(v));
            }
            self.out.push('}');
        }
        self.out.push(' ');
        self.out.push_str(&format_float(value));
        self.out.push('\n');
    }

    pub fn gauge(&mut self, name: &str, help: &str, series: &[(Vec<(&str, &str)>, f64)]) {
        self.header(name, help, "gauge");
        for (labels, value) in series {
            self.sample(name, labels, *value);
        }
    }

    /// `name` without `_total`, as vLLM declares it.
    pub fn counter(&mut self, name: &str, help: &str, series: &[CounterSeries<'_>]) {
        let total = format!("{name}_total");
        self.header(&total, help, "counter");
        for s in series {
            self.sample(&total, &s.labels, s.value);
        }
        self.created(
            name,
            help,
            series.iter().map(|s| (&s.labels[..], s.created)),
        );
    }

    pub fn histogram(&mut self, name: &str, help: &str, series: &[HistogramSeries<'_>]) {
        self.header(name, help, "histogram");
        let bucket = format!("{name}_bucket");
        for s in series {
            let buckets: Vec<(String, u64)> = s
                .histogram
                .cumulative()
                .map(|(b, c)| (format_float(b), c))
                .collect();
            let mut labels = s.labels.clone();
            labels.push(("le", ""));
            let le_at = labels.len() - 1;
            for (le, cumulative) in &buckets {
                labels[le_at].1 = le;
                self.sample(&bucket, &labels, *cumulative as f64);
            }
            self.sample(
                &format!("{name}_count"),
                &s.labels,
                s.histogram.count() as f64,
            );
            self.sample(&format!("{name}_sum"), &s.labels, s.histogram.sum());
        }
        self.created(
            name,
            help,
            series.iter().map(|s| (&s.labels[..], s.created)),
        );
    }

    /// prometheus_client writes creation times as a separate gauge family, and only when the
    /// family has at least one series.
    fn created<'s, 'l: 's>(
        &mut self,
        name: &str,
        help: &str,
        series: impl Iterator<Item = (&'s Labels<'l>, f64)>,
    ) {
        let series: Vec<_> = series.collect();
        if series.is_empty() {
            return;
        }
        let created = format!("{name}_created");
        self.header(&created, help, "gauge");
        for (labels, ts) in series {
            self.sample(&created, labels, ts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_follow_prometheus_client() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (5.0, "5.0"),
            (0.1, "0.1"),
            (0.001, "0.001"),
            (2560.0, "2560.0"),
            (123456.0, "123456.0"),
            (1234567.0, "1.234567e+06"),
            (10_000_000.0, "1e+07"),
            (1.7958467416546028e9, "1.7958467416546028e+09"),
            (1.25e10, "1.25e+10"),
            (1e16, "1e+16"),
            (1.5e20, "1.5e+20"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (-2.5, "-2.5"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ];
        for &(v, want) in cases {
            assert_eq!(format_float(v), want, "{v:e}");
        }
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(escape_label_value("plain"), "plain");
        assert_eq!(escape_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(escape_help("x \"quoted\" \\ \n"), "x \"quoted\" \\\\ \\n");
    }

    #[test]
    fn label_names() {
        assert!(is_valid_label_name("block_size"));
        assert!(is_valid_label_name("_x1"));
        assert!(!is_valid_label_name("1x"));
        assert!(!is_valid_label_name("a-b"));
        assert!(!is_valid_label_name("__name__"));
        assert!(!is_valid_label_name(""));
    }

    #[test]
    fn counter_and_histogram_layout() {
        let mut h = Histogram::new(&[1.0, 2.0]);
        h.observe(1.5);
        let mut x = Exposition::new();
        x.counter(
            "c",
            "A counter.",
            &[CounterSeries {
                labels: vec![("model_name", "m"), ("engine", "0")],
                value: 3.0,
                created: 10.0,
            }],
        );
        x.histogram(
            "h",
            "A histogram.",
            &[HistogramSeries {
                labels: vec![("model_name", "m")],
                histogram: &h,
                created: 10.0,
            }],
        );
        x.counter("empty", "No series.", &[]);
        let want = "\
# HELP c_total A counter.
# TYPE c_total counter
c_total{engine=\"0\",model_name=\"m\"} 3.0
# HELP c_created A counter.
# TYPE c_created gauge
c_created{engine=\"0\",model_name=\"m\"} 10.0
# HELP h A histogram.
# TYPE h histogram
h_bucket{le=\"1.0\",model_name=\"m\"} 0.0
h_bucket{le=\"2.0\",model_name=\"m\"} 1.0
h_bucket{le=\"+Inf\",model_name=\"m\"} 1.0
h_count{model_name=\"m\"} 1.0
h_sum{model_name=\"m\"} 1.5
# HELP h_created A histogram.
# TYPE h_created gauge
h_created{model_name=\"m\"} 10.0
# HELP empty_total No series.
# TYPE empty_total counter
";
        assert_eq!(x.finish(), want);
    }
}
