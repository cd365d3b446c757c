//! `vllm bench serve`: a workload from a dataset sent to an OpenAI-compatible server as streamed
//! requests, at a Poisson (or gamma) request rate under an optional concurrency cap; the latency
//! of every token measured on the client side and summarised in vLLM's result block.

mod args;
pub mod arrivals;
pub mod client;
pub mod metrics;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use engine::tokenizer::Tokenizer;
use rand::Rng;
use serde_json::{json, Map, Value};

use crate::datasets::{self, SampleRequest};
use crate::report::py_float;
pub use args::ServeArgs;
use client::{RequestInput, RequestOutput};
use progress::Progress;

fn key_values(items: &[String], what: &str) -> anyhow::Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) => Ok((k.trim().to_string(), v.trim().to_string())),
            None => Err(anyhow!(
                "Invalid {what} format {item:?}. Please use KEY=VALUE format."
            )),
        })
        .collect()
}

/// `YYYYmmdd-HHMMSS` in UTC, the date stamp of result files.
fn date_stamp(now: SystemTime) -> String {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Sampling flags given on the command line, then `--extra-body` over them.
fn extra_body(args: &ServeArgs) -> anyhow::Result<Map<String, Value>> {
    let mut body = Map::new();
    let params: [(&str, Option<Value>); 7] = [
        ("top_p", args.top_p.map(|v| json!(v))),
        ("top_k", args.top_k.map(|v| json!(v))),
        ("min_p", args.min_p.map(|v| json!(v))),
        ("temperature", args.temperature.map(|v| json!(v))),
        (
            "frequency_penalty",
            args.frequency_penalty.map(|v| json!(v)),
        ),
        ("presence_penalty", args.presence_penalty.map(|v| json!(v))),
        (
            "repetition_penalty",
            args.repetition_penalty.map(|v| json!(v)),
        ),
    ];
    for (k, v) in params {
        if let Some(v) = v {
            body.insert(k.into(), v);
        }
    }
    if let Some(text) = &args.extra_body {
        match serde_json::from_str::<Value>(text).context("--extra-body")? {
            Value::Object(m) => body.extend(m),
            _ => bail!("--extra-body must be a JSON object"),
        }
    }
    Ok(body)
}

fn sample(args: &ServeArgs, tok: &Tokenizer) -> anyhow::Result<Vec<SampleRequest>> {
    let path = || {
        args.dataset_path.clone().with_context(|| {
            format!(
                "--dataset-path is required for the {} dataset",
                args.dataset_name
            )
        })
    };
    let template = || {
        tok.compile_chat_template()
            .transpose()
            .map_err(crate::BenchError::from)
    };
    let n = args.num_prompts;
    Ok(match args.dataset_name.as_str() {
        "random" => datasets::random(
            tok,
            &datasets::RandomOptions {
                num_requests: n,
                input_len: args.input_len.unwrap_or(args.random_input_len),
                output_len: args.output_len.unwrap_or(args.random_output_len),
                range_ratio: args.random_range_ratio,
                prefix_len: args.random_prefix_len,
                seed: args.seed,
            },
        )?,
        "sharegpt" => datasets::sharegpt(
            tok,
            &datasets::ShareGptOptions {
                path: path()?,
                num_requests: n,
                output_len: args.output_len.or(args.sharegpt_output_len),
                seed: args.seed,
                disable_shuffle: args.disable_shuffle,
                no_oversample: args.no_oversample,
            },
        )?,
        "sonnet" => datasets::sonnet(
            tok,
            template()?.as_ref(),
            &datasets::SonnetOptions {
                path: path()?,
                num_requests: n,
                input_len: args.sonnet_input_len,
                output_len: args.output_len.unwrap_or(args.sonnet_output_len),
                prefix_len: args.sonnet_prefix_len,
                // The server applies the chat template of a chat request itself.
                return_prompt_formatted: args.backend != "openai-chat",
                seed: args.seed,
            },
        )?,
        "custom" => datasets::custom(
            tok,
            template()?.as_ref(),
            &datasets::CustomOptions {
                path: path()?,
                num_requests: n,
                output_len: args.output_len.unwrap_or(args.custom_output_len),
                skip_chat_template: args.skip_chat_template || args.backend == "openai-chat",
                seed: args.seed,
                disable_shuffle: args.disable_shuffle,
                no_oversample: args.no_oversample,
            },
        )?,
        "prefix_repetition" => datasets::prefix_repetition(
            tok,
            &datasets::PrefixRepetitionOptions {
                num_requests: n,
                prefix_len: args.prefix_repetition_prefix_len,
                suffix_len: args.prefix_repetition_suffix_len,
                num_prefixes: args.prefix_repetition_num_prefixes,
                output_len: args.output_len.unwrap_or(args.prefix_repetition_output_len),
                seed: args.seed,
                disable_shuffle: args.disable_shuffle,
            },
        )?,
        other => bail!("unknown dataset name: {other}"),
    })
}

/// The first model a server lists: (id, root). `root` falls back to the id.
async fn first_model(client: &reqwest::Client, base_url: &str) -> anyhow::Result<(String, String)> {
    let url = format!("{base_url}/v1/models");
    let fail = |e: String| {
        anyhow!("Failed to fetch models from server at {url}. Check that the server is running and the URL is correct. Error: {e}")
    };
    let resp = client
        .get(&url)
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(fail(format!("HTTP {}", resp.status())));
    }
    let v: Value = resp.json().await.map_err(|e| fail(e.to_string()))?;
    let first = v
        .pointer("/data/0")
        .ok_or_else(|| anyhow!("No models found on the server at {base_url}."))?;
    let id = first
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| fail("a model without an id".into()))?;
    let root = first.get("root").and_then(Value::as_str).unwrap_or(id);
    Ok((id.to_string(), root.to_string()))
}

