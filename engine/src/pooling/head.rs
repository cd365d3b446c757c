//! The `score` head of `*ForSequenceClassification` checkpoints (Llama, Qwen2, Qwen3): a
//! `[num_labels, hidden_size]` matrix applied to the pooled hidden state, as transformers
//! applies it to the last token's hidden state.

use serde_json::Value;

use crate::error::LoadError;
use crate::model::WeightSource;

/// The architecture-name suffix of sequence classifiers (`Qwen3ForSequenceClassification`).
pub const SEQ_CLS_SUFFIX: &str = "ForSequenceClassification";

/// A loaded classification head.
#[derive(Debug, Clone)]
pub struct ClassifierHead {
    pub num_labels: usize,
    pub hidden_size: usize,
    /// Row-major `[num_labels, hidden_size]`.
    pub weight: Vec<f32>,
    /// Label names by index (`id2label`; `LABEL_i` when the config has none).
    pub labels: Vec<String>,
}

impl ClassifierHead {
    /// Whether a `config.json` describes a sequence classifier.
    pub fn is_classifier_config(json: &Value) -> bool {
        json.get("architectures")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .is_some_and(|a| a.ends_with(SEQ_CLS_SUFFIX))
    }

    /// Reads `score.weight` (and `id2label`) for a classifier `config.json`.
    pub fn load(
        json: &Value,
        source: &dyn WeightSource,
        hidden_size: usize,
    ) -> Result<Self, LoadError> {
        let id2label = json.get("id2label").and_then(Value::as_object);
        let num_labels = json
            .get("num_labels")
            .and_then(Value::as_u64)
            .map(|n| n as usize)
            .or_else(|| id2label.map(|m| m.len()))
            .unwrap_or(2);
        let labels = (0..num_labels)
            .map(|i| {
                id2label
                    .and_then(|m| m.get(&i.to_string()))
                    .and_then(Value::as_str)
                    .map_or_else(|| format!("LABEL_{i}"), str::to_string)
            })
            .collect();
        let (shape, weight) =
            source
                .load("score.weight")?
                .ok_or_else(|| LoadError::MissingTensor {
                    path: source.path().to_path_buf(),
                    name: "score.weight".into(),
                })?;
        if weight.len() != num_labels * hidden_size {
            return Err(LoadError::TensorShape {
                path: source.path().to_path_buf(),
                name: "score.weight".into(),
                got: shape,
                expected: vec![num_labels, hidden_size],
            });
        }
        Ok(ClassifierHead {
            num_labels,
            hidden_size,
            weight,
            labels,
        })
    }

    /// The logits of one pooled hidden state.
    pub fn logits(&self, pooled: &[f32]) -> Vec<f32> {
        self.weight
            .chunks_exact(self.hidden_size.max(1))
            .map(|row| {
                row.iter()
                    .zip(pooled)
                    .map(|(w, h)| *w as f64 * *h as f64)
                    .sum::<f64>() as f32
            })
            .collect()
    }
}
