//! Operating system, CPU and memory: `sysinfo` for the machine's facts, the standard library's
//! run-time feature detection for the CPU flags (the same test the kernels make), and a few
//! facts neither has (sockets, glibc). Anything missing reads "unknown".

use std::collections::BTreeSet;

use sysinfo::{CpuRefreshKind, RefreshKind, System};

use crate::Section;

/// The version of the C library this binary runs on. `getconf` answers from that same glibc, and
/// asking it avoids calling into libc by hand.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn glibc() -> String {
    std::process::Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().trim_start_matches("glibc").trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn glibc() -> String {
    "not glibc".into()
}

pub fn os_section() -> Section {
    let mut s = Section::new("Operating system");
    let os = match (System::name(), System::os_version()) {
        (Some(name), Some(version)) => format!("{name} {version}"),
        (Some(name), None) => name,
        _ => "unknown".into(),
    };
    s.add("os", os);
    s.add("kernel", System::kernel_long_version());
    s.add("architecture", System::cpu_arch());
    s.add("glibc", glibc());
    s
}

/// The CPU features that decide which kernels run fast, as the standard library names them.
fn detected_flags() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut out = Vec::new();
    #[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
    {
        macro_rules! probe {
            ($($f:tt),*) => {$( if std::arch::is_x86_feature_detected!($f) { out.push($f); } )*};
        }
        probe!(
            "avx",
            "avx2",
            "fma",
            "f16c",
            "avx512f",
            "avx512bw",
            "avx512vl",
            "avx512vnni",
            "avx512bf16",
            "avx512fp16"
        );
    }
    #[cfg(target_arch = "aarch64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => {$( if std::arch::is_aarch64_feature_detected!($f) { out.push($f); } )*};
        }
        probe!("neon", "fp16", "dotprod", "i8mm", "bf16", "sve", "sve2");
    }
    out
}

/// The features whose absence a report should state outright (a slower kernel path follows).
const EXPECTED_FLAGS: &[&str] = if cfg!(target_arch = "aarch64") {
    &["neon", "dotprod", "i8mm", "bf16", "sve"]
} else {
    &["avx2", "avx512f", "avx512vnni", "avx512bf16"]
};

/// Distinct physical packages in sysfs (sysinfo counts cores, not sockets).
fn sockets() -> Option<usize> {
    let ids: BTreeSet<String> = std::fs::read_dir("/sys/devices/system/cpu")
        .ok()?
        .filter_map(|e| {
            let path = e.ok()?.path().join("topology/physical_package_id");
            std::fs::read_to_string(path)
                .ok()
                .map(|t| t.trim().to_string())
        })
        .collect();
    (!ids.is_empty()).then_some(ids.len())
}

pub fn cpu_section() -> Section {
    let mut s = Section::new("CPU");
    let sys =
        System::new_with_specifics(RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing()));
    let cpus = sys.cpus();
    let model = cpus
        .first()
        .map(|c| {
            if c.brand().trim().is_empty() {
                c.vendor_id().trim().to_string()
            } else {
                c.brand().trim().to_string()
            }
        })
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "unknown".into());
    s.add("model", model);
    s.add(
        "logical CPUs",
        if cpus.is_empty() {
            "unknown".into()
        } else {
            cpus.len().to_string()
        },
    );
    s.add(
        "physical cores",
        System::physical_core_count()
            .map(|n| n.to_string())
            .unwrap_or_else(|| "unknown".into()),
    );
    if let Some(n) = sockets() {
        s.add("sockets", n.to_string());
    }
    let usable = std::thread::available_parallelism()
        .map(|n| n.get().to_string())
        .unwrap_or_else(|_| "unknown".into());
    s.add("usable by this process", usable);
    let flags = detected_flags();
    s.add(
        "relevant flags",
        if flags.is_empty() {
            "none found".to_string()
        } else {
            flags.join(" ")
        },
    );
    // The path the CPU kernels pick at run time (VLLM_CPU_ISA forces one), and their threads.
    let path = match kernels::cpu::isa::init_from_env() {
        Ok(isa) => format!(
            "{isa} (available: {})",
            kernels::cpu::Isa::available()
                .iter()
                .map(|i| i.name())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Err(e) => format!("error: {e}"),
    };
    s.add("kernel path", path);
    let threads = match kernels::cpu::pool::config_from_env() {
        Ok((n, bind)) if bind.is_empty() => format!("{n} (not pinned)"),
        Ok((n, bind)) => format!("{n}, pinned to CPUs {bind:?}"),
        Err(e) => format!("error: {e}"),
    };
    s.add("kernel threads", threads);
    let missing: Vec<&str> = EXPECTED_FLAGS
        .iter()
        .copied()
        .filter(|f| !flags.contains(f))
        .collect();
    if !missing.is_empty() {
        s.add("not available", missing.join(" "));
    }
    s
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

pub fn memory_section() -> Section {
    let mut s = Section::new("Memory");
    let mut sys = System::new();
    sys.refresh_memory();
    s.add("total", gib(sys.total_memory()));
    s.add("available", gib(sys.available_memory()));
    s.add("swap total", gib(sys.total_swap()));
    // A container's limit matters more than the host's memory. sysinfo caps the cgroup's limit
    // at the host's memory, so an equal value means no limit.
    if let Some(limits) = sys
        .cgroup_limits()
        .filter(|l| l.total_memory < sys.total_memory())
    {
        s.add("cgroup limit", gib(limits.total_memory));
    }
    s
}

/// The SIMD features the binary itself was compiled with (kernels use only these).
pub fn compiled_target_features() -> String {
    let mut f: Vec<&str> = Vec::new();
    if cfg!(target_feature = "avx2") {
        f.push("avx2");
    }
    if cfg!(target_feature = "fma") {
        f.push("fma");
    }
    if cfg!(target_feature = "avx512f") {
        f.push("avx512f");
    }
    if cfg!(target_feature = "neon") {
        f.push("neon");
    }
    if f.is_empty() {
        "baseline (runtime detection)".into()
    } else {
        f.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_agree_with_the_kernels_detection() {
        // The kernels pick their path from the same detection; a flag they see must be listed.
        let flags = detected_flags();
        for f in kernels::cpu::isa::cpu_features() {
            assert!(flags.contains(&f), "{f} missing from {flags:?}");
        }
    }

    #[test]
    fn memory_is_measured() {
        let s = memory_section();
        let total = &s.items.iter().find(|(k, _)| k == "total").expect("total").1;
        let gib: f64 = total
            .trim_end_matches(" GiB")
            .parse()
            .expect("a number of GiB");
        assert!(gib > 0.0, "{total}");
    }

    #[test]
    fn gib_formatting() {
        assert_eq!(gib(3 << 29), "1.5 GiB");
    }
}
