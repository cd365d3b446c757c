use super::*;

#[test]
fn task_spellings_map_as_vllm_maps_them() {
    let r = |runner, convert, task, cls| resolve_runner(runner, convert, task, cls);
    assert_eq!(r("auto", "auto", None, false), Ok(Runner::Generate));
    assert_eq!(
        r("auto", "auto", None, true),
        Ok(Runner::Pooling(PoolingKind::Classify))
    );
    for t in ["embed", "embedding"] {
        assert_eq!(
            r("auto", "auto", Some(t), false),
            Ok(Runner::Pooling(PoolingKind::Embed))
        );
    }
    for t in ["classify", "score"] {
        assert_eq!(
            r("auto", "auto", Some(t), true),
            Ok(Runner::Pooling(PoolingKind::Classify))
        );
        assert!(r("auto", "auto", Some(t), false).is_err());
    }
    assert_eq!(
        r("auto", "auto", Some("generate"), false),
        Ok(Runner::Generate)
    );
    assert_eq!(
        r("pooling", "auto", None, false),
        Ok(Runner::Pooling(PoolingKind::Embed))
    );
    assert!(r("pooling", "reward", None, false).is_err());
    assert!(r("generate", "auto", None, true).is_err());
    assert!(r("generate", "embed", None, false).is_err());
}

#[test]
fn mean_pooling_is_the_same_whatever_the_chunking() {
    let d = 3;
    let rows: Vec<f32> = (0..5 * d).map(|i| (i as f32 * 0.37).sin()).collect();
    let mut whole = PoolAccumulator::new(PoolingType::Mean, d);
    whole.push(&rows);
    let mut chunked = PoolAccumulator::new(PoolingType::Mean, d);
    chunked.push(&rows[..2 * d]);
    chunked.push(&rows[2 * d..]);
    assert_eq!(whole.finish(), chunked.finish());
    let mean0: f32 = (0..5).map(|r| rows[r * d]).sum::<f32>() / 5.0;
    assert!((whole.finish()[0] - mean0).abs() < 1e-6);

    let mut cls = PoolAccumulator::new(PoolingType::Cls, d);
    cls.push(&rows[..2 * d]);
    cls.push(&rows[2 * d..]);
    assert_eq!(cls.finish(), rows[..d].to_vec());
    let mut last = PoolAccumulator::new(PoolingType::Last, d);
    last.push(&rows[..d]); // a chunk's last row, then the final chunk's
    last.push(&rows[4 * d..]);
    assert_eq!(last.finish(), rows[4 * d..].to_vec());
}

#[test]
fn normalise_and_activate() {
    let mut v = vec![3.0, 4.0];
    l2_normalize(&mut v);
    assert!((v[0] - 0.6).abs() < 1e-7 && (v[1] - 0.8).abs() < 1e-7);
    let mut one = vec![0.0];
    activate(&mut one);
    assert_eq!(one, vec![0.5]);
    let mut two = vec![1.0, 1.0];
    activate(&mut two);
    assert_eq!(two, vec![0.5, 0.5]);
}

#[test]
fn sentence_transformers_folder_and_overrides() {
    let dir = std::env::temp_dir().join(format!("vllm-st-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    std::fs::write(
        dir.join("modules.json"),
        r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
            {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"}]"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("1_Pooling/config.json"),
        r#"{"word_embedding_dimension": 8, "pooling_mode_mean_tokens": true}"#,
    )
    .unwrap();
    let (c, src) = PoolerConfig::resolve(PoolingKind::Embed, Some(&dir), None).unwrap();
    assert_eq!(c.pooling_type, PoolingType::Mean);
    assert!(!c.normalize, "no Normalize module: no normalisation");
    assert!(src.contains("Sentence-Transformers"));
    let o = serde_json::json!({"pooling_type": "CLS", "normalize": true, "dimensions": 4});
    let (c, _) = PoolerConfig::resolve(PoolingKind::Embed, Some(&dir), Some(&o)).unwrap();
    assert_eq!(
        (c.pooling_type, c.normalize, c.dimensions),
        (PoolingType::Cls, true, Some(4))
    );
    let bad = serde_json::json!({"pooling_type": "STEP"});
    assert!(PoolerConfig::resolve(PoolingKind::Embed, None, Some(&bad)).is_err());
    let unknown = serde_json::json!({"nope": 1});
    assert!(PoolerConfig::resolve(PoolingKind::Embed, None, Some(&unknown)).is_err());
    std::fs::remove_dir_all(&dir).ok();
}
