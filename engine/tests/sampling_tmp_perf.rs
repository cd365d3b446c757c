use engine::sampling::*;
use std::time::Instant;
#[test]
fn perf() {
    let v = 151_936usize;
    // a realistic-ish peaked distribution
    let mut x: u64 = 12345;
    let logits: Vec<f32> = (0..v).map(|_| { x ^= x << 13; x ^= x >> 7; x ^= x << 17; ((x % 10000) as f32 / 10000.0) * 8.0 - 4.0 + if x % 997 == 0 { 6.0 } else { 0.0 } }).collect();
    let gen: Vec<u32> = (0..200).map(|i| (i * 31) as u32).collect();
    let cases: Vec<(&str, SamplingParams)> = vec![
        ("greedy", SamplingParams { temperature: 0.0, ..Default::default() }),
        ("random", SamplingParams { temperature: 0.8, ..Default::default() }),
        ("top_k50", SamplingParams { temperature: 0.8, top_k: 50, ..Default::default() }),
        ("top_p0.9", SamplingParams { temperature: 0.8, top_p: 0.9, ..Default::default() }),
        ("top_p0.95+k40+minp", SamplingParams { temperature: 0.7, top_p: 0.95, top_k: 40, min_p: 0.05, ..Default::default() }),
        ("flat top_p0.99", SamplingParams { temperature: 100.0, top_p: 0.99, ..Default::default() }),
        ("penalties+logprobs5", SamplingParams { temperature: 0.8, repetition_penalty: 1.1, frequency_penalty: 0.5, logprobs: Some(5), ..Default::default() }),
    ];
    for (name, p) in cases {
        let mut s = SequenceSampler::new(&p, &gen, 1, vec![], Some(2));
        let n = 200;
        let t = Instant::now();
        for _ in 0..n { std::hint::black_box(s.sample(&logits, &gen, LogprobsMode::RawLogprobs)); }
        println!("{name}: {:.1} us/token", t.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
}
#[test]
fn baseline() {
    let v = 151_936usize;
    let logits: Vec<f32> = (0..v).map(|i| (i % 1000) as f32 * 0.001).collect();
    let n = 200;
    let t = Instant::now();
    let mut acc = 0.0;
    for _ in 0..n { acc += std::hint::black_box(&logits).iter().fold(0.0f32, |a, &b| a.max(b)); }
    println!("fold max: {:.1} us", t.elapsed().as_secs_f64() * 1e6 / n as f64);
    let t = Instant::now();
    for _ in 0..n { let c = std::hint::black_box(&logits).to_vec(); acc += c[5]; }
    println!("copy: {:.1} us {acc}", t.elapsed().as_secs_f64() * 1e6 / n as f64);
    let t = Instant::now();
    for _ in 0..n { acc += std::hint::black_box(&logits).iter().map(|&x| x.exp()).sum::<f32>(); }
    println!("libm exp sum: {:.1} us {acc}", t.elapsed().as_secs_f64() * 1e6 / n as f64);
}
