// Token embedding gather into the f32 residual stream (one block per token).
// The residual stream stays f32 between layers so that the long chain of additions does not
// lose precision to bf16 rounding; only GEMM inputs and outputs are bf16.

extern "C" __global__ void embedding_bf16(const bf16_t* __restrict__ table, const unsigned int* __restrict__ ids,
                                          float* __restrict__ out, int hidden) {
    const size_t row = blockIdx.x;
    const size_t id = ids[row];
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
        out[row * hidden + i] = bf16_to_f32(table[id * hidden + i]);
    }
}

extern "C" __global__ void embedding_f32(const float* __restrict__ table, const unsigned int* __restrict__ ids,
                                         float* __restrict__ out, int hidden) {
    const size_t row = blockIdx.x;
    const size_t id = ids[row];
    for (int i = threadIdx.x; i < hidden; i += blockDim.x) {
        out[row * hidden + i] = table[id * hidden + i];
    }
}
