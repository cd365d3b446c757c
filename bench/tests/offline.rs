//! `bench latency` and `bench throughput` end to end on the default model with tiny sizes: the
//! printed lines must have vLLM's field names and number formats, and the JSON files its keys.

use regex::Regex;

fn model_present() -> bool {
    engine::paths::test_model(engine::paths::DEFAULT_MODEL_FILE).is_some()
}

fn args(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

/// A small engine: short context and a small KV pool, so several tests can run side by side; on
/// the CPU (GPU runs belong to scripts/gpu-check.sh).
const ENGINE: &str = "--max-model-len 96 --num-gpu-blocks-override 64 --device cpu";

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("bench-offline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

// A Python float as `print` writes it: 0.123, 1.0 or 1.5e-05.
const PY_FLOAT: &str = r"\d+\.\d+(e-\d\d)?";

#[test]
fn latency_prints_vllms_lines() {
    if !model_present() {
        return;
    }
    let json_path = tmp("latency.json");
    let mut out = Vec::new();
    let a = format!("--input-len 8 --output-len 4 --batch-size 2 --num-iters-warmup 1 --num-iters 3 {ENGINE} --output-json {}", json_path.display());
    bench::latency::run(args(&a), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "Warming up...");
    assert!(
        Regex::new(&format!("^Avg latency: {PY_FLOAT} seconds$"))
            .unwrap()
            .is_match(lines[1]),
        "{text}"
    );
    assert!(
        Regex::new(&format!("^Std latency: {PY_FLOAT} seconds$"))
            .unwrap()
            .is_match(lines[2]),
        "{text}"
    );
    for (i, p) in [10, 25, 50, 75, 90, 99].iter().enumerate() {
        let re = Regex::new(&format!("^{p}% percentile latency: {PY_FLOAT} seconds$")).unwrap();
        assert!(re.is_match(lines[3 + i]), "{}", lines[3 + i]);
    }
    assert_eq!(lines.len(), 9, "{text}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(v["latencies"].as_array().unwrap().len(), 3);
    assert!(v["avg_latency"].as_f64().unwrap() > 0.0);
    assert!(v["std_latency"].is_number());
    for p in ["10", "25", "50", "75", "90", "99"] {
        assert!(v["percentiles"][p].is_number(), "{v}");
    }
}

#[test]
fn throughput_prints_vllms_lines() {
    if !model_present() {
        return;
    }
    let json_path = tmp("throughput.json");
    let mut out = Vec::new();
    let a = format!("--dataset-name random --input-len 16 --output-len 4 --num-prompts 4 {ENGINE} --output-json {}", json_path.display());
    bench::throughput::run(args(&a), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "When dataset path is not set, it will default to random dataset"
    );
    let re = Regex::new(r"^Throughput: \d+\.\d{2} requests/s, \d+\.\d{2} total tokens/s, \d+\.\d{2} output tokens/s$").unwrap();
    assert!(re.is_match(lines[1]), "{text}");
    let prompt = Regex::new(r"^Total num prompt tokens:  (\d+)$")
        .unwrap()
        .captures(lines[2])
        .expect("prompt tokens line");
    let prompt_tokens: usize = prompt[1].parse().unwrap();
    assert!(
        (4 * 14..=4 * 18).contains(&prompt_tokens),
        "{prompt_tokens}"
    );
    // ignore_eos: every request generates exactly --output-len tokens.
    assert_eq!(lines[3], "Total num output tokens:  16");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    assert_eq!(v["num_requests"], 4);
    assert_eq!(
        v["total_num_tokens"].as_u64().unwrap() as usize,
        prompt_tokens + 16
    );
    for k in ["elapsed_time", "requests_per_second", "tokens_per_second"] {
        assert!(v[k].as_f64().unwrap() > 0.0, "{k}: {v}");
    }
}

#[test]
fn throughput_sharegpt_with_n_samples() {
    if !model_present() {
        return;
    }
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sharegpt_sample.json");
    let mut out = Vec::new();
    let a = format!("--dataset-name sharegpt --dataset-path {} --output-len 3 --num-prompts 3 --n 2 --max-model-len 160 --num-gpu-blocks-override 64", data.display());
    bench::throughput::run(args(&a), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    // Three prompts, two samples of three tokens each.
    assert!(
        text.lines().any(|l| l == "Total num output tokens:  18"),
        "{text}"
    );
}

#[test]
fn help_lists_own_flags() {
    let mut out = Vec::new();
    bench::latency::run(args("--help"), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    for flag in [
        "--input-len",
        "--output-len",
        "--batch-size",
        "--n ",
        "--num-iters-warmup",
        "--num-iters ",
        "--output-json",
    ] {
        assert!(text.contains(flag), "{flag}: {text}");
    }
    let mut out = Vec::new();
    bench::throughput::run(args("-h"), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    for flag in [
        "--dataset-name",
        "--dataset-path",
        "--num-prompts",
        "--random-range-ratio",
        "--prefix-len",
    ] {
        assert!(text.contains(flag), "{flag}: {text}");
    }
}
