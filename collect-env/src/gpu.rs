//! NVIDIA driver and GPUs through NVML (the `nvml-wrapper` crate opens libnvidia-ml at run time),
//! and the CUDA libraries a CUDA backend would load (probed by `kernels::cuda_libs`).

use std::ffi::OsStr;

use nvml_wrapper::enum_wrappers::device::{Clock, P2pCapabilitiesIndex, P2pStatus, TopologyLevel};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{Device, Nvml};

use crate::Section;

pub const NO_DRIVER: &str = "not found (no NVIDIA driver: libnvidia-ml.so.1 did not load)";
/// NVML has at most this many NVLinks per GPU (NVML_NVLINK_MAX_LINKS).
const NVLINK_MAX_LINKS: u32 = 18;
/// How many compute processes are listed by pid before the rest are only counted.
const MAX_LISTED_PROCESSES: usize = 8;

fn unknown() -> String {
    "unknown".into()
}

fn or_unknown<T>(r: Result<T, NvmlError>, show: impl FnOnce(T) -> String) -> String {
    r.map(show).unwrap_or_else(|_| unknown())
}

fn watts(mw: Result<u32, NvmlError>) -> String {
    or_unknown(mw, |v| format!("{:.0} W", v as f64 / 1000.0))
}

fn clocks(sm: Result<u32, NvmlError>, mem: Result<u32, NvmlError>) -> String {
    match (sm, mem) {
        (Ok(g), Ok(m)) => format!("SM {g} MHz, memory {m} MHz"),
        _ => unknown(),
    }
}

/// Enabled/disabled for a current and pending pair, with the pending state where it differs
/// (a reboot or GPU reset is then due).
fn switch(current: bool, pending: bool) -> String {
    let word = |on: bool| if on { "enabled" } else { "disabled" };
    if current == pending {
        word(current).to_string()
    } else {
        format!("{} ({} after reset)", word(current), word(pending))
    }
}

/// `NotSupported` is a fact about the GPU (consumer cards have no MIG or ECC), not a failure.
fn feature<T>(r: Result<T, NvmlError>, show: impl FnOnce(T) -> String) -> String {
    match r {
        Ok(v) => show(v),
        Err(NvmlError::NotSupported) => "not supported".into(),
        Err(_) => unknown(),
    }
}

fn processes(d: &Device) -> String {
    let list = match d.running_compute_processes() {
        Ok(l) => l,
        Err(NvmlError::NotSupported) => return "not supported".into(),
        Err(_) => return unknown(),
    };
    if list.is_empty() {
        return "none".into();
    }
    let mut shown: Vec<String> = list
        .iter()
        .take(MAX_LISTED_PROCESSES)
        .map(|p| match p.used_gpu_memory {
            UsedGpuMemory::Used(b) => format!("pid {} ({} MiB)", p.pid, b >> 20),
            UsedGpuMemory::Unavailable => format!("pid {}", p.pid),
        })
        .collect();
    if list.len() > MAX_LISTED_PROCESSES {
        shown.push(format!("{} more", list.len() - MAX_LISTED_PROCESSES));
    }
    format!("{}: {}", list.len(), shown.join(", "))
}

