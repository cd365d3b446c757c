//! Which files of a repo a model needs, as vLLM picks them: the config and tokenizer files,
//! then the weights of the load format (safetensors shards named by
//! `model.safetensors.index.json`, or one GGUF file), minus `--ignore-patterns`.

use serde_json::Value;

/// The index of a sharded safetensors checkpoint.
pub const SAFETENSORS_INDEX: &str = "model.safetensors.index.json";

/// vLLM's `--ignore-patterns` when none is given: the `original/` copies some repos carry.
pub const DEFAULT_IGNORE_PATTERNS: &[&str] = &["original/**/*"];

/// Small files read before and beside the weights (those the repo has).
pub const CONFIG_FILES: &[&str] = &["config.json", "generation_config.json"];
pub const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
];

/// Which weights to fetch (`--load-format`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Weights {
    /// The safetensors checkpoint (`auto` and `safetensors`).
    Safetensors,
    /// One GGUF file: the one whose name ends with this quantization type
    /// (`repo:Q4_K_M`, as vLLM spells it), or the only one of the repo.
    Gguf(Option<String>),
    /// No weights (`dummy`: random weights of the config's shapes).
    None,
}

/// `fnmatch` as `huggingface_hub` applies `ignore_patterns`: `*` matches any run of characters
/// (slashes included), `?` one character; no character classes.
pub fn fnmatch(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Whether any pattern of `ignore` matches `file`.
pub fn ignored(ignore: &[String], file: &str) -> bool {
    ignore.iter().any(|p| fnmatch(p, file))
}

/// The shards the index names, sorted and without repeats.
pub fn shards_of_index(index: &Value) -> Result<Vec<String>, String> {
    let map = index
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or_else(|| format!("{SAFETENSORS_INDEX} has no `weight_map`"))?;
    let mut shards: Vec<String> = map
        .values()
        .map(|v| {
            v.as_str().map(str::to_string).ok_or_else(|| {
                format!("{SAFETENSORS_INDEX}: a `weight_map` value is not a file name")
            })
        })
        .collect::<Result<_, _>>()?;
    shards.sort();
    shards.dedup();
    Ok(shards)
}

/// The top-level safetensors files of a repo without an index.
pub fn safetensors_files(files: &[String], ignore: &[String]) -> Vec<String> {
    files
        .iter()
        .filter(|f| f.ends_with(".safetensors") && !f.contains('/') && !ignored(ignore, f))
        .cloned()
        .collect()
}

/// The GGUF file to fetch: named by its quantization type, or the repo's only one.
pub fn gguf_file(files: &[String], quant: Option<&str>) -> Result<String, String> {
    let ggufs: Vec<&String> = files
        .iter()
        .filter(|f| f.to_ascii_lowercase().ends_with(".gguf"))
        .collect();
    let found: Vec<&String> = match quant {
        Some(q) => {
            let suffix = format!("{}.gguf", q.to_ascii_lowercase());
            ggufs
                .iter()
                .filter(|f| f.to_ascii_lowercase().ends_with(&suffix))
                .copied()
                .collect()
        }
        None => ggufs.clone(),
    };
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] if ggufs.is_empty() => Err("the repo has no .gguf file".into()),
        [] => Err(format!(
            "no .gguf file ends with `{}.gguf`; the repo has: {}",
            quant.unwrap_or_default(),
            ggufs
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        many => Err(format!(
            "several .gguf files: {}; name one as repo:QUANT (e.g. org/name:Q4_K_M)",
            many.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_as_python() {
        assert!(fnmatch("original/**/*", "original/a/b.pth"));
        assert!(!fnmatch("original/**/*", "original/x.pth"));
        assert!(fnmatch("*.bin", "pytorch_model.bin"));
        assert!(fnmatch("*.bin", "sub/pytorch_model.bin"));
        assert!(fnmatch(
            "model-0000?-of-00002.safetensors",
            "model-00001-of-00002.safetensors"
        ));
        assert!(!fnmatch("*.bin", "model.safetensors"));
    }

    #[test]
    fn index_names_the_shards() {
        let index = serde_json::json!({"weight_map": {"a": "m-2.safetensors", "b": "m-1.safetensors", "c": "m-2.safetensors"}});
        assert_eq!(
            shards_of_index(&index).unwrap(),
            vec!["m-1.safetensors", "m-2.safetensors"]
        );
        assert!(shards_of_index(&serde_json::json!({})).is_err());
    }

    #[test]
    fn gguf_by_quant_type() {
        let files: Vec<String> = ["a-Q4_K_M.gguf", "a-Q8_0.gguf", "README.md"]
            .map(String::from)
            .into();
        assert_eq!(gguf_file(&files, Some("q8_0")).unwrap(), "a-Q8_0.gguf");
        assert!(gguf_file(&files, None).unwrap_err().contains("several"));
        assert!(gguf_file(&files, Some("Q2_K"))
            .unwrap_err()
            .contains("a-Q4_K_M.gguf"));
    }
}
