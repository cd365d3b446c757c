//! NVIDIA driver and GPUs through NVML, and the CUDA libraries a CUDA backend would load.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};

use crate::dl::{as_fn, Lib};
use crate::Section;

type Device = *mut c_void;
type InitFn = unsafe extern "C" fn() -> c_int;
type StrFn = unsafe extern "C" fn(*mut c_char, c_uint) -> c_int;
type CountFn = unsafe extern "C" fn(*mut c_uint) -> c_int;
type IntFn = unsafe extern "C" fn(*mut c_int) -> c_int;
type HandleFn = unsafe extern "C" fn(c_uint, *mut Device) -> c_int;
type DevStrFn = unsafe extern "C" fn(Device, *mut c_char, c_uint) -> c_int;
type DevUintFn = unsafe extern "C" fn(Device, *mut c_uint) -> c_int;
type DevMemFn = unsafe extern "C" fn(Device, *mut Memory) -> c_int;
type DevCapFn = unsafe extern "C" fn(Device, *mut c_int, *mut c_int) -> c_int;
type DevClockFn = unsafe extern "C" fn(Device, c_uint, *mut c_uint) -> c_int;
type DevPciFn = unsafe extern "C" fn(Device, *mut PciInfo) -> c_int;
type DevLinkStateFn = unsafe extern "C" fn(Device, c_uint, *mut c_uint) -> c_int;
type DevLinkPciFn = unsafe extern "C" fn(Device, c_uint, *mut PciInfo) -> c_int;
type TopoFn = unsafe extern "C" fn(Device, Device, *mut c_uint) -> c_int;
type P2pFn = unsafe extern "C" fn(Device, Device, c_uint, *mut c_uint) -> c_int;

#[repr(C)]
#[derive(Default)]
struct Memory {
    total: u64,
    free: u64,
    used: u64,
}

/// `nvmlPciInfo_t` (v3 layout).
#[repr(C)]
struct PciInfo {
    bus_id_legacy: [c_char; 16],
    domain: c_uint,
    bus: c_uint,
    device: c_uint,
    pci_device_id: c_uint,
    pci_sub_system_id: c_uint,
    bus_id: [c_char; 32],
}

impl PciInfo {
    fn zeroed() -> PciInfo {
        PciInfo {
            bus_id_legacy: [0; 16],
            domain: 0,
            bus: 0,
            device: 0,
            pci_device_id: 0,
            pci_sub_system_id: 0,
            bus_id: [0; 32],
        }
    }

    fn bus_id(&self) -> String {
        // SAFETY: NVML NUL-terminates; the array was zeroed beforehand.
        unsafe {
            CStr::from_ptr(self.bus_id.as_ptr())
                .to_string_lossy()
                .to_ascii_lowercase()
        }
    }
}

const NVLINK_MAX_LINKS: c_uint = 18;

struct Nvml {
    lib: Lib,
}

impl Nvml {
    fn f<F: Copy>(&self, name: &str) -> Option<F> {
        // SAFETY: every call site names F as the documented NVML signature.
        self.lib.sym(name).map(|p| unsafe { as_fn::<F>(p) })
    }

    fn string(&self, name: &str) -> Option<String> {
        let f: StrFn = self.f(name)?;
        let mut buf = [0 as c_char; 96];
        // SAFETY: buffer and its length are passed together.
        (unsafe { f(buf.as_mut_ptr(), buf.len() as c_uint) } == 0).then(|| {
            unsafe { CStr::from_ptr(buf.as_ptr()) }
                .to_string_lossy()
                .into_owned()
        })
    }

    fn dev_uint(&self, name: &str, d: Device) -> Option<u32> {
        let f: DevUintFn = self.f(name)?;
        let mut v: c_uint = 0;
        // SAFETY: valid device handle and out pointer.
        (unsafe { f(d, &mut v) } == 0).then_some(v)
    }

    fn clock(&self, name: &str, d: Device, kind: c_uint) -> Option<u32> {
        let f: DevClockFn = self.f(name)?;
        let mut v: c_uint = 0;
        // SAFETY: valid device handle and out pointer.
        (unsafe { f(d, kind, &mut v) } == 0).then_some(v)
    }

