// Writes the new tokens' K and V into the paged cache (vLLM's reshape_and_cache).
// Cache layout per layer, same as the CPU backend: [block][kv_head][slot][head_dim].
// slot_mapping[t] = block * block_size + offset, or -1 for a token whose K/V is not stored.
extern "C" __global__ void reshape_and_cache_bf16(const bf16_t* __restrict__ qkv, bf16_t* __restrict__ k_cache,
                                                  bf16_t* __restrict__ v_cache, const long long* __restrict__ slot_mapping,
                                                  int stride, int k_offset, int v_offset, int num_kv_heads,
                                                  int head_dim, int block_size) {
    const size_t token = blockIdx.x;
    const long long slot = slot_mapping[token];
    if (slot < 0) return;
    const size_t block = (size_t)(slot / block_size), off = (size_t)(slot % block_size);
    const bf16_t* row = qkv + token * stride;
    for (int idx = threadIdx.x; idx < num_kv_heads * head_dim; idx += blockDim.x) {
        const int h = idx / head_dim, d = idx % head_dim;
        const size_t dst = ((block * num_kv_heads + h) * block_size + off) * head_dim + d;
        k_cache[dst] = row[k_offset + idx];
        v_cache[dst] = row[v_offset + idx];
    }
}
