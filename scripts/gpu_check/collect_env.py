"""Checks `vllm collect-env --json` on a GPU machine against nvidia-smi: the NVML facts must be
there (driver, CUDA driver API, each GPU's name, memory, compute capability, power limits, MIG,
ECC, NVLinks, processes) and agree with what nvidia-smi reports. Prints one line per finding and
writes the report to OUT; exits 1 when a check fails."""

import json
import subprocess
import sys

vllm, out = sys.argv[1], sys.argv[2]
report = json.loads(subprocess.run([vllm, "collect-env", "--json"], check=True, capture_output=True, text=True, timeout=60).stdout)
with open(out, "w") as f:
    json.dump(report, f, indent=2)

failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


for section in ("Operating system", "CPU", "Memory", "vllm-rs", "NVIDIA GPUs", "CUDA libraries", "Environment variables"):
    check(section in report, f"section {section!r}")
gpus = report.get("NVIDIA GPUs", {})
smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version,compute_cap", "--format=csv,noheader,nounits"],
                     capture_output=True, text=True, timeout=60)
rows = [[c.strip() for c in line.split(",")] for line in smi.stdout.strip().splitlines()] if smi.returncode == 0 else []
check(bool(rows), "nvidia-smi lists the GPUs")
check(gpus.get("GPU count") == str(len(rows)), f"GPU count {gpus.get('GPU count')!r} == nvidia-smi's {len(rows)}")
if rows:
    check(gpus.get("driver version") == rows[0][2], f"driver version {gpus.get('driver version')!r} == {rows[0][2]!r}")
check(gpus.get("CUDA driver API", "unknown") != "unknown", f"CUDA driver API {gpus.get('CUDA driver API')!r}")
for i, (name, mem_mib, _, cap) in enumerate(rows):
    g = lambda k: gpus.get(f"GPU {i} {k}", "")
    check(g("name") == name, f"GPU {i} name {g('name')!r} == {name!r}")
    total = g("memory").split(" MiB total")[0]
    check(total.isdigit() and abs(int(total) - int(mem_mib)) <= 1, f"GPU {i} memory {g('memory')!r} ~ {mem_mib} MiB")
    check(g("compute capability") == cap, f"GPU {i} compute capability {g('compute capability')!r} == {cap!r}")
    for key in ("power limits", "clocks (max)", "MIG mode", "ECC", "NVLinks active", "PCIe", "compute processes", "UUID"):
        check(g(key) not in ("", "unknown") and "unknown," not in g(key), f"GPU {i} {key}: {g(key)!r}")
libs = report.get("CUDA libraries", {})
check(libs.get("libcuda", "not found").startswith("CUDA "), f"libcuda {libs.get('libcuda')!r}")
sys.exit(1 if failures else 0)
