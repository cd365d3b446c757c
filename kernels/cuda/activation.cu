// SwiGLU: out = silu(gate) * up, with gate_up rows laid out [gate | up] (the stacked projection).
extern "C" __global__ void silu_mul_bf16(const bf16_t* __restrict__ gate_up, bf16_t* __restrict__ out, int inter) {
    const size_t row = blockIdx.x;
    const bf16_t* g = gate_up + row * 2 * inter;
    for (int i = threadIdx.x; i < inter; i += blockDim.x) {
        const float x = bf16_to_f32(g[i]);
        const float up = bf16_to_f32(g[inter + i]);
        out[row * inter + i] = f32_to_bf16(x / (1.0f + __expf(-x)) * up);
    }
}
