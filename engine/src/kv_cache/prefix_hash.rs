//! Prefix-cache block hashes (`--prefix-caching-hash-algo`).
//!
//! A full block's hash covers its parent's hash, its token ids and optional extra keys (a cache
//! salt), so equal hashes mean equal whole prefixes, not just equal blocks. The first block
//! chains on [`ROOT_HASH`].
//!
//! All three algorithms return 64 bits. The two SHA-256 variants take the LOW 64 bits of the
//! digest read as a big-endian integer, i.e. its last 8 bytes big-endian; that is what vLLM's
//! `sha256_cbor_64bit` does (`int.from_bytes(digest, "big") & (2**64 - 1)`).

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

use super::block_pool::BlockHash;

/// Parent of the first block of every sequence: the ASCII bytes `b"vllm-rs\0"` read big-endian.
/// Fixed (not random per process, unlike vLLM's `NONE_HASH` without `PYTHONHASHSEED`) so that
/// hashes are reproducible across runs and by external tools.
pub const ROOT_HASH: BlockHash = BlockHash(0x766c_6c6d_2d72_7300);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PrefixHashAlgo {
    /// A fast non-cryptographic 64-bit hash (vLLM's default before it dropped `builtin`).
    #[default]
    Builtin,
    Sha256,
    Sha256Cbor64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsePrefixHashAlgoError(pub String);

impl fmt::Display for ParsePrefixHashAlgoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown prefix caching hash algorithm {:?} (expected builtin, sha256 or sha256_cbor_64bit)", self.0)
    }
}

impl std::error::Error for ParsePrefixHashAlgoError {}

impl FromStr for PrefixHashAlgo {
    type Err = ParsePrefixHashAlgoError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "builtin" => Ok(Self::Builtin),
            "sha256" => Ok(Self::Sha256),
            "sha256_cbor_64bit" => Ok(Self::Sha256Cbor64),
            other => Err(ParsePrefixHashAlgoError(other.to_string())),
        }
    }
}

impl PrefixHashAlgo {
    /// The spelling `FromStr` accepts (vLLM's CLI value).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Builtin => "builtin",
            Self::Sha256 => "sha256",
            Self::Sha256Cbor64 => "sha256_cbor_64bit",
        }
    }

    /// Hash of one full block. `parent` is the previous block's hash (`None` for the first block,
    /// which chains on [`ROOT_HASH`]).
    pub fn hash_block(
        &self,
        parent: Option<BlockHash>,
        tokens: &[u32],
        extra: Option<&[u8]>,
    ) -> BlockHash {
        let parent = parent.unwrap_or(ROOT_HASH).0;
        match self {
            Self::Builtin => BlockHash(builtin_hash(parent, tokens, extra)),
            Self::Sha256 => BlockHash(sha256_low64(&sha256_bytes(parent, tokens, extra))),
            Self::Sha256Cbor64 => BlockHash(sha256_low64(&cbor_bytes(parent, tokens, extra))),
        }
    }
}

impl fmt::Display for PrefixHashAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Chained hashes of every FULL block of `tokens` (a trailing partial block is not hashed: its
/// content is still changing). `extra` goes into the first block only, as vLLM does with a
/// cache salt: every later hash chains on the first, so the salt already separates them.
pub fn block_hashes(
    algo: PrefixHashAlgo,
    tokens: &[u32],
    block_size: usize,
    extra: Option<&[u8]>,
) -> Vec<BlockHash> {
    if block_size == 0 {
        return Vec::new();
    }
    let mut out: Vec<BlockHash> = Vec::with_capacity(tokens.len() / block_size);
    for (i, chunk) in tokens.chunks_exact(block_size).enumerate() {
        let parent = out.last().copied();
        out.push(algo.hash_block(parent, chunk, if i == 0 { extra } else { None }));
    }
    out
}

fn sha256_low64(input: &[u8]) -> u64 {
    let digest = Sha256::digest(input);
    let mut low = [0u8; 8];
    low.copy_from_slice(&digest[24..32]);
    u64::from_be_bytes(low)
}

/// `sha256` input: parent as u64 little-endian, token count as u64 LE, each token as u32 LE, then
/// `0x00` for no extra keys or `0x01`, the extra length as u64 LE and the extra bytes. Lengths are
/// written so that no two different inputs share an encoding.
fn sha256_bytes(parent: u64, tokens: &[u32], extra: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 8 + 4 * tokens.len() + 9 + extra.map_or(0, <[u8]>::len));
    out.extend_from_slice(&parent.to_le_bytes());
    out.extend_from_slice(&(tokens.len() as u64).to_le_bytes());
    for t in tokens {
        out.extend_from_slice(&t.to_le_bytes());
    }
    match extra {
        None => out.push(0),
        Some(e) => {
            out.push(1);
            out.extend_from_slice(&(e.len() as u64).to_le_bytes());
            out.extend_from_slice(e);
        }
    }
    out
}

