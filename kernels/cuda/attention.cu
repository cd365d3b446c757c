// Paged attention over the block-structured KV cache ([block][kv_head][slot][head_dim] per
// layer), for any mix of prompt chunks and decode tokens in one batch.
//
// Every query row belongs to a sequence s with ctx_len[s] tokens in the cache after this step
// (its new tokens included: reshape_and_cache runs first) of which q_len[s] are new, the first
// of them at batch row q_start[s]. Row r of s sits at position ctx_len - q_len + (r - q_start)
// and attends keys [0, position] (causal). q rows are read from the fused qkv buffer (stride
// `stride`), outputs go to `out` ([row][num_heads * HD]). GQA: head h reads kv head
// h / (num_heads / num_kv_heads). Softmax is in f32 with the online (running max) form.

#define NWARPS 4

__device__ __forceinline__ void load_bf16x2(const bf16_t* p, float& lo, float& hi) {
    const unsigned int w = *reinterpret_cast<const unsigned int*>(p);
    lo = __uint_as_float(w << 16);
    hi = __uint_as_float(w & 0xffff0000u);
}

// Decode-style attention: one block per (query row, head, split), each of the 4 warps walking
// every 4th key of the split's key range; a lane holds HD/32 dims of q and of the accumulator.
// Splitting the key range (flash-decoding) keeps the GPU busy when few sequences have long
// contexts; with more than one split the partial (max, sum, acc) go to tmp_ml / tmp_acc and
// paged_attention_reduce combines them.
template <int HD>
__device__ void decode_split(const bf16_t* __restrict__ q, int stride, const bf16_t* __restrict__ k_cache,
                             const bf16_t* __restrict__ v_cache, const unsigned int* __restrict__ block_tables,
                             int max_blocks, const unsigned int* __restrict__ row_ids,
                             const unsigned int* __restrict__ row_seq, const unsigned int* __restrict__ ctx_len,
                             const unsigned int* __restrict__ q_start, const unsigned int* __restrict__ q_len,
                             bf16_t* __restrict__ out, float* __restrict__ tmp_acc, float* __restrict__ tmp_ml,
                             int num_heads, int num_kv_heads, int block_size, int split_keys, float scale) {
    constexpr int EPL = HD / 32;
    __shared__ float s_m[NWARPS], s_l[NWARPS];
    __shared__ float s_acc[NWARPS][HD];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int head = blockIdx.y, split = blockIdx.z, nsplit = gridDim.z;
    const size_t row = row_ids[blockIdx.x];
    const size_t s = row_seq[blockIdx.x];
    const int kvh = head / (num_heads / num_kv_heads);
    const int pos = (int)(ctx_len[s] - q_len[s] + (row - q_start[s]));
    const int k0 = split * split_keys;
    const int k1 = min(pos + 1, k0 + split_keys);

    float qr[EPL], acc[EPL];
    const bf16_t* qp = q + row * stride + (size_t)head * HD + lane * EPL;
#pragma unroll
    for (int e = 0; e < EPL; e += 2) {
        load_bf16x2(qp + e, qr[e], qr[e + 1]);
        qr[e] *= scale;
        qr[e + 1] *= scale;
        acc[e] = 0.0f;
        acc[e + 1] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    const unsigned int* bt = block_tables + s * (size_t)max_blocks;
    for (int key = k0 + warp; key < k1; key += NWARPS) {
        const size_t blk = bt[key / block_size];
        const size_t base = ((blk * num_kv_heads + kvh) * block_size + key % block_size) * HD + lane * EPL;
        float dot = 0.0f;
#pragma unroll
        for (int e = 0; e < EPL; e += 2) {
            float a, b;
            load_bf16x2(k_cache + base + e, a, b);
            dot += qr[e] * a + qr[e + 1] * b;
        }
        dot = warp_sum(dot);
        const float m_new = fmaxf(m, dot);
        const float corr = __expf(m - m_new);
        const float p = __expf(dot - m_new);
        l = l * corr + p;
#pragma unroll
        for (int e = 0; e < EPL; e += 2) {
            float a, b;
            load_bf16x2(v_cache + base + e, a, b);
            acc[e] = acc[e] * corr + p * a;
            acc[e + 1] = acc[e + 1] * corr + p * b;
        }
        m = m_new;
    }
    if (lane == 0) {
        s_m[warp] = m;
        s_l[warp] = l;
    }
#pragma unroll
    for (int e = 0; e < EPL; ++e) s_acc[warp][lane * EPL + e] = acc[e];
    __syncthreads();

    float gm = -INFINITY;
    for (int w = 0; w < NWARPS; ++w) gm = fmaxf(gm, s_m[w]);
    float gl = 0.0f;
    if (gm != -INFINITY) {
        for (int w = 0; w < NWARPS; ++w) gl += s_l[w] * __expf(s_m[w] - gm);
    }
    const size_t part = ((size_t)blockIdx.x * num_heads + head) * nsplit + split;
    for (int d = threadIdx.x; d < HD; d += blockDim.x) {
        float a = 0.0f;
        if (gm != -INFINITY) {
            for (int w = 0; w < NWARPS; ++w) a += s_acc[w][d] * __expf(s_m[w] - gm);
        }
        if (nsplit == 1) {
            out[row * (size_t)num_heads * HD + (size_t)head * HD + d] = f32_to_bf16(gl > 0.0f ? a / gl : 0.0f);
        } else {
            tmp_acc[part * HD + d] = a;
        }
    }
    if (nsplit > 1 && threadIdx.x == 0) {
        tmp_ml[part * 2] = gm;
        tmp_ml[part * 2 + 1] = gl;
    }
}

#define DECODE_KERNEL(HD)                                                                                         \
    extern "C" __global__ void __launch_bounds__(NWARPS * 32) paged_attention_decode_hd##HD(                      \
        const bf16_t* q, int stride, const bf16_t* k_cache, const bf16_t* v_cache, const unsigned int* block_tables, \
        int max_blocks, const unsigned int* row_ids, const unsigned int* row_seq, const unsigned int* ctx_len,       \
        const unsigned int* q_start, const unsigned int* q_len, bf16_t* out, float* tmp_acc, float* tmp_ml,          \
        int num_heads, int num_kv_heads, int block_size, int split_keys, float scale) {                              \
        decode_split<HD>(q, stride, k_cache, v_cache, block_tables, max_blocks, row_ids, row_seq, ctx_len, q_start,  \
                         q_len, out, tmp_acc, tmp_ml, num_heads, num_kv_heads, block_size, split_keys, scale);       \
    }

