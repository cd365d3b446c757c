//! "Did you mean" for misspelt flag names in YAML files (clap does the same on the command line).

use crate::config::json_args::MULTI_LETTER_SHORTS;

/// The flag name closest to `input` among `longs` (kebab-case names), if one is close enough.
///
/// Underscores, leading dashes and case are ignored; a multi-letter short form such as `tp`
/// maps to its long name. The answer is spelled in the input's style (snake or kebab case).
pub(crate) fn did_you_mean<'a>(
    input: &str,
    longs: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let wanted = input
        .trim_start_matches('-')
        .replace('_', "-")
        .to_ascii_lowercase();
    let snake = input.contains('_') && !input.contains('-');
    let style = |long: &str| {
        if snake {
            long.replace('-', "_")
        } else {
            long.to_string()
        }
    };
    if let Some((_, long)) = MULTI_LETTER_SHORTS.iter().find(|(s, _)| *s == wanted) {
        return Some(style(long));
    }
    let mut best: Option<(f64, &str)> = None;
    for long in longs {
        let score = strsim::jaro_winkler(&wanted, long);
        // Same threshold as clap's, so both sides suggest alike.
        if score > 0.8 && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, long));
        }
    }
    best.map(|(_, long)| style(long))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_closest_name_in_the_callers_style() {
        let names = [
            "max-model-len",
            "max-num-seqs",
            "port",
            "tensor-parallel-size",
        ];
        assert_eq!(
            did_you_mean("max-model-lenn", names).as_deref(),
            Some("max-model-len")
        );
        assert_eq!(
            did_you_mean("max_num_seq", names).as_deref(),
            Some("max_num_seqs")
        );
        assert_eq!(did_you_mean("--prot", names).as_deref(), Some("port"));
        assert_eq!(
            did_you_mean("tp", names).as_deref(),
            Some("tensor-parallel-size")
        );
        assert_eq!(did_you_mean("completely-unrelated", names), None);
    }
}