/// `sha256_cbor_64bit` input: canonical CBOR (RFC 8949 §4.2.1, what Python's
/// `cbor2.dumps(x, canonical=True)` emits) of the 3-item array
/// `[parent, [token ids...], extra]`:
/// - a definite-length array header `0x83`;
/// - `parent` as an unsigned integer (major type 0) in shortest form;
/// - the token ids as a definite-length array (major type 4) of unsigned integers, each in
///   shortest form (a Python tuple of ints encodes the same way);
/// - `extra` as a definite-length byte string (major type 2), or `0xf6` (null) when absent.
///
/// With no extra keys this is exactly vLLM's `sha256_cbor_64bit((parent, tuple(tokens), None))`.
fn cbor_bytes(parent: u64, tokens: &[u32], extra: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 5 * tokens.len() + extra.map_or(1, |e| e.len() + 9));
    cbor_head(&mut out, 4, 3);
    cbor_head(&mut out, 0, parent);
    cbor_head(&mut out, 4, tokens.len() as u64);
    for &t in tokens {
        cbor_head(&mut out, 0, u64::from(t));
    }
    match extra {
        None => out.push(0xf6),
        Some(e) => {
            cbor_head(&mut out, 2, e.len() as u64);
            out.extend_from_slice(e);
        }
    }
    out
}

/// A CBOR initial byte plus argument in the shortest form that holds `value`.
fn cbor_head(out: &mut Vec<u8>, major: u8, value: u64) {
    let mt = major << 5;
    if value < 24 {
        out.push(mt | value as u8);
    } else if value <= u64::from(u8::MAX) {
        out.extend_from_slice(&[mt | 24, value as u8]);
    } else if value <= u64::from(u16::MAX) {
        out.push(mt | 25);
        out.extend_from_slice(&(value as u16).to_be_bytes());
    } else if value <= u64::from(u32::MAX) {
        out.push(mt | 26);
        out.extend_from_slice(&(value as u32).to_be_bytes());
    } else {
        out.push(mt | 27);
        out.extend_from_slice(&value.to_be_bytes());
    }
}

const K0: u64 = 0x9e37_79b9_7f4a_7c15;
const K1: u64 = 0xbf58_476d_1ce4_e5b9;
const K2: u64 = 0x94d0_49bb_1331_11eb;

/// 64x64->128 multiply folded to 64 bits: the mixing step of wyhash-style hashes, one multiply
/// per 8 input bytes, which is all a block of a few dozen tokens needs.
fn fold_mul(a: u64, b: u64) -> u64 {
    let m = u128::from(a) * u128::from(b);
    (m as u64) ^ ((m >> 64) as u64)
}