fn device_lines(i: usize, d: &Device) -> Vec<(String, String)> {
    let mut items = Vec::new();
    let mut add = |k: &str, v: String| items.push((format!("GPU {i} {k}"), v));
    add("name", or_unknown(d.name(), |n| n));
    add("UUID", or_unknown(d.uuid(), |u| u));
    add(
        "memory",
        or_unknown(d.memory_info(), |m| {
            format!("{} MiB total, {} MiB free", m.total >> 20, m.free >> 20)
        }),
    );
    add(
        "compute capability",
        or_unknown(d.cuda_compute_capability(), |c| {
            format!("{}.{}", c.major, c.minor)
        }),
    );
    add(
        "clocks (current)",
        clocks(d.clock_info(Clock::SM), d.clock_info(Clock::Memory)),
    );
    add(
        "clocks (max)",
        clocks(d.max_clock_info(Clock::SM), d.max_clock_info(Clock::Memory)),
    );
    add(
        "power",
        format!(
            "{} drawn, {} limit",
            watts(d.power_usage()),
            watts(d.power_management_limit())
        ),
    );
    add(
        "power limits",
        format!(
            "{} enforced, {} default, settable {}",
            watts(d.enforced_power_limit()),
            watts(d.power_management_limit_default()),
            or_unknown(d.power_management_limit_constraints(), |c| format!(
                "{}-{}",
                watts(Ok(c.min_limit)),
                watts(Ok(c.max_limit))
            ))
        ),
    );
    add(
        "MIG mode",
        feature(d.mig_mode(), |m| switch(m.current == 1, m.pending == 1)),
    );
    add(
        "ECC",
        feature(d.is_ecc_enabled(), |e| {
            switch(e.currently_enabled, e.pending_enabled)
        }),
    );
    let active_links = (0..NVLINK_MAX_LINKS)
        .filter(|&l| d.link_wrapper_for(l).is_active().unwrap_or(false))
        .count();
    add("NVLinks active", active_links.to_string());
    let pcie = |g: Result<u32, NvmlError>, w: Result<u32, NvmlError>| match (g, w) {
        (Ok(g), Ok(w)) => format!("gen{g} x{w}"),
        _ => unknown(),
    };
    add(
        "PCIe",
        format!(
            "{}, link {} (max {})",
            or_unknown(d.pci_info(), |p| p.bus_id.to_ascii_lowercase()),
            pcie(d.current_pcie_link_gen(), d.current_pcie_link_width()),
            pcie(d.max_pcie_link_gen(), d.max_pcie_link_width())
        ),
    );
    add("compute processes", processes(d));
    items
}

/// NVML's PCI bus ids differ in case between calls; compare them lowercased.
fn bus_id(d: &Device) -> String {
    d.pci_info()
        .map(|p| p.bus_id.to_ascii_lowercase())
        .unwrap_or_default()
}

/// Active NVLinks from `a` whose far end is the GPU at `b_bus`.
fn nvlinks(a: &Device, b_bus: &str) -> usize {
    (0..NVLINK_MAX_LINKS)
        .filter(|&l| {
            let link = a.link_wrapper_for(l);
            link.is_active().unwrap_or(false)
                && link
                    .remote_pci_info()
                    .is_ok_and(|p| p.bus_id.to_ascii_lowercase() == b_bus)
        })
        .count()
}

fn level_name(level: TopologyLevel) -> &'static str {
    match level {
        TopologyLevel::Internal => "BRD",
        TopologyLevel::Single => "PIX",
        TopologyLevel::Multiple => "PXB",
        TopologyLevel::HostBridge => "PHB",
        TopologyLevel::Node => "NODE",
        TopologyLevel::System => "SYS",
    }
}

/// The `nvidia-smi topo -m` style matrix, plus whether P2P reads work for each pair.
fn topology(devs: &[Device]) -> Vec<String> {
    let buses: Vec<String> = devs.iter().map(bus_id).collect();
    let header: String = (0..devs.len())
        .map(|j| format!("{:>8}", format!("GPU{j}")))
        .collect();
    let mut lines = vec![
        "Topology (X self, NV# NVLinks, PIX/PXB PCIe switches, PHB host bridge, NODE/SYS across NUMA/sockets; p2p = P2P read):".to_string(),
        format!("{:8}{header}", ""),
    ];
    for (i, a) in devs.iter().enumerate() {
        let mut row = format!("{:8}", format!("GPU{i}"));
        for (j, b) in devs.iter().enumerate() {
            let cell = if i == j {
                "X".to_string()
            } else {
                let n = nvlinks(a, &buses[j]);
                let link = if n > 0 {
                    format!("NV{n}")
                } else {
                    a.nvml()
                        .topology_common_ancestor(a, b)
                        .map(|l| level_name(l).to_string())
                        .unwrap_or_else(|_| "?".into())
                };
                let p2p = matches!(
                    a.p2p_status(b, P2pCapabilitiesIndex::Read),
                    Ok(P2pStatus::Ok)
                );
                format!("{link}{}", if p2p { "+p2p" } else { "" })
            };
            row.push_str(&format!("{cell:>8}"));
        }
        lines.push(row);
    }
    lines
}

