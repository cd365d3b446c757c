//! Human-readable token counts, as `vllm serve --max-model-len` accepts them.

/// Parses a length such as `4096`, `1k` (1000), `1K` (1024), `25.6k` (25600) or `2M` (2·1024²).
///
/// Lower-case suffixes `k m g t` are powers of 1000 and may carry decimals; upper-case
/// `K M G T` are powers of 1024 and must not (vLLM rejects `1.5K` the same way). The arithmetic
/// is done on the decimal digits, not on floats, so `1.1k` is exactly 1100; a value that is not a
/// whole number (`1.0005k`) or is zero is refused, because it is a count of tokens.
pub fn parse_human_len(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let err = |why: &str| format!("invalid length `{s}`{why} (examples: 4096, 1k, 1K, 25.6k, 2M)");
    let (num, exp, base) = match s.chars().last() {
        Some(c @ ('k' | 'm' | 'g' | 't')) => (
            &s[..s.len() - 1],
            "kmgt".find(c).unwrap_or(0) as u32 + 1,
            1000u128,
        ),
        Some(c @ ('K' | 'M' | 'G' | 'T')) => (
            &s[..s.len() - 1],
            "KMGT".find(c).unwrap_or(0) as u32 + 1,
            1024u128,
        ),
        _ => (s, 0, 1),
    };
    let (int_part, frac_part) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    let digits_only = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    if int_part.is_empty()
        || !digits_only(int_part)
        || !digits_only(frac_part)
        || (num.contains('.') && frac_part.is_empty())
    {
        return Err(err(""));
    }
    if base == 1024 && !frac_part.is_empty() {
        let lower = s
            .chars()
            .last()
            .map(|c| c.to_ascii_lowercase())
            .unwrap_or('k');
        return Err(err(&format!(
            ": decimals are not allowed with binary suffixes; did you mean {num}{lower}?"
        )));
    }
    let mult = base.checked_pow(exp).ok_or_else(|| err(""))?;
    let int: u128 = int_part.parse().map_err(|_| err(": too large"))?;
    let mut total = int.checked_mul(mult).ok_or_else(|| err(": too large"))?;
    if !frac_part.is_empty() {
        let frac_digits = frac_part.len() as u32;
        let frac: u128 = frac_part.parse().map_err(|_| err(""))?;
        let scale = 10u128
            .checked_pow(frac_digits)
            .ok_or_else(|| err(": too many decimals"))?;
        let scaled = frac.checked_mul(mult).ok_or_else(|| err(": too large"))?;
        if scaled % scale != 0 {
            return Err(err(": not a whole number"));
        }
        total = total
            .checked_add(scaled / scale)
            .ok_or_else(|| err(": too large"))?;
    }
    if total == 0 {
        return Err(err(": must be at least 1"));
    }
    usize::try_from(total).map_err(|_| err(": too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_lengths_follow_the_reference_examples() {
        // The examples are the ones the vLLM server-arguments reference lists.
        assert_eq!(parse_human_len("1k"), Ok(1000));
        assert_eq!(parse_human_len("1K"), Ok(1024));
        assert_eq!(parse_human_len("25.6k"), Ok(25_600));
        assert_eq!(parse_human_len("2M"), Ok(2 * 1024 * 1024));
        assert_eq!(parse_human_len("4096"), Ok(4096));
        assert!(parse_human_len("0").is_err());
        assert!(parse_human_len("1.5").is_err());
        assert!(parse_human_len("abc").is_err());
        assert!(parse_human_len("-1k").is_err());
    }

    #[test]
    fn decimal_suffixes_are_exact_and_binary_ones_refuse_decimals() {
        assert_eq!(parse_human_len("1.1k"), Ok(1100));
        assert_eq!(parse_human_len("0.5k"), Ok(500));
        assert_eq!(parse_human_len("2m"), Ok(2_000_000));
        assert_eq!(parse_human_len("1g"), Ok(1_000_000_000));
        assert_eq!(parse_human_len("1G"), Ok(1 << 30));
        assert_eq!(parse_human_len(" 8k "), Ok(8000));
        assert!(parse_human_len("1.0005k").unwrap_err().contains("whole"));
        assert!(parse_human_len("1.5K").unwrap_err().contains("1.5k"));
        assert!(parse_human_len("1.").is_err());
        assert!(parse_human_len(".5k").is_err());
        assert!(parse_human_len("k").is_err());
        assert!(parse_human_len("").is_err());
        assert!(parse_human_len("0k").is_err());
        assert!(parse_human_len("99999999999999999999999999T").is_err());
    }
}
