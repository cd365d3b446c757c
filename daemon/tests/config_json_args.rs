//! JSON-valued flags: a JSON string, dotted keys and `+` appends, as the reference describes.

use daemon::config::{ConfigError, EnvSettings, ServeConfig};
use serde_json::{json, Value};

fn load(args: &[&str]) -> Result<ServeConfig, ConfigError> {
    let argv = std::iter::once("vllmd")
        .chain(args.iter().copied())
        .map(String::from)
        .collect();
    ServeConfig::load(argv, &EnvSettings::default())
}

fn overrides(args: &[&str]) -> Value {
    match load(args) {
        Ok(c) => c.model_config.hf_overrides,
        Err(e) => panic!("{args:?}: {e}"),
    }
}

#[test]
fn dotted_keys_equal_the_json_string() {
    // The reference: --json-arg '{"key1": "value1", "key2": {"key3": "value2"}}'
    //            ≡ --json-arg.key1 value1 --json-arg.key2.key3 value2
    let whole = overrides(&[
        "--hf-overrides",
        r#"{"key1": "value1", "key2": {"key3": "value2"}}"#,
    ]);
    let dotted = overrides(&[
        "--hf-overrides.key1",
        "value1",
        "--hf-overrides.key2.key3",
        "value2",
    ]);
    assert_eq!(whole, json!({"key1": "value1", "key2": {"key3": "value2"}}));
    assert_eq!(dotted, whole);
}

#[test]
fn plus_appends_list_items() {
    // The reference: --json-arg '{"key4": ["value3", "value4", "value5"]}'
    //            ≡ --json-arg.key4+ value3 --json-arg.key4+='value4,value5' (the shell drops the quotes)
    let appended = overrides(&[
        "--hf-overrides.key4+",
        "value3",
        "--hf-overrides.key4+=value4,value5",
    ]);
    assert_eq!(appended, json!({"key4": ["value3", "value4", "value5"]}));
    assert_eq!(
        appended,
        overrides(&[
            "--hf-overrides",
            r#"{"key4": ["value3", "value4", "value5"]}"#
        ])
    );
}

#[test]
fn dotted_values_are_json_when_they_parse() {
    let v = overrides(&[
        "--hf-overrides.n",
        "3",
        "--hf-overrides.f",
        "0.5",
        "--hf-overrides.b",
        "false",
        "--hf-overrides.s",
        "text",
        "--hf-overrides.l",
        "[1,2]",
        "--hf-overrides.o",
        r#"{"x":1}"#,
        "--hf-overrides.q",
        r#""3""#,
    ]);
    assert_eq!(
        v,
        json!({"n": 3, "f": 0.5, "b": false, "s": "text", "l": [1, 2], "o": {"x": 1}, "q": "3"})
    );
}

#[test]
fn forms_mix_and_later_keys_win() {
    let v = overrides(&[
        "--hf-overrides",
        r#"{"a": {"b": 1, "c": 2}}"#,
        "--hf-overrides.a.c=5",
        "--hf_overrides.d",
        "x",
        "--hf-overrides",
        r#"{"a": {"e": 3}}"#,
    ]);
    assert_eq!(v, json!({"a": {"b": 1, "c": 5, "e": 3}, "d": "x"}));
}

#[test]
fn every_json_flag_takes_the_dotted_form() {
    let c = match load(&[
        "--override-generation-config.temperature",
        "0.5",
        "--rope-scaling.rope_type",
        "dynamic",
        "--rope-scaling.factor",
        "2.0",
        "--speculative-config.num_speculative_tokens",
        "3",
        "--kv-transfer-config.kv_role",
        "kv_both",
        "--kv-events-config.enable_kv_cache_events",
        "true",
        "--additional-config.x",
        "1",
        "--limit-mm-per-prompt.image",
        "16",
        "--media-io-kwargs.video.num_frames",
        "40",
        "--mm-processor-kwargs.num_crops",
        "4",
        "--model-loader-extra-config.a",
        "b",
        "--override-neuron-config.c",
        "d",
        "--override-pooler-config.pooling_type",
        "mean",
        "--default-mm-loras.image",
        "/l",
    ]) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        c.model_config.override_generation_config,
        json!({"temperature": 0.5})
    );
    assert_eq!(
        c.model_config.rope_scaling,
        json!({"rope_type": "dynamic", "factor": 2.0})
    );
    assert_eq!(
        c.vllm.speculative_config,
        Some(json!({"num_speculative_tokens": 3}))
    );
    assert_eq!(
        c.vllm.kv_transfer_config,
        Some(json!({"kv_role": "kv_both"}))
    );
    assert_eq!(
        c.vllm.kv_events_config,
        Some(json!({"enable_kv_cache_events": true}))
    );
    assert_eq!(c.vllm.additional_config, json!({"x": 1}));
    assert_eq!(c.multimodal.limit_mm_per_prompt, json!({"image": 16}));
    assert_eq!(
        c.multimodal.media_io_kwargs,
        json!({"video": {"num_frames": 40}})
    );
    assert_eq!(
        c.multimodal.mm_processor_kwargs,
        Some(json!({"num_crops": 4}))
    );
    assert_eq!(c.load.model_loader_extra_config, json!({"a": "b"}));
    assert_eq!(c.model_config.override_neuron_config, json!({"c": "d"}));
    assert_eq!(
        c.model_config.override_pooler_config,
        Some(json!({"pooling_type": "mean"}))
    );
    assert_eq!(c.lora.default_mm_loras, Some(json!({"image": "/l"})));
}

#[test]
fn compilation_config_shorthands() {
    let level = |args: &[&str]| {
        load(args)
            .map(|c| c.vllm.compilation_config)
            .map_err(|e| e.to_string())
    };
    let three = Ok(json!({"level": 3}));
    assert_eq!(level(&["-O3"]), three);
    assert_eq!(level(&["-O", "3"]), three);
    assert_eq!(level(&["-O=3"]), three);
    assert_eq!(level(&["-O.level=3"]), three);
    assert_eq!(level(&["-O.level", "3"]), three);
    assert_eq!(level(&["-O", r#"{"level":3}"#]), three);
    assert_eq!(level(&["--compilation-config", "3"]), three);
    assert_eq!(
        level(&[
            "-O3",
            "-O.cudagraph_capture_sizes+=1,2",
            "-O.cudagraph_capture_sizes+",
            "4"
        ]),
        Ok(json!({"level": 3, "cudagraph_capture_sizes": [1, 2, 4]}))
    );
    assert_eq!(level(&[]), Ok(json!({})));
}

#[test]
fn malformed_json_arguments_are_errors_naming_the_flag() {
    for (args, flag) in [
        (&["--hf-overrides", "{not json"][..], "--hf-overrides"),
        (&["--hf-overrides"], "--hf-overrides"),
        (
            &["--hf-overrides.a", "1", "--hf-overrides.a.b", "2"],
            "--hf-overrides.a.b",
        ),
        (
            &["--hf-overrides.a", "1", "--hf-overrides.a+", "2"],
            "--hf-overrides.a+",
        ),
    ] {
        match load(args) {
            Err(ConfigError::JsonArg { flag: f, .. }) => assert_eq!(f, flag, "{args:?}"),
            other => panic!("{args:?}: expected a JSON argument error, got {other:?}"),
        }
    }
    // A JSON value of the wrong shape is refused by the flag's parser.
    let e = load(&["--hf-overrides", "[1, 2]"])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("--hf-overrides") && e.contains("JSON object"),
        "{e}"
    );
}