    fn pci(&self, d: Device) -> Option<PciInfo> {
        let f: DevPciFn = self.f("nvmlDeviceGetPciInfo_v3")?;
        let mut p = PciInfo::zeroed();
        // SAFETY: valid device handle and out struct of the v3 layout.
        (unsafe { f(d, &mut p) } == 0).then_some(p)
    }

    fn device_lines(&self, i: usize, d: Device) -> Vec<(String, String)> {
        let mut items = Vec::new();
        let mut add = |k: &str, v: String| items.push((format!("GPU {i} {k}"), v));
        let unknown = || "unknown".to_string();
        let name = self.f::<DevStrFn>("nvmlDeviceGetName").and_then(|f| {
            let mut buf = [0 as c_char; 96];
            // SAFETY: buffer and its length are passed together.
            (unsafe { f(d, buf.as_mut_ptr(), buf.len() as c_uint) } == 0).then(|| {
                unsafe { CStr::from_ptr(buf.as_ptr()) }
                    .to_string_lossy()
                    .into_owned()
            })
        });
        add("name", name.unwrap_or_else(unknown));
        let mem = self.f::<DevMemFn>("nvmlDeviceGetMemoryInfo").and_then(|f| {
            let mut m = Memory::default();
            // SAFETY: valid device handle and out struct.
            (unsafe { f(d, &mut m) } == 0).then_some(m)
        });
        add(
            "memory",
            mem.map(|m| format!("{} MiB total, {} MiB free", m.total >> 20, m.free >> 20))
                .unwrap_or_else(unknown),
        );
        let cap = self
            .f::<DevCapFn>("nvmlDeviceGetCudaComputeCapability")
            .and_then(|f| {
                let (mut a, mut b) = (0, 0);
                // SAFETY: valid device handle and out pointers.
                (unsafe { f(d, &mut a, &mut b) } == 0).then(|| format!("{a}.{b}"))
            });
        add("compute capability", cap.unwrap_or_else(unknown));
        // Clock types: 0 graphics, 1 SM, 2 memory.
        let clocks = |name: &str| {
            let g = self.clock(name, d, 1);
            let m = self.clock(name, d, 2);
            match (g, m) {
                (Some(g), Some(m)) => format!("SM {g} MHz, memory {m} MHz"),
                _ => "unknown".into(),
            }
        };
        add("clocks (current)", clocks("nvmlDeviceGetClockInfo"));
        add("clocks (max)", clocks("nvmlDeviceGetMaxClockInfo"));
        let usage = self.dev_uint("nvmlDeviceGetPowerUsage", d);
        let limit = self.dev_uint("nvmlDeviceGetPowerManagementLimit", d);
        let watts = |mw: Option<u32>| {
            mw.map(|v| format!("{:.0} W", v as f64 / 1000.0))
                .unwrap_or_else(|| "unknown".into())
        };
        add(
            "power",
            format!("{} drawn, {} limit", watts(usage), watts(limit)),
        );
        let pcie = |g: &str, w: &str| match (self.dev_uint(g, d), self.dev_uint(w, d)) {
            (Some(g), Some(w)) => format!("gen{g} x{w}"),
            _ => "unknown".into(),
        };
        let bus = self.pci(d).map(|p| p.bus_id()).unwrap_or_else(unknown);
        add(
            "PCIe",
            format!(
                "{bus}, link {} (max {})",
                pcie(
                    "nvmlDeviceGetCurrPcieLinkGeneration",
                    "nvmlDeviceGetCurrPcieLinkWidth"
                ),
                pcie(
                    "nvmlDeviceGetMaxPcieLinkGeneration",
                    "nvmlDeviceGetMaxPcieLinkWidth"
                )
            ),
        );
        items
    }

