//! Which instruction-set path the CPU kernels run, decided once at run time.
//!
//! The machines we serve on differ (AVX2-only Zen 3, AVX-512 Zen 4, ...), so nothing is chosen
//! at build time: the binary carries every path and picks the widest the CPU has.
//! `VLLM_CPU_ISA=scalar|avx2|avx512` forces a path for tests and benchmarks; asking for one the
//! CPU lacks is an error, never a silent downgrade.

use std::sync::OnceLock;

/// An instruction-set path of the CPU kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Plain Rust, any CPU: the correctness reference for the others.
    Scalar,
    /// AVX2 + FMA + F16C.
    Avx2,
    /// AVX-512 F/BW/VL (plus AVX2 for the weight decoders).
    Avx512,
}

/// `VLLM_CPU_ISA` named a path this CPU cannot run, or no path at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IsaError {
    #[error("VLLM_CPU_ISA={0}: unknown instruction set (expected scalar, avx2 or avx512)")]
    Unknown(String),
    #[error("VLLM_CPU_ISA={requested}: this CPU does not support it (best available: {best})")]
    Unsupported {
        requested: &'static str,
        best: &'static str,
    },
}

impl Isa {
    pub const ALL: [Isa; 3] = [Isa::Scalar, Isa::Avx2, Isa::Avx512];

    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run the path.
    pub fn supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                Isa::Avx2.supported()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The widest path this CPU runs.
    pub fn best() -> Isa {
        Isa::ALL
            .into_iter()
            .rev()
            .find(|i| i.supported())
            .unwrap_or(Isa::Scalar)
    }

    /// Every path this CPU runs, narrowest first (what kernel tests iterate over).
    pub fn available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.supported()).collect()
    }

    /// Parses a `VLLM_CPU_ISA` value and checks the CPU has it.
    pub fn from_request(value: &str) -> Result<Isa, IsaError> {
        let isa = match value.trim().to_ascii_lowercase().as_str() {
            "scalar" | "none" | "generic" => Isa::Scalar,
            "avx2" => Isa::Avx2,
            "avx512" | "avx512f" => Isa::Avx512,
            _ => return Err(IsaError::Unknown(value.to_string())),
        };
        if !isa.supported() {
            return Err(IsaError::Unsupported {
                requested: isa.name(),
                best: Isa::best().name(),
            });
        }
        Ok(isa)
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

static ACTIVE: OnceLock<Isa> = OnceLock::new();

/// Reads `VLLM_CPU_ISA` (unset or empty: the widest path) and fixes the path for the process.
/// The server calls this at start-up so a bad value is reported before the model loads; the
/// kernels call it lazily otherwise. Later calls return the path chosen first.
pub fn init_from_env() -> Result<Isa, IsaError> {
    if let Some(isa) = ACTIVE.get() {
        return Ok(*isa);
    }
    let isa = match std::env::var("VLLM_CPU_ISA") {
        Ok(v) if !v.trim().is_empty() => Isa::from_request(&v)?,
        _ => Isa::best(),
    };
    Ok(*ACTIVE.get_or_init(|| isa))
}

/// The path the kernels run. A bad `VLLM_CPU_ISA` that nobody checked at start-up falls back to
/// the widest path (the server refuses such a value before it gets here).
pub fn active() -> Isa {
    if let Some(isa) = ACTIVE.get() {
        return *isa;
    }
    let isa = init_from_env().unwrap_or_else(|_| Isa::best());
    *ACTIVE.get_or_init(|| isa)
}

/// CPU features that matter to these kernels, for start-up logs and `vllm collect-env`.
pub fn cpu_features() -> Vec<&'static str> {
    let mut out = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => {$( if is_x86_feature_detected!($f) { out.push($f); } )*};
        }
        probe!(
            "avx2",
            "fma",
            "f16c",
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512vnni",
            "avx512bf16"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked_against_the_cpu() {
        assert_eq!(Isa::from_request("scalar"), Ok(Isa::Scalar));
        assert!(matches!(
            Isa::from_request("sse9"),
            Err(IsaError::Unknown(_))
        ));
        for isa in Isa::ALL {
            match Isa::from_request(isa.name()) {
                Ok(got) => assert!(got.supported() && got == isa),
                Err(e) => assert!(
                    !isa.supported() && e.to_string().contains("does not support"),
                    "{e}"
                ),
            }
        }
        assert!(Isa::available().contains(&Isa::best()));
    }
}