DECODE_KERNEL(64)
DECODE_KERNEL(128)
DECODE_KERNEL(256)

// Combines the splits of paged_attention_decode: one block per (query row, head).
extern "C" __global__ void paged_attention_reduce(const float* __restrict__ tmp_acc, const float* __restrict__ tmp_ml,
                                                  const unsigned int* __restrict__ row_ids, bf16_t* __restrict__ out,
                                                  int num_heads, int head_dim, int nsplit) {
    const int head = blockIdx.y;
    const size_t row = row_ids[blockIdx.x];
    const size_t part0 = ((size_t)blockIdx.x * num_heads + head) * nsplit;
    float gm = -INFINITY;
    for (int i = 0; i < nsplit; ++i) gm = fmaxf(gm, tmp_ml[(part0 + i) * 2]);
    float gl = 0.0f;
    if (gm != -INFINITY) {
        for (int i = 0; i < nsplit; ++i) gl += tmp_ml[(part0 + i) * 2 + 1] * __expf(tmp_ml[(part0 + i) * 2] - gm);
    }
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
        float a = 0.0f;
        if (gm != -INFINITY) {
            for (int i = 0; i < nsplit; ++i) a += tmp_acc[(part0 + i) * head_dim + d] * __expf(tmp_ml[(part0 + i) * 2] - gm);
        }
        out[row * (size_t)num_heads * head_dim + (size_t)head * head_dim + d] = f32_to_bf16(gl > 0.0f ? a / gl : 0.0f);
    }
}