    /// Active NVLinks from `a` whose far end is `b`.
    fn nvlinks(&self, a: Device, b_bus: &str) -> usize {
        let (Some(state), Some(remote)) = (
            self.f::<DevLinkStateFn>("nvmlDeviceGetNvLinkState"),
            self.f::<DevLinkPciFn>("nvmlDeviceGetNvLinkRemotePciInfo_v2"),
        ) else {
            return 0;
        };
        (0..NVLINK_MAX_LINKS)
            .filter(|&l| {
                let mut on: c_uint = 0;
                let mut p = PciInfo::zeroed();
                // SAFETY: valid device handle, link index in range, out pointers.
                unsafe {
                    state(a, l, &mut on) == 0
                        && on == 1
                        && remote(a, l, &mut p) == 0
                        && p.bus_id() == b_bus
                }
            })
            .count()
    }

    /// The `nvidia-smi topo -m` style matrix, plus whether P2P reads work for each pair.
    fn topology(&self, devs: &[Device]) -> Vec<String> {
        let topo: Option<TopoFn> = self.f("nvmlDeviceGetTopologyCommonAncestor");
        let p2p: Option<P2pFn> = self.f("nvmlDeviceGetP2PStatus");
        let buses: Vec<String> = devs
            .iter()
            .map(|&d| self.pci(d).map(|p| p.bus_id()).unwrap_or_default())
            .collect();
        let header: String = (0..devs.len())
            .map(|j| format!("{:>8}", format!("GPU{j}")))
            .collect();
        let mut lines = vec!["Topology (X self, NV# NVLinks, PIX/PXB PCIe switches, PHB host bridge, NODE/SYS across NUMA/sockets; p2p = P2P read):".to_string(), format!("{:8}{header}", "")];
        for (i, &a) in devs.iter().enumerate() {
            let mut row = format!("{:8}", format!("GPU{i}"));
            for (j, &b) in devs.iter().enumerate() {
                let cell = if i == j {
                    "X".to_string()
                } else {
                    let n = self.nvlinks(a, &buses[j]);
                    let link = if n > 0 {
                        format!("NV{n}")
                    } else {
                        let mut level: c_uint = 0;
                        // SAFETY: valid device handles and out pointer.
                        match topo.map(|f| unsafe { f(a, b, &mut level) }) {
                            Some(0) => match level {
                                0 => "BRD",
                                10 => "PIX",
                                20 => "PXB",
                                30 => "PHB",
                                40 => "NODE",
                                _ => "SYS",
                            }
                            .to_string(),
                            _ => "?".into(),
                        }
                    };
                    let mut st: c_uint = 1;
                    // SAFETY: valid device handles; index 0 = P2P read.
                    let ok = p2p
                        .map(|f| unsafe { f(a, b, 0, &mut st) } == 0 && st == 0)
                        .unwrap_or(false);
                    format!("{link}{}", if ok { "+p2p" } else { "" })
                };
                row.push_str(&format!("{cell:>8}"));
            }
            lines.push(row);
        }
        lines
    }
}

fn nvidia_section() -> Section {
    let mut s = Section::new("NVIDIA GPUs");
    let Some(lib) = Lib::open_any(&["libnvidia-ml.so.1", "libnvidia-ml.so"]) else {
        s.add(
            "driver",
            "not found (no NVIDIA driver: libnvidia-ml.so.1 did not load)",
        );
        return s;
    };
    let nvml = Nvml { lib };
    let init = nvml.f::<InitFn>("nvmlInit_v2");
    // SAFETY: nvmlInit_v2 takes no arguments.
    if init.map(|f| unsafe { f() }) != Some(0) {
        s.add(
            "driver",
            "NVML present but failed to initialise (driver not loaded?)",
        );
        return s;
    }
    s.add(
        "NVML library",
        nvml.lib
            .path_of("nvmlInit_v2")
            .unwrap_or_else(|| nvml.lib.name.clone()),
    );
    s.add(
        "driver version",
        nvml.string("nvmlSystemGetDriverVersion")
            .unwrap_or_else(|| "unknown".into()),
    );
    let cuda = nvml
        .f::<IntFn>("nvmlSystemGetCudaDriverVersion_v2")
        .and_then(|f| {
            let mut v = 0;
            // SAFETY: out pointer.
            (unsafe { f(&mut v) } == 0).then(|| format!("{}.{}", v / 1000, (v % 1000) / 10))
        });
    s.add("CUDA driver API", cuda.unwrap_or_else(|| "unknown".into()));
    let count = nvml.f::<CountFn>("nvmlDeviceGetCount_v2").and_then(|f| {
        let mut n: c_uint = 0;
        // SAFETY: out pointer.
        (unsafe { f(&mut n) } == 0).then_some(n)
    });
    s.add(
        "GPU count",
        count
            .map(|n| n.to_string())
            .unwrap_or_else(|| "unknown".into()),
    );
    let handle: Option<HandleFn> = nvml.f("nvmlDeviceGetHandleByIndex_v2");
    let mut devs = Vec::new();
    for i in 0..count.unwrap_or(0) {
        let mut d: Device = std::ptr::null_mut();
        // SAFETY: index below the count and an out pointer.
        if handle.map(|f| unsafe { f(i, &mut d) }) == Some(0) {
            s.items.extend(nvml.device_lines(i as usize, d));
            devs.push(d);
        } else {
            s.add(&format!("GPU {i}"), "not accessible");
        }
    }
    if devs.len() > 1 {
        s.extra = nvml.topology(&devs);
    }
    if let Some(f) = nvml.f::<InitFn>("nvmlShutdown") {
        // SAFETY: paired with the successful init above.
        unsafe { f() };
    }
    s
}