/// Sends `test` until it succeeds or `timeout` passes; the last output either way.
async fn wait_for_endpoint(
    client: &reqwest::Client,
    test: &RequestInput,
    timeout: Duration,
    origin: Instant,
) -> RequestOutput {
    let deadline = Instant::now() + timeout;
    loop {
        let out = client::send(client, test, origin).await;
        if out.success || Instant::now() >= deadline {
            return out;
        }
        tokio::time::sleep(
            Duration::from_secs(1).min(deadline.saturating_duration_since(Instant::now())),
        )
        .await;
    }
}

/// `vllm bench serve`, report on `out`.
pub fn run(args: ServeArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run_async(args, out))
}

async fn run_async(mut args: ServeArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    if args.max_concurrency == Some(0) {
        bail!("--max-concurrency must be greater than 0");
    }
    let (api_url, base_url) = match &args.base_url {
        Some(b) => {
            let b = daemon::url::server_root(b);
            (format!("{b}{}", args.endpoint), b)
        }
        None => {
            let host = if args.host.contains(':') && !args.host.starts_with('[') {
                format!("[{}]", args.host)
            } else {
                args.host.clone()
            };
            let b = format!("http://{host}:{}", args.port);
            (format!("{b}{}", args.endpoint), b)
        }
    };
    let chat = args.backend == "openai-chat";
    // `--endpoint /v1/embeddings` alone selects the embeddings backend.
    let embeddings = args.backend == "openai-embeddings"
        || (args.backend == "openai" && api_url.ends_with("/embeddings"));
    let (suffix, api) = if embeddings {
        ("embeddings", "OpenAI Embeddings API")
    } else if chat {
        ("chat/completions", "OpenAI Chat Completions API")
    } else {
        ("completions", "OpenAI Completions API")
    };
    if !api_url.ends_with(suffix) {
        bail!("{api} URL must end with {suffix:?}: {api_url} (set --endpoint)");
    }
    let headers = key_values(&args.header, "header")?;
    let metadata = key_values(&args.metadata, "metadata")?;
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(args.insecure)
        .timeout(Duration::from_secs(6 * 60 * 60))
        .build()
        .context("building the HTTP client")?;

    let (model_name, model_id) = match &args.model {
        Some(m) => (
            args.served_model_name.clone().unwrap_or_else(|| m.clone()),
            m.clone(),
        ),
        None => {
            writeln!(
                out,
                "Model not specified, fetching first model from server..."
            )?;
            let (name, id) = first_model(&client, &base_url).await?;
            writeln!(out, "First model name: {name}, first model id: {id}")?;
            (name, id)
        }
    };
    let tokenizer_id = args
        .tokenizer
        .clone()
        .unwrap_or_else(|| PathBuf::from(&model_id));
    let tok = datasets::load_tokenizer(&tokenizer_id)?;

    if matches!(args.dataset_name.as_str(), "random" | "prefix_repetition")
        && args.dataset_path.is_some()
    {
        bail!("Cannot use '{}' dataset with --dataset-path. Please specify the appropriate --dataset-name (e.g., 'sharegpt', 'custom', 'sonnet') for your dataset file", args.dataset_name);
    }
    // The random dataset asks for exact lengths: generation must not stop early.
    if args.dataset_name == "random" {
        args.ignore_eos = true;
    }
    let requests = sample(&args, &tok)?;
    if requests.is_empty() {
        bail!("the dataset gave no requests");
    }
    let goodput = metrics::parse_goodput(&args.goodput).map_err(|e| anyhow!(e))?;
    let body = extra_body(&args)?;
    if !body.contains_key("temperature") {
        writeln!(out, "WARNING: vllm bench serve does not set temperature==0 (greedy) in requests by default. The default will be determined on the server side and can be model/API specific. For the old behavior, include --temperature=0.")?;
    }
    let mut selected: Vec<String> = args
        .percentile_metrics
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if embeddings {
        // Nothing is generated: only the end-to-end latency means something (as vLLM reports
        // pooling runs).
        selected.retain(|m| m == "e2el");
        if selected.is_empty() {
            selected.push("e2el".into());
        }
    }
    if let Some(bad) = selected
        .iter()
        .find(|m| !["ttft", "tpot", "itl", "e2el"].contains(&m.as_str()))
    {
        bail!("--percentile-metrics: unknown metric {bad:?} (known: ttft, tpot, itl, e2el)");
    }
    let percentiles: Vec<f64> = args
        .metric_percentiles
        .split(',')
        .map(|p| {
            p.trim()
                .parse::<f64>()
                .map_err(|_| anyhow!("--metric-percentiles: {p:?} is not a number"))
        })
        .collect::<anyhow::Result<_>>()?;
    let id_prefix = args
        .request_id_prefix
        .clone()
        .unwrap_or_else(|| format!("bench-{:08x}-", rand::rng().random::<u32>()));
    let make_input = |i: usize, r: &SampleRequest| RequestInput {
        prompt: r.prompt.clone(),
        prompt_len: r.prompt_len,
        output_len: r.expected_output_len,
        model: model_name.clone(),
        api_url: api_url.clone(),
        chat,
        embeddings,
        logprobs: args.logprobs,
        ignore_eos: args.ignore_eos,
        extra_body: body.clone(),
        extra_headers: headers.clone(),
        request_id: Some(format!("{id_prefix}{i}")),
    };

    let origin = Instant::now();
    writeln!(out, "Starting initial single prompt test run...")?;
    let test = RequestInput {
        request_id: None,
        ..make_input(0, &requests[0])
    };
    if args.ready_check_timeout_sec > 0 {
        let t = wait_for_endpoint(
            &client,
            &test,
            Duration::from_secs(args.ready_check_timeout_sec),
            origin,
        )
        .await;
        if !t.success {
            bail!("Initial test run failed - Please make sure benchmark arguments are correctly specified. Error: {}", t.error);
        }
        writeln!(out, "Initial test run completed.")?;
    } else {
        writeln!(out, "Skipping endpoint ready check.")?;
    }
    let limit = Arc::new(tokio::sync::Semaphore::new(
        args.max_concurrency
            .unwrap_or(tokio::sync::Semaphore::MAX_PERMITS),
    ));
    if args.num_warmups > 0 {
        writeln!(out, "Warming up with {} requests...", args.num_warmups)?;
        let bar = Arc::new(Progress::new("", args.num_warmups, !args.disable_tqdm));
        let mut tasks = Vec::new();
        for _ in 0..args.num_warmups {
            let (client, test, limit, bar) =
                (client.clone(), test.clone(), limit.clone(), bar.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = limit.acquire_owned().await;
                client::send(&client, &test, origin).await;
                bar.inc();
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        bar.finish();
        writeln!(out, "Warmup run completed.")?;
    }
    writeln!(out, "Starting main benchmark run...")?;
    let distribution = if args.burstiness == 1.0 {
        "Poisson process"
    } else {
        "Gamma distribution"
    };
    writeln!(out, "Traffic request rate: {}", py_float(args.request_rate))?;
    writeln!(
        out,
        "Burstiness factor: {} ({distribution})",
        py_float(args.burstiness)
    )?;
    writeln!(
        out,
        "Maximum request concurrency: {}",
        args.max_concurrency
            .map_or("None".to_string(), |c| c.to_string())
    )?;
    out.flush()?;

    let send_at = arrivals::schedule(
        requests.len(),
        args.request_rate,
        args.burstiness,
        args.seed,
    )?;
    let bar = Arc::new(Progress::new("", requests.len(), !args.disable_tqdm));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(requests.len());
    for (i, (r, at)) in requests.iter().zip(send_at).enumerate() {
        let wait = Duration::from_secs_f64(at).saturating_sub(start.elapsed());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let (client, input, limit, bar) =
            (client.clone(), make_input(i, r), limit.clone(), bar.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await;
            let o = client::send(&client, &input, origin).await;
            bar.inc();
            o
        }));
    }
    let mut outputs = Vec::with_capacity(tasks.len());
    for t in tasks {
        outputs.push(t.await.map_err(|e| anyhow!("a request task failed: {e}"))?);
    }
    let duration = start.elapsed().as_secs_f64();
    bar.finish();

    let count = |text: &str| tok.encode(text, false).map(|ids| ids.len()).unwrap_or(0);
    let (m, output_lens) = metrics::calculate(&outputs, duration, &count, &percentiles, &goodput);
    if m.completed == 0 {
        writeln!(out, "WARNING: All requests failed. This is likely due to a misconfiguration on the benchmark arguments.")?;
    }
    let mut result = Map::new();
    let info = metrics::RunInfo {
        max_concurrency: args.max_concurrency,
        request_rate: args.request_rate,
        duration,
        goodput: !goodput.is_empty(),
        selected_metrics: selected,
    };
    metrics::report(&m, &outputs, &info, &mut result, out)?;
    result.insert("output_lens".into(), json!(output_lens));
    save(&args, &model_id, &tokenizer_id, &metadata, result)
}