/// `builtin`: the same fields as `sha256_bytes` (parent, token count, tokens two per 64-bit word,
/// extra presence/length, extra bytes zero-padded to 8), each word folded into the state with a
/// keyed multiply, then a splitmix64 finaliser for avalanche. Stable across runs and platforms.
fn builtin_hash(parent: u64, tokens: &[u32], extra: Option<&[u8]>) -> u64 {
    let mut h = K2;
    let mut mix = |w: u64| h = fold_mul(h ^ w ^ K0, K1);
    mix(parent);
    mix(tokens.len() as u64);
    let mut pairs = tokens.chunks_exact(2);
    for p in &mut pairs {
        mix(u64::from(p[0]) | (u64::from(p[1]) << 32));
    }
    if let [last] = pairs.remainder() {
        mix(u64::from(*last));
    }
    match extra {
        None => mix(0),
        Some(e) => {
            mix(1 | ((e.len() as u64) << 1));
            for chunk in e.chunks(8) {
                let mut word = [0u8; 8];
                word[..chunk.len()].copy_from_slice(chunk);
                mix(u64::from_le_bytes(word));
            }
        }
    }
    // splitmix64 finaliser
    let mut z = h;
    z = (z ^ (z >> 30)).wrapping_mul(K1);
    z = (z ^ (z >> 27)).wrapping_mul(K2);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [PrefixHashAlgo; 3] = [
        PrefixHashAlgo::Builtin,
        PrefixHashAlgo::Sha256,
        PrefixHashAlgo::Sha256Cbor64,
    ];

    #[test]
    fn parses_exact_vllm_spellings() {
        for a in ALL {
            assert_eq!(a.as_str().parse::<PrefixHashAlgo>(), Ok(a));
            assert_eq!(a.to_string(), a.as_str());
        }
        assert_eq!(
            "sha256_cbor_64bit".parse(),
            Ok(PrefixHashAlgo::Sha256Cbor64)
        );
        for bad in ["", "SHA256", "sha256_cbor", "xxhash", " builtin"] {
            assert!(bad.parse::<PrefixHashAlgo>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn cbor_head_uses_shortest_form() {
        let enc = |major, v| {
            let mut out = Vec::new();
            cbor_head(&mut out, major, v);
            out
        };
        assert_eq!(enc(0, 0), [0x00]);
        assert_eq!(enc(0, 23), [0x17]);
        assert_eq!(enc(0, 24), [0x18, 24]);
        assert_eq!(enc(0, 255), [0x18, 0xff]);
        assert_eq!(enc(0, 256), [0x19, 0x01, 0x00]);
        assert_eq!(enc(0, 65536), [0x1a, 0, 1, 0, 0]);
        assert_eq!(enc(0, 1 << 32), [0x1b, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(enc(4, 3), [0x83]);
        assert_eq!(enc(2, 2), [0x42]);
    }

    // Expected values from Python 3 with cbor2 (in a venv outside the repo):
    //   import cbor2, hashlib
    //   b = cbor2.dumps((1, (1, 2, 300, 70000), None), canonical=True)
    //   b.hex(); int.from_bytes(hashlib.sha256(b).digest(), "big") & (2**64 - 1)
    // and the same with b"salt" as the third item, and for (0x766c6c6d2d727300, (), None).
    #[test]
    fn cbor_matches_python_cbor2_canonical() {
        let bytes = cbor_bytes(1, &[1, 2, 300, 70000], None);
        assert_eq!(hex(&bytes), "830184010219012c1a00011170f6");
        let h =
            PrefixHashAlgo::Sha256Cbor64.hash_block(Some(BlockHash(1)), &[1, 2, 300, 70000], None);
        assert_eq!(h, BlockHash(CBOR_NONE_EXPECTED));

        let salted = cbor_bytes(1, &[1, 2, 300, 70000], Some(b"salt"));
        assert_eq!(hex(&salted), "830184010219012c1a000111704473616c74");
        let h = PrefixHashAlgo::Sha256Cbor64.hash_block(
            Some(BlockHash(1)),
            &[1, 2, 300, 70000],
            Some(b"salt"),
        );
        assert_eq!(h, BlockHash(CBOR_SALT_EXPECTED));

        // The root parent is a full 8-byte unsigned integer.
        let root = cbor_bytes(ROOT_HASH.0, &[], None);
        assert_eq!(hex(&root), "831b766c6c6d2d72730080f6");
        let h = PrefixHashAlgo::Sha256Cbor64.hash_block(None, &[], None);
        assert_eq!(h, BlockHash(CBOR_ROOT_EXPECTED));
    }

    const CBOR_NONE_EXPECTED: u64 = 0x2258_8526_bc1b_d09a;
    const CBOR_SALT_EXPECTED: u64 = 0x882a_a807_77d0_696b;
    const CBOR_ROOT_EXPECTED: u64 = 0x5698_7418_fa1f_6add;

    // Python: import hashlib, struct
    //   b = struct.pack("<QQ4IBQ", 1, 4, 1, 2, 300, 70000, 1, 4) + b"salt"
    //   int.from_bytes(hashlib.sha256(b).digest(), "big") & (2**64 - 1)
    #[test]
    fn sha256_matches_documented_encoding() {
        let bytes = sha256_bytes(1, &[1, 2, 300, 70000], Some(b"salt"));
        assert_eq!(
            hex(&bytes),
            "0100000000000000040000000000000001000000020000002c0100007011010001040000000000000073616c74"
        );
        let h = PrefixHashAlgo::Sha256.hash_block(
            Some(BlockHash(1)),
            &[1, 2, 300, 70000],
            Some(b"salt"),
        );
        assert_eq!(h, BlockHash(SHA_SALT_EXPECTED));
    }

    const SHA_SALT_EXPECTED: u64 = 0x788d_b710_049d_83de;

    #[test]
    fn every_field_changes_the_hash() {
        for a in ALL {
            let base = a.hash_block(Some(BlockHash(1)), &[1, 2, 3, 4], None);
            assert_eq!(
                base,
                a.hash_block(Some(BlockHash(1)), &[1, 2, 3, 4], None),
                "{a}: not deterministic"
            );
            let variants = [
                a.hash_block(None, &[1, 2, 3, 4], None),
                a.hash_block(Some(BlockHash(2)), &[1, 2, 3, 4], None),
                a.hash_block(Some(BlockHash(1)), &[1, 2, 3, 5], None),
                a.hash_block(Some(BlockHash(1)), &[2, 1, 3, 4], None),
                a.hash_block(Some(BlockHash(1)), &[1, 2, 3], None),
                a.hash_block(Some(BlockHash(1)), &[1, 2, 3, 4, 0], None),
                a.hash_block(Some(BlockHash(1)), &[1, 2, 3, 4], Some(b"")),
                a.hash_block(Some(BlockHash(1)), &[1, 2, 3, 4], Some(b"x")),
                a.hash_block(Some(BlockHash(1)), &[1, 2, 3, 4], Some(b"x\0")),
            ];
            let mut all: Vec<u64> = variants.iter().map(|h| h.0).collect();
            all.push(base.0);
            all.sort_unstable();
            all.dedup();
            assert_eq!(
                all.len(),
                variants.len() + 1,
                "{a}: collision among {variants:?}"
            );
        }
    }

    #[test]
    fn builtin_has_no_collisions_on_small_alphabet() {
        // Every 4-token block over a 4-letter alphabet, under two parents: 512 distinct inputs.
        let mut seen = std::collections::HashSet::new();
        for parent in [None, Some(BlockHash(3))] {
            for n in 0u32..256 {
                let toks = [n & 3, (n >> 2) & 3, (n >> 4) & 3, (n >> 6) & 3];
                assert!(seen.insert(PrefixHashAlgo::Builtin.hash_block(parent, &toks, None)));
            }
        }
    }

    #[test]
    fn block_hashes_chain_full_blocks_only() {
        for a in ALL {
            let toks: Vec<u32> = (0..10).collect();
            let hs = block_hashes(a, &toks, 4, Some(b"s"));
            assert_eq!(hs.len(), 2, "the partial third block is not hashed");
            assert_eq!(hs[0], a.hash_block(None, &toks[0..4], Some(b"s")));
            assert_eq!(hs[1], a.hash_block(Some(hs[0]), &toks[4..8], None));
            // Same second block after a different first block: a different hash.
            let mut other = toks.clone();
            other[0] = 99;
            let ho = block_hashes(a, &other, 4, Some(b"s"));
            assert_ne!(ho[1], hs[1]);
            // The salt reaches later blocks through the chain.
            assert_ne!(block_hashes(a, &toks, 4, None)[1], hs[1]);
            assert!(block_hashes(a, &toks, 0, None).is_empty());
            assert!(block_hashes(a, &toks[..3], 4, None).is_empty());
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