fn cuda_libraries_section() -> Section {
    let mut s = Section::new("CUDA libraries");
    let found = |lib: &Lib, sym: &str, version: String| {
        format!(
            "{version} ({})",
            lib.path_of(sym).unwrap_or_else(|| lib.name.clone())
        )
    };
    let driver = Lib::open_any(&["libcuda.so.1", "libcuda.so"]).map(|lib| {
        let v = lib.sym("cuDriverGetVersion").and_then(|p| {
            let mut v = 0;
            // SAFETY: cuDriverGetVersion(int*) works before cuInit.
            (unsafe { as_fn::<IntFn>(p)(&mut v) } == 0)
                .then(|| format!("CUDA {}.{}", v / 1000, (v % 1000) / 10))
        });
        found(
            &lib,
            "cuDriverGetVersion",
            v.unwrap_or_else(|| "version unknown".into()),
        )
    });
    s.add("libcuda", driver.unwrap_or_else(|| "not found".into()));
    let cublas = Lib::open_any(&[
        "libcublas.so",
        "libcublas.so.13",
        "libcublas.so.12",
        "libcublas.so.11",
    ])
    .map(|lib| {
        type PropFn = unsafe extern "C" fn(c_int, *mut c_int) -> c_int;
        let v = lib.sym("cublasGetProperty").and_then(|p| {
            // SAFETY: cublasGetProperty(libraryPropertyType, int*): 0 major, 1 minor, 2 patch.
            let f = unsafe { as_fn::<PropFn>(p) };
            let mut parts = [0; 3];
            for (k, v) in parts.iter_mut().enumerate() {
                // SAFETY: as above.
                if unsafe { f(k as c_int, v) } != 0 {
                    return None;
                }
            }
            Some(format!("{}.{}.{}", parts[0], parts[1], parts[2]))
        });
        found(
            &lib,
            "cublasGetProperty",
            v.unwrap_or_else(|| "version unknown".into()),
        )
    });
    s.add("libcublas", cublas.unwrap_or_else(|| "not found".into()));
    let nvrtc = Lib::open_any(&[
        "libnvrtc.so",
        "libnvrtc.so.13",
        "libnvrtc.so.12",
        "libnvrtc.so.11.2",
    ])
    .map(|lib| {
        type VerFn = unsafe extern "C" fn(*mut c_int, *mut c_int) -> c_int;
        let v = lib.sym("nvrtcVersion").and_then(|p| {
            let (mut a, mut b) = (0, 0);
            // SAFETY: nvrtcVersion(int*, int*).
            (unsafe { as_fn::<VerFn>(p)(&mut a, &mut b) } == 0).then(|| format!("{a}.{b}"))
        });
        found(
            &lib,
            "nvrtcVersion",
            v.unwrap_or_else(|| "version unknown".into()),
        )
    });
    s.add("libnvrtc", nvrtc.unwrap_or_else(|| "not found".into()));
    s
}

pub fn sections() -> Vec<Section> {
    vec![nvidia_section(), cuda_libraries_section()]
}
