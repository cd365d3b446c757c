// Sampling on the GPU, so that only token ids and requested logprobs cross to the host.
// One block (SAMPLE_THREADS threads) per logits row; rows are f32 (the lm_head GEMM output).

#define SAMPLE_THREADS 1024

// Repetition, presence and frequency penalties, in place, as vLLM applies them: for each token
// the host lists once per row (hist_offsets[row] .. hist_offsets[row + 1]) with its count in the
// generated output (hist_counts, 0 for prompt-only tokens): repetition divides positive logits
// and multiplies negative ones; frequency subtracts count × penalty; presence subtracts the
// penalty once when count > 0.
extern "C" __global__ void apply_penalties(float* __restrict__ logits, int vocab,
                                           const unsigned int* __restrict__ hist_offsets,
                                           const unsigned int* __restrict__ hist_tokens,
                                           const unsigned int* __restrict__ hist_counts,
                                           const float* __restrict__ repetition, const float* __restrict__ presence,
                                           const float* __restrict__ frequency) {
    const size_t row = blockIdx.x;
    float* x = logits + row * vocab;
    const float rep = repetition[row], pres = presence[row], freq = frequency[row];
    for (unsigned int i = hist_offsets[row] + threadIdx.x; i < hist_offsets[row + 1]; i += blockDim.x) {
        const unsigned int tok = hist_tokens[i];
        if (tok >= (unsigned int)vocab) continue;
        float v = x[tok];
        if (rep != 1.0f) v = v > 0.0f ? v / rep : v * rep;
        const float count = (float)hist_counts[i];
        v -= freq * count;
        if (count > 0.0f) v -= pres;
        x[tok] = v;
    }
}

struct ArgMax {
    float v;
    int i;
};

// Larger value wins; on a tie the lower index, so greedy decoding is deterministic.
__device__ __forceinline__ ArgMax argmax_merge(ArgMax a, ArgMax b) {
    if (b.v > a.v || (b.v == a.v && b.i < a.i)) return b;
    return a;
}

__device__ ArgMax block_argmax(ArgMax a, float* sv, int* si) {
    for (int o = 16; o > 0; o >>= 1) {
        ArgMax b;
        b.v = __shfl_xor_sync(0xffffffffu, a.v, o);
        b.i = __shfl_xor_sync(0xffffffffu, a.i, o);
        a = argmax_merge(a, b);
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) {
        sv[warp] = a.v;
        si[warp] = a.i;
    }
    __syncthreads();
    ArgMax r;
    r.v = lane < nwarps ? sv[lane] : -INFINITY;
    r.i = lane < nwarps ? si[lane] : 0x7fffffff;
    for (int o = 16; o > 0; o >>= 1) {
        ArgMax b;
        b.v = __shfl_xor_sync(0xffffffffu, r.v, o);
        b.i = __shfl_xor_sync(0xffffffffu, r.i, o);
        r = argmax_merge(r, b);
    }
    return r;
}

// Sum of exp((x - mx) * inv_t) over logits at or above `thresh`.
__device__ float kept_mass(const float* x, int vocab, float mx, float inv_t, float thresh, float* scratch) {
    float s = 0.0f;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
        if (x[i] >= thresh) s += __expf((x[i] - mx) * inv_t);
    }
    return block_sum(s, scratch);
}

__device__ float count_at_least(const float* x, int vocab, float thresh, float* scratch) {
    float c = 0.0f;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) c += x[i] >= thresh ? 1.0f : 0.0f;
    return block_sum(c, scratch);
}

// Arg-max (ties: lowest id) of a row, and its smallest finite value (+inf when none).
__device__ ArgMax row_best(const float* x, int vocab, float* min_finite, float* scratch, float* sv, int* si) {
    ArgMax best;
    best.v = -INFINITY;
    best.i = 0x7fffffff;
    float mn = INFINITY;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
        ArgMax c;
        c.v = x[i];
        c.i = i;
        best = argmax_merge(best, c);
        // Masked entries (-inf: allowed ids, bad words, min_tokens) must not become the lower
        // end of the bisections below, or every threshold search would start at -inf.
        if (isfinite(x[i])) mn = fminf(mn, x[i]);
    }
    best = block_argmax(best, sv, si);
    *min_finite = -block_max(-mn, scratch);
    return best;
}