/// Adds the run's settings to `result` and writes it when `--save-result`/`--append-result`.
fn save(
    args: &ServeArgs,
    model_id: &str,
    tokenizer_id: &std::path::Path,
    metadata: &[(String, String)],
    mut result: Map<String, Value>,
) -> anyhow::Result<()> {
    if !(args.save_result || args.append_result) {
        return Ok(());
    }
    let date = date_stamp(SystemTime::now());
    let label = args.label.clone().unwrap_or_else(|| args.backend.clone());
    let settings = json!({
        "date": date,
        "endpoint_type": args.backend,
        "backend": args.backend,
        "label": args.label,
        "model_id": model_id,
        "tokenizer_id": tokenizer_id.display().to_string(),
        "num_prompts": args.num_prompts,
        "request_rate": if args.request_rate.is_finite() { json!(args.request_rate) } else { json!("inf") },
        "burstiness": args.burstiness,
        "max_concurrency": args.max_concurrency,
    });
    if let Value::Object(s) = settings {
        result.extend(s);
    }
    for (k, v) in metadata {
        result.insert(k.clone(), json!(v));
    }
    if !args.save_detailed {
        for k in [
            "input_lens",
            "output_lens",
            "start_times",
            "ttfts",
            "itls",
            "generated_texts",
            "errors",
        ] {
            result.remove(k);
        }
    }
    let base_model = model_id.rsplit('/').next().unwrap_or(model_id);
    let concurrency = args
        .max_concurrency
        .map(|c| format!("-concurrency{c}"))
        .unwrap_or_default();
    let mut name = args.result_filename.clone().unwrap_or_else(|| {
        format!(
            "{label}-{}qps{concurrency}-{base_model}-{date}.json",
            py_float(args.request_rate)
        )
    });
    if let Some(dir) = &args.result_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        name = dir.join(name).display().to_string();
    }
    let text = serde_json::to_string(&Value::Object(result))?;
    if args.append_result {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&name)
            .with_context(|| format!("opening {name}"))?;
        if f.metadata().map(|m| m.len() > 0).unwrap_or(false) {
            writeln!(f)?;
        }
        write!(f, "{text}").with_context(|| format!("writing {name}"))?;
    } else {
        std::fs::write(&name, text).with_context(|| format!("writing {name}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_utc() {
        assert_eq!(date_stamp(UNIX_EPOCH), "19700101-000000");
        // 2026-11-28 08:49:37 UTC.
        assert_eq!(
            date_stamp(UNIX_EPOCH + Duration::from_secs(1_795_855_777)),
            "20261128-084937"
        );
        assert_eq!(
            date_stamp(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "20000229-000000"
        );
    }

    #[test]
    fn key_value_flags() {
        assert_eq!(
            key_values(&["a=1".into(), "b = x=y".into()], "header").unwrap(),
            vec![("a".into(), "1".into()), ("b".into(), "x=y".into())]
        );
        assert!(key_values(&["nope".into()], "header").is_err());
    }
}
