// Rotary embedding, neox style (pairs (i, i + half) of each head), applied in place to the q and
// k heads of the fused qkv rows. cos/sin come from a table computed on the host by the same code
// the CPU backend uses, so every rope_scaling variant (linear, dynamic, llama3, yarn with its
// attention factor folded in) behaves identically on both backends.
//
// Layout: qkv row = [q heads | k heads | v heads], row stride `stride`; the first
// `num_heads` = q + k heads are rotated. cos_table/sin_table: [position][half].
extern "C" __global__ void rope_neox_bf16(bf16_t* __restrict__ qkv, const unsigned int* __restrict__ positions,
                                          const float* __restrict__ cos_table, const float* __restrict__ sin_table,
                                          int stride, int num_heads, int head_dim) {
    const size_t token = blockIdx.x;
    const int half = head_dim / 2;
    const size_t pos = positions[token];
    const float* c = cos_table + pos * half;
    const float* s = sin_table + pos * half;
    bf16_t* row = qkv + token * stride;
    for (int idx = threadIdx.x; idx < num_heads * half; idx += blockDim.x) {
        const int head = idx / half, i = idx % half;
        bf16_t* h = row + (size_t)head * head_dim;
        const float x0 = bf16_to_f32(h[i]), x1 = bf16_to_f32(h[i + half]);
        h[i] = f32_to_bf16(x0 * c[i] - x1 * s[i]);
        h[i + half] = f32_to_bf16(x1 * c[i] + x0 * s[i]);
    }
}