// Sampling of penalised rows `logits`, with logprobs of the model's own rows `raw` (vLLM's
// default `raw_logprobs`; `raw` may be `logits` itself when no penalty changed the row).
// Temperature 0 is greedy. Otherwise the filters run in vLLM's order, as the CPU sampler does:
// temperature, min-p (probability >= min_p × the largest), top-k (logits >= the k-th largest
// of what is left), top-p (the smallest high set whose mass reaches top_p of what is left),
// each a logit threshold found by bisection (no sort); then one inverse-CDF draw in vocabulary
// order with the host's uniform number u[row], the same walk as the CPU sampler's dense draw.
// A row whose every logit is -inf yields token 0, like the CPU sampler's fallback. Writes the
// token, its logprob under `raw` and the num_top most likely tokens of `raw` with theirs.
extern "C" __global__ void __launch_bounds__(SAMPLE_THREADS) sample_rows(
    const float* __restrict__ logits, const float* __restrict__ raw, int vocab, const float* __restrict__ temperature,
    const int* __restrict__ top_k, const float* __restrict__ top_p, const float* __restrict__ min_p,
    const float* __restrict__ uniform, unsigned int* __restrict__ out_token, float* __restrict__ out_logprob,
    int num_top, unsigned int* __restrict__ top_ids, float* __restrict__ top_logprobs) {
    __shared__ float scratch[32];
    __shared__ float sv[32];
    __shared__ int si[32];
    __shared__ float chunk_sums[SAMPLE_THREADS];
    __shared__ int chosen_s;
    const size_t row = blockIdx.x;
    const float* x = logits + row * vocab;
    const float* xr = raw + row * vocab;

    float mn;
    const ArgMax best = row_best(x, vocab, &mn, scratch, sv, si);
    const float mx = best.v;
    int chosen = mx == -INFINITY ? 0 : best.i;
    const float t = temperature[row];
    if (t > 0.0f && mx != -INFINITY) {
        const float inv_t = 1.0f / t;
        // Only finite logits can survive; every filter raises this threshold.
        float thresh = mn;
        const float mp = min_p[row];
        if (mp > 0.0f) {
            // p_i / p_max >= min_p  <=>  (x_i - mx) / t >= ln(min_p)
            thresh = fmaxf(thresh, mx + t * __logf(mp));
        }
        const int k = top_k[row];
        if (k > 0 && k < vocab && count_at_least(x, vocab, thresh, scratch) > (float)k) {
            // Largest threshold keeping at least k of the survivors.
            float lo = thresh, hi = mx;
            for (int it = 0; it < 40; ++it) {
                const float mid = 0.5f * (lo + hi);
                if (count_at_least(x, vocab, mid, scratch) >= (float)k) lo = mid; else hi = mid;
            }
            thresh = lo;
        }
        const float p = top_p[row];
        if (p < 1.0f) {
            // Renormalised over the min-p and top-k survivors, as vLLM's masked softmax does.
            const float total = kept_mass(x, vocab, mx, inv_t, thresh, scratch);
            float lo = thresh, hi = mx;
            for (int it = 0; it < 40; ++it) {
                const float mid = 0.5f * (lo + hi);
                if (kept_mass(x, vocab, mx, inv_t, mid, scratch) >= p * total) lo = mid; else hi = mid;
            }
            thresh = lo;
        }
        // Inverse-CDF draw in vocabulary order: per-thread chunk sums, a scan, then the thread
        // whose chunk holds the target walks it.
        const int chunk = (vocab + blockDim.x - 1) / blockDim.x;
        const int c0 = threadIdx.x * chunk, c1 = min(vocab, c0 + chunk);
        float cs = 0.0f;
        for (int i = c0; i < c1; ++i) {
            if (x[i] >= thresh) cs += __expf((x[i] - mx) * inv_t);
        }
        chunk_sums[threadIdx.x] = cs;
        if (threadIdx.x == 0) chosen_s = best.i;
        __syncthreads();
        if (threadIdx.x == 0) {
            float run = 0.0f;
            for (int i = 0; i < (int)blockDim.x; ++i) {
                const float v = chunk_sums[i];
                chunk_sums[i] = run;
                run += v;
            }
            scratch[0] = run;
        }
        __syncthreads();
        const float target = uniform[row] * scratch[0];
        const float next = threadIdx.x + 1 < blockDim.x ? chunk_sums[threadIdx.x + 1] : scratch[0];
        if (c0 < c1 && chunk_sums[threadIdx.x] <= target && target < next) {
            float run = chunk_sums[threadIdx.x];
            int pick = -1;
            for (int i = c0; i < c1; ++i) {
                if (x[i] >= thresh) {
                    pick = i;
                    run += __expf((x[i] - mx) * inv_t);
                    if (run > target) break;
                }
            }
            if (pick >= 0) chosen_s = pick;
        }
        __syncthreads();
        chosen = chosen_s;
    }

    // Logprobs under the raw row: log-softmax of the model's output, before any penalty.
    __syncthreads();
    float raw_min;
    const float raw_max = row_best(xr, vocab, &raw_min, scratch, sv, si).v;
    float z = 0.0f;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) z += __expf(xr[i] - raw_max);
    const float log_z = raw_max + __logf(block_sum(z, scratch));
    if (threadIdx.x == 0) {
        out_token[row] = (unsigned int)chosen;
        out_logprob[row] = xr[chosen] - log_z;
    }

    // Top logprobs: num_top rounds of arg-max, each excluding the winners of earlier rounds.
    for (int n = 0; n < num_top; ++n) {
        ArgMax b;
        b.v = -INFINITY;
        b.i = 0x7fffffff;
        for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
            bool taken = false;
            for (int j = 0; j < n; ++j) taken |= top_ids[row * num_top + j] == (unsigned int)i;
            if (taken) continue;
            ArgMax c;
            c.v = xr[i];
            c.i = i;
            b = argmax_merge(b, c);
        }
        b = block_argmax(b, sv, si);
        if (threadIdx.x == 0) {
            top_ids[row * num_top + n] = (unsigned int)b.i;
            top_logprobs[row * num_top + n] = b.v - log_z;
        }
        __syncthreads();
    }
}
