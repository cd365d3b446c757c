//! Operating system, CPU and memory, from /proc and libc (Linux first; elsewhere "unknown").

use std::collections::BTreeSet;
use std::ffi::CStr;

use crate::Section;

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn os_release() -> String {
    let Some(text) = read("/etc/os-release") else {
        return "unknown".into();
    };
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix('=')))
            .map(|v| v.trim_matches('"').to_string())
    };
    field("PRETTY_NAME")
        .or_else(|| field("NAME"))
        .unwrap_or_else(|| "unknown".into())
}

fn uname() -> (String, String) {
    // SAFETY: uname fills the zeroed struct with NUL-terminated strings.
    unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) != 0 {
            return ("unknown".into(), "unknown".into());
        }
        let s = |f: &[libc::c_char]| CStr::from_ptr(f.as_ptr()).to_string_lossy().into_owned();
        (
            format!("{} {} {}", s(&u.sysname), s(&u.release), s(&u.version)),
            s(&u.machine),
        )
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn glibc() -> String {
    // SAFETY: returns a pointer to a static NUL-terminated string.
    unsafe {
        CStr::from_ptr(libc::gnu_get_libc_version())
            .to_string_lossy()
            .into_owned()
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn glibc() -> String {
    "not glibc".into()
}

pub fn os_section() -> Section {
    let mut s = Section::new("Operating system");
    let (kernel, machine) = uname();
    s.add("os", os_release());
    s.add("kernel", kernel);
    s.add("architecture", machine);
    s.add("glibc", glibc());
    s
}

/// The CPU flags that decide which kernels run fast.
const INTERESTING_FLAGS: &[&str] = &[
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "neon",
    "asimd",
    "asimdhp",
    "asimddp",
    "sve",
    "sve2",
    "bf16",
    "i8mm",
];

pub fn cpu_section() -> Section {
    let mut s = Section::new("CPU");
    let info = read("/proc/cpuinfo").unwrap_or_default();
    let value = |line: &str| line.split_once(':').map(|(_, v)| v.trim().to_string());
    let model = info
        .lines()
        .find(|l| {
            l.starts_with("model name") || l.starts_with("Hardware") || l.starts_with("cpu model")
        })
        .and_then(value)
        .unwrap_or_else(|| "unknown".into());
    s.add("model", model);
    let logical = info.lines().filter(|l| l.starts_with("processor")).count();
    let mut cores = BTreeSet::new();
    let mut phys = String::new();
    for l in info.lines() {
        if l.starts_with("physical id") {
            phys = value(l).unwrap_or_default();
        } else if l.starts_with("core id") {
            cores.insert((phys.clone(), value(l).unwrap_or_default()));
        }
    }
    let sockets: BTreeSet<&String> = cores.iter().map(|(p, _)| p).collect();
    s.add(
        "logical CPUs",
        if logical > 0 {
            logical.to_string()
        } else {
            "unknown".into()
        },
    );
    s.add(
        "physical cores",
        if cores.is_empty() {
            "unknown".into()
        } else {
            cores.len().to_string()
        },
    );
    if !sockets.is_empty() {
        s.add("sockets", sockets.len().to_string());
    }
    let usable = std::thread::available_parallelism()
        .map(|n| n.get().to_string())
        .unwrap_or_else(|_| "unknown".into());
    s.add("usable by this process", usable);
    let flags: BTreeSet<&str> = info
        .lines()
        .find(|l| l.starts_with("flags") || l.starts_with("Features"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.split_whitespace().collect())
        .unwrap_or_default();
    let present: Vec<&str> = INTERESTING_FLAGS
        .iter()
        .copied()
        .filter(|f| flags.contains(f))
        .collect();
    s.add(
        "relevant flags",
        if present.is_empty() {
            "none found".to_string()
        } else {
            present.join(" ")
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
    let missing: Vec<&str> = ["avx2", "avx512f", "amx_tile", "neon", "asimd"]
        .into_iter()
        .filter(|f| !flags.contains(f))
        .collect();
    if !missing.is_empty() {
        s.add("not available", missing.join(" "));
    }
    s
}

fn meminfo_kib(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        l.strip_prefix(key)?
            .strip_prefix(':')?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    })
}

fn gib(kib: u64) -> String {
    format!("{:.1} GiB", kib as f64 / (1u64 << 20) as f64)
}

pub fn memory_section() -> Section {
    let mut s = Section::new("Memory");
    let text = read("/proc/meminfo").unwrap_or_default();
    for (label, key) in [
        ("total", "MemTotal"),
        ("available", "MemAvailable"),
        ("swap total", "SwapTotal"),
    ] {
        s.add(
            label,
            meminfo_kib(&text, key)
                .map(gib)
                .unwrap_or_else(|| "unknown".into()),
        );
    }
    // A container's limit matters more than the host's memory.
    if let Some(limit) = read("/sys/fs/cgroup/memory.max").map(|t| t.trim().to_string()) {
        let shown = limit.parse::<u64>().map(|b| gib(b / 1024)).unwrap_or(limit);
        s.add("cgroup limit", shown);
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