/// NVML from the driver's soname, then the unversioned name a CUDA toolkit install adds.
fn init_nvml() -> Result<Nvml, NvmlError> {
    Nvml::init().or_else(|first| {
        Nvml::builder()
            .lib_path(OsStr::new("libnvidia-ml.so"))
            .init()
            .map_err(|_| first)
    })
}

fn nvidia_section() -> Section {
    let mut s = Section::new("NVIDIA GPUs");
    let nvml = match init_nvml() {
        Ok(n) => n,
        Err(NvmlError::LibloadingError(_)) => {
            s.add("driver", NO_DRIVER);
            return s;
        }
        Err(e) => {
            s.add(
                "driver",
                format!("NVML present but failed to initialise ({e}; driver not loaded?)"),
            );
            return s;
        }
    };
    s.add(
        "NVML library",
        kernels::cuda_libs::loaded_path("libnvidia-ml.so")
            .unwrap_or_else(|| "libnvidia-ml.so.1".into()),
    );
    s.add(
        "driver version",
        or_unknown(nvml.sys_driver_version(), |v| v),
    );
    s.add(
        "CUDA driver API",
        or_unknown(nvml.sys_cuda_driver_version(), |v| {
            format!("{}.{}", v / 1000, (v % 1000) / 10)
        }),
    );
    let count = nvml.device_count().ok();
    s.add(
        "GPU count",
        count.map(|n| n.to_string()).unwrap_or_else(unknown),
    );
    let mut devs = Vec::new();
    for i in 0..count.unwrap_or(0) {
        match nvml.device_by_index(i) {
            Ok(d) => {
                s.items.extend(device_lines(i as usize, &d));
                devs.push(d);
            }
            Err(e) => s.add(&format!("GPU {i}"), format!("not accessible ({e})")),
        }
    }
    if devs.len() > 1 {
        s.extra = topology(&devs);
    }
    s
}

fn cuda_libraries_section() -> Section {
    let mut s = Section::new("CUDA libraries");
    let show = |lib: Option<kernels::cuda_libs::LoadedLib>, prefix: &str| match lib {
        None => "not found".to_string(),
        Some(l) => format!(
            "{} ({})",
            l.version
                .map(|v| format!("{prefix}{v}"))
                .unwrap_or_else(|| "version unknown".into()),
            l.path.unwrap_or(l.soname)
        ),
    };
    s.add("libcuda", show(kernels::cuda_libs::libcuda(), "CUDA "));
    s.add("libcublas", show(kernels::cuda_libs::libcublas(), ""));
    s.add("libnvrtc", show(kernels::cuda_libs::libnvrtc(), ""));
    s
}

pub fn sections() -> Vec<Section> {
    vec![nvidia_section(), cuda_libraries_section()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_state_is_shown_only_when_it_differs() {
        assert_eq!(switch(true, true), "enabled");
        assert_eq!(switch(false, true), "disabled (enabled after reset)");
    }

    #[test]
    fn not_supported_is_not_unknown() {
        assert_eq!(
            feature::<u32>(Err(NvmlError::NotSupported), |v| v.to_string()),
            "not supported"
        );
        assert_eq!(
            feature::<u32>(Err(NvmlError::Unknown), |v| v.to_string()),
            "unknown"
        );
        assert_eq!(watts(Ok(300_600)), "301 W");
    }

    #[test]
    fn nvidia_section_without_a_driver_says_so() {
        let s = nvidia_section();
        // On a GPU machine the section lists the GPUs instead; both shapes are checked.
        if init_nvml().is_err() {
            assert_eq!(s.items.len(), 1, "{:?}", s.items);
            assert_eq!(s.items[0].0, "driver");
        } else {
            let keys: Vec<&str> = s.items.iter().map(|(k, _)| k.as_str()).collect();
            for k in [
                "driver version",
                "CUDA driver API",
                "GPU count",
                "GPU 0 name",
            ] {
                assert!(keys.contains(&k), "{k} missing from {keys:?}");
            }
        }
    }
}
