// RMSNorm kernels. One block per token row; the row is read twice (sum of squares, then scale),
// which stays in L1/L2 for hidden sizes up to a few thousand.

// residual += delta (when delta is not null), then out = rms_norm(residual) * weight.
// Fusing the residual add saves one full read and write of the activations per sublayer.
extern "C" __global__ void add_rms_norm_bf16(const bf16_t* __restrict__ delta, float* __restrict__ residual,
                                             const bf16_t* __restrict__ weight, bf16_t* __restrict__ out,
                                             int hidden, float eps) {
    __shared__ float scratch[32];
    const size_t row = blockIdx.x;
    float* r = residual + row * hidden;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
        float v = r[i];
        if (delta != nullptr) {
            v += bf16_to_f32(delta[row * hidden + i]);
            r[i] = v;
        }
        ss += v * v;
    }
    ss = block_sum(ss, scratch);
    const float inv = rsqrtf(ss / (float)hidden + eps);
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
        out[row * hidden + i] = f32_to_bf16(r[i] * inv * bf16_to_f32(weight[i]));
    }
}

// RMSNorm of selected rows of the f32 residual stream into a packed bf16 matrix: the final norm
// of only the rows whose logits were asked for, before the (large) lm_head GEMM.
extern "C" __global__ void gather_rms_norm_bf16(const float* __restrict__ x, const bf16_t* __restrict__ weight,
                                            bf16_t* __restrict__ out, const unsigned int* __restrict__ rows,
                                            int hidden, float eps) {
    __shared__ float scratch[32];
    const size_t src = rows[blockIdx.x];
    const float* r = x + src * hidden;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) ss += r[i] * r[i];
    ss = block_sum(ss, scratch);
    const float inv = rsqrtf(ss / (float)hidden + eps);
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
        out[(size_t)blockIdx.x * hidden + i] = f32_to_bf16(r[i] * inv * bf16_to_f32(weight[i]));
    }
}

// Per-head RMSNorm in place (Qwen3's q_norm / k_norm), over heads [head0, head0 + gridDim.y) of
// each token row of `x` (row stride `stride` elements). One warp per (token, head).
extern "C" __global__ void head_rms_norm_bf16(bf16_t* __restrict__ x, const bf16_t* __restrict__ weight,
                                              int stride, int head0, int head_dim, float eps) {
    const size_t token = blockIdx.x;
    bf16_t* h = x + token * stride + (size_t)(head0 + blockIdx.y) * head_dim;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < head_dim; i += 32) {
        float v = bf16_to_f32(h[i]);
        ss += v * v;
    }
    ss = warp_sum(ss);
    const float inv = rsqrtf(ss / (float)head_dim + eps);
    for (int i = threadIdx.x; i < head_dim; i += 32) {
        h[i] = f32_to_bf16(bf16_to_f32(h[i]) * inv * bf16_to_f32(weight[i]));
    }
}

// Adds a bias row to every row of `x` (Qwen2's q/k/v biases), in place.
extern "C" __global__ void add_bias_bf16(bf16_t* __restrict__ x, const bf16_t* __restrict__ bias, int cols) {
    const size_t row = blockIdx.x;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
        x[row * cols + i] = f32_to_bf16(bf16_to_f32(x[row * cols + i]) + bf16_to_f32(bias[i]));
    }
}