// Prompt / chunked-prefill attention, flash-attention style: one block per (tile of TQ = 16
// consecutive new tokens of one sequence, head). K and V tiles of TK keys are staged in shared
// memory once and used by all 16 query rows, so each key is read once per tile instead of once
// per query token. 128 threads: thread t owns query row t / 8 and, within it, every 8th key of
// the tile (scores) and every 8th dim (accumulator). The host lists the tiles:
// tile_seq[i] = sequence, tile_q0[i] = index of the tile's first new token within the sequence.
template <int HD, int TK>
__device__ void prefill_tile(const bf16_t* __restrict__ q, int stride, const bf16_t* __restrict__ k_cache,
                             const bf16_t* __restrict__ v_cache, const unsigned int* __restrict__ block_tables,
                             int max_blocks, const unsigned int* __restrict__ tile_seq,
                             const unsigned int* __restrict__ tile_q0, const unsigned int* __restrict__ ctx_len,
                             const unsigned int* __restrict__ q_start, const unsigned int* __restrict__ q_len,
                             bf16_t* __restrict__ out, int num_heads, int num_kv_heads, int block_size, float scale) {
    constexpr int TQ = 16, LPR = 8, DPT = HD / LPR, KPT = TK / LPR;
    __shared__ float qs[TQ][HD];
    // The tiles are filled and read as 32-bit words (two bf16 at a time): a 2-byte array is
    // only guaranteed 2-byte alignment, so ask for 16 explicitly.
    __shared__ __align__(16) bf16_t ks[TK][HD];
    __shared__ __align__(16) bf16_t vs[TK][HD];
    __shared__ float ps[TQ][TK];
    const int tid = threadIdx.x, r = tid / LPR, sub = tid % LPR;
    const int head = blockIdx.y;
    const size_t s = tile_seq[blockIdx.x];
    const int q0 = (int)tile_q0[blockIdx.x];
    const int nq = min(TQ, (int)q_len[s] - q0);
    const int kvh = head / (num_heads / num_kv_heads);
    const int first_pos = (int)(ctx_len[s] - q_len[s]) + q0;
    const int my_pos = first_pos + r;
    const bool valid = r < nq;
    const int kmax = first_pos + nq;  // keys [0, kmax) are visible to some row of the tile
    const unsigned int* bt = block_tables + s * (size_t)max_blocks;

    for (int i = tid; i < TQ * HD; i += blockDim.x) {
        const int rr = i / HD, d = i % HD;
        qs[rr][d] = rr < nq ? bf16_to_f32(q[(q_start[s] + q0 + rr) * (size_t)stride + (size_t)head * HD + d]) * scale : 0.0f;
    }
    float acc[DPT];
#pragma unroll
    for (int j = 0; j < DPT; ++j) acc[j] = 0.0f;
    float m = -INFINITY, l = 0.0f;

    for (int kb = 0; kb < kmax; kb += TK) {
        __syncthreads();  // previous tile fully consumed (and q staged, on the first pass)
        for (int i = tid; i < TK * HD / 2; i += blockDim.x) {
            const int c = (2 * i) / HD, d = (2 * i) % HD, key = kb + c;
            unsigned int kw = 0, vw = 0;
            if (key < kmax) {
                const size_t blk = bt[key / block_size];
                const size_t off = ((blk * num_kv_heads + kvh) * block_size + key % block_size) * HD + d;
                kw = *reinterpret_cast<const unsigned int*>(k_cache + off);
                vw = *reinterpret_cast<const unsigned int*>(v_cache + off);
            }
            *reinterpret_cast<unsigned int*>(&ks[c][d]) = kw;
            *reinterpret_cast<unsigned int*>(&vs[c][d]) = vw;
        }
        __syncthreads();
        float sc[KPT];
        float tmax = -INFINITY;
#pragma unroll
        for (int j = 0; j < KPT; ++j) {
            const int c = sub + LPR * j, key = kb + c;
            float dot = 0.0f;
            // Rotating the start dim by lane spreads the 8 lanes of a row over different banks.
            for (int dd = 0; dd < HD; dd += 2) {
                const int d = (dd + sub * 8) % HD;
                float a, b;
                load_bf16x2(&ks[c][d], a, b);
                dot += qs[r][d] * a + qs[r][d + 1] * b;
            }
            sc[j] = (valid && key <= my_pos) ? dot : -INFINITY;
            tmax = fmaxf(tmax, sc[j]);
        }
        for (int o = 1; o < LPR; o <<= 1) tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, o));
        const float m_new = fmaxf(m, tmax);
        const float corr = m_new == -INFINITY ? 1.0f : __expf(m - m_new);
        float psum = 0.0f;
#pragma unroll
        for (int j = 0; j < KPT; ++j) {
            const float p = sc[j] == -INFINITY ? 0.0f : __expf(sc[j] - m_new);
            ps[r][sub + LPR * j] = p;
            psum += p;
        }
        for (int o = 1; o < LPR; o <<= 1) psum += __shfl_xor_sync(0xffffffffu, psum, o);
        l = l * corr + psum;
        m = m_new;
        __syncwarp();  // ps of this row is written by lanes of the same warp
#pragma unroll
        for (int j = 0; j < DPT; ++j) acc[j] *= corr;
        for (int c = 0; c < TK; ++c) {
            const float p = ps[r][c];
#pragma unroll
            for (int j = 0; j < DPT; ++j) acc[j] += p * bf16_to_f32(vs[c][sub + LPR * j]);
        }
    }
    if (valid) {
        const size_t orow = (size_t)(q_start[s] + q0 + r) * num_heads * HD + (size_t)head * HD;
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
        for (int j = 0; j < DPT; ++j) out[orow + sub + LPR * j] = f32_to_bf16(acc[j] * inv);
    }
}

#define PREFILL_KERNEL(HD, TK)                                                                                     \
    extern "C" __global__ void __launch_bounds__(128) prefill_attention_hd##HD(                                    \
        const bf16_t* q, int stride, const bf16_t* k_cache, const bf16_t* v_cache, const unsigned int* block_tables, \
        int max_blocks, const unsigned int* tile_seq, const unsigned int* tile_q0, const unsigned int* ctx_len,      \
        const unsigned int* q_start, const unsigned int* q_len, bf16_t* out, int num_heads, int num_kv_heads,        \
        int block_size, float scale) {                                                                               \
        prefill_tile<HD, TK>(q, stride, k_cache, v_cache, block_tables, max_blocks, tile_seq, tile_q0, ctx_len,      \
                             q_start, q_len, out, num_heads, num_kv_heads, block_size, scale);                       \
    }

// Static shared memory stays under 48 KiB: 16 q rows in f32 plus K and V tiles in bf16.
PREFILL_KERNEL(64, 32)
PREFILL_KERNEL(128, 32)
PREFILL_KERNEL(256, 16)
